"""The batched contention worlds against the plain-Python executable spec (edgesim/scalar_contention.py),
decision by decision, with the same random draws, plus the invariants every world must keep.

Every random value of a world is a common random number of (seed, world, arrival index, step,
purpose) (edgesim/crn.py), so each spec world is fed `crn_uniform` of the same keys and the two meet
the same arrivals, tasks and step draws without replaying any stream."""
from __future__ import annotations

import math
from collections import defaultdict

import pytest
import torch

from edgesim.contention import Contention, ContentionSimulator, load_arrival_gaps
from edgesim.crn import crn_uniform, draw_key
from edgesim.registry import make_simulator
from edgesim.scalar_contention import ContentionWorld
from edgesim.scalar_model import ScalarTopology
from Heuristics.policies import GreedyPolicy, LeastLoadedPolicy, RandomPolicy

WORLDS, SLOTS, DECISIONS = 3, 4, 100
LOW, HIGH = 0.2, 200.0  # workflows per second per world: nearly idle servers, and long queues
SPLIT = "train"


def close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)


def play(ds, topology: ScalarTopology, policy_class, rate: float, seed: int, trace: str | None = None,
         **params) -> dict[str, list[float]]:
    """Run WORLDS worlds for DECISIONS decisions against one scalar world each; every check is an assert.
    Returns the queue and admission waits (the simulator's) and the attempts over trap links (the
    spec's), so callers can check what a run exercised."""
    c = Contention(arrival_rate=rate, arrival_trace=trace, max_in_flight=SLOTS, worlds=WORLDS, warmup=0, **params)
    sim = make_simulator(ds, WORLDS, SPLIT, "random", seed, profile="contention", params=c)
    assert isinstance(sim, ContentionSimulator)
    obs = sim.reset()
    gaps = None if trace is None else load_arrival_gaps(trace).tolist()

    def draws(g: int):
        return lambda index, step, purpose: float(crn_uniform(sim.seed, index, draw_key(g, step, purpose)))
    worlds = [ContentionWorld(topology, SPLIT, c, draws(g), gaps) for g in range(WORLDS)]
    policy = policy_class(sim, seed=seed)

    workflow_of: dict[int, tuple[int, int]] = {}  # simulator episode id -> (world, scalar arrival index)
    next_step: dict[int, int] = defaultdict(int)  # episode -> the step it decides next
    finished: set[int] = set()
    server_free: dict[tuple[int, int], float] = defaultdict(float)  # (world, server) -> end of its last job
    clock = [-math.inf] * WORLDS
    seen: dict[str, list[float]] = {"queue": [], "admission": [], "attempts": []}
    for _ in range(DECISIONS):
        load = sim.server_load()
        for g, world in enumerate(worlds):
            want = world.queue_waits()
            assert all(close(a, b) for a, b in zip(load[g].tolist(), want)), f"world {g}: live server load differs"
        actions = policy.act(sim, obs)
        before = obs.now_ms.clone()
        obs, reward, done, info = sim.step(actions)
        history = sim.latency_history()
        for g, world in enumerate(worlds):
            ev = world.decide(int(actions[g]))
            where = f"world {g}, decision at {ev['time']:.3f} ms"
            episode, s = int(info["episode"][g]), int(info["server"][g])
            # the same decision: same workflow, step, time, server and outcome
            assert workflow_of.setdefault(episode, (g, ev["workflow"])) == (g, ev["workflow"]), where
            assert (int(info["task"][g]), int(info["step"][g]), s) == (ev["task"], ev["step"], ev["server"]), where
            assert close(float(before[g]), ev["time"]), where
            assert (int(info["world"][g]), int(info["arrival_index"][g])) == (g, ev["workflow"]), where
            assert close(float(info["arrival_ms"][g]), ev["arrival_ms"]), where
            for key in ("queue_ms", "admission_ms", "latency", "trap_ms", "link_ms", "compute_ms", "cost"):
                assert close(float(info[key][g]), ev[key]), f"{where}: {key} {float(info[key][g])} != {ev[key]}"
            assert all(close(a, b) for a, b in zip(reward[g].tolist(), ev["reward"])), f"{where}: reward"
            assert close(float(history[g, s]), ev["history"]), f"{where}: latency history"
            assert bool(done[g]) == ev["done"], where

            # invariants, on the simulator's own numbers
            queue, admission = float(info["queue_ms"][g]), float(info["admission_ms"][g])
            assert queue >= 0 and admission >= 0 and queue - admission >= -1e-9, f"{where}: negative wait"
            assert float(before[g]) >= clock[g], f"{where}: the world's clock went back from {clock[g]}"
            clock[g] = float(before[g])
            start = float(before[g]) + queue - admission
            assert start >= server_free[g, s] - 1e-6, f"{where}: server {s} starts a job before its last one ends"
            server_free[g, s] = start + float(info["compute_ms"][g])
            assert episode not in finished and next_step[episode] == int(info["step"][g]), f"{where}: episode {episode}"
            next_step[episode] += 1
            if bool(done[g]):
                finished.add(episode)
            seen["queue"].append(queue)
            seen["admission"].append(admission)
            seen["attempts"].append(ev["attempts"])

    in_flight = set(sim.world_state()["slot_episode"].tolist())
    assert not finished & in_flight
    dealt = {n * WORLDS + g for g in range(WORLDS) for n in range(int(sim.next_index[g]))}
    assert finished | in_flight == dealt, "an episode was lost or dealt twice"
    assert set(next_step) <= finished | in_flight
    for world in worlds:
        flying = {wf.index for wf in world.slots}
        assert len(set(world.finished)) == len(world.finished) and not flying & set(world.finished)
        assert flying | set(world.finished) == set(range(world.arrived))
    return seen


