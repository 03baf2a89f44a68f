"""Simulator profiles as objects (edgesim/paper.py, edgesim/registry.py): the registered ones answer
what scripts ask, and a toy profile added as one class plus one registry line runs through the
simulator factory, a config and an evaluation script."""
from __future__ import annotations

import json

import pytest
import torch

from edgesim.contention import Contention, ContentionSimulator
from edgesim.paper import Profile, ProfileError, TrapModel
from edgesim.registry import PROFILES, get_profile, make_simulator
from edgesim.simulator import Simulator
from Heuristics import inference as heuristics
from schedkit.config import ConfigError, resolve
from schedkit.paths import REPO, run_name


class CalmSimulator(Simulator):
    """The paper dynamics with a steady channel: every draw at its median."""

    def _checked(self, actions, uniforms):
        a, u = super()._checked(actions, uniforms)
        return a, torch.full_like(u, 0.5)


class CalmProfile(Profile):
    name = "calm"

    def simulator(self, ds, batch_size, split="train", order="random", seed=0, device="cpu", params=None,
                  task_subset=None):
        return CalmSimulator(ds, batch_size, split, order, seed, device, self, task_subset=task_subset)


@pytest.fixture
def calm(monkeypatch):
    monkeypatch.setitem(PROFILES, "calm", CalmProfile())


def test_the_registered_profiles_say_what_scripts_ask(small_ds):
    paper, contention = get_profile("paper"), get_profile("contention")
    assert (paper.queues, contention.queues, paper.worlds_run_on, contention.worlds_run_on) == (False, True, False, True)
    assert (paper.suffix, contention.suffix) == ("", "_contention")
    assert paper.parse({"arrival_rate": 3}) is None and contention.parse(None, {"arrival_rate": 3}) == Contention(3.0)
    assert paper.batch_size(None, 5000) == 1024 and contention.batch_size(Contention(worlds=3), 5000) == 3
    assert (paper.eval_episodes(200), contention.eval_episodes(200)) == (200, 2000)
    assert contention.meta(Contention())["contention"]["worlds"] == 8 and paper.meta(None) == {}
    assert type(make_simulator(small_ds, 2, profile="contention")) is ContentionSimulator
    # what planners ask of a profile: its trap model, from the parameters a simulator runs
    assert paper.trap_model(None) == TrapModel((100.0, 200.0), 0.0, None)
    assert contention.trap_model(Contention(trap_loss=0.1, trap_surcharge_scale=2.0)) == TrapModel((200.0, 400.0), 0.1, 4)
    sim = make_simulator(small_ds, 2, profile=contention, params={"trap_loss": 0.2})
    assert sim.profile is contention and sim.profile.trap_model(sim.params).loss == 0.2
    with pytest.raises(ProfileError, match=r"contention.worlds: expected an integer >= 1 and <= 65536, got 0"):
        contention.parse({"worlds": 0})
    with pytest.raises(ProfileError, match=r"profile 'crowded' is not implemented; available: \['paper', 'contention', 'serving'\]"):
        make_simulator(small_ds, profile="crowded")


def test_a_profile_added_with_one_registry_line_runs_everywhere_profiles_are_read(calm, small_ds, small_root,
                                                                                   tmp_path):
    actions = torch.zeros(4, dtype=torch.long)
    steps = [make_simulator(small_ds, 4, "train", "sequential", seed, profile="calm").step(actions)[3]["latency"]
             for seed in (0, 1)]
    assert torch.equal(steps[0], steps[1])  # the channel no longer depends on the seed's draws
    paper = make_simulator(small_ds, 4, "train", "sequential", 0).step(actions)[3]["latency"]
    assert not torch.equal(paper, steps[0])
    cfg = resolve(REPO / "PPO_algorithm" / "config.yaml", sets=["profile=calm"])
    assert cfg["profile"] == "calm" and run_name(["R"], 1, get_profile("calm")) == "R_calm_seed1"
    with pytest.raises(ConfigError, match="profile"):
        resolve(REPO / "PPO_algorithm" / "config.yaml", sets=["profile=crowded"])
    out = tmp_path / "calm"
    heuristics.main(["--data", str(small_root), "--region", "Small_Trap", "--profile", "calm", "--policy", "greedy",
                     "--episodes", "6", "--out", str(out), "--no-progress"])
    summary = json.loads((out / "summary.json").read_text())
    assert summary["profile"] == "calm" and summary["episodes"] == 6


def test_a_new_profile_gets_its_gymnasium_id_with_its_own_dynamics(calm, small_ds):
    """The single env plays the paper profile with the plain-Python model; any other profile's
    dynamics (here: a steady channel) must come from its own simulator."""
    import gymnasium as gym

    from edgesim.gym_wrappers import env_id, register_envs
    register_envs()
    try:
        def latencies(profile_id, seed):
            env = gym.make(profile_id, data=small_ds, order="sequential")
            obs, _ = env.reset(seed=seed)
            out, done = [], False
            while not done:
                obs, _, done, _, info = env.step(int(obs["action_mask"].argmax()))
                out.append(info["latency_ms"])
            return out

        assert env_id("calm") == "EdgeMoECalm-v0"
        assert latencies("EdgeMoECalm-v0", 0) == latencies("EdgeMoECalm-v0", 1)  # no channel draws
        assert latencies("EdgeMoE-v0", 0) != latencies("EdgeMoE-v0", 1)
    finally:
        del gym.registry["EdgeMoECalm-v0"]


def test_a_profile_object_runs_through_the_public_doors_without_a_registry_line(small_ds):
    """make_simulator and the Gym constructors take a Profile object as well as a registered name."""
    from edgesim.gym_wrappers import EdgeMoEEnv, EdgeMoEVectorEnv
    calm = CalmProfile()
    sim = make_simulator(small_ds, 2, profile=calm)
    assert type(sim) is CalmSimulator and sim.profile is calm
    env, vec = EdgeMoEEnv(small_ds, profile=calm), EdgeMoEVectorEnv(small_ds, 2, profile=calm)
    assert env.profile is calm and type(env.sim) is CalmSimulator and vec.sim.profile is calm
    with pytest.raises(ProfileError, match="profile 'calm' is not implemented"):
        make_simulator(small_ds, profile="calm")


def test_a_profile_with_its_own_dynamics_is_refused_by_the_paper_simulator(small_ds):
    """Handing the contention profile to the base Simulator would run paper dynamics labelled contention."""
    from edgesim.contention import CONTENTION
    from edgesim.inputs import InputError
    with pytest.raises(InputError, match="make_simulator"):
        Simulator(small_ds, 2, profile=CONTENTION)
    assert isinstance(make_simulator(small_ds, 2, profile=CONTENTION), ContentionSimulator)
