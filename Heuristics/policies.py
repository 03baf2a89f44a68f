"""Reference schedulers: random, greedy, greedy_queue, maxcompute and the oracle.

Each is a policy with `act(sim, obs) -> (B,) server indices`, always a valid server for the step.
They read the simulator's topology (and `greedy_queue` its live server load), never its random
state, so every scheduler evaluated with one seed sees the same channel draws (common random numbers).

Under the contention profile the expectations use its trap model, and queues are left out of
them: `greedy` and `oracle` are load-blind rules there. `greedy_queue` adds the live queue wait.
The oracle's plan value is then an upper bound on any scheduler's expected episode reward, not
an achieved one: queues only add latency, and the latency reward never increases with latency.
"""
from __future__ import annotations

import torch

from edgesim.expectation import ChannelTable, expected_step
from edgesim.physics import EVAL_WEIGHTS
from edgesim.simulator import Observation, Simulator

# greedy's one-step score: 0.6 * E[latency] / 2000 ms + 0.4 * cost / $0.05
GREEDY_LATENCY_WEIGHT, GREEDY_LATENCY_SCALE_MS = 0.6, 2000.0
GREEDY_COST_WEIGHT, GREEDY_COST_SCALE = 0.4, 0.05


class RandomPolicy:
    """Uniform over the servers that host the step's model type."""

    name = "random"

    def __init__(self, sim: Simulator, seed: int = 0):
        self.gen = torch.Generator(sim.device).manual_seed(seed)

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        return sim.sample_valid(self.gen)


class MaxComputePolicy:
    """The valid server with the highest normalised compute (the reference's "greedy")."""

    name = "maxcompute"

    def __init__(self, sim: Simulator, seed: int = 0):
        nc = torch.where(sim.net.valid, sim.net.nc, -torch.inf)
        self.best = nc.argmax(1)  # (T,) first server of maximal compute per model type

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        return self.best[obs.required_type]


class GreedyPolicy:
    """The valid server minimising the step's expected weighted latency and cost."""

    name = "greedy"

    def __init__(self, sim: Simulator, seed: int = 0):
        self.table = ChannelTable(sim.device, sim.dtype)
        self.servers = torch.arange(sim.n_servers, device=sim.device)

    def expected_latency(self, sim: Simulator, e: dict[str, torch.Tensor]) -> torch.Tensor:
        return e["latency"]

    def scores(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        """(B, N) greedy score, +inf on invalid servers."""
        lon, lat, region = sim.hop_source()
        e = expected_step(sim.net, self.table, lon[:, None], lat[:, None], region[:, None], obs.prev_server[:, None],
                          obs.tokens[:, None], obs.required_type[:, None], self.servers[None], with_reward=False,
                          contention=getattr(sim, "contention", None))
        score = (GREEDY_LATENCY_WEIGHT * self.expected_latency(sim, e) / GREEDY_LATENCY_SCALE_MS
                 + GREEDY_COST_WEIGHT * e["cost"] / GREEDY_COST_SCALE)
        return score.masked_fill(~sim.valid_mask(), torch.inf)

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        return self.scores(sim, obs).argmin(1)


class QueueGreedyPolicy(GreedyPolicy):
    """Greedy with the live queue wait of each server added to the step's expected latency.

    Identical to greedy in the paper profile (queues are zero there)."""

    name = "greedy_queue"

    def expected_latency(self, sim: Simulator, e: dict[str, torch.Tensor]) -> torch.Tensor:
        return e["latency"] + sim.server_load()


class OraclePolicy:
    """Exact maximiser of expected episode reward under fixed weights, by dynamic programming.

    In the paper profile the next state is the chosen server and rewards add up, so the open-loop
    plan V_k(prev) = max_s [E r_k(prev, s) + V_{k+1}(s)] over steps x valid servers is optimal.
    Expectations come from `expected_step` (quadrature of the channel, both trap outcomes), so the
    plan is exact up to that quadrature. One plan per task, cached.
    """

    name = "oracle"

    def __init__(self, sim: Simulator, seed: int = 0, weights: tuple[float, float, float] = EVAL_WEIGHTS):
        self.table = ChannelTable(sim.device, sim.dtype)
        self.weights = weights
        self.cache: dict[int, tuple[torch.Tensor, float]] = {}
        self.plans = torch.zeros((sim.tasks.k, sim.tasks.max_steps), dtype=torch.long, device=sim.device)
        self.planned = torch.zeros(sim.tasks.k, dtype=torch.bool, device=sim.device)

    def _reward(self, sim: Simulator, src, prev: torch.Tensor, k: int, task: int, servers: torch.Tensor) -> torch.Tensor:
        T = sim.tasks
        e = expected_step(sim.net, self.table, *src, prev, T.tokens[task, k], T.types[task, k], servers,
                          contention=getattr(sim, "contention", None))
        wl, wc, ws = self.weights
        return wl * e["rL"] + wc * e["rC"] + ws * e["rS"]

    def plan(self, sim: Simulator, task: int) -> tuple[torch.Tensor, float]:
        """(servers per step, expected episode reward) of the optimal plan for one task."""
        if task in self.cache:
            return self.cache[task]
        net, T = sim.net, sim.tasks
        steps = int(T.n_steps[task])
        cands = [net.valid[T.types[task, k]].nonzero().squeeze(1) for k in range(steps)]
        value = torch.zeros(len(cands[-1]), dtype=sim.dtype, device=sim.device)  # V_{steps}(s) = 0
        best_next = [None] * steps
        for k in range(steps - 1, 0, -1):
            p = cands[k - 1][:, None]
            src = (net.lon[p], net.lat[p], net.region[p])
            q = self._reward(sim, src, p, k, task, cands[k][None]) + value[None]  # (prev, s)
            value, best_next[k] = q.max(1)
        first = torch.full((1,), -1, dtype=torch.long, device=sim.device)
        src = (T.lon[task].reshape(1), T.lat[task].reshape(1), T.region[task].reshape(1))
        q0 = self._reward(sim, src, first, 0, task, cands[0]) + value
        idx = q0.argmax()
        plan = torch.zeros(T.max_steps, dtype=torch.long, device=sim.device)
        plan[0] = cands[0][idx]
        for k in range(1, steps):
            idx = best_next[k][idx]
            plan[k] = cands[k][idx]
        self.cache[task] = (plan, float(q0.max()))
        return self.cache[task]

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        """The cached plan of each row's task at its current step (rows may interleave tasks)."""
        for task in obs.task[~self.planned[obs.task]].unique().tolist():
            self.plans[task] = self.plan(sim, task)[0]
            self.planned[task] = True
        return self.plans[obs.task, obs.step]

    def bound(self, sim: Simulator, task_ids) -> float:
        """Mean expected reward of the optimal plans of the tasks `task_ids` (one per evaluated
        episode): under contention, an upper bound on any scheduler's expected reward."""
        index = {tid: i for i, tid in enumerate(sim.tasks.ids)}
        return sum(self.plan(sim, index[t])[1] for t in task_ids) / len(task_ids)


POLICIES = {p.name: p for p in (RandomPolicy, GreedyPolicy, QueueGreedyPolicy, MaxComputePolicy, OraclePolicy)}
