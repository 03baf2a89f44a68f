"""Reference schedulers: random, greedy, greedy_queue, maxcompute, the oracle, and the
queue-aware ones for the contention profile: greedy_switch, least_loaded, p2c, lookahead and telemetry.

Each is a policy with `act(sim, obs) -> (B,) server indices`, always a valid server for the step.
They read the simulator's topology (and `greedy_queue` its live server load), never its random
state, so every scheduler evaluated with one seed sees the same channel draws (common random numbers).

Under the contention profile the expectations use its trap model, and queues are left out of
them: `greedy` and `oracle` are load-blind rules there. `greedy_queue` adds the live queue wait.
The oracle's plan value is then an upper bound on any scheduler's expected episode reward, not
an achieved one: queues only add latency, and the latency reward never increases with latency.
`least_loaded`, `p2c` and `lookahead` read the live queue waits; `telemetry` ranks servers by
TopoFreeRL's hand-made telemetry (no network). In the paper profile queues are zero, so
least_loaded is greedy, p2c is greedy over two random valid servers, and lookahead is the oracle.

Under the serving profile (docs/simulator.md §6) a step's expected compute is the engine's, asked of
the profile (`Profile.expected_compute_ms`, `ServingSimulator.expected_engine_ms`) rather than the
paper's compute time: the prefill of the request's prompt (known to a router before it routes) plus
E[o] - 1 decode iterations, E[o] the token distribution's mean output length (public; a request's own
output length is hidden). greedy (and least_loaded's tie-break) stays blind to live load: it charges an
idle engine (its solo time). greedy_queue and p2c charge the engine at its live running batch b and KV
in use K (decode iterations of b + 1 requests) and add `server_load()` (the expected wait before the
prefill starts, from known work only). lookahead charges its first step as greedy_queue does, and the
workflow's later steps the expected prompt, on idle engines where a server has no wait and at the live
batch and wait where it has one; the oracle plans with the expected prompt on idle engines. Both
planners score the serving reward's latency term (`Profile.expected_latency_reward`): expected latency
against the SLO budget of a request of E[o] tokens out, and an SLO miss where the expected TTFT or TPOT
exceeds its objective, in place of the paper's 5,000 ms scale. These are point estimates in a
non-linear reward, so under serving both planners are rules: the oracle's plan value is no bound there
(`Profile.plan_bounds_reward`). least_loaded ranks by outstanding prompt tokens. The routing rules of
serving systems are in Heuristics/serving_rules.py.

The greedy family (greedy, greedy_queue, greedy_switch, least_loaded's tie-break, p2c) takes
`latency_weight` W: the score is W * E[latency] / 2000 ms + (1 - W) * cost / $0.05 (default W = 0.6).
greedy_switch adds to E[latency] the region switch the reward charges, as the latency it is worth
(SWITCH_EQUIVALENT_MS). lookahead takes W too, as the latency share of its planning weights
(`planning_weights`); Heuristics/tune.py tunes every policy whose class sets `tunable`.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

import torch

from edgesim.expectation import ChannelTable, expected_hop, expected_step
from edgesim.physics import EVAL_WEIGHTS, LATENCY_NORM_MS, REWARD_SCALE, SWITCH_REWARD
from edgesim.scores import (
    GREEDY_COST_WEIGHT,
    GREEDY_LATENCY_WEIGHT,
    TELEMETRY_QUEUE_MS,
    check_latency_weight,
    greedy_score,
    live_telemetry,
    static_telemetry,
)
from edgesim.simulator import Observation, Simulator


class RandomPolicy:
    """Uniform over the servers that host the step's model type."""

    name = "random"
    draws_for_the_batch = True  # its draws depend on the batch's size: side by side, its rows are not its own run's

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
    tunable = True  # takes `latency_weight`, which Heuristics/tune.py tunes
    live = False  # E[compute] on idle servers: the queue-blind rule stays blind to the live batch too

    def __init__(self, sim: Simulator, seed: int = 0, latency_weight: float = GREEDY_LATENCY_WEIGHT):
        self.table = ChannelTable.shared(sim.device, sim.dtype)
        self.servers = torch.arange(sim.n_servers, device=sim.device)
        self.latency_weight = check_latency_weight(latency_weight)

    def expected_latency(self, sim: Simulator, e: dict[str, torch.Tensor],
                         servers: torch.Tensor | None) -> torch.Tensor:
        return e["latency"]

    def scores(self, sim: Simulator, obs: Observation, servers: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N) greedy score, +inf on invalid servers; or (B, K) of the given valid `servers` (B, K)."""
        cands = self.servers[None] if servers is None else servers
        e = expected_hop(sim, obs, self.table, cands, live=self.live)
        score = greedy_score(self.expected_latency(sim, e, servers), e["cost"], self.latency_weight)
        return score.masked_fill(~sim.valid_mask(), torch.inf) if servers is None else score

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        return self.scores(sim, obs).argmin(1)


class QueueGreedyPolicy(GreedyPolicy):
    """Greedy with the live queue wait of each server added to the step's expected latency.

    The wait is the profile's `server_load()` / `queue_wait()` in ms: the busy-until wait under
    contention, and under serving the non-clairvoyant expected wait before a request arriving now
    would start its prefill (a lower estimate: KV and batch blocking are left out). Under serving the
    expected compute is also the engine's at its live running batch and KV, not an idle engine's as
    for greedy. Identical to greedy in the paper profile (queues are zero there)."""

    name = "greedy_queue"
    live = True

    def expected_latency(self, sim: Simulator, e: dict[str, torch.Tensor],
                         servers: torch.Tensor | None) -> torch.Tensor:
        return e["latency"] + (sim.server_load() if servers is None else sim.queue_wait(servers))


# What a region switch is worth in ms of latency under the evaluation weights: the reward charges a switch
# w_S * |SWITCH_REWARD| and every ms of latency (below the 5000 ms clip) w_L * REWARD_SCALE / LATENCY_NORM_MS,
# so a switch costs as much reward as 0.15 * 0.4 * 5000 / (0.45 * 4) = 166.7 ms of latency.
SWITCH_EQUIVALENT_MS = EVAL_WEIGHTS[2] * -SWITCH_REWARD * LATENCY_NORM_MS / (EVAL_WEIGHTS[0] * REWARD_SCALE)


class SwitchGreedyPolicy(QueueGreedyPolicy):
    """greedy_queue with the region switch the reward charges: a server outside the hop source's region
    (the task's at step 0, else the previous server's) has SWITCH_EQUIVALENT_MS added to its expected
    latency, so the switch enters the score at the weight W / 2000 ms that every ms of latency gets.
    greedy_queue's score leaves the switch out, though the reward charges it; on data of one region no
    step can switch and this is greedy_queue, decision for decision."""

    name = "greedy_switch"

    def expected_latency(self, sim: Simulator, e: dict[str, torch.Tensor],
                         servers: torch.Tensor | None) -> torch.Tensor:
        cands = self.servers[None] if servers is None else servers
        switch = sim.net.region[cands] != sim.hop_region()[:, None]
        return super().expected_latency(sim, e, servers) + SWITCH_EQUIVALENT_MS * switch.to(e["latency"].dtype)


class LeastLoadedPolicy(GreedyPolicy):
    """The valid server with the least live load; among equal loads, the lowest greedy score.

    The load is the queue wait (`server_load()`, ms) under contention. Under serving it is the server's
    outstanding tokens (`outstanding_tokens()`: prompt tokens queued or in the running prefill), the
    work a router can count, rather than serving's `server_load()`, which is an expected wait in ms (the
    one greedy_queue and p2c add); so there it is token_jsq with the greedy score breaking ties.
    Idle servers all have load exactly 0, so while any valid server is idle this is greedy over the
    idle ones; in the paper profile (no queues) it is greedy."""

    name = "least_loaded"

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        live = getattr(sim, "outstanding_tokens", sim.server_load)
        load = live().masked_fill(~sim.valid_mask(), torch.inf)
        tied = load == load.amin(1, keepdim=True)
        return self.scores(sim, obs).masked_fill(~tied, torch.inf).argmin(1)


class PowerOfTwoPolicy(QueueGreedyPolicy):
    """Power of two choices: two valid servers drawn uniformly (distinct when the step has two or
    more), keep the one with the lower greedy_queue score (the first drawn on a tie), so it reads the
    same waits as greedy_queue under every profile."""

    name = "p2c"
    draws_for_the_batch = True

    def __init__(self, sim: Simulator, seed: int = 0, latency_weight: float = GREEDY_LATENCY_WEIGHT):
        super().__init__(sim, seed, latency_weight)
        self.gen = torch.Generator(sim.device).manual_seed(seed)

    def draw(self, sim: Simulator) -> torch.Tensor:
        """(B, 2) two valid servers per row, distinct where the step has >= 2 valid servers."""
        req = sim.required_type()
        count = sim.net.valid_count[req]
        u = torch.rand((sim.batch_size, 2), generator=self.gen, device=sim.device, dtype=sim.dtype)
        first = (u[:, 0] * count).long()
        # the second: one of the other count - 1 slots, shifted past the first
        second = torch.where(count > 1, (first + 1 + (u[:, 1] * (count - 1)).long()) % count, first)
        return sim.net.valid_list[req[:, None], torch.stack([first, second], 1)]

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        pair = self.draw(sim)
        return pair.gather(1, self.scores(sim, obs, pair).argmin(1, keepdim=True)).squeeze(1)


def expected_reward(sim: Simulator, table: ChannelTable, weights: tuple[float, float, float],
                    src: tuple[torch.Tensor, torch.Tensor, torch.Tensor], prev: torch.Tensor,
                    tokens: torch.Tensor, req: torch.Tensor, servers: torch.Tensor,
                    queue_ms: torch.Tensor | None = None, rows: torch.Tensor | None = None,
                    live: bool = False, current: bool = False) -> torch.Tensor:
    """Expected weighted reward of a step on `servers` (arguments broadcast as in `expected_step`),
    with an optional known queue wait per server; the oracle's and lookahead's step value. Its
    compute time and its latency term are the profile's (`Profile.expected_compute_ms` and
    `Profile.expected_latency_reward` with `rows`, `live`, `current`): the paper's clipped 5,000 ms scale
    in the paper and contention profiles, the SLO-budget term of the serving reward under serving."""
    compute = sim.profile.expected_compute_ms(sim, tokens, servers, rows, live=live, current=current)
    e = expected_step(sim.net, table, *src, prev, tokens, req, servers, traps=sim.profile.trap_model(sim.params),
                      queue_ms=queue_ms, compute_ms=compute)
    r_latency = sim.profile.expected_latency_reward(sim, e, servers, rows, live=live, current=current)
    wl, wc, ws = weights
    return wl * r_latency + wc * e["rC"] + ws * e["rS"]


class OraclePolicy:
    """Exact maximiser of expected episode reward under fixed weights, by dynamic programming.

    In the paper profile the next state is the chosen server and rewards add up, so the open-loop
    plan V_k(prev) = max_s [E r_k(prev, s) + V_{k+1}(s)] over steps x valid servers is optimal.
    Expectations come from `expected_step` (quadrature of the channel, both trap outcomes), so the
    plan is exact up to that quadrature. One plan per task, cached.

    Under serving it plans on idle engines with the expected prompt and output length, and scores the
    serving reward's latency term with those expected values (`Profile.expected_latency_reward`): a
    load-blind rule there, whose plan value bounds nothing.
    """

    name = "oracle"

    def __init__(self, sim: Simulator, seed: int = 0, weights: tuple[float, float, float] = EVAL_WEIGHTS):
        self.table = ChannelTable.shared(sim.device, sim.dtype)
        self.weights = weights
        self.cache: dict[int, tuple[torch.Tensor, float]] = {}
        self.plans = torch.zeros((sim.tasks.k, sim.tasks.max_steps), dtype=torch.long, device=sim.device)
        self.planned = torch.zeros(sim.tasks.k, dtype=torch.bool, device=sim.device)

    def _reward(self, sim: Simulator, src, prev: torch.Tensor, k: int, task: int, servers: torch.Tensor) -> torch.Tensor:
        T = sim.tasks
        return expected_reward(sim, self.table, self.weights, src, prev, T.tokens[task, k], T.types[task, k], servers)

    def plan(self, sim: Simulator, task: int) -> tuple[torch.Tensor, float]:
        """(servers per step, expected episode reward) of the optimal plan for one task."""
        if task in self.cache:
            return self.cache[task]
        net, T = sim.net, sim.tasks
        steps = int(T.n_steps[task])
        cands = [net.valid[T.types[task, k]].nonzero().squeeze(1) for k in range(steps)]
        value = torch.zeros(len(cands[-1]), dtype=sim.dtype, device=sim.device)  # V_{steps}(s) = 0
        best_next: list[Any] = [None] * steps  # [k]: the best step-k server after each step k-1 server
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


def planning_weights(latency_weight: float) -> tuple[float, float, float]:
    """lookahead's (latency, cost, switch) reward weights at latency weight W: the evaluation weights at
    the default W (0.6); elsewhere the switch weight stays 0.15, and the latency and cost weights share the
    other 0.85 with their ratio moved by the factor that moves the greedy score's W / (1 - W) from its
    default, so that W shifts lookahead's latency-cost trade-off as it shifts the greedy family's."""
    w = check_latency_weight(latency_weight)
    if w == GREEDY_LATENCY_WEIGHT:
        return EVAL_WEIGHTS
    wl, wc, ws = EVAL_WEIGHTS
    lat, cost = wl * w / GREEDY_LATENCY_WEIGHT, wc * (1.0 - w) / GREEDY_COST_WEIGHT
    return (1.0 - ws) * lat / (lat + cost), (1.0 - ws) * cost / (lat + cost), ws


class LookaheadPolicy:
    """Queue-aware workflow planner (model-predictive control) for the contention profile.

    At every decision it plans the rest of each row's active workflow, from the current step to the
    last, by the oracle's dynamic programme over (step, server) (predecessors: the valid servers of
    the previous step's type; the same expected reward, weights 0.45/0.40/0.15 at the default
    `latency_weight` (`planning_weights`), and clipped latency reward), with each server's expected
    step latency increased by its live queue wait, and commits only the first step; the next decision
    plans again from where the workflow is. The switch penalty is part of that reward, so it plans it in.

    Approximation: the waits are read once, at decision time, and held fixed over the whole plan. A
    later step is charged the wait its server has now, as if queues neither drained nor grew (by
    this workflow's jobs or others') before the step gets there. The admission wait of step 0 is
    left out, as the oracle leaves it out; it is the same for every server.
    With all queues empty (and always in the paper profile) it makes the oracle's decisions.
    Under serving it runs with serving's `server_load()` as the waits, and its step values use the
    engines' time (`Profile.expected_compute_ms`): the first step's known prompt at the live batch, later
    steps the expected prompt, at the live batch on servers with a wait and on idle engines elsewhere.
    Their latency term is the serving reward's (`Profile.expected_latency_reward`: expected latency
    against the SLO budget of E[o] tokens out, plus the SLO-miss term of the expected TTFT and TPOT).
    Output lengths are taken at their mean, so there it is a heuristic planner like the greedy family,
    and its plan value bounds nothing.

    Cost per decision: O(remaining steps x valid servers x valid predecessors) per row, like one
    oracle plan. The queue-free (predecessor, server) rewards of a task's steps are the oracle's and
    depend on the task alone, so they are computed once and cached (up to `max_cache_bytes`, least
    recently used first out; about 0.75 GB for the default test split); a decision recomputes only the
    columns of servers with a queue, and adds up the DP. Rows are planned together, in chunks of at
    most `max_pairs` (predecessor, server) pairs, which bounds memory.

    Tuning W (Heuristics/tune.py) costs a full evaluation per W at 10-25 ms a decision: the contention
    study tunes it at the validation setting only, 10,000 train workflows (about 50,000 decisions) per W,
    8-21 min a W on one core and 1-2 h for its six W, more than the rest of its tuning together.
    """

    name = "lookahead"
    plans_each_row = True  # its decision costs grow with the rows: side by side, it would plan every rule's rows
    tunable = True  # `latency_weight` sets its planning weights; Heuristics/tune.py tunes it

    def __init__(self, sim: Simulator, seed: int = 0, latency_weight: float = GREEDY_LATENCY_WEIGHT,
                 max_pairs: int = 1 << 20, max_cache_bytes: int = 4 << 30):
        self.table = ChannelTable.shared(sim.device, sim.dtype)
        self.weights = planning_weights(latency_weight)
        widest = int(sim.net.valid_count.max())
        self.chunk = max(1, max_pairs // (widest * widest))
        self.cache: OrderedDict[int, list[torch.Tensor]] = OrderedDict()
        self.cache_bytes, self.max_cache_bytes = 0, max_cache_bytes

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        load = sim.server_load()
        lon, lat, region = sim.hop_source()
        rows = torch.arange(sim.batch_size, device=sim.device)
        return torch.cat([self.first_step(sim, obs, r, load[r], (lon[r], lat[r], region[r]))
                          for r in rows.split(self.chunk)])

    def _candidates(self, sim: Simulator, types: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(R, C) valid servers of each row's model type in ascending order (the oracle's candidate
        order), padded; and the (R, C) mask of the real ones. C is the widest row's count."""
        count = sim.net.valid_count[types]
        width = int(count.max())
        return sim.net.valid_list[types, :width], torch.arange(width, device=sim.device) < count[:, None]

    def pair_rewards(self, sim: Simulator, task: int) -> list[Any]:
        """Queue-free expected rewards of the task's steps k >= 1, [k] of shape (valid servers of
        step k - 1, valid servers of step k): the oracle's numbers. Cached per task."""
        if task in self.cache:
            self.cache.move_to_end(task)
            return self.cache[task]
        net, T = sim.net, sim.tasks
        cands = [net.valid[T.types[task, k]].nonzero().squeeze(1) for k in range(int(T.n_steps[task]))]
        rewards: list[Any] = [None] + [expected_reward(sim, self.table, self.weights,
                                            (net.lon[p], net.lat[p], net.region[p]), p, T.tokens[task, k],
                                            T.types[task, k], cands[k][None])
                            for k, p in ((k, cands[k - 1][:, None]) for k in range(1, len(cands)))]
        self.cache[task] = rewards
        self.cache_bytes += sum(r.numel() * r.element_size() for r in rewards[1:])
        while self.cache_bytes > self.max_cache_bytes and len(self.cache) > 1:
            self.cache_bytes -= sum(r.numel() * r.element_size() for r in self.cache.popitem(last=False)[1][1:])
        return rewards

    def _step_rewards(self, sim: Simulator, rows: torch.Tensor, tasks: torch.Tensor, j: int, load: torch.Tensor):
        """(A, Cp, C) expected rewards of step j from each valid predecessor to each valid server,
        with the live waits and engine state of the batch rows `rows`; -inf on padding. Also the
        candidates (A, C), their mask and the predecessors (A, Cp)."""
        net, T = sim.net, sim.tasks
        cur, ok = self._candidates(sim, T.types[tasks, j])
        pre, _ = self._candidates(sim, T.types[tasks, j - 1])
        q = torch.full((len(tasks), pre.shape[1], cur.shape[1]), -torch.inf, dtype=sim.dtype, device=sim.device)
        for i, task in enumerate(tasks.tolist()):  # the cached queue-free rewards, one block per row
            block = self.pair_rewards(sim, task)[j]
            q[i, :block.shape[0], :block.shape[1]] = block
        wait = load.gather(1, cur).masked_fill(~ok, 0.0)
        busy = wait > 0  # under serving a running batch always leaves a wait (the rest of its iteration)
        n_busy = busy.sum(1)
        if int(n_busy.max()) > 0:  # recompute the columns of servers with a queue, all rows at once
            col = torch.argsort((~busy).to(torch.int8), dim=1, stable=True)[:, :int(n_busy.max())]
            p = pre[:, :, None]
            fresh = expected_reward(sim, self.table, self.weights, (net.lon[p], net.lat[p], net.region[p]), p,
                                    T.tokens[tasks, j][:, None, None], T.types[tasks, j][:, None, None],
                                    cur.gather(1, col)[:, None, :], queue_ms=wait.gather(1, col)[:, None, :],
                                    rows=rows[:, None, None], live=True)
            index = col[:, None, :].expand(-1, q.shape[1], -1)
            real = (torch.arange(col.shape[1], device=sim.device) < n_busy[:, None])[:, None, :]
            q.scatter_(2, index, torch.where(real, fresh, q.gather(2, index)))
        return q, cur, ok, pre

    def first_step(self, sim: Simulator, obs: Observation, rows: torch.Tensor, load: torch.Tensor, src) -> torch.Tensor:
        """(R,) the first server of the plan of the rest of each row's workflow."""
        task, k0, n = obs.task[rows], obs.step[rows], obs.n_steps[rows]
        # value[r, i]: best expected reward of steps j.. when step j - 1 ran on the i-th candidate of its type
        value = torch.zeros((len(rows), sim.n_servers), dtype=sim.dtype, device=sim.device)
        for j in range(sim.tasks.max_steps - 1, 0, -1):
            a = ((j > k0) & (j < n)).nonzero().squeeze(1)
            if len(a) == 0:
                continue
            q, cur, ok, pre = self._step_rewards(sim, rows[a], task[a], j, load[a])
            q = (q + value[a, :cur.shape[1]][:, None, :]).masked_fill(~ok[:, None, :], -torch.inf)
            value[a, :pre.shape[1]] = q.amax(2)
        cur, ok = self._candidates(sim, obs.required_type[rows])
        q0 = expected_reward(sim, self.table, self.weights, tuple(x[:, None] for x in src), obs.prev_server[rows, None],
                             obs.tokens[rows, None], obs.required_type[rows, None], cur, queue_ms=load.gather(1, cur),
                             rows=rows[:, None], live=True, current=True)
        q0 = (q0 + value[:, :cur.shape[1]]).masked_fill(~ok, -torch.inf)
        return cur.gather(1, q0.argmax(1, keepdim=True)).squeeze(1)


