"""Learned training under `serving`, where a decision's outcome arrives when its request completes:
the rollout matches each decision to its completed request by (episode, step), and the shell
scripts train and evaluate a checkpoint in that world."""
from __future__ import annotations

import shutil
from collections import defaultdict

import pandas as pd
import pytest
import torch
from conftest import one_line_error, run_script
from test_topofreerl import TIMING

from edgesim.registry import make_simulator
from edgesim.serving import Serving
from schedkit.rollout import MASK_VALUE, Carry, collect
from schedkit.runs import load_checkpoint

SERVING = Serving(load=0.9, worlds=2, max_in_flight=16, warmup=3)
WEIGHTS = torch.tensor([0.45, 0.4, 0.15], dtype=torch.float64)
EPISODES = 10


def serving_sim(ds):
    return make_simulator(ds, SERVING.worlds, "train", "random", 0, profile="serving", params=SERVING)


def lowest_valid(sim) -> torch.Tensor:
    """(B, N) True at each row's lowest-numbered valid server: a deterministic policy."""
    mask = sim.valid_mask()
    first = torch.where(mask, torch.arange(mask.shape[1]), mask.shape[1]).argmin(1)
    return torch.nn.functional.one_hot(first, mask.shape[1]).bool()


class LowestValidServer:
    """An agent (the rollout's Agent protocol) that always routes to the lowest valid server, value 0."""

    def features(self, sim, obs, weights):
        return {"pick": lowest_valid(sim), "episode": sim.episode.clone(), "step": sim.step_idx.clone()}

    def __call__(self, features):
        pick = features["pick"]
        return torch.where(pick, 0.0, MASK_VALUE), torch.zeros(len(pick))

    def networks(self):
        return []

    def reward_bonus(self, actions):
        return torch.zeros(len(actions), dtype=torch.float64)


def test_each_decision_gets_the_reward_of_its_own_request_when_it_completes(small_ds):
    sim = serving_sim(small_ds)
    batch = collect(sim, LowestValidServer(), WEIGHTS, EPISODES, seed=5, gamma=1.0, lam=1.0)

    # the same policy stepped by hand: the requests completed, keyed by (episode, step)
    replay = serving_sim(small_ds)
    replay.reset(5)
    rewards: dict[int, float] = defaultdict(float)
    decisions, finished = 0, set()
    measured = range(replay.warmup_episodes, replay.warmup_episodes + EPISODES)
    while not set(measured) <= finished:
        decisions += int(sum(int(e) in measured for e in replay.episode))
        _, reward, done, info = replay.step(lowest_valid(replay).int().argmax(1))
        for r, d, e in zip(reward @ WEIGHTS, done, info["episode"].tolist()):
            rewards[e] += float(r)
            if d:
                finished.add(e)

    episode, step = batch.features["episode"], batch.features["step"]
    assert len(batch.actions) == decisions == batch.stats["env_steps"]  # every measured decision, once
    assert set(episode.tolist()) == set(measured)
    first = step == 0  # with gamma = lam = 1 and value 0, a workflow's first return is its whole reward
    got = dict(zip(episode[first].tolist(), batch.returns[first].tolist()))
    assert got.keys() == set(measured)
    for e in measured:
        assert abs(got[e] - rewards[e]) < 1e-5, e
    assert batch.stats["reward"] < 0 and torch.isfinite(batch.advantages).all()


def test_a_learned_scheduler_trains_and_evaluates_under_serving_from_the_shell(small_root, tmp_path):
    run = tmp_path / "run"
    world = ["--profile", "serving", "--load", "0.9", "--worlds", "2", "--max-in-flight", "16",
             "--warmup", "3"]
    run_script("PPO_algorithm/train.py", "--data", str(small_root), "--region", "Small_Trap", *world,
               "--epochs", "2", "--episodes", "8", "--out", str(run), "--no-progress")
    metrics = pd.read_csv(run / "metrics.csv")
    assert len(metrics) == 2 and metrics[["return", "reward", "latency_ms"]].notna().all().all()
    assert (metrics["env_steps"] > 0).all()
    out = tmp_path / "eval"
    run_script("PPO_algorithm/inference.py", "--data", str(small_root), "--region", "Small_Trap",
               "--model", str(run / "checkpoints" / "final.pt"), *world, "--episodes", "8",
               "--out", str(out), "--no-progress")
    summary = pd.read_json(out / "summary.json", typ="series")
    assert 0.0 <= summary["slo_attainment"] <= 1.0 and summary["mean_batch_size"] > 0


