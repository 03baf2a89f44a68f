"""Does the serving world contend? Load, queues and the spread between good and bad schedulers.

    python bench/serving_contention.py                                  # Server1_Trap, loads 0.5 and 0.9
    python bench/serving_contention.py --servers 50 --json bench/results/serving_contention.json

For each `--loads` value and each scheduler (Poisson arrivals, test split, the default serving settings
except those given), one evaluation through the same loop as every script (`schedkit.evaluation`),
then per load: measured utilisation, `least_loaded`'s mean queue wait, and the spread of SLO
attainment between the best and the worst of `--spread-of`. The checks printed (docs/simulator.md §6):
  utilisation   |measured - load| <= 0.05 for `--stable` (a policy that spreads load by live inputs)
  contention    at the highest load the spread is >= 20 points and least_loaded waits in queues
  load matters  the spread at the lowest load is smaller than at the highest
`--servers N` runs on a deterministic N-server region made by data1/generate.py (seed 0) instead of
`--region`: at 0.9 of its capacity Server1_Trap needs about ten thousand workflows in flight per world,
so each evaluation takes tens of minutes on one CPU thread; a smaller region shows the same effects
in minutes. The region, loads and sizes are in the JSON record beside every number. With --json
PATH the record is rewritten after every evaluation (`"complete": false` until the checks are in), so
`--resume` can go on from a stopped run with the same settings, keeping the rows it had.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import add_json_flag, emit, record  # noqa: E402
from edgesim.dataset import load_dataset  # noqa: E402
from edgesim.serving import SERVING  # noqa: E402
from Heuristics.inference import make_policy  # noqa: E402
from schedkit.cli import config_arg, episodes_arg, region_name, seed_arg  # noqa: E402
from schedkit.evaluation import eval_simulator  # noqa: E402

SPREAD_OF = ("least_loaded", "round_robin", "random", "greedy")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / "data1")
    p.add_argument("--region", type=region_name, default="Server1_Trap")
    p.add_argument("--servers", type=config_arg("serving.worlds"), default=None,
                   help="run on a generated N-server region (data1/generate.py --seed 0) instead of --region")
    p.add_argument("--loads", type=config_arg("serving.load"), nargs="+", default=[0.5, 0.9])
    p.add_argument("--policies", nargs="+", default=[*SPREAD_OF, "jsq", "token_jsq", "kv_jsq"])
    p.add_argument("--spread-of", nargs="+", default=list(SPREAD_OF))
    p.add_argument("--stable", default="least_loaded", help="the policy whose utilisation must meet the load")
    p.add_argument("--worlds", type=config_arg("serving.worlds"), default=4)
    p.add_argument("--warmup", type=config_arg("serving.warmup"), default=400, help="unmeasured workflows per world")
    p.add_argument("--episodes", type=episodes_arg, default=800, help="measured workflows, all worlds")
    p.add_argument("--max-in-flight", type=config_arg("serving.max_in_flight"), default=16384)
    p.add_argument("--max-steps", type=episodes_arg, default=20000,
                   help="steps per evaluation at most; workflows unfinished by then count as SLO misses")
    p.add_argument("--seed", type=seed_arg, default=0)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar of each evaluation")
    p.add_argument("--resume", action="store_true",
                   help="keep the rows the --json file already holds from a run with the same settings (one stopped "
                        "before its end: the file is rewritten after every row) and run only the others")
    add_json_flag(p)
    args = p.parse_args(argv)
    if args.resume and (args.json is None or args.json == "-"):
        p.error("--resume needs --json PATH: the file whose rows it keeps")
    return args


def dataset(args: argparse.Namespace, scratch: Path):
    if args.servers is None:
        return load_dataset(args.data, [args.region]), args.region
    region = f"Generated{args.servers}"
    subprocess.run([sys.executable, str(ROOT / "data1" / "generate.py"), "--servers", str(args.servers),
                    "--seed", "0", "--out", str(scratch / region)], check=True, capture_output=True)
    return load_dataset(scratch, [region]), region


def checks(rows: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Per load: the stable policy's utilisation error and queue wait, the SLO-attainment spread."""
    out: dict[str, Any] = {}
    for load in args.loads:
        at = {r["policy"]: r for r in rows if r["load"] == load}
        slo = [at[p]["slo_attainment"] for p in args.spread_of if p in at]
        stable = at.get(args.stable)
        out[f"{load:g}"] = {"spread_points": 100 * (max(slo) - min(slo)) if slo else None,
                            "stable_utilisation_error": None if stable is None else stable["utilisation"] - load,
                            "stable_queue_wait_ms": None if stable is None else stable["mean_queue_wait_ms"]}
    lo, hi = f"{min(args.loads):g}", f"{max(args.loads):g}"
    spread_lo, spread_hi = out[lo]["spread_points"], out[hi]["spread_points"]
    out["targets"] = {
        "utilisation_within_0.05": all(v["stable_utilisation_error"] is not None
                                       and abs(v["stable_utilisation_error"]) <= 0.05 for k, v in out.items()
                                       if k != "targets"),
        "spread_at_highest_load_>=_20_points": spread_hi is not None and spread_hi >= 20,
        "least_loaded_waits_at_highest_load": (out[hi]["stable_queue_wait_ms"] or 0) > 0,
        "spread_grows_with_load": spread_lo is not None and spread_hi is not None and spread_lo < spread_hi}
    return out


