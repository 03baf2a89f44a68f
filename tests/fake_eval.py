"""Fake evaluations for the figure and table tests: episodes.csv and summary.csv shaped like
total/evaluate_all.py's, built in milliseconds. Every scheduler meets the same tasks (a shared
per-task difficulty), so paired statistics behave as on real evaluations."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from schedkit.registry import learned

# scheduler -> (latency factor, queue growth in ms per episode, between-seed sd of the factor, cost)
DEFAULT = {"TopoFreeRL": (1.00, 0.0, 0.02, 0.15), "PPO": (1.3, 0.0, 0.05, 0.12), "PFAPPO": (1.25, 0.0, 0.05, 0.13),
           "STARK": (1.6, 0.0, 0.05, 0.19), "oracle": (1.02, 0.0, 0.0, 0.125), "greedy": (1.05, 0.0, 0.0, 0.123),
           "greedy_queue": (1.03, 0.0, 0.0, 0.155), "maxcompute": (1.4, 0.0, 0.0, 0.18), "random": (1.8, 0.0, 0.0, 0.31)}


def fake_episodes(schedulers: dict | None = None, episodes: int = 300, seeds: int = 3, rate: float = 8.0,
                  seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tasks = rng.integers(0, 50, episodes)
    difficulty = np.exp(rng.normal(0, 0.3, 50))[tasks] * 3000.0 * (1 + rate / 40)
    frames = []
    for algo, (factor, growth, spread, cost) in (schedulers or DEFAULT).items():
        runs = [(42 + k, f"Server1_Trap_seed{42 + k}") for k in range(seeds)] if algo in learned() else [(np.nan, "")]
        for train_seed, run in runs:
            f = factor * (1 + rng.normal(0, spread))
            queue = growth * np.arange(episodes) + rng.exponential(50.0, episodes)
            compute = difficulty * f * rng.lognormal(0, 0.05, episodes)
            network = 0.1 * difficulty
            latency = compute + network + queue
            c = cost * rng.lognormal(0, 0.1, episodes)
            frames.append(pd.DataFrame({
                "algo": algo, "train_seed": train_seed, "eval_seed": 0, "run": run, "episode": np.arange(episodes),
                "task_id": [f"t{t}" for t in tasks], "latency_ms": latency, "network_ms": network,
                "compute_ms": compute, "queue_ms": queue, "trap_ms": 0.0, "link_ms": network, "cost": c,
                "trap_hits": 0, "switches": 0, "fallbacks": 0, "reward": -latency / 1000 - 10 * c,
                "steps": 5, "decision_ms": 0.1}))
    return pd.concat(frames, ignore_index=True)


def write_fake_eval(folder: Path, episodes: pd.DataFrame) -> Path:
    """episodes.csv and summary.csv (from evaluate_all's own summarize_runs) under folder."""
    from total.evaluate_all import summarize_runs
    folder.mkdir(parents=True, exist_ok=True)
    episodes.to_csv(folder / "episodes.csv", index=False)
    summarize_runs(episodes, 100).assign(profile="contention").to_csv(folder / "summary.csv", index=False)
    return folder
