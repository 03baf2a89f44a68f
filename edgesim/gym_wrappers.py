"""Gymnasium adapters, so other RL libraries can train on the simulator.

Observation (both wrappers): a dict with
- "state": float32 [progress, task lon, task lat, hop-source lon, hop-source lat, required model type,
  tokens / 1000, hop source is a trap] (the hop source is the previous server, or the task at step 0);
- "action_mask": int8 per server, 1 where the server hosts the required model type.
Action: a server index. Reward: the reward vector scalarised with fixed weights (default: the
evaluation weights 0.45 / 0.40 / 0.15). Info: the simulator's per-step info as Python/numpy values.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from .dataset import Dataset
from .physics import EVAL_WEIGHTS
from .profile import DEFAULT
from .simulator import Simulator

STATE_DIM = 8


def _spaces(ds: Dataset) -> gym.spaces.Dict:
    low = np.array([0, -180, -90, -180, -90, 0, 0, 0], np.float32)
    high = np.array([1, 180, 90, 180, 90, len(ds.type_names) - 1, 1e6, 1], np.float32)
    return gym.spaces.Dict({
        "state": gym.spaces.Box(low, high, (STATE_DIM,), np.float32),
        "action_mask": gym.spaces.Box(0, 1, (ds.n_servers,), np.int8),
    })


def _encode(sim: Simulator) -> dict[str, np.ndarray]:
    obs = sim.observe()
    lon, lat, _ = sim.hop_source()
    trap = torch.where(obs.prev_server >= 0, sim.net.trap[obs.prev_server.clamp_min(0)], False)
    state = torch.stack([obs.progress, obs.task_lon, obs.task_lat, lon, lat, obs.required_type.to(sim.dtype),
                         obs.tokens / 1000.0, trap.to(sim.dtype)], 1)
    return {"state": state.float().cpu().numpy(), "action_mask": sim.valid_mask().to(torch.int8).cpu().numpy()}


def _paper_only(profile: str) -> None:
    if profile != DEFAULT:
        raise ValueError(f"the Gymnasium wrappers simulate the paper profile, not {profile!r}: under contention a "
                         "world interleaves many workflows, which is not one Gym episode; use "
                         "edgesim.profiles.make_simulator")


class EdgeMoEEnv(gym.Env):
    """One workflow episode at a time (a batch-1 Simulator on the CPU); tasks drawn at random."""

    metadata = {"render_modes": []}

    def __init__(self, dataset: Dataset, split: str = "train", weights: tuple[float, float, float] = EVAL_WEIGHTS,
                 profile: str = "paper"):
        _paper_only(profile)
        self.sim = Simulator(dataset, batch_size=1, split=split, seed=0, profile=profile, autoreset=False)
        self.weights = torch.tensor(weights, dtype=self.sim.dtype)
        self.observation_space = _spaces(dataset)
        self.action_space = gym.spaces.Discrete(dataset.n_servers)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is None:  # a fresh task from the existing streams
            seed = int(self.np_random.integers(2**31))
        self.sim.reset(seed)
        return {k: v[0] for k, v in _encode(self.sim).items()}, {}

    def step(self, action):
        _, reward, done, info = self.sim.step(torch.tensor([int(action)]))
        obs = {k: v[0] for k, v in _encode(self.sim).items()}
        info = {k: v[0].item() for k, v in info.items()}
        return obs, float(reward[0] @ self.weights), bool(done[0]), False, info


class EdgeMoEVectorEnv(VectorEnv):
    """`num_envs` episodes stepped as one batch (numpy in, numpy out), same-step autoreset:
    a finished row's observation is already its next task's; `infos["final_obs"]` holds the
    terminal observation and `infos["_final_obs"]` marks the rows it is valid for."""

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP}

    def __init__(self, dataset: Dataset, num_envs: int, split: str = "train", device: str = "cpu",
                 weights: tuple[float, float, float] = EVAL_WEIGHTS, profile: str = "paper"):
        _paper_only(profile)
        self.sim = Simulator(dataset, batch_size=num_envs, split=split, seed=0, device=device, profile=profile,
                             autoreset=False)
        self.num_envs = num_envs
        self.weights = torch.tensor(weights, dtype=self.sim.dtype, device=self.sim.device)
        self.single_observation_space = _spaces(dataset)
        self.single_action_space = gym.spaces.Discrete(dataset.n_servers)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.sim.reset(seed if seed is not None else self.sim.seed)
        return _encode(self.sim), {}

    def step(self, actions):
        _, reward, done, info = self.sim.step(torch.as_tensor(np.asarray(actions), device=self.sim.device))
        infos = {k: v.cpu().numpy() for k, v in info.items()}
        if bool(done.any()):
            infos["final_obs"] = _encode(self.sim)
            infos["_final_obs"] = done.cpu().numpy()
            self.sim.reset_done(done)
        terminated = done.cpu().numpy()
        return _encode(self.sim), (reward @ self.weights).cpu().numpy(), terminated, np.zeros_like(terminated), infos
