"""The one registry of simulator profiles. A new profile is its module plus one line in PROFILES."""
from __future__ import annotations

from typing import Any

import torch

from .contention import CONTENTION
from .dataset import Dataset
from .paper import DEFAULT, PAPER, Profile, ProfileError
from .serving import SERVING
from .simulator import Simulator

PROFILES: dict[str, Profile] = {
    "paper": PAPER,
    "contention": CONTENTION,
    "serving": SERVING,
}


def get_profile(profile: str | Profile) -> Profile:
    """The profile a door was given: the registered profile called `profile`, or a Profile object as it
    is; a ProfileError listing the registered ones otherwise. Called where a name enters (command line,
    config, public API); everything past that takes the object."""
    if isinstance(profile, Profile):
        return profile
    if isinstance(profile, str) and profile in PROFILES:
        return PROFILES[profile]
    raise ProfileError(f"profile {profile!r} is not implemented; available: {list(PROFILES)}")


def profile_params(p: Profile, params: Any) -> Any:
    """`params` checked against the profile: None (its defaults), a dict (its config block) or an
    instance of its parameter class; anything else, or parameters given to a profile without any,
    is a ProfileError rather than an attribute error inside the simulator."""
    if p.params_class is None:
        if params is None or (isinstance(params, dict) and not params):
            return None
        raise ProfileError(f"params: the {p.name!r} profile takes no parameters (None), got {params!r}")
    if params is None or isinstance(params, dict):
        return p.parse(params)
    if isinstance(params, p.params_class):
        return params
    raise ProfileError(f"params: the {p.name!r} profile takes None, a dict or a {p.params_class.__name__}, "
                       f"got {params!r}")


def make_simulator(dataset: Dataset, batch_size: int = 1, split: str = "train", order: str = "random", seed: int = 0,
                   device: str | torch.device = "cpu", profile: str | Profile = DEFAULT, params: Any = None,
                   task_subset=None) -> Simulator:
    """The simulator of a profile (a registered name or a Profile object); `params` are its parameters
    (e.g. a `Contention`; None: defaults)."""
    p = get_profile(profile)
    return p.simulator(dataset, batch_size, split, order, seed, device, profile_params(p, params), task_subset)
