"""What tuning the rules' latency weights side by side saves, against one simulator per candidate.

    python bench/tune_side_by_side.py                       # serving, the serving study's validation setting, smaller
    python bench/tune_side_by_side.py --profile contention --arrival-rate 8 --warmup 100

`Heuristics/tune.py` evaluates every (rule, W) candidate on the train split. The candidates of the rules that may
share a simulator (`Scheduler.shares_a_simulator`) run side by side in one (`Heuristics.tune.evaluate_candidates`),
each block's rows those of its own run. This bench times the candidates of `--policies` x `--weights` both ways on
the deterministic `--servers`-server region of bench/env_throughput.py (one torch thread, one after the other in
one process): alone (one simulator each, as tune.py did before) and as tune.py does now, and checks that both give
every candidate the same episodes, number for number (but the wall time per decision). The defaults are the serving
study's validation setting (total/studies.yaml: load 0.9, eval seed 100, the greedy family's weights) at a smaller
size (50 warm-up and 20 measured workflows a world, 2 worlds, bounded at 1,000 steps).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import add_json_flag, emit, record  # noqa: E402
from bench.worlds import PROFILES, add_world_flags, world_dataset, world_params  # noqa: E402
from Heuristics.inference import policy_maker  # noqa: E402
from Heuristics.tune import evaluate_candidates  # noqa: E402
from schedkit.evaluation import evaluate_seeds  # noqa: E402


def same(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    cols = [c for c in a if c != "decision_ms"]
    return list(a.columns) == list(b.columns) and a[cols].equals(b[cols])


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profile", choices=list(PROFILES), default="serving")
    p.add_argument("--policies", nargs="+", default=["greedy_queue", "least_loaded"],
                   help="rules whose weights are tuned (default: greedy_queue least_loaded)")
    p.add_argument("--weights", type=float, nargs="+", default=[0.4, 0.6, 0.8, 1.0])
    p.add_argument("--seed", type=int, default=100, help="evaluation seed (default 100, the validation setting's)")
    p.add_argument("--episodes", type=int, default=40, help="measured workflows (default 40)")
    p.add_argument("--max-steps", type=int, default=1000, help="each evaluation's step bound (default 1000)")
    add_world_flags(p, "worlds", warmup=50)
    add_json_flag(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ds = world_dataset(args)
    profile, params = PROFILES[args.profile], world_params(args.profile, args)
    candidates = [(name, w) for name in args.policies for w in args.weights]
    t0 = time.perf_counter()
    alone = []
    for name, w in candidates:
        [(_, result)] = evaluate_seeds(ds, "train", args.episodes, [args.seed], "cpu", profile, params,
                                       policy_maker(name, w), progress=False, max_steps=args.max_steps)
        alone.append(result.episodes)
    alone_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = evaluate_candidates(ds, "train", args.episodes, args.seed, "cpu", profile, params, candidates,
                                   max_steps=args.max_steps, progress=False, say=lambda line: None)
    together_s = time.perf_counter() - t0
    row = {"profile": args.profile, "servers": ds.n_servers, "candidates": len(candidates),
           "unfinished": int(sum((~r["finished"]).sum() for r in alone)), "alone_s": alone_s,
           "together_s": together_s, "ratio": alone_s / together_s,
           "identical": all(same(a, b) for a, b in zip(alone, together))}
    emit(args.json, record("bench/tune_side_by_side.py", argv, [row]))
    if args.json != "-":
        print(f"{row['candidates']} candidates ({', '.join(args.policies)} x {len(args.weights)} weights), "
              f"{args.profile}, {ds.n_servers} servers, one torch thread")
        print(f"alone {alone_s:.1f} s, side by side {together_s:.1f} s: {row['ratio']:.2f}x; identical: "
              f"{'yes' if row['identical'] else 'NO'}; unfinished workflows over all candidates {row['unfinished']}")
    return row


if __name__ == "__main__":
    main()
