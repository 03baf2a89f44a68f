"""Contention training that runs its worlds on across epochs (config `rollout: continuing`): the
saved world state, the every-slot view used to bootstrap workflows still in flight, GAE over
segments cut at an epoch's end, and exact resume through the shell."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from conftest import run_script
from test_topofreerl import TIMING

from edgesim.contention import Contention
from edgesim.registry import make_simulator
from PPO_algorithm.agent import PPOAgent
from schedkit.config import resolve
from schedkit.ppo import gae
from schedkit.rollout import collect, episode_gae
from schedkit.runs import load_checkpoint

CONT = Contention(arrival_rate=8.0, worlds=3, max_in_flight=6, warmup=2)
WEIGHTS = torch.tensor([0.45, 0.4, 0.15], dtype=torch.float64)


def contention_sim(ds, seed: int = 1):
    return make_simulator(ds, CONT.worlds, "train", "random", seed, profile="contention", params=CONT)


def drive(sim, steps: int, seed: int):
    """`steps` decisions with seeded random valid actions; returns the stacked latencies and episodes."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(steps):
        _, _, done, info = sim.step(sim.sample_valid(gen))
        out.append(torch.stack([info["latency"], info["episode"].double(), done.double()]))
    return torch.stack(out)


def test_a_saved_world_state_continues_the_same_worlds(small_ds):
    a = contention_sim(small_ds)
    drive(a, 40, 0)
    saved = a.world_state()
    b = contention_sim(small_ds, seed=99)  # other worlds until the state is loaded
    b.load_world_state(saved)
    a.reseed(7), b.reseed(7)
    assert torch.equal(drive(a, 60, 1), drive(b, 60, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.world_state().values(), b.world_state().values()))


def test_a_world_state_of_another_shape_is_refused(small_ds):
    other = make_simulator(small_ds, 2, "train", "random", 1, profile="contention", params=CONT)
    with pytest.raises(ValueError, match="does not fit"):
        contention_sim(small_ds).load_world_state(other.world_state())


def test_reseed_keeps_the_worlds_and_reset_restarts_them(small_ds):
    sim = contention_sim(small_ds)
    drive(sim, 30, 0)
    busy, dealt = sim.busy.clone(), int(sim.next_index.sum())
    sim.reseed(5)
    assert torch.equal(sim.busy, busy) and int(sim.next_index.sum()) == dealt
    sim.reset(5)
    assert int(sim.next_index.sum()) == CONT.worlds * CONT.max_in_flight and float(sim.busy.max()) == 0.0


def test_every_slot_shows_each_pending_decision_and_changes_nothing(small_ds):
    sim = contention_sim(small_ds)
    drive(sim, 25, 0)
    before = sim.world_state()
    obs, load, W = sim.observe(), sim.server_load(), CONT.max_in_flight
    active = sim.active.clone()
    with sim.every_slot() as every:
        assert sim.batch_size == CONT.worlds * W
        rows = active  # flat slot index = world * W + slot, the row of that slot in the view
        for name in ("task", "step", "prev_server", "now_ms", "required_type"):
            assert torch.equal(getattr(every, name)[rows], getattr(obs, name)), name
        assert torch.equal(sim.server_load()[rows], load)
        assert torch.equal(sim.episode.view(-1, W), before["slot_episode"].view(-1, W))
    assert sim.batch_size == CONT.worlds and torch.equal(sim.active, active)
    assert all(torch.equal(v, sim.world_state()[k]) for k, v in before.items())


