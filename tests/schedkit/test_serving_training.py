"""Learned training under `serving`, where a decision's outcome arrives when its request completes:
the rollout matches each decision to its completed request by (episode, step), and the shell
scripts train and evaluate a checkpoint in that world."""
from __future__ import annotations

from collections import defaultdict

import pandas as pd
import torch
from conftest import run_script

from edgesim.registry import make_simulator
from edgesim.serving import Serving
from schedkit.rollout import MASK_VALUE, collect

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
