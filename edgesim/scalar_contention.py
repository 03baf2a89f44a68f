"""Executable specification: one world of the `contention` profile in plain Python, from docs/simulator.md §5.

Deliberately naive, like `scalar_model.py` (whose per-step physics it shares): a list of slots, a
dict of busy-until times, one decision at a time, so the batched torch worlds of
`edgesim/contention.py` are checked against a second reading of the rules.

The world, as this model reads §5:
- workflows arrive at the cumulative sums of the arrival gaps; the first `max_in_flight` arrivals
  fill the slots, each with its clock at its arrival;
- every decision is the pending step of the workflow with the earliest clock (ties: the lowest
  slot); a step on server s waits `max(0, busy_until[s] - now)`, occupies s from `now + wait` for
  its compute time, and moves the workflow's clock by its latency less the admission wait;
- a workflow's last decision hands its slot to the world's next arrival, which enters at
  `max(arrival, finish)` and pays `max(0, finish - arrival)` as queue delay of its first step.
  The slot handed on can free after another one, so a later arrival can enter before an earlier one.

Draws: `uniform(index, step, purpose)`, the world's common random numbers (edgesim/crn.py keyed by
the world), so nothing depends on the order in which the world asks for them:
- arrival n comes after the gap -ln(1 - uniform(n, 0, GAP)) x 1000 / arrival_rate ms (Poisson), or
  with a trace after gap (start + n) mod len of the trace's gaps (normalised to mean 1, scaled the same
  way), start = floor(uniform(0, 0, TRACE_START) x len);
- its task is floor(uniform(n, 0, TASK) x tasks);
- step k of arrival n takes the four uniforms uniform(n, k, NETWORK + i) (bandwidth, fading,
  interference, trap coin or retransmission draw).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from .scalar_model import ScalarTopology, hop, rewards

TRAP_SURCHARGE_MS = (100.0, 200.0)  # coin >= 0.5, coin < 0.5; times trap_surcharge_scale
GAP, TASK, TRACE_START, NETWORK = 0, 1, 5, 6  # purposes of the draws (edgesim.crn's numbering)


class ContentionParams(Protocol):
    """The fields of `edgesim.contention.Contention` a world reads."""

    @property
    def arrival_rate(self) -> float: ...

    @property
    def max_in_flight(self) -> int: ...

    @property
    def trap_loss(self) -> float: ...

    @property
    def trap_max_attempts(self) -> int: ...

    @property
    def trap_surcharge_scale(self) -> float: ...


def attempts(u: float, loss: float, max_attempts: int) -> int:
    """Transmission attempts K over a trap link for the draw u: P(K > k) = loss**k, at most
    max_attempts (the last always gets through). K exceeds k exactly when 1 - u <= loss**k."""
    k = 1
    while k < max_attempts and 1.0 - u <= loss ** k:
        k += 1
    return k


@dataclass
class Workflow:
    """One arrival of the world, in a slot."""

    index: int           # the world's n-th arrival, from 0
    task: int
    arrival_ms: float
    now: float           # when its next step is decided
    admission_ms: float  # wait for a free slot, paid by its first step
    k: int = 0
    prev: int | None = None


class ContentionWorld:
    """One world of the contention profile; `decide` plays its next decision and returns the event.

    `uniform(index, step, purpose)`: the world's draws (module docstring); `trace_gaps`: a normalised
    arrival trace (None: Poisson arrivals)."""

    def __init__(self, topology: ScalarTopology, split: str, params: ContentionParams,
                 uniform: Callable[[int, int, int], float], trace_gaps: Sequence[float] | None = None):
        self.topo, self.params, self.uniform = topology, params, uniform
        lon, lat, region, self.n_steps, types, tokens = topology.split(split)
        self.task_rows = (lon, lat, region, types, tokens)
        self.trace_gaps = trace_gaps
        self.trace_start = 0 if trace_gaps is None else int(uniform(0, 0, TRACE_START) * len(trace_gaps))
        self.busy: dict[int, float] = {}     # server -> busy-until, for the whole run
        self.history: dict[int, float] = {}  # server -> latency EMA, from 5 x mean link latency
        self.clock = -math.inf               # time of the last decision
        self.finished: list[int] = []        # arrival indices, in finishing order
        self.slots: list[Workflow] = []
        t = 0.0
        for w in range(params.max_in_flight):
            t += self._gap(w)
            self.slots.append(Workflow(w, self._task(w), t, t, 0.0))
        self.arrived = params.max_in_flight
        self.next_arrival_ms = t + self._gap(self.arrived)

    def _gap(self, n: int) -> float:
        mean = 1000.0 / self.params.arrival_rate
        if self.trace_gaps is None:
            return -math.log1p(-self.uniform(n, 0, GAP)) * mean
        return self.trace_gaps[(self.trace_start + n) % len(self.trace_gaps)] * mean

    def _task(self, n: int) -> int:
        tasks = len(self.n_steps)
        return min(int(self.uniform(n, 0, TASK) * tasks), tasks - 1)

    def pending(self) -> int:
        """The slot whose workflow decides next: the earliest clock, ties to the lowest slot."""
        return min(range(len(self.slots)), key=lambda w: (self.slots[w].now, w))

    def queue_waits(self) -> list[float]:
        """Every server's wait for the pending decision: max(0, busy_until - now)."""
        now = self.slots[self.pending()].now
        return [max(0.0, self.busy.get(s, 0.0) - now) for s in range(len(self.topo.nc))]

    def decide(self, server: int) -> dict:
        """Run the pending step on `server`."""
        g, c = self.topo, self.params
        w = self.pending()
        wf = self.slots[w]
        u = [self.uniform(wf.index, wf.k, NETWORK + i) for i in range(4)]
        now = wf.now
        self.clock = now
        h = hop(g, self.task_rows, wf.task, wf.k, wf.prev, server, u)
        s = h["server"]
        link = g.links.get((wf.prev, s)) if wf.prev is not None else None
        tries = 0  # transmission attempts over a trap link; 0: the hop takes none
        if h["trap_hit"] and link is not None:
            tries = attempts(u[3], c.trap_loss, c.trap_max_attempts)
            trap_ms, link_ms = link * tries, 0.0
        elif h["trap_hit"]:
            trap_ms, link_ms = c.trap_surcharge_scale * TRAP_SURCHARGE_MS[1 if u[3] < 0.5 else 0], 0.0
        else:
            trap_ms, link_ms = 0.0, link or 0.0
        compute = h["compute_ms"]
        wait = max(0.0, self.busy.get(s, 0.0) - now)
        admission = wf.admission_ms if wf.k == 0 else 0.0
        start = now + wait
        self.busy[s] = start + compute
        travel = h["channel_ms"] + trap_ms + link_ms + compute
        latency = travel + wait + admission
        self.history[s] = 0.5 * latency + 0.5 * self.history.get(s, g.h0)
        finish = start + travel
        event = {"slot": w, "workflow": wf.index, "arrival_ms": wf.arrival_ms, "task": wf.task, "step": wf.k,
                 "time": now, "server": s,
                 "wait_ms": wait, "admission_ms": admission, "queue_ms": wait + admission, "start": start,
                 "compute_ms": compute, "attempts": tries, "trap_ms": trap_ms, "link_ms": link_ms, "latency": latency,
                 "cost": h["cost"], "switch": h["switch"], "reward": rewards(latency, h["cost"], h["switch"]),
                 "history": self.history[s]}
        wf.k, wf.prev, wf.now = wf.k + 1, s, finish
        event["done"] = done = wf.k >= self.n_steps[wf.task]
        if done:
            self.finished.append(wf.index)
            arrival = self.next_arrival_ms
            self.slots[w] = Workflow(self.arrived, self._task(self.arrived), arrival, max(arrival, finish),
                                     max(0.0, finish - arrival))
            self.arrived += 1
            self.next_arrival_ms = arrival + self._gap(self.arrived)
        return event
