"""What running every evaluation seed's worlds in one simulator saves, against one simulator per seed.

    python bench/seed_batching.py                                 # serving, the serving study's evaluation shape
    python bench/seed_batching.py --profiles serving contention --episodes 100 --warmup 100

`schedkit.evaluation.evaluate_seeds` runs the worlds of all `--seeds` side by side as the rows of one
simulator when the profile allows it (`Profile.batches_seeds`): each step then costs little more than
one seed's, and the run takes as many steps as the slowest seed needs. This bench times one evaluation
of `--policy` both ways on the deterministic `--servers`-server region of bench/env_throughput.py (train
split, one torch thread, one after the other in one process) and checks that both give each seed the
same episodes and load statistics, number for number. The defaults are the serving study's evaluation
shape (total/studies.yaml: load 0.9, 2 worlds, 1,000 warm-up workflows a world, 200 measured, 5 seeds).
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import add_json_flag, emit, record  # noqa: E402
from bench.worlds import PROFILES, add_world_flags, world_dataset, world_params  # noqa: E402
from Heuristics.inference import make_policy  # noqa: E402
from schedkit.evaluation import Evaluation, evaluate_seeds  # noqa: E402


def same(a: Evaluation, b: Evaluation) -> bool:
    """The same episodes (but the wall time per decision) and requests, and load statistics equal to 1e-12
    (time-weighted sums over servers add in another order when other worlds' events interleave)."""
    cols = [c for c in a.episodes if c != "decision_ms"]
    requests = (a.requests is None and b.requests is None) or (
        a.requests is not None and b.requests is not None and a.requests.equals(b.requests))
    stats = a.stats.keys() == b.stats.keys() and all(math.isclose(a.stats[k], b.stats[k], rel_tol=1e-12)
                                                     for k in a.stats)
    return a.episodes[cols].equals(b.episodes[cols]) and requests and stats


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--profiles", nargs="+", choices=list(PROFILES), default=["serving"])
    p.add_argument("--policy", default="greedy_queue", help="registered heuristic to evaluate (default greedy_queue)")
    p.add_argument("--seeds", type=int, nargs="+", default=[100, 101, 102, 103, 104])
    p.add_argument("--episodes", type=int, default=200, help="measured workflows per seed (default 200)")
    add_world_flags(p, "worlds per seed", warmup=1000)
    add_json_flag(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    ds = world_dataset(args)
    rows = []
    for name in args.profiles:
        profile, c = PROFILES[name], world_params(name, args)

        def run(seeds: list[int]) -> tuple[float, list[tuple[int, Evaluation]]]:
            t0 = time.perf_counter()
            out = evaluate_seeds(ds, "train", args.episodes, seeds, "cpu", profile, c,
                                 lambda sim, seed: make_policy(args.policy, sim, seed, 0.5), progress=False)
            return time.perf_counter() - t0, out

        apart_s, apart, steps = 0.0, [], 0
        for seed in args.seeds:
            seconds, [(_, result)] = run([seed])
            apart_s += seconds
            apart.append(result)
            steps += result.steps
        together_s, together = run(args.seeds)
        rows.append({"profile": name, "servers": ds.n_servers, "policy": args.policy, "seeds": len(args.seeds),
                     "apart_s": apart_s, "apart_steps": steps, "together_s": together_s,
                     "together_steps": max(r.steps for _, r in together), "ratio": apart_s / together_s,
                     "identical": all(same(a, b) for a, (_, b) in zip(apart, together))})
    emit(args.json, record("bench/seed_batching.py", argv, rows))
    if args.json != "-":
        print(f"{len(args.seeds)} evaluation seeds, one simulator each (apart) or side by side in one (together); "
              "one torch thread")
        print(f"{'profile':<11} {'apart s':>8} {'steps':>7} {'together s':>11} {'steps':>7} {'ratio':>6}  identical")
        for r in rows:
            print(f"{r['profile']:<11} {r['apart_s']:>8.1f} {r['apart_steps']:>7} {r['together_s']:>11.1f} "
                  f"{r['together_steps']:>7} {r['ratio']:>6.2f}  {'yes' if r['identical'] else 'NO'}")
    return rows


if __name__ == "__main__":
    main()