class TelemetryPolicy:
    """The valid server with the highest TopoFreeRL telemetry (its hand-made per-server score, no network):
    nc / (1 + 0.3 queue wait / telemetry_queue_ms) x cost factor x latency factor, with the queue
    term live under contention (edgesim/scores.py). The default `telemetry_queue_ms` is the value in
    TopoFreeRL's shipped config.yaml."""

    name = "telemetry"

    def __init__(self, sim: Simulator, seed: int = 0, telemetry_queue_ms: float = TELEMETRY_QUEUE_MS):
        self.queue_ms = float(telemetry_queue_ms)
        nc_static = static_telemetry(sim.dataset)
        # the same float32 numbers as TopoFreeRL's buffers
        self.nc_static = torch.tensor(nc_static, dtype=torch.float32, device=sim.device)
        self.static = torch.tensor(nc_static / nc_static.max(), dtype=torch.float32, device=sim.device)
        self.live = live_telemetry

    def telemetry(self, sim: Simulator) -> torch.Tensor:
        """(B, N) live telemetry under contention, (1, N) static in the paper profile."""
        if sim.profile.queues:
            return self.live(self.nc_static, sim.server_load().float(), self.queue_ms)
        return self.static[None]

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        return self.telemetry(sim).masked_fill(~sim.valid_mask(), -torch.inf).argmax(1)

