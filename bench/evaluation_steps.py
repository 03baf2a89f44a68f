"""Where a serving evaluation's steps go: warming up, measuring, or draining.

    python bench/evaluation_steps.py                                  # greedy_queue, the study's validation setting
    python bench/evaluation_steps.py --policies greedy_queue least_loaded --json bench/results/evaluation_steps.json

A step makes one decision in every world, so an evaluation takes as many steps as its busiest world makes
decisions until its last measured workflow has finished. For each `--policies` rule, one evaluation on the
serving study's validation setting (bench/serving_validation.py: its region, train split, load, five seeds
side by side, worlds, warm-up, measured workflows, step bound), counting the step at which the first and the
last world first decides for its first measured workflow (the warm-up's end) and for its last measured one
(the measured arrivals' end); the steps after that are the drain: every world decides new arrivals until the
slowest measured workflow has finished, whose latency (mean, P99, max) is printed beside them.
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
from bench.serving_validation import validation_setting  # noqa: E402
from edgesim.serving import SERVING  # noqa: E402
from edgesim.simulator import Observation, Simulator  # noqa: E402
from schedkit.evaluation import Policy, evaluate_seeds  # noqa: E402
from schedkit.registry import get  # noqa: E402


class StepCounting:
    """`policy`, noting the step at which the first and the last world first decide for a workflow of each
    arrival index in `marks`; a step is one call of `act`."""

    def __init__(self, policy: Policy, marks: dict[str, int]):
        self.policy, self.name, self.marks, self.steps = policy, policy.name, marks, 0
        self.first: dict[str, int] = {}
        self.last: dict[str, int] = {}
        self.seen: dict[str, torch.Tensor] = {}  # per mark, the worlds that have decided for it

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        self.steps += 1
        index = sim.episode // sim.batch_size  # episode ids: arrival index x worlds + world
        for name, k in self.marks.items():
            reached = index >= k
            if name not in self.first and bool(reached.any()):
                self.first[name] = self.steps
            self.seen[name] = self.seen.get(name, torch.zeros_like(reached)) | reached
            if name not in self.last and bool(self.seen[name].all()):
                self.last[name] = self.steps
        return self.policy.act(sim, obs)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", nargs="+", default=["greedy_queue"])
    add_json_flag(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    setting = validation_setting()
    protocol = setting.protocol
    per_world = protocol.episodes // protocol.worlds
    marks = {"warmup_end": protocol.warmup, "last_measured": protocol.warmup + per_world - 1}
    rows = []
    for name in args.policies:
        counting: list[StepCounting] = []

        def make(sim: Simulator, seed: int, name: str = name) -> StepCounting:
            counting.append(StepCounting(get(name).load()(sim, seed=seed), marks))
            return counting[-1]
        t0 = time.perf_counter()
        runs = evaluate_seeds(setting.ds, "train", protocol.episodes, setting.seeds, "cpu", SERVING, setting.params,
                              make, progress=False, max_steps=protocol.max_steps)
        seconds = time.perf_counter() - t0
        (c,) = counting
        latency = pd.concat([r.episodes["latency_ms"] for _, r in runs])
        drain = c.steps - c.last.get("last_measured", c.steps)
        rows.append({"policy": name, "steps": c.steps, "seconds": seconds,
                     "first_world_warmup_end": c.first.get("warmup_end"), "all_worlds_warmup_end": c.last.get("warmup_end"),
                     "all_worlds_last_measured": c.last.get("last_measured"), "drain_steps": drain,
                     "drain_share": drain / c.steps,
                     "latency_mean_ms": float(latency.mean()), "latency_p99_ms": float(latency.quantile(0.99)),
                     "latency_max_ms": float(latency.max()),
                     "arrivals_per_s": float(runs[0][1].stats["arrival_rate_per_s"])})
        print(f"{name} done in {seconds:.0f} s", file=sys.stderr)
    emit(args.json, record("bench/evaluation_steps.py", argv, rows, setting=setting.record()))
    if args.json != "-":
        print(f"validation setting, load {protocol.validation_load:g}, {len(setting.seeds)} seeds x {protocol.worlds} "
              f"worlds side by side, {protocol.warmup} warm-up + {per_world} measured workflows a world")
        for r in rows:
            print(f"{r['policy']}: {r['steps']:,} steps ({r['seconds']:.0f} s); warm-up ends at step "
                  f"{r['first_world_warmup_end']:,} (first world) to {r['all_worlds_warmup_end']:,} (last); last measured "
                  f"arrival decided by {r['all_worlds_last_measured']:,}; drain {r['drain_steps']:,} steps "
                  f"({r['drain_share']:.0%}); measured workflow latency mean {r['latency_mean_ms'] / 1000:.0f} s, "
                  f"P99 {r['latency_p99_ms'] / 1000:.0f} s, max {r['latency_max_ms'] / 1000:.0f} s")
    return rows


if __name__ == "__main__":
    main()
