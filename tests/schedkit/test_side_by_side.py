"""Schedulers evaluated side by side in one simulator (schedkit.evaluation.evaluate_side_by_side, measured by
bench/side_by_side.py): each one's rows, requests, load statistics and step count are those of its own run."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import ROOT

from edgesim.contention import CONTENTION, Contention
from edgesim.serving import SERVING, Serving
from Heuristics.policies import LeastLoadedPolicy, QueueGreedyPolicy
from schedkit.config import resolve
from schedkit.evaluation import Evaluation, evaluate_seeds, evaluate_side_by_side
from schedkit.inference import GreedyAgentPolicy
from schedkit.registry import get

POLICIES = {"greedy_queue": QueueGreedyPolicy, "least_loaded": LeastLoadedPolicy}
SEEDS = [5, 9]
SETTINGS = {"serving": (SERVING, Serving(load=0.9, worlds=2, warmup=8, max_in_flight=64)),
            "contention": (CONTENTION, Contention(worlds=2, warmup=4))}


def same(a: Evaluation, b: Evaluation) -> bool:
    """The same rows but the wall time per decision, the same steps, and load statistics equal to 1e-12 (contention
    sums its jobs' busy time in the order the batch ran them)."""
    cols = [c for c in a.episodes if c != "decision_ms"]
    stats_equal = a.stats.keys() == b.stats.keys() and all(
        math.isclose(x, y, rel_tol=1e-12) or (x != x and y != y) for x, y in zip(a.stats.values(), b.stats.values()))
    requests_equal = (a.requests is None) == (b.requests is None) and (a.requests is None or a.requests.equals(b.requests))
    return a.episodes[cols].equals(b.episodes[cols]) and requests_equal and stats_equal and a.steps == b.steps


@pytest.mark.parametrize("profile", list(SETTINGS))
def test_each_scheduler_side_by_side_gets_the_rows_of_its_own_run(tiny_ds, profile):
    prof, params = SETTINGS[profile]
    makers = {name: (lambda sim, seed, cls=cls: cls(sim, seed=seed)) for name, cls in POLICIES.items()}
    together = evaluate_side_by_side(tiny_ds, "test", 8, SEEDS, "cpu", prof, params, makers, progress=False,
                                     max_steps=2000)
    assert list(together) == list(POLICIES)
    for name, make in makers.items():
        alone = evaluate_seeds(tiny_ds, "test", 8, SEEDS, "cpu", prof, params, make, progress=False, max_steps=2000)
        assert [seed for seed, _ in together[name]] == SEEDS
        assert all(same(a, b) for (_, a), (_, b) in zip(alone, together[name])), name
        assert all((e.episodes["decision_ms"] > 0).all() for _, e in together[name])  # its own time, timed apart
    # the two rules really decided differently (else a block given the other's choices would pass too)
    (_, gq), (_, ll) = together["greedy_queue"][0], together["least_loaded"][0]
    assert not gq.episodes["latency_ms"].equals(ll.episodes["latency_ms"])


class Counted:
    """A policy that counts the steps it is asked to decide."""

    def __init__(self, policy):
        self.policy, self.name, self.calls = policy, policy.name, 0

    def act(self, sim, obs):
        self.calls += 1
        return self.policy.act(sim, obs)


def test_a_policy_is_no_longer_asked_once_its_block_has_finished(tiny_ds):
    prof, params = SETTINGS["serving"]
    made: dict[str, Counted] = {}

    def counted(name, cls):
        def make(sim, seed):
            made[name] = Counted(cls(sim, seed=seed))
            return made[name]
        return make
    together = evaluate_side_by_side(tiny_ds, "test", 8, SEEDS, "cpu", prof, params,
                                     {name: counted(name, cls) for name, cls in POLICIES.items()}, progress=False,
                                     max_steps=2000)
    last = {name: max(e.steps for _, e in runs) for name, runs in together.items()}
    assert len(set(last.values())) == 2  # one block finished while the other still ran
    assert {name: c.calls for name, c in made.items()} == last  # asked until its own block's last step, no longer


def untrained(ds, algo: str) -> GreedyAgentPolicy:
    """A learned scheduler with its seeded initial weights, reading the serving profile's live inputs."""
    spec = get(algo)
    cfg = resolve(ROOT / spec.folder / "config.yaml", sets=["profile=serving", "live_load=true"])
    torch.manual_seed(0)
    return GreedyAgentPolicy(algo, spec.load()(ds, cfg, torch.device("cpu")), torch.tensor([0.45, 0.40, 0.15]))


def test_learned_schedulers_side_by_side_decide_only_their_own_rows_and_get_their_own_runs(tiny_ds):
    prof, params = SETTINGS["serving"]
    learned = {algo: untrained(tiny_ds, algo) for algo in ("TopoFreeRL", "PPO", "PFAPPO", "STARK")}
    seen: dict[str, set[int]] = {algo: set() for algo in learned}
    for algo, policy in learned.items():
        policy.agent.register_forward_pre_hook(
            lambda _, args, algo=algo: seen[algo].add(len(next(iter(args[0].values())))))
    makers = {"least_loaded": lambda sim, seed: LeastLoadedPolicy(sim, seed=seed)}
    makers |= {algo: (lambda sim, seed, p=p: p) for algo, p in learned.items()}
    together = evaluate_side_by_side(tiny_ds, "test", 8, SEEDS, "cpu", prof, params, makers, progress=False,
                                     max_steps=100)
    rows_each = len(SEEDS) * params.worlds
    # its networks saw its block (and, standing in for finished blocks, theirs), never the whole batch
    assert all(rows_each in n and max(n) < len(makers) * rows_each for n in seen.values()), seen
    for name, make in makers.items():
        alone = evaluate_seeds(tiny_ds, "test", 8, SEEDS, "cpu", prof, params, make, progress=False, max_steps=100)
        assert all(same(a, b) for (_, a), (_, b) in zip(alone, together[name])), name
    assert len({tuple(e.episodes["latency_ms"]) for runs in together.values() for _, e in runs[:1]}) > 2


def test_one_scheduler_at_one_seed_is_its_own_run(tiny_ds):
    prof, params = SETTINGS["serving"]
    make = lambda sim, seed: LeastLoadedPolicy(sim, seed=seed)  # noqa: E731
    (seed, together), = evaluate_side_by_side(tiny_ds, "test", 8, [5], "cpu", prof, params, {"ll": make},
                                              progress=False, max_steps=2000)["ll"]
    (_, alone), = evaluate_seeds(tiny_ds, "test", 8, [5], "cpu", prof, params, make, progress=False, max_steps=2000)
    assert seed == 5 and same(alone, together)


def test_a_profile_that_cannot_batch_worlds_is_refused(tiny_ds):
    from edgesim.paper import PAPER
    with pytest.raises(ValueError, match="cannot hold several worlds' blocks"):
        evaluate_side_by_side(tiny_ds, "test", 8, SEEDS, "cpu", PAPER, None, {"ll": lambda sim, seed: None})
