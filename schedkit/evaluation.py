"""The evaluation protocol (docs/evaluation.md) shared by every scheduler's inference script.

Episodes deal the split's tasks in file order (cycling), with a fixed evaluation seed, so all
schedulers face the same tasks and the same channel draws. One row per episode goes to
`episodes.csv`; means per episode go to `summary.json`.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from edgesim.dataset import Dataset
from edgesim.paper import PAPER, Profile
from edgesim.physics import EVAL_WEIGHTS
from edgesim.simulator import Observation, Simulator

from .io import write_csv, write_json
from .paths import git_commit
from .simulators import profile_simulator

# per-step info fields summed into each episode's row
SUMMED = {"latency_ms": "latency", "network_ms": "network_ms", "compute_ms": "compute_ms", "queue_ms": "queue_ms",
          "trap_ms": "trap_ms", "link_ms": "link_ms", "cost": "cost", "trap_hits": "trap_hit",
          "switches": "switch", "fallbacks": "fallback"}


class Policy(Protocol):
    name: str

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor: ...


def eval_simulator(ds: Dataset, split: str, episodes: int, seed: int, device: str | torch.device = "cpu",
                   profile: Profile = PAPER, params: Any = None) -> Simulator:
    """A simulator that deals the split's tasks in file order (paper: up to 1024 episodes at a time);
    `params`: the profile's parameters (None: its defaults)."""
    return profile_simulator(ds, profile, params, split, "sequential", seed, device, episodes)


def evaluate(sim: Simulator, policy: Policy, episodes: int, weights: tuple[float, float, float] = EVAL_WEIGHTS,
             progress: bool = True) -> pd.DataFrame:
    """Run the first `episodes` measured episodes of a freshly reset sequential simulator; one row each.

    Step results are summed per episode id (`info["episode"]`), so rows that interleave workflows
    (the contention profile) are accounted for like rows that run one at a time. `decision_ms` is
    the policy's wall time per decision, amortised over the batch.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    obs = sim.reset(sim.seed)
    B, dev = sim.batch_size, sim.device
    w = torch.tensor(weights, dtype=sim.dtype, device=dev)
    acc = {k: torch.zeros(episodes, dtype=sim.dtype, device=dev) for k in (*SUMMED, "reward", "steps", "decision_s")}
    task = torch.zeros(episodes, dtype=torch.long, device=dev)
    done_count = 0
    bar = tqdm(total=episodes, desc=f"eval {policy.name}", unit="ep", disable=not progress, leave=False)
    while done_count < episodes:
        t0 = time.perf_counter()
        actions = policy.act(sim, obs)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        per_decision = (time.perf_counter() - t0) / B
        obs, reward, done, info = sim.step(actions)
        keep, index = sim.measured(info["episode"], episodes)
        ep = index[keep]
        for col, key in SUMMED.items():
            acc[col].index_add_(0, ep, info[key][keep].to(sim.dtype))
        acc["reward"].index_add_(0, ep, (reward @ w)[keep])
        acc["steps"].index_add_(0, ep, torch.ones_like(ep, dtype=sim.dtype))
        acc["decision_s"].index_add_(0, ep, torch.full_like(ep, per_decision, dtype=sim.dtype))
        task[ep] = info["task"][keep]
        finished = int((done & keep).sum())
        done_count += finished
        bar.update(finished)
    bar.close()
    df = pd.DataFrame({k: v.cpu().numpy() for k, v in acc.items()})
    df.insert(0, "episode", np.arange(episodes))
    df.insert(1, "task_id", [sim.tasks.ids[t] for t in task.tolist()])
    df["decision_ms"] = df.pop("decision_s") / df["steps"] * 1000.0
    for col in ("trap_hits", "switches", "fallbacks", "steps"):
        df[col] = df[col].round().astype(int)
    front = ["episode", "task_id", "latency_ms", "network_ms", "compute_ms", "queue_ms", "cost", "reward"]
    return df[front + [c for c in df.columns if c not in front]]


def summarize(df: pd.DataFrame) -> dict[str, Any]:
    """Means per episode (rates per decision), the keys every inference script reports."""
    steps = df["steps"].sum()
    lat = df["latency_ms"].to_numpy()
    return {
        "episodes": int(len(df)),
        "mean_latency_ms": float(lat.mean()),
        "p50_latency_ms": float(np.percentile(lat, 50)),
        "p90_latency_ms": float(np.percentile(lat, 90)),
        "p99_latency_ms": float(np.percentile(lat, 99)),
        "mean_network_ms": float(df["network_ms"].mean()),
        "mean_compute_ms": float(df["compute_ms"].mean()),
        "mean_queue_ms": float(df["queue_ms"].mean()),
        "mean_cost": float(df["cost"].mean()),
        "mean_reward": float(df["reward"].mean()),
        "trap_hit_rate": float(df["trap_hits"].sum() / steps),
        "fallback_rate": float(df["fallbacks"].sum() / steps),
        "switches": float(df["switches"].mean()),
        "decision_ms": float((df["decision_ms"] * df["steps"]).sum() / steps),
    }


EVALUATION_FILES = ("episodes.csv", "summary.json")


def evaluation_outputs(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The files an evaluation writes, each with the settings it is made with (for `claim_output`)."""
    return {name: settings for name in EVALUATION_FILES}


def write_evaluation(out_dir: str | Path, df: pd.DataFrame, meta: dict[str, Any]) -> dict[str, Any]:
    """Write `episodes.csv` and `summary.json` (summary keys first, then `meta` and the code's git
    commit) atomically."""
    out = Path(out_dir)
    summary = summarize(df) | meta | {"git_commit": git_commit()}
    write_csv(out / "episodes.csv", df)
    write_json(out / "summary.json", summary)
    return summary


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    """A short fixed-width comparison table, one row per scheduler."""
    cols = [("episodes", "episodes", "{:d}"), ("latency ms", "mean_latency_ms", "{:.1f}"),
            ("p99 ms", "p99_latency_ms", "{:.1f}"), ("cost $", "mean_cost", "{:.5f}"),
            ("reward", "mean_reward", "{:.4f}"), ("trap hit", "trap_hit_rate", "{:.3f}"),
            ("fallback", "fallback_rate", "{:.3f}"), ("decision ms", "decision_ms", "{:.4f}")]
    name_w = max(len("scheduler"), *(len(n) for n in summaries))
    cells = [[fmt.format(s[key]) for _, key, fmt in cols] for s in summaries.values()]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(cols)]
    lines = ["scheduler".ljust(name_w) + "  " + "  ".join(h.rjust(wd) for (h, _, _), wd in zip(cols, widths))]
    lines += [n.ljust(name_w) + "  " + "  ".join(c.rjust(wd) for c, wd in zip(row, widths))
              for n, row in zip(summaries, cells)]
    return "\n".join(lines)
