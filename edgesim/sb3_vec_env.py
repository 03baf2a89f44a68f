"""Stable-Baselines3 `VecEnv` over the batched simulator, so SB3 (and sb3-contrib's MaskablePPO)
trains on `num_envs` episodes stepped as one torch batch instead of `num_envs` Python envs.

    from edgesim.sb3_vec_env import EdgeMoESB3VecEnv
    venv = EdgeMoESB3VecEnv(EdgeMoEVectorEnv(ds, num_envs=64))
    MaskablePPO("MultiInputPolicy", venv).learn(100_000)

SB3's conventions: same-step autoreset, a finished row's info holds `terminal_observation` and
`TimeLimit.truncated`; `env_method("action_masks")` returns one mask per env (what sb3-contrib
reads). Requires stable-baselines3 (requirements-rl-libs.txt); nothing else in the project imports it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvStepReturn

from .gym_wrappers import EdgeMoEVectorEnv
from .inputs import InputError


class EdgeMoESB3VecEnv(VecEnv):
    """SB3's view of an `EdgeMoEVectorEnv` (SAME_STEP autoreset)."""

    def __init__(self, env: EdgeMoEVectorEnv):
        if not isinstance(env, EdgeMoEVectorEnv):
            raise InputError(f"env: expected an EdgeMoEVectorEnv (the batched simulator), got {type(env).__name__}; "
                             "wrap single envs with SB3's DummyVecEnv")
        if env.autoreset_mode != AutoresetMode.SAME_STEP:
            raise ValueError("SB3 expects same-step autoreset: build the EdgeMoEVectorEnv with the default "
                             "autoreset_mode (SAME_STEP)")
        self.env = env
        self.render_mode = None
        super().__init__(env.num_envs, env.single_observation_space, env.single_action_space)
        self._actions: np.ndarray | None = None

    def reset(self):
        seeds = None if all(s is None for s in self._seeds) else self._seeds
        obs, _ = self.env.reset(seed=seeds)
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        obs, rewards, terminated, truncated, infos = self.env.step(self._actions)
        keys = [k for k in infos if not k.startswith("_") and k not in ("final_obs", "final_info")]
        source = infos.get("final_info", {})
        rows: list[dict[str, Any]] = []
        for i in range(self.num_envs):
            done = bool(terminated[i] or truncated[i])
            info = {k: (source if done else infos)[k][i] for k in keys}
            if done:
                info["terminal_observation"] = infos["final_obs"][i]
                info["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
            rows.append(info)
        return obs, rewards.astype(np.float32), terminated | truncated, rows

    def close(self) -> None:
        self.env.close()

    def action_masks(self) -> np.ndarray:
        """(num_envs, N) bool, for callers that ask the VecEnv directly."""
        return self.env.action_masks()

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        if method_name == "action_masks":
            masks = self.env.action_masks()
            return [masks[i] for i in self._get_indices(indices)]
        raise AttributeError(f"EdgeMoESB3VecEnv rows are batch rows, not env objects: no method {method_name!r}")

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        if attr_name == "render_mode":
            return [None for _ in self._get_indices(indices)]
        value = getattr(self.env, attr_name)  # AttributeError for what the batch does not have
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        raise AttributeError(f"EdgeMoESB3VecEnv cannot set {attr_name!r} per row")

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]
