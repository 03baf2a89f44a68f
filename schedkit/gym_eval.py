"""The project's evaluation protocol for any policy written against the Gymnasium observation.

    from schedkit.gym_eval import evaluate_policy
    summary = evaluate_policy(lambda obs, mask: model.predict(obs, action_masks=mask, deterministic=True)[0],
                              data="data1", region="Server1_Trap", out="results/eval/my_policy")

Why not just play episodes through the Gym API: the protocol deals the test split in file order
with a fixed evaluation seed, so every scheduler meets the same tasks and the same channel draws
(common random numbers). An env with its default random task order plays another sample of tasks
(for one trained policy, -0.4% to +5.2% on the mean reward across env seeds, far more than the gaps
between schedulers), and even in file order its channel draws are its own. Here the policy is
called on the batched simulator's rows, encoded exactly as the Gym wrappers encode them ((B, ...)
arrays, normalised unless `normalize=False`), with a (B, N) bool mask of valid servers, and must
return B server indices.
The result is the same episodes.csv / summary.json the project's inference scripts write.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgesim.dataset import Dataset
from edgesim.gym_obs import ObservationEncoder
from edgesim.gym_wrappers import resolve_dataset
from edgesim.paper import DEFAULT, Profile
from edgesim.registry import get_profile
from edgesim.simulator import Observation, Simulator

from .evaluation import eval_simulator, evaluation_outputs, run_evaluation, summarize, write_evaluation
from .outputs import claim_output
from .simulators import default_eval_episodes, profile_meta

Predict = Callable[[dict[str, np.ndarray], np.ndarray], Any]


class GymPolicy:
    """A `schedkit.evaluation.Policy` that shows the simulator's rows to `predict` as Gym observations."""

    def __init__(self, predict: Predict, encoder: ObservationEncoder, name: str):
        self.predict, self.encoder, self.name = predict, encoder, name

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        o = self.encoder.encode(sim, obs)
        actions = np.asarray(self.predict(o, o["action_mask"].astype(bool))).reshape(-1)
        if actions.shape != (sim.batch_size,):
            raise ValueError(f"the policy returned {actions.size} actions for {sim.batch_size} observations")
        if actions.dtype.kind not in "iu":  # 2.7 would silently become server 2
            raise ValueError(f"the policy returned actions of dtype {actions.dtype}: expected integer server indices "
                             f"in [0, {sim.n_servers})")
        return torch.as_tensor(actions.astype(np.int64), device=sim.device)


def evaluate_policy(predict: Predict, data: Dataset | str | Path = "data1", region: str | list[str] = "Server1_Trap",
                    split: str = "test", episodes: int | None = None, seed: int = 0,
                    profile: str | Profile = DEFAULT, params: Any = None, normalize: bool = True,
                    out: str | Path | None = None, name: str = "policy", overwrite: bool = False,
                    progress: bool = True) -> dict[str, Any]:
    """Evaluate `predict(obs, mask) -> actions` with the protocol; returns the summary (and writes
    `out/episodes.csv` and `out/summary.json` when `out` is given). `episodes`: default every task of
    the split once (ten passes under contention); `profile`: a registered name or a Profile object;
    `params`: the profile's parameters (None: defaults)."""
    ds = resolve_dataset(data, region)
    p = get_profile(profile)
    params = p.parse(None) if params is None else params
    episodes = episodes or default_eval_episodes(ds, split, p)
    settings = {"policy": name, "split": split, "seed": seed, "episodes": episodes, "profile": p.name,
                **profile_meta(p, params), "regions": list(ds.regions), "dataset_fingerprint": ds.fingerprint,
                "observation": "normalized" if normalize else "raw"}
    policy = GymPolicy(predict, ObservationEncoder(ds, normalize, p.queues), name)

    def run() -> Any:
        return run_evaluation(eval_simulator(ds, split, episodes, seed, "cpu", p, params), policy, episodes,
                              progress=progress)
    if out is None:
        return summarize(run()) | settings
    with claim_output(out, evaluation_outputs(settings), overwrite, hint="out="):
        return write_evaluation(out, run(), settings)


def evaluate_heuristic(name: str, data: Dataset | str | Path = "data1", region: str | list[str] = "Server1_Trap",
                       split: str = "test", episodes: int | None = None, seed: int = 0,
                       profile: str | Profile = DEFAULT, params: Any = None, progress: bool = True) -> dict[str, Any]:
    """The summary of a registered non-learned scheduler (e.g. "oracle", "greedy") under the same
    protocol, to put a Gym-trained policy's numbers in context."""
    from .registry import get  # the registry imports every scheduler package; only this helper needs it

    ds, p = resolve_dataset(data, region), get_profile(profile)
    episodes = episodes or default_eval_episodes(ds, split, p)
    sim = eval_simulator(ds, split, episodes, seed, "cpu", p, params)
    return summarize(run_evaluation(sim, get(name).load()(sim, seed=seed), episodes, progress=progress)) | {"policy": name}
