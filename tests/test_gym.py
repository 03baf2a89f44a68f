"""The Gymnasium adapters pass Gymnasium's own checker and behave like the simulator."""
from __future__ import annotations

import numpy as np
from gymnasium.utils.env_checker import check_env

from edgesim.gym_wrappers import EdgeMoEEnv, EdgeMoEVectorEnv


def test_single_env_passes_gymnasium_checker(default_ds):
    env = EdgeMoEEnv(default_ds)
    check_env(env, skip_render_check=True)


def test_single_env_plays_a_masked_episode(default_ds):
    env = EdgeMoEEnv(default_ds)
    obs, _ = env.reset(seed=3)
    total, steps, terminated = 0.0, 0, False
    while not terminated:
        action = int(np.flatnonzero(obs["action_mask"])[0])
        obs, reward, terminated, truncated, info = env.step(action)
        total, steps = total + reward, steps + 1
        assert not truncated and not info["fallback"]
    assert steps == 5 and obs["state"][0] == 1.0 and total < 0


def test_vector_env_autoresets_same_step(default_ds):
    env = EdgeMoEVectorEnv(default_ds, num_envs=8)
    obs, _ = env.reset(seed=0)
    assert obs["state"].shape == (8, 8) and obs["action_mask"].shape == (8, default_ds.n_servers)
    for step in range(5):
        actions = obs["action_mask"].argmax(1)
        obs, reward, terminated, truncated, infos = env.step(actions)
        assert reward.shape == (8,) and not truncated.any()
    assert terminated.all() and infos["_final_obs"].all()
    assert (infos["final_obs"]["state"][:, 0] == 1.0).all() and (obs["state"][:, 0] == 0.0).all()
