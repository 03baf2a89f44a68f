"""Learned schedulers against the oracle and heuristics: training time, decision time, quality.

    python bench/compare_learned.py                                  # all four, 3 seeds, full budget
    python bench/compare_learned.py --algos TopoFreeRL --set lr=1e-3  # one algorithm, a config change
    python bench/compare_learned.py --seeds 42 --epochs 10 --episodes 50   # a quick look

For each algorithm and seed, the training command runs through the shell and is timed, start-up
included. Then inference runs on the test split, and the heuristics and the oracle run on the same
tasks with the same evaluation seed. Every learned method gets the same mask, protocol, seeds and
budget (epochs x episodes). Prints wall times and time splits, then latency, cost and reward as
mean [95% bootstrap CI over training seeds and the shared test tasks], and the gap to the oracle's reward.
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

import numpy as np
import pandas as pd

from schedkit.paths import final_checkpoint, metrics_file
from schedkit.registry import get, learned
from schedkit.stats import hierarchical_bootstrap_ci

ROOT = Path(__file__).resolve().parents[1]

SPLIT_COLUMNS = ("rollout_s", "update_s", "train_s", "val_s")  # whichever the algorithm logs


def run(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=learned(), choices=learned(), help="learned algorithms")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44], help="training seeds")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--episodes", type=int, default=200, help="episodes per epoch")
    p.add_argument("--eval-seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for training")
    p.add_argument("--work", help="folder for runs and evaluations (default: a temporary folder)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the tables")
    args = p.parse_args(argv)
    work = Path(args.work or tempfile.mkdtemp(prefix="topofreerl_bench_"))
    sets = [x for kv in args.set for x in ("--set", kv)]

    speed: list[dict[str, Any]] = []
    episodes: dict[str, list[pd.DataFrame]] = {}
    for algo in args.algos:
        folder = get(algo).folder
        for seed in args.seeds:
            run_dir = work / algo / f"seed{seed}"
            wall = run(f"{folder}/train.py", "--seed", str(seed), "--epochs", str(args.epochs), "--episodes",
                       str(args.episodes), "--out", str(run_dir), "--no-progress", *sets)
            run(f"{folder}/inference.py", "--model", str(final_checkpoint(run_dir)), "--seed",
                str(args.eval_seed), "--out", str(run_dir / "eval"), "--no-progress")
            m = pd.read_csv(metrics_file(run_dir))
            summary = json.loads((run_dir / "eval" / "summary.json").read_text())
            speed.append({"algo": algo, "seed": seed, "wall_s": wall,
                          **{c: m[c].sum() for c in SPLIT_COLUMNS if c in m.columns},
                          "decision_ms_batch1": summary["decision_ms_batch1"]})
            episodes.setdefault(algo, []).append(pd.read_csv(run_dir / "eval" / "episodes.csv"))
    run("Heuristics/inference.py", "--policy", "oracle", "greedy", "maxcompute", "random", "--seed", str(args.eval_seed),
        "--out", str(work / "heuristics"), "--no-progress")
    for name in ("oracle", "greedy", "maxcompute", "random"):
        episodes[name] = [pd.read_csv(work / "heuristics" / name / "episodes.csv")]

    quality: dict[str, dict[str, Any]] = {}
    for name, frames in episodes.items():
        # (runs, one eval seed, episodes): the CI is over training seeds and the shared test tasks (clusters)
        clusters = pd.factorize(frames[0]["task_id"])[0]
        quality[name] = {m: hierarchical_bootstrap_ci(np.stack([f[m].to_numpy()[None] for f in frames]), clusters=clusters)
                         for m in ("latency_ms", "cost", "reward")}
    oracle = quality["oracle"]["reward"][0]
    for q in quality.values():
        q["gap_to_oracle_pct"] = 100 * (oracle - q["reward"][0]) / abs(oracle)
    out = {"speed": speed, "quality": quality, "work": str(work)}
    if args.json:
        print(json.dumps(out))
        return out
    print(pd.DataFrame(speed).round(3).to_string(index=False))
    print(f"\nquality on the test split, eval seed {args.eval_seed}, learned methods over seeds {args.seeds}:")
    print(f"{'scheduler':<11} {'latency ms':>26} {'cost $':>29} {'reward':>28} {'gap %':>6}")
    for name, q in quality.items():
        cells = [f"{m:.{d}f} [{lo:.{d}f}, {hi:.{d}f}]" for (m, lo, hi), d in
                 ((q["latency_ms"], 1), (q["cost"], 5), (q["reward"], 4))]
        print(f"{name:<11} {cells[0]:>26} {cells[1]:>29} {cells[2]:>28} {q['gap_to_oracle_pct']:>6.2f}")
    print(f"\nruns and evaluations kept in {work}")
    return out


if __name__ == "__main__":
    main()
