"""The environments in the real RL libraries (no mocks): Stable-Baselines3 / sb3-contrib, TorchRL,
their env checkers, and the three examples/ scripts end to end at a tiny budget. Skipped where the
optional packages (requirements-rl-libs.txt) are absent."""
from __future__ import annotations

import json
import tempfile

import gymnasium as gym
import numpy as np
import pytest
from conftest import run_script
from gymnasium.vector import AutoresetMode
from test_script_inputs import one_line_error

import edgesim  # noqa: F401  (registers the ids)
from edgesim.gym_wrappers import EdgeMoEEnv, EdgeMoEVectorEnv

for package in ("stable_baselines3", "sb3_contrib", "torchrl"):
    pytest.importorskip(package)

PROFILES = [{}, {"profile": "contention", "horizon": 20},
            {"profile": "serving", "params": {"arrival_rate": 4.0}, "horizon": 20}]


@pytest.mark.parametrize("kw", PROFILES)
def test_sb3_env_checker(default_ds, kw):
    from stable_baselines3.common.env_checker import check_env
    check_env(EdgeMoEEnv(default_ds, **kw), warn=False)


def quiet(model, folder):
    """SB3's log in the test's folder: by default it makes a new folder in /tmp each run."""
    from stable_baselines3.common.logger import configure
    model.set_logger(configure(str(folder), ["csv"]))
    return model


def test_plain_sb3_ppo_logs_episodes_through_its_monitor(default_ds, tmp_path):
    """SB3 reserves info["episode"] for its Monitor; dump_logs used to crash on the env's own key."""
    from stable_baselines3 import PPO
    model = quiet(PPO("MultiInputPolicy", gym.make("EdgeMoE-v0", data=default_ds), n_steps=64, batch_size=32,
                      n_epochs=1, seed=0, device="cpu"), tmp_path)
    model.learn(128)
    assert len(model.ep_info_buffer) > 0 and all(ep["l"] >= 1 for ep in model.ep_info_buffer)


@pytest.mark.parametrize("kw", PROFILES)
def test_maskable_ppo_on_the_single_env(default_ds, kw, tmp_path):
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    model = quiet(MaskablePPO("MultiInputPolicy", EdgeMoEEnv(default_ds, **kw), n_steps=64, batch_size=32,
                              n_epochs=1, seed=0, device="cpu"), tmp_path)
    model.get_env().reset()
    masks = get_action_masks(model.get_env())
    assert masks.shape == (1, default_ds.n_servers) and masks.dtype == bool
    model.learn(128)


def test_maskable_ppo_on_the_sb3_vec_env_adapter(default_ds, tmp_path):
    from sb3_contrib import MaskablePPO
    from sb3_contrib.common.maskable.utils import get_action_masks
    from stable_baselines3.common.vec_env import VecMonitor

    from edgesim.sb3_vec_env import EdgeMoESB3VecEnv
    venv = VecMonitor(EdgeMoESB3VecEnv(EdgeMoEVectorEnv(default_ds, 8)))
    model = quiet(MaskablePPO("MultiInputPolicy", venv, n_steps=16, batch_size=64, n_epochs=1, seed=0, device="cpu"),
                  tmp_path)
    obs = venv.reset()
    np.testing.assert_array_equal(get_action_masks(venv), obs["action_mask"].astype(bool))
    model.learn(256)
    assert len(model.ep_info_buffer) > 0
    with pytest.raises(ValueError, match="SAME_STEP"):
        EdgeMoESB3VecEnv(EdgeMoEVectorEnv(default_ds, 2, autoreset_mode=AutoresetMode.DISABLED))


def test_sb3_vec_env_adapter_keeps_sb3_conventions(default_ds):
    from edgesim.sb3_vec_env import EdgeMoESB3VecEnv
    venv = EdgeMoESB3VecEnv(EdgeMoEVectorEnv(default_ds, 4, profile="contention", horizon=3))
    venv.seed(5)
    first = venv.reset()
    venv.seed(5)
    np.testing.assert_array_equal(venv.reset()["state"], first["state"])  # seeds reach the next reset
    obs = first
    for t in range(3):
        obs, rewards, dones, infos = venv.step(obs["action_mask"].argmax(1))
        assert rewards.dtype == np.float32 and len(infos) == 4
    assert dones.all()
    for info in infos:  # the horizon truncates: SB3 bootstraps from the terminal observation
        assert info["TimeLimit.truncated"] and info["terminal_observation"]["queue"].shape == (default_ds.n_servers,)
        assert "latency_ms" in info and "episode" not in info


@pytest.mark.parametrize("kw", PROFILES)
def test_torchrl_check_env_specs_on_both_wrappers(default_ds, kw):
    from torchrl.envs import GymWrapper
    from torchrl.envs.utils import check_env_specs
    check_env_specs(GymWrapper(EdgeMoEEnv(default_ds, **kw)))
    vector = GymWrapper(EdgeMoEVectorEnv(default_ds, 4, autoreset_mode=AutoresetMode.DISABLED, **kw))
    check_env_specs(vector)
    rollout = vector.rollout(25, break_when_any_done=False)  # finished envs are reset through reset_mask
    assert rollout["next", "done"].any() and rollout.batch_size == (4, 25)


EXAMPLES = {"sb3_maskable_ppo": ["--timesteps", "256", "--num-envs", "8", "--n-steps", "32"],
            "cleanrl_ppo": ["--total-timesteps", "512", "--num-envs", "4", "--num-steps", "64"],
            "torchrl_ppo": ["--total-timesteps", "512", "--num-envs", "4", "--num-steps", "64"]}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_trains_and_evaluates_with_the_protocol(tmp_path, monkeypatch, name):
    out, scratch = tmp_path / name, tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # an example writes under --out only (SB3's logger made a folder here)
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    args = [f"examples/{name}.py", *EXAMPLES[name], "--episodes", "16", "--reference", "greedy", "--out", str(out),
            "--no-progress"]
    proc = run_script(*args)
    assert "greedy" in proc.stdout
    assert not list(scratch.iterdir())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 16 and summary["split"] == "test" and summary["mean_reward"] < 0
    again = run_script(*args, check=False)
    one_line_error(again, "already holds", "--overwrite")


def test_example_names_a_bad_dataset_in_one_line(tmp_path):
    one_line_error(run_script("examples/cleanrl_ppo.py", "--data", str(tmp_path / "missing"), "--out",
                              str(tmp_path / "out"), check=False), "missing", "not found")


@pytest.mark.slow
def test_gym_vs_protocol_scores_a_trained_agent_three_ways(tmp_path):
    run_script("examples/cleanrl_ppo.py", "--total-timesteps", "256", "--num-envs", "4", "--num-steps", "64",
               "--episodes", "8", "--reference", "none", "--out", str(tmp_path / "run"), "--no-progress")
    proc = run_script("examples/gym_vs_protocol.py", "--agent", str(tmp_path / "run" / "agent.pt"), "--seeds", "0")
    assert "protocol (200 episodes)" in proc.stdout
    assert "random order, env seed 0" in proc.stdout and "sequential order, env seed 0" in proc.stdout
    one_line_error(run_script("examples/gym_vs_protocol.py", "--agent", str(tmp_path / "none.pt"), check=False),
                   "not found", "cleanrl_ppo.py")
