"""How well the serving performance model reproduces the measured SplitwiseSim table.

    python bench/serving_fidelity.py                                   # JSON lines on stdout
    python bench/serving_fidelity.py --json bench/results/serving_fidelity.json
    python bench/serving_fidelity.py --holdout h100-80gb-pcap --json bench/results/serving_fidelity_holdout_pcap.json
    python bench/serving_fidelity.py --holdout llama2-70b:4            # a model at one tensor parallel degree
    python bench/serving_fidelity.py --through-simulator               # also through the serving simulator

Every (model, hardware, tensor_parallel, prompt_size, batch_size, token_size) of
data1/serving/splitwise_perf_model.csv is simulated as that batch on one idle server
(edgesim.serving_perf.idle_batch_ms: one prefill iteration of all b prompts, then token_size - 1 decode
iterations with the batch constant) and compared with the median of its measured repetitions. Printed: one
JSON row per setting, then the median and p90 absolute relative error of TTFT, TPOT and E2E per hardware and
overall, then the 5 worst settings. Targets: median <= 5% and p90 <= 15% for each of TTFT, TPOT and E2E.

Left out of the error summary (their rows are still printed, flagged): the anomalous llama2-70b TP 2 batch 64
settings (flag `anomaly`), and the E2E of settings whose measured request stopped generating before
token_size tokens (flag `e2e_truncated`); see tools/fit_serving_model.py.

Without --holdout the committed coefficients (data1/serving/perf_model.json) are checked. With
--holdout the model is fitted on the rest of the table and the held-out part is predicted by extrapolation:
  HARDWARE     the fit of the remaining hardware with the nearest datasheet (peak fp16 TFLOPS, HBM
               bandwidth), prefill coefficients scaled by the TFLOPS ratio and decode ones by the bandwidth
               ratio (prefill is compute bound, decode memory bound);
  MODEL:TP     the same model and hardware at the two nearest other tensor-parallel degrees, each time
               interpolated (or extrapolated) geometrically in log TP.

With --through-simulator the settings of the simulator's GPU classes (edgesim.serving.GPU_CLASSES) that fit
one engine (prompt + output within the 4,096-token context window, the batch within its KV capacity and
max_batch) are also run through the serving simulator: b workflows arriving together at an idle server of
that class, with equal network draws; their TTFT and E2E less the network time, and their TPOT, are compared
with idle_batch_ms under the simulator's coefficients, and the largest relative difference is reported
(`through_simulator`). That checks the simulator's arithmetic, not the measurement.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgesim.dataset import load_dataset
from edgesim.serving import CONTEXT_TOKENS, GPU_CLASSES, Serving, ServingSimulator, gpu_class_perf
from edgesim.serving_perf import (
    PERF_MODEL,
    PERF_TABLE,
    PerfModelError,
    ServingCoefficients,
    fit_table,
    idle_batch_ms,
    load_perf_model,
    read_table,
)
from schedkit.io import atomic_write_text

TARGETS = {"median": 0.05, "p90": 0.15}
METRICS = ("ttft", "tpot", "e2e")
PREFILL_FIELDS = ("floor", "p0", "p1", "p2", "p3")


def _row(r: Any, sim: tuple[float, float, float]) -> dict[str, Any]:
    return {"model": r.model, "hardware": r.hardware, "tensor_parallel": int(r.tensor_parallel),
            "prompt_size": int(r.prompt_size), "batch_size": int(r.batch_size), "token_size": int(r.token_size),
            "measured_ttft_ms": round(float(r.prompt_time), 3), "simulated_ttft_ms": round(float(sim[0]), 3),
            "measured_tpot_ms": round(float(r.token_time), 3), "simulated_tpot_ms": round(float(sim[1]), 3),
            "measured_e2e_ms": round(float(r.e2e_time), 3), "simulated_e2e_ms": round(float(sim[2]), 3),
            "anomaly": r.anomaly, "e2e_truncated": bool(r.e2e_truncated)}


def _error(row: dict[str, Any], metric: str) -> float:
    return abs(row[f"simulated_{metric}_ms"] / row[f"measured_{metric}_ms"] - 1)


def _counted(row: dict[str, Any], metric: str) -> bool:
    return not row["anomaly"] and not (metric == "e2e" and row["e2e_truncated"])


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and p90 absolute relative error of each metric, over the rows the summary counts."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        e = [_error(r, metric) for r in rows if _counted(r, metric)]
        out[metric] = ({"n": len(e), "median": round(float(np.median(e)), 4), "p90": round(float(np.quantile(e, 0.9)), 4)}
                       if e else {"n": 0})
    return out


def targets_met(summary: dict[str, Any]) -> dict[str, bool]:
    return {m: summary[m].get("n", 0) > 0 and all(summary[m][k] <= v for k, v in TARGETS.items()) for m in METRICS}


def _simulate(c: ServingCoefficients, r: Any) -> tuple[float, float, float]:
    ttft, tpot, e2e = idle_batch_ms(c, float(r.prompt_size), float(r.batch_size), float(r.token_size))
    return float(ttft), float(tpot), float(e2e)


def _scaled(c: ServingCoefficients, prefill: float, decode: float) -> ServingCoefficients:
    return replace(c, **{f.name: getattr(c, f.name) * (prefill if f.name in PREFILL_FIELDS else decode)
                         for f in fields(c)})


def _parse_holdout(spec: str, table: Any) -> tuple[str, str | None, int | None]:
    if spec in set(table.hardware):
        return "hardware", spec, None
    model, _, tp = spec.partition(":")
    if model in set(table.model) and tp.isdigit() and ((table.model == model) & (table.tensor_parallel == int(tp))).any():
        return "model_tp", model, int(tp)
    raise PerfModelError(f"--holdout {spec!r}: expected a hardware {sorted(set(table.hardware))} or MODEL:TP "
                         f"among {sorted({f'{m}:{t}' for m, t in zip(table.model, table.tensor_parallel)})}")


def holdout_rows(table: Any, spec: str, hardware_facts: dict[str, Any]) -> list[dict[str, Any]]:
    """Fit on the table without the held-out part; predict the held-out rows by extrapolation."""
    kind, name, tp = _parse_holdout(spec, table)
    held = (table.hardware == name) if kind == "hardware" else (table.model == name) & (table.tensor_parallel == tp)
    fits = fit_table(table[~held])
    rows = []
    for r in table[held].itertuples():
        if kind == "hardware":
            dst = hardware_facts[r.hardware]
            sources = [h for (m, h, t) in fits if m == r.model and t == r.tensor_parallel]
            if not sources:
                raise PerfModelError(f"--holdout {spec}: no other hardware has {r.model} at TP {r.tensor_parallel}")

            def distance(h: str) -> tuple[float, str]:
                s = hardware_facts[h]
                return (abs(math.log(s["peak_tflops_fp16"] / dst["peak_tflops_fp16"]))
                        + abs(math.log(s["hbm_tb_s"] / dst["hbm_tb_s"])), h)
            src = min(sources, key=distance)
            s = hardware_facts[src]
            c = _scaled(fits[(r.model, src, int(r.tensor_parallel))], s["peak_tflops_fp16"] / dst["peak_tflops_fp16"],
                        s["hbm_tb_s"] / dst["hbm_tb_s"])
            rows.append(_row(r, _simulate(c, r)))
            continue
        tps = sorted({t for (m, h, t) in fits if m == r.model and h == r.hardware},
                     key=lambda t: (abs(math.log(t / r.tensor_parallel)), t))
        if len(tps) < 2:
            raise PerfModelError(f"--holdout {spec}: needs {r.model} on {r.hardware} at two other TP degrees")
        a, b = tps[0], tps[1]
        w = math.log(r.tensor_parallel / a) / math.log(b / a)
        sa, sb = _simulate(fits[(r.model, r.hardware, a)], r), _simulate(fits[(r.model, r.hardware, b)], r)
        rows.append(_row(r, tuple(x ** (1 - w) * y ** w for x, y in zip(sa, sb))))
    return rows


def fidelity(table: Any, perf_model: str | Path = PERF_MODEL, holdout: str | None = None) -> dict[str, Any]:
    """Rows, summaries per hardware and overall, and the 5 worst settings."""
    model = load_perf_model(perf_model)  # checks the file; the datasheet figures are read below
    if holdout:
        facts = json.loads(Path(perf_model).read_text(encoding="utf-8"))["hardware"]
        for h, spec in facts.items():
            for key in ("peak_tflops_fp16", "hbm_tb_s"):
                value = spec.get(key)
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                    raise PerfModelError(f"{perf_model}: hardware.{h}.{key}: expected a positive number, got {value!r}")
        rows = holdout_rows(table, holdout, facts)
    else:
        rows = [_row(r, _simulate(model.get(r.model, r.hardware, r.tensor_parallel), r)) for r in table.itertuples()]
    per_hw = {h: summarise([r for r in rows if r["hardware"] == h]) for h in sorted({r["hardware"] for r in rows})}
    overall = summarise(rows)

    def worst_error(r: dict[str, Any]) -> float:
        return max(_error(r, m) for m in METRICS if _counted(r, m))
    worst = sorted((r for r in rows if not r["anomaly"]), key=lambda r: (-worst_error(r), r["model"], r["hardware"],
                                                                         r["tensor_parallel"], r["prompt_size"],
                                                                         r["batch_size"], r["token_size"]))[:5]
    return {"command": "python bench/serving_fidelity.py" + (f" --holdout {holdout}" if holdout else ""),
            "holdout": holdout, "targets": TARGETS, "summary": {"per_hardware": per_hw, "overall": overall},
            "targets_met": targets_met(overall),
            "worst": [r | {f"{m}_error": round(_error(r, m), 4) for m in METRICS} for r in worst], "rows": rows}


# A region of three servers hosting one model type, one per NormalizedCompute tercile (one per GPU class),
# and a two-step task per split (only first steps are measured); a burst trace whose gaps are 0 but for
# its last two, so arrivals come together.
REGION = {
    "servers.csv": "ServerID,Longitude,Latitude,NormalizedCompute,ComputationCapacity\n"
                   "S0,8.0,47.0,0.25,10\nS1,8.0,47.0,0.5,20\nS2,8.0,47.0,1.0,40\n",
    "model_instances.csv": "ModelInstanceID,ServerID,ModelTypeName,CostPerToken\n"
                           "i0,S0,ChatGPT,0.0015\ni1,S1,ChatGPT,0.0015\ni2,S2,ChatGPT,0.0015\n",
    "network_links.csv": "SrcServerID,DstServerID,BaseLatencyMs,BandwidthMbps\n",
    "tasks.csv": "TaskID,Split,TaskLongitude,TaskLatitude,TaskSize,RequiredModelTypes\n"
                 't0,train,8.0,47.0,100,"[""ChatGPT"", ""ChatGPT""]"\n'
                 't1,test,8.0,47.0,100,"[""ChatGPT"", ""ChatGPT""]"\n',
    "trap_config.json": '{"trap_server_ids": []}',
}
BURST = "Timestamp\n" + "0\n" * 10_000 + "1\n2\n"


def through_simulator(table: Any, folder: Path) -> dict[str, Any]:
    """Run every setting of a simulator GPU class that fits one engine through the serving simulator (in a
    region written to `folder`); the largest relative difference from idle_batch_ms per metric."""
    region = folder / "Three"
    region.mkdir(parents=True, exist_ok=True)
    for name, text in REGION.items():
        (region / name).write_text(text)
    (folder / "burst.csv").write_text(BURST)
    ds = load_dataset(folder, "Three")
    perf = gpu_class_perf()
    worst = {m: 0.0 for m in METRICS}
    runs, skipped = [], 0
    for r in table.itertuples():
        key = (r.model, r.hardware, int(r.tensor_parallel))
        if key not in GPU_CLASSES:
            continue
        cls = GPU_CLASSES.index(key)
        c, kv = perf[cls]
        b, p, o = int(r.batch_size), int(r.prompt_size), int(r.token_size)
        if p + o > CONTEXT_TOKENS or b * (p + o) > kv or b > Serving.max_batch:
            skipped += 1
            continue
        tokens = folder / "tokens.csv"
        tokens.write_text(f"ContextTokens,GeneratedTokens\n{p},{o}\n")
        params = Serving(arrival_rate=1.0, arrival_trace=str(folder / "burst.csv"), token_trace=str(tokens),
                         max_in_flight=b, worlds=1, warmup=0)
        sim = ServingSimulator(ds, 1, "train", "sequential", 0, serving=params)
        server = torch.tensor([int((sim.perf.gpu_class == cls).nonzero()[0, 0])])
        draws = torch.full((1, 4), 0.5, dtype=torch.float64)
        got: dict[int, tuple[float, float, float]] = {}
        together = True
        for _ in range(b + 1):  # b decisions at time 0; the last step runs until their requests complete
            _, _, _, info = sim.step(server, uniforms=draws)
            for i in (info["step"] == 0).nonzero()[:, 0].tolist():
                net = float(info["network_ms"][i])
                got[int(info["episode"][i])] = (float(info["ttft_ms"][i]) - net, float(info["tpot_ms"][i]),
                                                float(info["latency"][i]) - net)
                together &= float(info["arrival_ms"][i]) == 0.0 and float(info["queue_ms"][i]) == 0.0
        if sorted(got) != list(range(b)) or not together:
            raise PerfModelError(f"through the simulator: {key} b={b} p={p} o={o}: the requests were not served as "
                                 "one batch arriving together at an idle server")
        closed = tuple(float(x) for x in idle_batch_ms(c, float(p), float(b), float(o)))
        for sim_values in got.values():
            for m, s, x in zip(METRICS, sim_values, closed):
                worst[m] = max(worst[m], abs(s - x) / x if x else abs(s))
        runs.append({"model": r.model, "hardware": r.hardware, "tensor_parallel": key[2], "batch_size": b,
                     "prompt_size": p, "token_size": o})
    return {"settings": len(runs), "skipped_not_fitting_one_engine": skipped,
            "max_relative_difference": {m: float(f"{v:.3g}") for m, v in worst.items()}, "runs": runs}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path, help="also write everything to this JSON file")
    ap.add_argument("--holdout", help="HARDWARE or MODEL:TP to leave out of the fit and predict by extrapolation")
    ap.add_argument("--table", type=Path, default=PERF_TABLE, help="the measured table")
    ap.add_argument("--perf-model", type=Path, default=PERF_MODEL, help="the coefficient file (and hardware facts)")
    ap.add_argument("--through-simulator", action="store_true",
                    help="also run the settings of the simulator's GPU classes through the serving simulator and "
                         "report the largest difference from the closed form")
    args = ap.parse_args(argv)
    try:
        table = read_table(args.table)
        result = fidelity(table, args.perf_model, args.holdout)
        if args.through_simulator:
            with tempfile.TemporaryDirectory() as folder:
                result["through_simulator"] = through_simulator(table, Path(folder))
    except (PerfModelError, OSError) as e:
        sys.exit(f"error: {e}")
    for row in result["rows"]:
        print(json.dumps(row))
    print(json.dumps({"summary": result["summary"], "targets": TARGETS, "targets_met": result["targets_met"]}))
    for row in result["worst"]:
        print(json.dumps({"worst": row}))
    if "through_simulator" in result:
        print(json.dumps({"through_simulator": {k: v for k, v in result["through_simulator"].items() if k != "runs"}}))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
