"""Fit the serving performance model (edgesim/serving_perf.py) on the measured SplitwiseSim table.

    python tools/fit_serving_model.py                       # writes data1/serving/perf_model.json
    python tools/fit_serving_model.py --out /tmp/perf_model.json

For every (model, hardware, tensor parallel) of data1/serving/splitwise_perf_model.csv: the median of the
5 repetitions of each setting, then non-negative least squares on the relative error (each row divided by
its measured time, so a 60 ms and a 6 s setting count alike) of
  prefill:  max(floor, p0 + p1*T + p2*Q + p3*b)   on prompt_time (one prefill iteration, TTFT)
  decode:   d0 + d1*b + d2*K                       on token_time (one decode iteration, TPOT),
            K = b * (prompt + token_size / 2), the batch's KV tokens averaged over its decode iterations.
The same table always gives the same file (exact subset least squares, coefficients to 6 significant digits).

Anomalies of the table (listed in the output under "anomalies"):
  - llama2-70b TP 2, batch 64 (a100, h100, h100-pcap): prefill 8x faster than batch 32 and decode faster
    too, so not a run of 64 prompts: excluded from the fit and from the fidelity summary.
  - Output lengths of 512-8192 tokens: for most of these settings e2e_time is far below
    prompt_time + (token_size - 1) * token_time (down to 5%): the measured request stopped generating early
    (end of sequence), so e2e_time is not that of token_size tokens. Kept in the fit (prompt_time and the
    per-iteration token_time are still valid; their K assumes token_size tokens, which overstates the
    context by at most a few thousand tokens at batch 1, where the K term is small); their E2E is left out
    of the fidelity summary (flag `e2e_truncated`, E2E below 0.85 of that sum).
  - h100-80gb-pcap is not an independent measurement: its token_time and e2e_time equal h100-80gb's row
    for row and its prompt_time is exactly 1.3 x h100-80gb's. Kept (it is the only power-capped data);
    its E2E is therefore up to 10% below TTFT + (n-1) TPOT at large batches.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from edgesim.serving_perf import PERF_MODEL, PERF_TABLE, PerfModelError, decode_ms, fit_table, prefill_ms, read_table
from schedkit.io import atomic_write_text

COMMAND = "python tools/fit_serving_model.py"
SOURCE = ("SplitwiseSim (github.com/Mutinifni/splitwise-sim, data/perf_model.csv), Patel et al., "
          "'Splitwise: Efficient Generative LLM Inference Using Phase Splitting', ISCA 2024")
LICENCE = "MIT, Copyright (c) 2024 Pratyush Patel (data1/serving/LICENSE-splitwise-sim)"

# Model and GPU facts for the KV-cache capacity (and, for the hardware, the datasheet figures the fidelity
# bench uses to transfer a fit to held-out hardware).
MODELS: dict[str, dict[str, Any]] = {
    "llama2-70b": {"layers": 80, "kv_heads": 8, "head_dim": 128, "weight_bytes": 135_000_000_000, "max_batch": 64,
                   "source": "layers and 135 GB fp16 weights: SplitwiseSim model config; 8 KV heads of dim 128 "
                             "(grouped-query attention, 64 query heads): Touvron et al., 'Llama 2', 2023"},
    "bloom-176b": {"layers": 70, "kv_heads": 112, "head_dim": 128, "weight_bytes": 329_000_000_000, "max_batch": 64,
                   "source": "70 layers, 112 heads of dim 128 (hidden 14336, no grouped-query attention), 329 GB "
                             "fp16 weights: SplitwiseSim model config"},
}
HARDWARE: dict[str, dict[str, Any]] = {
    "a100-80gb": {"gpu_memory_bytes": 85_899_345_920, "peak_tflops_fp16": 312.0, "hbm_tb_s": 2.039,
                  "source": "80 GiB: SplitwiseSim hardware config; dense fp16 TFLOPS and HBM bandwidth: NVIDIA "
                            "A100 80GB SXM datasheet"},
    "h100-80gb": {"gpu_memory_bytes": 85_899_345_920, "peak_tflops_fp16": 989.0, "hbm_tb_s": 3.35,
                  "source": "80 GiB: SplitwiseSim hardware config; dense fp16 TFLOPS and HBM bandwidth: NVIDIA "
                            "H100 SXM datasheet"},
    "h100-80gb-pcap": {"gpu_memory_bytes": 85_899_345_920, "peak_tflops_fp16": 989.0, "hbm_tb_s": 3.35,
                       "source": "the H100 SXM power-capped: same memory and datasheet figures as h100-80gb "
                                 "(the cap is not in the datasheet)"},
}
ANOMALY_NOTES = [
    "llama2-70b tensor parallel 2, batch 64 (every hardware): prefill 8x faster than batch 32 and decode faster; "
    "excluded from the fit and the fidelity summary",
    "e2e_time far below prompt_time + (token_size-1)*token_time for long outputs (generation stopped early): "
    "kept in the fit, E2E left out of the fidelity summary (flag e2e_truncated)",
    "h100-80gb-pcap token_time and e2e_time equal h100-80gb's, prompt_time is exactly 1.3x h100-80gb's: kept",
]


def _errors(measured: np.ndarray, simulated: np.ndarray) -> dict[str, float]:
    e = np.abs(simulated / measured - 1)
    return {"median": round(float(np.median(e)), 4), "p90": round(float(np.quantile(e, 0.9)), 4),
            "max": round(float(e.max()), 4)}


def fit_record(table: Any) -> dict[str, Any]:
    """The whole coefficient file as a JSON-ready dict."""
    unknown = sorted({m for m in table.model if m not in MODELS} | {h for h in table.hardware if h not in HARDWARE})
    if unknown:
        raise PerfModelError(f"{unknown[0]!r}: no model or hardware facts for it; add them to MODELS or HARDWARE "
                             f"in tools/fit_serving_model.py")
    fits = fit_table(table)
    records = []
    for (model, hardware, tp), c in fits.items():
        rows = table[(table.model == model) & (table.hardware == hardware) & (table.tensor_parallel == tp)
                     & (table.anomaly == "")]
        b, p, n = (rows[k].to_numpy(dtype=float) for k in ("batch_size", "prompt_size", "token_size"))
        pre = np.array([prefill_ms(c, bi * pi, bi * pi * pi, bi) for bi, pi in zip(b, p)])
        dec = np.array([decode_ms(c, bi, bi * (pi + ni / 2)) for bi, pi, ni in zip(b, p, n)])
        records.append({
            "model": model, "hardware": hardware, "tensor_parallel": tp,
            "prefill": {k: getattr(c, k) for k in ("floor", "p0", "p1", "p2", "p3")},
            "decode": {k: getattr(c, k) for k in ("d0", "d1", "d2")},
            "rows": len(rows),
            "relative_error": {"prefill": _errors(rows.prompt_time.to_numpy(), pre),
                               "decode": _errors(rows.token_time.to_numpy(), dec)},
        })
    return {
        "format": 1,
        "command": COMMAND,
        "source": SOURCE,
        "licence": LICENCE,
        "units": "ms; T = prompt tokens of the iteration, Q = sum of squared prompt lengths, b = sequences, "
                 "K = KV tokens the decode iteration attends to",
        "prefill_ms": "max(floor, p0 + p1*T + p2*Q + p3*b)",
        "decode_ms": "d0 + d1*b + d2*K",
        "fit": "median of the repetitions; non-negative least squares on relative error; "
               "decode K = b*(prompt + token_size/2)",
        "anomalies": ANOMALY_NOTES,
        "models": MODELS,
        "hardware": HARDWARE,
        "fits": records,
    }


def render(record: dict[str, Any]) -> str:
    return json.dumps(record, indent=1) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=PERF_TABLE, help="the measured table (SplitwiseSim perf_model.csv)")
    ap.add_argument("--out", type=Path, default=PERF_MODEL, help="the coefficient file to write")
    args = ap.parse_args(argv)
    try:
        record = fit_record(read_table(args.table))
    except PerfModelError as e:
        sys.exit(f"error: {e}")
    atomic_write_text(args.out, render(record))
    print(f"wrote {args.out}: {len(record['fits'])} fits")


if __name__ == "__main__":
    main()

