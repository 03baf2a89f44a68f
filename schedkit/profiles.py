"""How every script builds the simulator of a profile.

`paper`: one batch row per episode (docs/simulator.md §1-4). `contention`: `worlds` rows, each an independent
world with workflows arriving over time (docs/simulator.md §5); its parameters are the config's
`contention:` block, saved with every run, and can be overridden per evaluation.
"""
from __future__ import annotations

import sys

import torch

from edgesim.contention import Contention, ContentionError, make_simulator
from edgesim.dataset import Dataset
from edgesim.simulator import Simulator

from .runs import CheckpointError

MAX_PAPER_BATCH = 1024
CONTENTION_EVAL_PASSES = 10  # default evaluation length under contention: passes over the split


def contention_or_exit(block: dict | None, overrides: dict | None = None) -> Contention:
    """The contention parameters of a config block plus non-None overrides; a bad value ends the script."""
    merged = dict(block or {}) | {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        return Contention.from_dict(merged)
    except ContentionError as e:
        sys.exit(f"error: {e}")


def profile_simulator(ds: Dataset, profile: str, contention: Contention | None, split: str, order: str, seed: int,
                      device: torch.device | str, episodes: int, task_subset=None) -> Simulator:
    """Paper: min(episodes, 1024) rows of one episode each. Contention: `contention.worlds` worlds."""
    batch = contention.worlds if profile == "contention" else min(episodes, MAX_PAPER_BATCH)
    return make_simulator(ds, batch, split, order, seed, device, profile, contention, task_subset)


def default_eval_episodes(ds: Dataset, split: str, profile: str) -> int:
    """Every task of the split once (paper); ten passes under contention, so queues reach steady state."""
    n = len(ds.tasks[split])
    return n * CONTENTION_EVAL_PASSES if profile == "contention" else n


def profile_meta(profile: str, contention: Contention | None) -> dict:
    """What an evaluation's summary records about its dynamics."""
    return {"contention": contention.as_dict()} if profile == "contention" and contention else {}


def start_worlds(sim: Simulator, cfg: dict, resume: dict | None, seed: int) -> bool:
    """Whether training runs its contention worlds on across epochs (config `rollout`; a config saved
    before the key existed restarted them every epoch). If so, before the first epoch: load them from
    the checkpoint being resumed, or start them once from `seed` (one apart from every epoch's)."""
    if cfg.get("profile") != "contention" or cfg.get("rollout", "restart") != "continuing":
        return False
    if resume is None:
        sim.reset(seed)
    elif "worlds" not in resume:
        raise CheckpointError("the checkpoint has no saved worlds, which this run's config (rollout: continuing) "
                              "needs to resume")
    else:
        try:
            sim.load_world_state(resume["worlds"])
        except ValueError as e:
            raise CheckpointError(f"cannot resume: {e}") from None
    return True