class ConstantValue(LowestValidServer):
    """LowestValidServer whose critic says `value` everywhere: a cut segment's bootstrap is visible."""

    def __init__(self, value: float):
        self.value = value

    def __call__(self, features):
        logits, _ = super().__call__(features)
        return logits, torch.full((len(logits),), self.value)


def own_rewards(ds, seeds: list) -> tuple[dict[tuple[int, int], float], dict[int, int]]:
    """Every completed request's scalar reward, keyed by (episode, step), and each finished workflow's last
    step: the lowest-valid policy stepped by hand through the continuing epochs' reseeds, as many steps
    as the rollouts took."""
    sim = serving_sim(ds)
    sim.reset(seeds[0])
    out: dict[tuple[int, int], float] = {}
    last: dict[int, int] = {}
    for seed, steps in seeds[1:]:
        sim.reseed(seed)
        for _ in range(steps):
            _, reward, done, info = sim.step(lowest_valid(sim).int().argmax(1))
            for r, d, e, s in zip((reward @ WEIGHTS).tolist(), done.tolist(), info["episode"].tolist(),
                                  info["step"].tolist()):
                out[(e, s)] = r
                if d:
                    last[e] = s
    return out, last


def test_a_continuing_serving_rollout_trains_each_decision_once_on_its_own_request(small_ds):
    """Over epochs of worlds that run on, every measured decision trains exactly once, in the epoch after
    its request completed at the latest, with that request's reward; each in-flight workflow's last
    decision waits in the carry, and the decisions before it bootstrap from its value."""
    sim, carry = serving_sim(small_ds), Carry()
    sim.reset(11)
    agent = ConstantValue(0.5)
    trained: list[tuple[int, int]] = []
    epochs, steps_per_epoch = [], []
    for epoch in range(4):
        before = len(trained)
        counter = CountingSteps(sim)
        instant = collect(sim, agent, WEIGHTS, EPISODES, 100 + epoch, gamma=0.0, lam=0.0, continuing=True,
                          carry=carry)
        steps_per_epoch.append(counter.stop())
        keys = list(zip(instant.features["episode"].tolist(), instant.features["step"].tolist()))
        trained += keys
        epochs.append((instant, keys, {(e, s) for e, s in zip(carry.decisions["episode"].tolist(),
                                                              carry.decisions["step"].tolist())}))
        assert len(trained) > before and len(carry.decisions["episode"]) > 0
    assert len(trained) == len(set(trained))  # once each
    rewards, final = own_rewards(small_ds, [11, *zip(range(100, 104), steps_per_epoch)])
    for instant, keys, carried in epochs:
        # gamma = 0: a decision's return is its own request's reward (its value is subtracted and added back)
        assert all(abs(ret - rewards[k]) < 1e-5 for ret, k in zip(instant.returns.tolist(), keys))
        assert carried.isdisjoint(keys)
        waiting = dict(carried)
        assert len(waiting) == len(carried)  # one decision per workflow
        for e in {e for e, _ in keys}:  # a workflow that trained and did not finish waits on its next step
            assert final.get(e) == max(s for ee, s in keys if ee == e) or waiting.get(e, -1) > max(s for ee, s in keys
                                                                                                   if ee == e), e
    # gamma = lam = 1: a segment cut before its carried decision ends with that decision's value (0.5)
    sim, carry = serving_sim(small_ds), Carry()
    sim.reset(11)
    collect(sim, agent, WEIGHTS, EPISODES, 100, gamma=1.0, lam=1.0, continuing=True, carry=carry)
    batch = collect(sim, agent, WEIGHTS, EPISODES, 101, gamma=1.0, lam=1.0, continuing=True, carry=carry)
    waiting = set(carry.decisions["episode"].tolist())
    episode, step = batch.features["episode"].tolist(), batch.features["step"].tolist()
    for e in set(episode):
        mine = [(s, r) for ee, s, r in zip(episode, step, batch.returns.tolist()) if ee == e]
        first = min(mine)[0]
        total = sum(rewards[(e, s)] for s, _ in mine) + (0.5 if e in waiting else 0.0)
        assert abs(dict(mine)[first] - total) < 1e-5, e
    assert waiting & set(episode)  # some workflows were cut and bootstrapped