class TrapLinkPolicy:
    """Takes a link row out of the previous server whenever one reaches a valid server, preferring a
    link that touches a trap (retransmissions); random otherwise. Not a scheduler: it steers the
    worlds onto the trap links the heuristics avoid."""

    def __init__(self, sim, seed: int = 0):
        self.random = RandomPolicy(sim, seed)
        ds = sim.dataset
        self.links: dict[int, list[int]] = defaultdict(list)
        for a, b in zip(ds.link_src.tolist(), ds.link_dst.tolist()):
            self.links[a].append(b)
        self.trap = ds.is_trap.tolist()

    def act(self, sim, obs) -> torch.Tensor:
        actions, valid = self.random.act(sim, obs), sim.valid_mask()
        for g, prev in enumerate(obs.prev_server.tolist()):
            reachable = [s for s in self.links.get(prev, []) if valid[g, s]]
            if reachable:
                actions[g] = max(reachable, key=lambda s: (self.trap[prev] or self.trap[s], -s))
        return actions


@pytest.fixture(scope="module")
def topology(default_ds) -> ScalarTopology:
    return ScalarTopology(default_ds)


@pytest.mark.parametrize("policy_class", [RandomPolicy, GreedyPolicy, LeastLoadedPolicy])
def test_worlds_match_the_spec_at_low_and_high_arrival_rates(default_ds, topology, policy_class):
    low = play(default_ds, topology, policy_class, LOW, seed=3)
    high = play(default_ds, topology, policy_class, HIGH, seed=4)
    mean = {name: sum(v) / len(v) for name, v in high.items()}
    assert mean["queue"] > 100.0 and mean["admission"] > 0.0, f"the high rate formed no queues: {mean}"
    assert sum(low["queue"]) / len(low["queue"]) < mean["queue"]


def test_trace_arrivals_and_trap_retransmissions_match_the_spec(default_ds, topology, tmp_path):
    trace = tmp_path / "burst.csv"
    trace.write_text("Timestamp\n" + "\n".join(str(t) for t in (0, 0.1, 0.15, 2.0, 2.01, 2.02, 5.0, 9.5)) + "\n")
    seen = play(default_ds, topology, TrapLinkPolicy, 20.0, seed=5, trace=str(trace), trap_loss=0.8,
                trap_max_attempts=6, trap_surcharge_scale=2.5)
    assert max(seen["queue"]) > 0.0 and max(seen["attempts"]) > 1, "no queue, or no retransmission over a trap link"
