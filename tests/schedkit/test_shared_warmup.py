"""A warm-up shared by every scheduler of a setting (schedkit.evaluation.SharedWarmup, measured by
bench/shared_warmup.py): continuing from the cached stretch gives the rows that running it afresh gives, and
the rule really schedules the shared workflows."""
from __future__ import annotations

import pandas as pd
import pytest
import torch

from edgesim.serving import SERVING, Serving
from Heuristics.policies import LeastLoadedPolicy, QueueGreedyPolicy
from schedkit.evaluation import Evaluation, SharedWarmup, eval_simulator, evaluate_seeds, run_evaluation

PARAMS = Serving(load=0.9, worlds=2, warmup=8, max_in_flight=64)
SHARED = 6  # of the 8 warm-up workflows of each world
POLICIES = {"greedy_queue": QueueGreedyPolicy, "least_loaded": LeastLoadedPolicy}


def rule(sim):
    return LeastLoadedPolicy(sim, seed=sim.seed)


class Composite:
    """The semantics of a shared warm-up written out: at every step, rows deciding for one of the first SHARED
    workflows of their world take least_loaded's choice, the others greedy_queue's."""

    name = "composite"

    def __init__(self, sim, seed):
        self.rule, self.policy = LeastLoadedPolicy(sim, seed=seed), QueueGreedyPolicy(sim, seed=seed)

    def act(self, sim, obs):
        held = sim.episode < SHARED * sim.batch_size
        return torch.where(held, self.rule.act(sim, obs), self.policy.act(sim, obs))


def run(ds, name: str, shared: SharedWarmup | None) -> list[Evaluation]:
    make = lambda sim, seed: (Composite if name == "composite" else POLICIES[name])(sim, seed=seed)  # noqa: E731
    return [e for _, e in evaluate_seeds(ds, "test", 8, [5, 9], "cpu", SERVING, PARAMS, make, progress=False,
                                         max_steps=2000, shared=shared)]


@pytest.fixture(scope="module")
def runs(tiny_ds) -> dict[str, list[Evaluation]]:
    """Two evaluation seeds side by side: each scheduler from one cached stretch (least_loaded's evaluation runs it,
    greedy_queue's loads it), greedy_queue running the stretch itself, and each without one."""
    cached = SharedWarmup(rule, SHARED)
    out = {f"{name} cached": run(tiny_ds, name, cached) for name in ("least_loaded", "greedy_queue")}
    out["greedy_queue afresh"] = run(tiny_ds, "greedy_queue", SharedWarmup(rule, SHARED, cache=False))
    out |= {f"{name} alone": run(tiny_ds, name, None) for name in ("greedy_queue", "least_loaded", "composite")}
    (start,) = cached._starts.values()
    assert start.steps > 0 and len(start.snapshots) == start.steps  # the stretch ran, once
    return out


def same(a: Evaluation, b: Evaluation) -> bool:
    cols = [c for c in a.episodes if c != "decision_ms"]
    return (a.episodes[cols].equals(b.episodes[cols]) and a.requests is not None and b.requests is not None
            and a.requests.equals(b.requests) and a.stats == b.stats and a.steps == b.steps)


def test_continuing_from_the_cached_stretch_gives_the_rows_of_running_it_afresh(runs):
    """A scheduler evaluated from the cached stretch gets, seed for seed, the rows of an evaluation that runs the
    stretch itself, and those of the composite rule evaluated from empty worlds: the rule decides every step of
    the shared workflows, after the stretch too."""
    for a, b, c in zip(runs["greedy_queue cached"], runs["greedy_queue afresh"], runs["composite alone"]):
        assert same(a, b) and same(a, c)


def test_the_rule_schedules_the_shared_workflows(runs):
    """least_loaded evaluated after a least_loaded warm-up is least_loaded's own evaluation; greedy_queue after it
    differs from greedy_queue alone (the rule decided the shared workflows' steps), yet its measured workflows are
    the same arrivals (common random numbers)."""
    for a, b in zip(runs["least_loaded cached"], runs["least_loaded alone"]):
        assert same(a, b)
    for a, b in zip(runs["greedy_queue cached"], runs["greedy_queue alone"]):
        arrivals = ["episode", "task_id", "world", "arrival_index", "arrival_ms"]
        assert a.episodes[arrivals].equals(b.episodes[arrivals])
        assert a.requests is not None and not a.requests.equals(b.requests)


def test_a_timeline_holds_the_shared_stretch(tiny_ds):
    def timeline(shared):
        sim = eval_simulator(tiny_ds, "test", 8, 5, "cpu", SERVING, PARAMS)
        return run_evaluation(sim, QueueGreedyPolicy(sim, seed=5), 8, progress=False, timeline=True,
                              shared=shared).timeline
    cached = SharedWarmup(rule, SHARED)
    afresh = timeline(cached)  # the first evaluation of a layout runs the stretch, the next one loads it
    pd.testing.assert_frame_equal(timeline(cached), afresh)
    assert afresh["step"].min() == 1