class CountingSteps:
    """Counts `sim.step` calls until `stop()`, so a hand replay can take the same steps."""

    def __init__(self, sim):
        self.sim, self.n, self.step = sim, 0, sim.step

        def counted(*args, **kwargs):
            self.n += 1
            return self.step(*args, **kwargs)
        sim.step = counted

    def stop(self) -> int:
        self.sim.step = self.step
        return self.n


WORLD = ["--profile", "serving", "--load", "0.9", "--worlds", "2", "--max-in-flight", "16", "--warmup", "3"]


@pytest.mark.slow
def test_a_resumed_serving_run_ends_with_the_weights_of_an_uninterrupted_one(small_root, tmp_path):
    """Serving training runs its worlds on (rollout: continuing): checkpoints hold the worlds and the carried
    decisions, so a run resumed from epoch 2 trains on exactly what the uninterrupted run did."""
    run = tmp_path / "run"
    run_script("PPO_algorithm/train.py", "--data", str(small_root), "--regions", "Small_Trap", *WORLD, "--epochs", "5",
               "--episodes", "8", "--set", "checkpoint_every=2", "--set", "keep_checkpoints=5", "--out", str(run),
               "--no-progress")
    state = load_checkpoint(run / "checkpoints" / "final.pt")
    assert state["config"]["rollout"] == "continuing" and "worlds" in state and state["carry"]
    crashed = tmp_path / "crashed"
    shutil.copytree(run, crashed)
    for name in ("final.pt", "epoch_0004.pt"):
        (crashed / "checkpoints" / name).unlink()
    assert "from epoch_0002.pt" in run_script("PPO_algorithm/train.py", "--resume", str(crashed), "--no-progress").stdout
    a, b = (load_checkpoint(r / "checkpoints" / "final.pt") for r in (run, crashed))
    for part in ("model", "worlds", "carry"):
        assert a[part].keys() == b[part].keys() and all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part
    timing = [c for c in pd.read_csv(run / "metrics.csv").columns if c in TIMING or c.endswith("_s")]
    ma, mb = (pd.read_csv(r / "metrics.csv").drop(columns=timing) for r in (run, crashed))
    pd.testing.assert_frame_equal(ma, mb)
    # a checkpoint whose carried decisions are damaged is refused in one line, before any training
    damaged = tmp_path / "damaged"
    shutil.copytree(crashed, damaged)
    for name in ("final.pt", "epoch_0004.pt"):
        (damaged / "checkpoints" / name).unlink()
    ckpt = damaged / "checkpoints" / "epoch_0002.pt"
    saved = torch.load(ckpt, weights_only=True)
    saved["carry"]["decisions.action"] = saved["carry"]["decisions.action"][:-1]
    torch.save(saved, ckpt)
    proc = run_script("PPO_algorithm/train.py", "--resume", str(damaged), "--no-progress", check=False)
    one_line_error(proc, "carry", "one row count")


def test_a_carry_round_trips_and_a_malformed_one_is_refused():
    decisions = {"feat.x": torch.zeros(3, 2), "action": torch.zeros(3, dtype=torch.long), "logp": torch.zeros(3),
                 "value": torch.ones(3), "bonus": torch.zeros(3), "episode": torch.arange(3), "step": torch.zeros(3)}
    outcomes = {"episode": torch.arange(1), "step": torch.zeros(1), "reward": torch.zeros(1, 3),
                "done": torch.zeros(1, dtype=torch.bool)}
    state = Carry(decisions, outcomes).state_dict()
    back = Carry.from_state(state, torch.device("cpu"))
    assert back.decisions.keys() == decisions.keys() and all(torch.equal(back.decisions[k], v)
                                                             for k, v in decisions.items())
    for broken, words in (({**state, "weights.x": torch.zeros(3)}, "'decisions.<name>'"),
                          ({**state, "decisions.value": torch.tensor(1.0)}, "'decisions.<name>'"),
                          ({k: v for k, v in state.items() if k != "decisions.logp"}, "need action, logp"),
                          ({**state, "decisions.step": torch.zeros(2)}, "one row count")):
        with pytest.raises(ValueError, match=words):
            Carry.from_state(broken, torch.device("cpu"))
