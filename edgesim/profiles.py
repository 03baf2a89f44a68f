"""The one registry of simulator profiles. A new profile is its module plus one line in PROFILES."""
from __future__ import annotations

from typing import Any

import torch

from .contention import ContentionProfile
from .dataset import Dataset
from .profile import DEFAULT, Profile, ProfileError
from .serving import ServingProfile
from .simulator import Simulator

PROFILES: dict[str, Profile] = {
    "paper": Profile(),
    "contention": ContentionProfile(),
    "serving": ServingProfile(),
}


def get_profile(name: str) -> Profile:
    """The registered profile called `name`; a ProfileError listing them otherwise."""
    if isinstance(name, str) and name in PROFILES:
        return PROFILES[name]
    raise ProfileError(f"profile {name!r} is not implemented; available: {list(PROFILES)}")


def profile_params(profile: str, params: Any) -> Any:
    """`params` checked against the profile: None (its defaults), a dict (its config block) or an
    instance of its parameter class; anything else, or parameters given to a profile without any,
    is a ProfileError rather than an attribute error inside the simulator."""
    p = get_profile(profile)
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
                   device: str | torch.device = "cpu", profile: str = DEFAULT, params: Any = None,
                   task_subset=None) -> Simulator:
    """The simulator of a registered profile; `params` are its parameters (e.g. a `Contention`; None: defaults)."""
    return get_profile(profile).simulator(dataset, batch_size, split, order, seed, device,
                                          profile_params(profile, params), task_subset)
