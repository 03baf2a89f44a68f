"""Host synchronisations per training epoch: the places a CUDA rollout would wait for the device.

    python bench/host_syncs.py                       # TopoFreeRL, PPO, PF-PPO; paper and contention
    python bench/host_syncs.py --episodes 50 --json

On a GPU, every read of a tensor's value on the host (`.item()`, `.tolist()`, `.cpu()`, `.numpy()`,
`bool()` / `int()` / `float()` / indexing with a tensor, Python branching on one) waits for every
queued kernel. This counts those reads during one epoch of `schedkit.rollout.collect` (agent features,
policy, sampling, simulator step, then GAE) with a freshly built agent of each PPO-family algorithm,
on the CPU, by wrapping the Tensor methods that do them, and names the project line that asked. The
GPU issue's target is O(1) per epoch; per step means the rollout cannot run ahead of the device.
"""
from __future__ import annotations

import argparse
import collections
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from edgesim.dataset import load_dataset
from schedkit.config import resolve
from schedkit.paths import REPO
from schedkit.registry import get
from schedkit.rollout import collect
from schedkit.simulators import config_params, config_profile, profile_simulator, start_worlds

READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__", "__index__")
HERE = Path(__file__).resolve()


def caller() -> str:
    """file:line of the innermost project frame outside this file (library frames are skipped)."""
    frame: FrameType | None = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if path != HERE and path.is_relative_to(REPO) and ".venv" not in path.parts:
            return f"{path.relative_to(REPO)}:{frame.f_lineno}"
        frame = frame.f_back
    return "<outside the project>"


@contextmanager
def counting_reads() -> Iterator[collections.Counter]:
    """Count the host reads of tensor values made inside the block, by calling line."""
    counts: collections.Counter = collections.Counter()
    originals = {name: getattr(torch.Tensor, name) for name in READS}

    def wrap(name: str, original: Any) -> Any:
        def read(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            counts[(name, caller())] += 1
            return original(self, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, wrap(name, original))
    try:
        yield counts
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


def one_epoch(algo: str, profile: str, episodes: int) -> dict[str, Any]:
    folder = get(algo).folder
    sets = [f"profile={profile}", "device=cpu"] + (["contention.arrival_rate=8"] if profile == "contention" else [])
    cfg = resolve(REPO / folder / "config.yaml", sets=sets)
    ds = load_dataset(REPO / "data1", cfg["regions"])
    torch.manual_seed(0)  # the same fresh agent every run
    agent = get(algo).load()(ds, cfg, torch.device("cpu"))
    sim = profile_simulator(ds, config_profile(cfg), config_params(cfg), "train", "random", 0, "cpu", episodes)
    continuing = start_worlds(sim, cfg, None, 1)  # as training does: contention worlds run on across epochs
    weights = torch.tensor([0.45, 0.40, 0.15], dtype=sim.dtype)
    step, steps = sim.step, [0]

    def counted_step(*args: Any, **kwargs: Any) -> Any:
        steps[0] += 1
        return step(*args, **kwargs)

    sim.step = counted_step  # type: ignore[method-assign]
    with counting_reads() as counts:
        collect(sim, agent, weights, episodes, 0, 0.99, 0.95, continuing)
    total = sum(counts.values())
    return {"algo": algo, "profile": profile, "episodes": episodes, "steps": steps[0], "reads": total,
            "reads_per_step": total / max(steps[0], 1),
            "sites": [{"read": name, "where": where, "count": n} for (name, where), n in counts.most_common()]}


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", default=["TopoFreeRL", "PPO", "PFAPPO"], help="PPO-family algorithms")
    p.add_argument("--profiles", nargs="+", default=["paper", "contention"])
    p.add_argument("--episodes", type=int, default=200, help="workflows per epoch (default 200, the training default)")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of the table")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = [one_epoch(a, prof, args.episodes) for a in args.algos for prof in args.profiles]
    if args.json:
        print(json.dumps(rows))
        return rows
    for r in rows:
        print(f"{r['algo']:>13} {r['profile']:>10}: {r['steps']:5d} steps, {r['reads']:6d} host reads "
              f"({r['reads_per_step']:.2f} per step)")
        for s in r["sites"][:6]:
            print(f"{'':>16}{s['count']:6d}  {s['read']:<9} {s['where']}")
    return rows


if __name__ == "__main__":
    main()
