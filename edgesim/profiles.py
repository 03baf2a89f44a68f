"""The one registry of simulator profiles. A new profile is its module plus one line in PROFILES."""
from __future__ import annotations

from typing import Any

import torch

from .contention import ContentionProfile
from .dataset import Dataset
from .profile import DEFAULT, Profile, ProfileError
from .simulator import Simulator

PROFILES: dict[str, Profile] = {
    "paper": Profile(),
    "contention": ContentionProfile(),
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ProfileError(f"profile {name!r} is not implemented; available: {list(PROFILES)}") from None


def make_simulator(dataset: Dataset, batch_size: int = 1, split: str = "train", order: str = "random", seed: int = 0,
                   device: str | torch.device = "cpu", profile: str = DEFAULT, params: Any = None,
                   task_subset=None) -> Simulator:
    """The simulator of a registered profile; `params` are its parameters (e.g. a `Contention`; None: defaults)."""
    p = get_profile(profile)
    params = p.parse(None) if params is None else params
    return p.simulator(dataset, batch_size, split, order, seed, device, params, task_subset)