def run(sim, policy, episodes: int, max_steps: int, bar: tqdm) -> dict[str, Any]:
    """The first `episodes` measured workflows, or as many as finish within `max_steps` steps: a policy that
    overloads some servers grows queues without bound, and its unfinished workflows count as SLO misses
    (`unfinished`), so a bench row always ends."""
    obs = sim.reset(sim.seed)
    slo_ttft, slo_tpot = sim.request_slo_ms()
    met = torch.ones(episodes, dtype=torch.bool)
    finished = torch.zeros(episodes, dtype=torch.bool)
    latency = torch.zeros(episodes, dtype=sim.dtype)
    ttft: list[torch.Tensor] = []
    steps = 0
    while int(finished.sum()) < episodes and steps < max_steps:
        obs, _, done, info = sim.step(policy.act(sim, obs))
        keep, index = sim.measured(info["episode"], episodes)
        ep = index[keep]
        ok = (info["ttft_ms"][keep] <= slo_ttft) & (info["tpot_ms"][keep] <= slo_tpot)
        met[ep] &= ok
        latency.index_add_(0, ep, info["latency"][keep])
        finished[ep] |= done[keep]
        ttft.append(info["ttft_ms"][keep])
        steps += 1
        bar.update(1)
    stats = sim.serving_stats()
    all_ttft = torch.cat(ttft) if ttft else torch.zeros(1)
    return {"slo_attainment": float((met & finished).float().mean()), "unfinished": int((~finished).sum()),
            "steps": steps, "ttft_p99_ms": float(torch.quantile(all_ttft.double(), 0.99)),
            "mean_latency_ms_finished": float(latency[finished].mean()) if bool(finished.any()) else float("nan"),
            "utilisation": stats["utilisation"], "busy_share": stats["busy_share"],
            "mean_batch_size": stats["mean_running_batch"], "kv_occupancy": stats["kv_occupancy"],
            "mean_queue_length": stats["mean_queue_length"], "mean_queue_wait_ms": stats["mean_queue_wait_ms"]}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    settings = {"worlds": args.worlds, "warmup": args.warmup, "episodes": args.episodes,
                "max_in_flight": args.max_in_flight, "max_steps": args.max_steps, "seed": args.seed}
    with tempfile.TemporaryDirectory() as scratch:
        ds, region = dataset(args, Path(scratch))
        rows = kept_rows(Path(args.json), region, settings) if args.resume else []
        done = {(r["load"], r["policy"]) for r in rows}
        for load in args.loads:
            params = SERVING.parse({"load": load, "worlds": args.worlds, "warmup": args.warmup,
                                    "max_in_flight": args.max_in_flight})
            for name in args.policies:
                if (load, name) in done:
                    print(f"load {load:g} {name:>13}: kept from {args.json}", flush=True)
                    continue
                sim = eval_simulator(ds, "test", args.episodes, args.seed, "cpu", SERVING, params)
                t0 = time.perf_counter()
                row = {"region": region, "load": load, "policy": name}
                with tqdm(total=args.max_steps, desc=f"load {load:g} {name}", unit="step", leave=False,
                          disable=args.no_progress) as bar:
                    row |= run(sim, make_policy(name, sim, args.seed, 0.6), args.episodes, args.max_steps, bar)
                row["wall_s"] = time.perf_counter() - t0
                rows.append(row)
                print(f"load {load:g} {name:>13}: SLO {row['slo_attainment']:.3f} ({row['unfinished']} unfinished)  "
                      f"util {row['utilisation']:.3f}  queue wait {row['mean_queue_wait_ms']:9.1f} ms  "
                      f"batch {row['mean_batch_size']:5.2f}  TTFT p99 {row['ttft_p99_ms']:9.1f} ms  "
                      f"({row['steps']} steps, {row['wall_s']:.0f} s)", flush=True)
                if args.json not in (None, "-"):  # a run of hours keeps what it measured if it is stopped
                    emit(args.json, record("bench/serving_contention.py", argv, rows, region=region,
                                           settings=settings, complete=False))
    result = checks(rows, args)
    for key, value in result.items():
        print(f"{key}: {value}")
    emit(args.json, record("bench/serving_contention.py", argv, rows, region=region, checks=result,
                           settings=settings, complete=True))


def kept_rows(path: Path, region: str, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of an earlier run's --json file, to resume it: its region and settings must be these."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise SystemExit(f"error: {path}: cannot resume from it ({type(e).__name__}); expected this bench's JSON")
    rows = old.get("rows") if isinstance(old, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) and {"load", "policy"} <= set(r) for r in rows):
        raise SystemExit(f"error: {path}: field 'rows': expected this bench's rows, one per (load, policy)")
    if old.get("region") != region or old.get("settings") != settings:
        raise SystemExit(f"error: {path}: made for region {old.get('region')!r} with settings {old.get('settings')}, "
                         f"not {region!r} with {settings}; resume only the same run")
    return rows


if __name__ == "__main__":
    main()