def test_gae_of_a_cut_segment_bootstraps_from_the_value_after_it():
    """Episode 0 runs steps 0-1 and is cut (bootstrap value 2.0 at step 2); episode 1 is a tail
    (steps 2-3, begun in an earlier epoch) that ends; both against the plain recursion by hand."""
    gamma, lam = 0.9, 0.8
    r0, v0 = torch.tensor([1.0, -1.0]), torch.tensor([0.5, 0.25])
    r1, v1 = torch.tensor([0.3, 0.7]), torch.tensor([0.1, -0.2])
    boot = 2.0
    rewards = torch.cat([r0, r1, torch.tensor([boot])])
    values = torch.cat([v0, v1, torch.tensor([boot])])
    dones = torch.tensor([False, False, False, True, True])
    column = torch.tensor([0, 0, 1, 1, 0])
    step = torch.tensor([0, 1, 2, 3, 2])
    adv, ret = episode_gae(rewards, values, dones, column, step, 2, 4, gamma, lam)
    d1 = r0[1] + gamma * boot - v0[1]
    d0 = r0[0] + gamma * v0[1] - v0[0]
    assert torch.allclose(adv[:2], torch.stack([d0 + gamma * lam * d1, d1]))
    e3 = r1[1] - v1[1]
    e2 = r1[0] + gamma * v1[1] - v1[0]
    assert torch.allclose(adv[2:4], torch.stack([e2 + gamma * lam * e3, e3]))
    assert adv[4] == 0.0  # the bootstrap cell itself carries no advantage
    ref, _ = gae(r0[:, None], v0[:, None], torch.zeros(2, 1, dtype=torch.bool), torch.tensor([boot]), gamma, lam)
    assert torch.allclose(adv[:2], ref[:, 0]) and torch.allclose(ret[:4], adv[:4] + values[:4])


def ppo_agent(ds):
    cfg = resolve(__import__("conftest").ROOT / "PPO_algorithm" / "config.yaml", flags={"profile": "contention"})
    torch.manual_seed(0)
    return PPOAgent(ds, cfg, torch.device("cpu"))


def test_a_continuing_rollout_uses_every_decision_once_and_bootstraps_the_rest(small_ds):
    sim, agent = contention_sim(small_ds), ppo_agent(small_ds)
    sim.reset(3)
    seen = []
    for epoch in range(3):
        dealt = int(sim.next_index.sum())
        batch = collect(sim, agent, WEIGHTS, 10, 100 + epoch, 0.99, 0.95, continuing=True)
        assert int(sim.next_index.sum()) >= dealt  # the worlds went on, no restart
        n = len(batch.actions)
        assert batch.stats["env_steps"] == n and len(batch.advantages) == n and torch.isfinite(batch.advantages).all()
        seen.append(n)
    assert min(seen) > 0
    # the same epochs from the same start give the same samples (the streams are re-seeded per epoch)
    sim2, agent2 = contention_sim(small_ds), ppo_agent(small_ds)
    sim2.reset(3)
    for epoch in range(3):
        b2 = collect(sim2, agent2, WEIGHTS, 10, 100 + epoch, 0.99, 0.95, continuing=True)
    assert torch.equal(b2.advantages, batch.advantages) and torch.equal(b2.actions, batch.actions)


SMALL = ["--profile", "contention", "--arrival-rate", "6", "--set", "contention.worlds=3",
         "--set", "contention.warmup=3", "--set", "contention.max_in_flight=8", "--set", "checkpoint_every=2",
         "--set", "keep_checkpoints=5"]


@pytest.mark.slow
@pytest.mark.parametrize("script, extra", [("TopoFreeRL/train.py", ["--set", "actor=per_server"]),
                                           ("Stark_Scheduler/train.py", [])])
def test_a_resumed_continuing_run_ends_with_the_weights_of_an_uninterrupted_one(small_root, tmp_path, script, extra):
    run = tmp_path / "run"
    run_script(script, "--data", str(small_root), "--regions", "Small_Trap", "--epochs", "5", "--episodes", "12",
               *SMALL, *extra, "--out", str(run), "--no-progress")
    state = load_checkpoint(run / "checkpoints" / "final.pt")
    assert "worlds" in state and state["config"]["rollout"] == "continuing"
    crashed = tmp_path / "crashed"
    shutil.copytree(run, crashed)
    for name in ("final.pt", "epoch_0004.pt"):
        (crashed / "checkpoints" / name).unlink()
    proc = run_script(script, "--resume", str(crashed), "--no-progress")
    assert "from epoch_0002.pt" in proc.stdout
    a, b = (load_checkpoint(r / "checkpoints" / "final.pt") for r in (run, crashed))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert all(torch.equal(a["worlds"][k], b["worlds"][k]) for k in a["worlds"])
    timing = [c for c in pd.read_csv(run / "metrics.csv").columns if c in TIMING or c.endswith("_s")]
    ma, mb = (pd.read_csv(r / "metrics.csv").drop(columns=timing) for r in (run, crashed))
    pd.testing.assert_frame_equal(ma, mb)
