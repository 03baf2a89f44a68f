"""How every script builds the simulator of a profile (edgesim/registry.py), with one-line errors.

`paper`: one batch row per episode (docs/simulator.md §1-4). `contention`: `worlds` rows, each an independent
world with workflows arriving over time (docs/simulator.md §5); its parameters are the config's
`contention:` block, saved with every run, and can be overridden per evaluation.
"""
from __future__ import annotations

import sys
from typing import Any

import torch

from edgesim.dataset import Dataset
from edgesim.paper import Profile
from edgesim.registry import ProfileError, get_profile, make_simulator
from edgesim.simulator import Simulator

from .config import ConfigError, check_block
from .rollout import Carry
from .runs import CheckpointError


def config_profile(cfg: dict) -> Profile:
    """The profile of a resolved config (its `profile` key): where a config's profile name becomes the
    object the rest of a script takes."""
    return get_profile(cfg["profile"])


def params_or_exit(profile: Profile, block: dict | None, overrides: dict | None = None) -> Any:
    """A profile's parameters from its config block plus non-None overrides (None for a profile without
    any); an unknown profile or a bad value ends the script with its one-line message. The values are
    checked against the config's ranges too (schedkit/config.py), whichever door they came through."""
    merged = (block if isinstance(block, dict) else {}) | {k: v for k, v in (overrides or {}).items() if v is not None}
    try:
        check_block(profile.name, merged)
        return profile.parse(block, overrides)
    except (ProfileError, ConfigError) as e:
        sys.exit(f"error: {e}")


def config_params(cfg: dict) -> Any:
    """The parameters of a resolved config's profile (its block named after the profile)."""
    return params_or_exit(config_profile(cfg), cfg.get(cfg["profile"]))


def train_params(cfg: dict) -> Any:
    """The parameters of the world a run trains in: its profile block plus `train_env`
    (schedkit/config.py), e.g. trained without the trap delay and evaluated with it."""
    profile = config_profile(cfg)
    return params_or_exit(profile, cfg.get(cfg["profile"]), cfg.get("train_env"))


def profile_simulator(ds: Dataset, profile: Profile, params: Any, split: str, order: str, seed: int,
                      device: torch.device | str, episodes: int, task_subset=None) -> Simulator:
    """The profile's simulator sized for `episodes` (paper: min(episodes, 1024) rows of one episode each;
    contention: its `worlds`). `params` None: the profile's defaults."""
    params = profile.parse(None) if params is None else params
    return make_simulator(ds, profile.batch_size(params, episodes), split, order, seed, device, profile, params,
                          task_subset)


def default_eval_episodes(ds: Dataset, split: str, profile: Profile) -> int:
    """Every task of the split once (paper); ten passes under contention, so queues reach steady state."""
    return profile.eval_episodes(len(ds.tasks[split]))


def profile_meta(profile: Profile, params: Any) -> dict:
    """What an evaluation's summary records about its dynamics."""
    return profile.meta(params)


def start_worlds(sim: Simulator, cfg: dict, resume: dict | None, seed: int) -> bool:
    """Whether training runs its worlds on across epochs (config `rollout`; contention, serving). If so, before the
    first epoch: load them from the checkpoint being resumed, or start them once from `seed` (one apart
    from every epoch's)."""
    if not get_profile(cfg["profile"]).worlds_run_on or cfg["rollout"] != "continuing":
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


def resume_carry(sim: Simulator, continuing: bool, resume: dict | None) -> Carry | None:
    """The decisions a continuing rollout with delayed outcomes (serving) carries between epochs: none yet, or
    the checkpoint's (`schedkit.rollout.Carry`); None where outcomes come with the decision."""
    if not continuing or not sim.profile.delayed_outcomes:
        return None
    if resume is None:
        return Carry()
    if "carry" not in resume:
        raise CheckpointError("the checkpoint has no field 'carry' (the decisions in flight), which this run's "
                              "config (rollout: continuing, profile serving) needs to resume")
    try:
        return Carry.from_state(resume["carry"], sim.device)
    except ValueError as e:
        raise CheckpointError(f"cannot resume: {e}") from None
