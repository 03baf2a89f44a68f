"""Executable specification: one world of the `serving` profile in plain Python, from docs/simulator.md §6.

Deliberately naive, like `scalar_contention.py` (whose network hop it shares): lists of slots and
requests, one engine object per server, and every engine stepped one iteration at a time. The
batched torch worlds of `edgesim/serving.py` jump over whole decode segments with a closed form
(`span(k)` and its quadratic root); here each iteration's length is computed from the batch and
cached tokens of that very iteration, so the two are independent readings of the rules.

The world, as this model reads §6:
- workflows arrive at the cumulative sums of whole-microsecond gaps; the first `max_in_flight`
  arrivals fill the slots; a finished workflow's slot takes the world's next arrival, which is
  decided at `max(arrival, finish)` and pays `max(0, finish - arrival)` as admission wait;
- a decision sends the step's request over the contention profile's hop; it reaches its server at
  `t0 + channel + trap + link` and joins the FIFO queue;
- an engine is idle, or runs one iteration: a prefill of the requests admitted at its start, or a
  decode of every running request (one token each, `d0 + d1 b + d2 K` ms with K their prompts plus
  tokens generated so far). At the end of an iteration (its boundary) the prefilled requests get
  their first token, decoding ones one more token; requests holding their `o` tokens complete and
  free `prompt + output` reserved KV tokens; then the queue's head is admitted while it fits
  (reserved + prompt + output <= capacity and running < max_batch), strictly FIFO; if any were
  admitted the next iteration prefills them all, else the running requests decode. An idle engine
  that receives a request wakes at its arrival (a boundary of length zero);
- events run in time order; ties: arrivals (lowest slot first), then engine boundaries (lowest
  server first), then decisions (lowest slot first). A step's decision is followed by every event
  before the world's next pending decision. Requests completing at one boundary are handled in
  slot order, so their finished workflows take the next arrivals in that order.

Draws come from outside (`Draws`): the uniform of (arrival index, step, purpose) and the step's
(prompt, output) pair, so a test feeds in the values the batched simulator consumes.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from .scalar_contention import GAP, NETWORK, TASK, TRACE_START, TRAP_SURCHARGE_MS, attempts
from .scalar_model import ScalarTopology, hop, rewards

CONTEXT_TOKENS = 4096


class InvariantError(AssertionError):
    """A rule of §6 that must hold at every event was broken; the message says which, where and when."""


@dataclass(frozen=True)
class Draws:
    """The world's random values: `uniform(index, step, purpose)` in (0, 1) and `tokens(index, step)`,
    the (prompt, output) pair of a workflow step, already cut to the context window."""

    uniform: Callable[[int, int, int], float]
    tokens: Callable[[int, int], tuple[int, int]]


@dataclass(frozen=True)
class Perf:
    """One engine's coefficients (ms) and KV capacity (tokens), as in `edgesim.serving.EnginePerf`."""

    floor: float
    p0: float
    p1: float
    p2: float
    p3: float
    d0: float
    d1: float
    d2: float
    kv_capacity: int

    def prefill_ms(self, prompts: Sequence[int]) -> float:
        tokens, squares = sum(prompts), sum(p * p for p in prompts)
        return max(self.floor, self.p0 + self.p1 * tokens + self.p2 * squares + self.p3 * len(prompts))

    def decode_ms(self, batch: int, cached: int) -> float:
        return self.d0 + self.d1 * batch + self.d2 * cached


@dataclass
class Request:
    """One workflow step's LLM request, from its decision to its completion."""

    slot: int
    workflow: int
    task: int
    step: int
    server: int
    prompt: int
    output: int
    t0: float
    arrive: float
    admission_ms: float
    hop: dict
    admit: float = math.nan
    first: float = math.nan
    end: float = math.nan
    generated: int = 0
    decode_iterations: int = 0
    prefills: int = 0
    reached: bool = False  # joined its server's queue


@dataclass
class Engine:
    """A server's continuous-batching engine. `kind`: what the iteration ending at `until` does
    ("prefill", "decode", "wake" for an idle engine's zero-length boundary), None when idle."""

    perf: Perf
    queue: list[Request] = field(default_factory=list)
    running: list[Request] = field(default_factory=list)
    prefilling: list[Request] = field(default_factory=list)
    reserved: int = 0
    kind: str | None = None
    until: float = math.inf
    max_batch_seen: int = 0
    overtakes_refused: int = 0  # boundaries at which the head waited for KV while a later request would fit


@dataclass
class Workflow:
    """One arrival of the world, in a slot; `request` is set while its current step is in flight."""

    index: int
    task: int
    arrival_ms: float
    now: float
    admission_ms: float
    k: int = 0
    prev: int | None = None
    request: Request | None = None


class ServingWorld:
    """World `world` of `worlds` of the serving profile. `perf`: every server's engine; `rate_per_s`:
    workflows per second; `trace_gaps`: an arrival trace's gaps normalised to mean 1 (None: Poisson).
    `decide(server)` plays the pending decision, then every event before the next one, and returns the
    requests that completed meanwhile (dicts, keys as the simulator's info). `stats` integrates the state of
    the `valid` servers over the measured period: from the arrival of workflow `warmup` (or, if it waited
    for a slot, from when it got one) to the next decision."""

    def __init__(self, topology: ScalarTopology, split: str, world: int, worlds: int, perf: Sequence[Perf],
                 max_in_flight: int, max_batch: int, rate_per_s: float, draws: Draws, trap_loss: float,
                 trap_max_attempts: int, trap_surcharge_scale: float, trace_gaps: Sequence[float] | None = None,
                 warmup: int = 0, valid: Sequence[bool] | None = None):
        self.topo, self.world, self.worlds, self.draws = topology, world, worlds, draws
        lon, lat, region, self.n_steps, types, tokens = topology.split(split)
        self.task_rows = (lon, lat, region, types, tokens)
        self.n_tasks = len(self.n_steps)
        self.max_batch, self.rate_per_s = max_batch, rate_per_s
        self.trace_gaps = trace_gaps
        self.trace_start = 0 if trace_gaps is None else int(draws.uniform(0, 0, TRACE_START) * len(trace_gaps))
        self.trap = (trap_loss, trap_max_attempts, trap_surcharge_scale)
        self.engines = [Engine(p) for p in perf]
        self.clock = -math.inf  # time of the last event or decision
        self.warmup, self.valid = warmup, list(valid) if valid is not None else [True] * len(perf)
        self.stats_start, self.event_clock = math.inf, -math.inf
        self.stats = {"time": 0.0, "busy": 0.0, "batch": 0.0, "kv": 0.0, "queue": 0.0}
        self.arrival_us = 0
        self.arrived = 0
        self.slots = [self._arrival() for _ in range(max_in_flight)]

    # ------------------------------------------------------------------ draws
    def _arrival(self, finish: float = -math.inf) -> Workflow:
        """The world's next arrival: its gap in whole microseconds (exponential, or the trace's gaps read on
        from the world's start position and cycling), its task."""
        n = self.arrived
        self.arrived += 1
        mean_us = 1e6 / self.rate_per_s
        if self.trace_gaps is None:
            self.arrival_us += round(-math.log1p(-self.draws.uniform(n, 0, GAP)) * mean_us)
        else:
            self.arrival_us += round(self.trace_gaps[(self.trace_start + n) % len(self.trace_gaps)] * mean_us)
        t = self.arrival_us / 1000.0
        task = min(int(self.draws.uniform(n, 0, TASK) * self.n_tasks), self.n_tasks - 1)
        if n == self.warmup:
            self.stats_start = max(t, finish)
        return Workflow(n, task, t, max(t, finish), max(0.0, finish - t))

    def episode(self, wf: Workflow) -> int:
        return wf.index * self.worlds + self.world

    # ------------------------------------------------------------------ live state
    def pending(self) -> int | None:
        """The slot whose workflow decides next: the earliest clock among those waiting, ties to the lowest."""
        waiting = [w for w, wf in enumerate(self.slots) if wf.request is None]
        return min(waiting, key=lambda w: (self.slots[w].now, w)) if waiting else None

    def queue_lengths(self) -> list[int]:
        return [len(e.queue) for e in self.engines]

    def running_batches(self) -> list[int]:
        return [len(e.running) for e in self.engines]

    def reserved_kv(self) -> list[int]:
        return [e.reserved for e in self.engines]

    def used_kv(self) -> list[int]:
        """KV tokens the running requests hold now: prompt plus tokens generated so far, each."""
        return [sum(r.prompt + r.generated for r in e.running) for e in self.engines]

    def outstanding_tokens(self) -> list[int]:
        """Prompt tokens still to prefill: queued, or in the running prefill."""
        return [sum(r.prompt for r in e.queue) + sum(r.prompt for r in e.prefilling) for e in self.engines]

    # ------------------------------------------------------------------ decisions
    def decide(self, server: int) -> list[dict]:
        """Send the pending step's request to `server` (the hop may fall back), then advance."""
        w = self.pending()
        if w is None:
            raise InvariantError(f"world {self.world}: no pending decision")
        wf = self.slots[w]
        self._tick(wf.now, "decision")
        u = [self.draws.uniform(wf.index, wf.k, NETWORK + i) for i in range(4)]
        h = hop(self.topo, self.task_rows, wf.task, wf.k, wf.prev, server, u)
        s = h["server"]
        loss, max_attempts, scale = self.trap
        link = self.topo.links.get((wf.prev, s)) if wf.prev is not None else None
        if h["trap_hit"] and link is not None:
            h["trap_ms"], h["link_ms"] = link * attempts(u[3], loss, max_attempts), 0.0
        elif h["trap_hit"]:
            h["trap_ms"], h["link_ms"] = scale * TRAP_SURCHARGE_MS[1 if u[3] < 0.5 else 0], 0.0
        else:
            h["trap_ms"], h["link_ms"] = 0.0, link or 0.0
        prompt, output = self.draws.tokens(wf.index, wf.k)
        if not (1 <= prompt and 1 <= output and prompt + output <= CONTEXT_TOKENS):
            raise InvariantError(f"world {self.world}: token pair ({prompt}, {output}) outside the context window")
        arrive = wf.now + h["channel_ms"] + h["trap_ms"] + h["link_ms"]
        wf.request = Request(w, wf.index, wf.task, wf.k, s, prompt, output, wf.now, arrive,
                             wf.admission_ms if wf.k == 0 else 0.0, h)
        return self.advance()

    def advance(self) -> list[dict]:
        """Every event before the next pending decision, in time order (ties: arrivals, engines, decisions)."""
        done: list[dict] = []
        while True:
            w = self.pending()
            t_dec = self.slots[w].now if w is not None else math.inf
            travelling = [wf.request for wf in self.slots if wf.request is not None and not wf.request.reached]
            first = min(travelling, key=lambda r: (r.arrive, r.slot), default=None)
            t_arr = first.arrive if first is not None else math.inf
            t_srv, s = min(((e.until, s) for s, e in enumerate(self.engines)), default=(math.inf, -1))
            if first is not None and t_arr <= t_srv and t_arr <= t_dec:
                self._reach(first)
            elif math.isfinite(t_srv) and t_srv <= t_dec:
                done += self._boundary(s)
            else:
                if math.isfinite(t_dec):
                    self._integrate(t_dec)
                return done

    def _tick(self, t: float, what: str) -> None:
        if t < self.clock:
            raise InvariantError(f"world {self.world}: the clock went back from {self.clock} to {t} ({what})")
        self.clock = t

    def _integrate(self, t: float) -> None:
        """Add the servers' state since the last event (inside the measured period) before an event at t."""
        start = max(self.event_clock, self.stats_start)
        if t > start:
            dt = t - start
            for e, valid in zip(self.engines, self.valid):
                if valid:
                    self.stats["busy"] += dt * (len(e.running) > 0)
                    self.stats["batch"] += dt * len(e.running)
                    self.stats["kv"] += dt * e.reserved / e.perf.kv_capacity
                    self.stats["queue"] += dt * len(e.queue)
            self.stats["time"] += dt
        self.event_clock = max(self.event_clock, t)

    def _reach(self, r: Request) -> None:
        """A request reaches its server and joins the FIFO queue; an idle engine wakes now."""
        self._tick(r.arrive, "arrival")
        self._integrate(r.arrive)
        e = self.engines[r.server]
        r.reached = True
        e.queue.append(r)
        if e.kind is None:
            e.kind, e.until = "wake", r.arrive

    def _boundary(self, s: int) -> list[dict]:
        """Engine s finishes its iteration: tokens, completions, FIFO admission, the next iteration."""
        e = self.engines[s]
        t = e.until
        self._tick(t, f"server {s} boundary")
        self._integrate(t)
        if e.kind == "prefill":
            for r in e.prefilling:
                r.first, r.generated = t, 1
            e.prefilling = []
        elif e.kind == "decode":
            for r in e.running:
                r.generated += 1
                r.decode_iterations += 1
        finished = sorted((r for r in e.running if r.generated == r.output), key=lambda r: r.slot)
        done = []
        for r in finished:
            e.running.remove(r)
            e.reserved -= r.prompt + r.output
            done.append(self._complete(r, t))
        admitted: list[Request] = []
        while e.queue and e.reserved + e.queue[0].prompt + e.queue[0].output <= e.perf.kv_capacity \
                and len(e.running) < self.max_batch:
            r = e.queue.pop(0)
            r.admit, r.prefills = t, r.prefills + 1
            e.reserved += r.prompt + r.output
            e.running.append(r)
            admitted.append(r)
        free = e.perf.kv_capacity - e.reserved
        if len(e.running) < self.max_batch and any(r.prompt + r.output <= free for r in e.queue[1:]):
            e.overtakes_refused += 1
        if admitted:
            e.kind, e.prefilling = "prefill", admitted
            e.until = t + e.perf.prefill_ms([r.prompt for r in admitted])
        elif e.running:
            cached = sum(r.prompt + r.generated for r in e.running)
            e.kind, e.until = "decode", t + e.perf.decode_ms(len(e.running), cached)
        else:
            e.kind, e.until = None, math.inf
        e.max_batch_seen = max(e.max_batch_seen, len(e.running))
        self._check(s, t)
        return done

    def _check(self, s: int, t: float) -> None:
        e = self.engines[s]
        where = f"world {self.world}, server {s}, {t:.6f} ms"
        if e.reserved != sum(r.prompt + r.output for r in e.running) or e.reserved > e.perf.kv_capacity:
            raise InvariantError(f"{where}: {e.reserved} KV tokens reserved, capacity {e.perf.kv_capacity}")
        if len(e.running) > self.max_batch:
            raise InvariantError(f"{where}: batch {len(e.running)} over max_batch {self.max_batch}")
        for r in e.running:
            if r.admit < r.arrive:
                raise InvariantError(f"{where}: request of workflow {r.workflow} admitted before it arrived")

    def _complete(self, r: Request, end: float) -> dict:
        """The request's record; its workflow goes to the next step or hands its slot to the next arrival."""
        where = f"world {self.world}, workflow {r.workflow} step {r.step}"
        if r.prefills != 1 or r.decode_iterations != r.output - 1 or r.generated != r.output:
            raise InvariantError(f"{where}: {r.prefills} prefills and {r.decode_iterations} decode iterations for "
                                 f"{r.output} output tokens")
        if not (r.t0 <= r.arrive <= r.admit < r.first <= end):
            raise InvariantError(f"{where}: times out of order t0 {r.t0}, arrive {r.arrive}, admit {r.admit}, "
                                 f"first token {r.first}, end {end}")
        r.end = end
        h = r.hop
        wf = self.slots[r.slot]
        record = {"episode": self.episode(wf), "step": r.step, "task": r.task, "server": r.server,
                  "t0": r.t0, "arrive": r.arrive, "admit": r.admit, "first": r.first, "end_ms": end,
                  "network_ms": r.arrive - r.t0, "queue_ms": r.admit - r.arrive + r.admission_ms,
                  "admission_ms": r.admission_ms, "compute_ms": end - r.admit,
                  "latency": end - r.t0 + r.admission_ms, "ttft_ms": r.first - r.t0 + r.admission_ms,
                  "tpot_ms": (end - r.first) / (r.output - 1) if r.output > 1 else 0.0,
                  "prompt_tokens": r.prompt, "output_tokens": r.output, "decode_iterations": r.decode_iterations,
                  "prefills": r.prefills, "channel_ms": h["channel_ms"], "trap_ms": h["trap_ms"],
                  "link_ms": h["link_ms"], "cost": h["cost"], "switch": h["switch"], "fallback": h["fallback"],
                  "trap_hit": h["trap_hit"], "arrival_index": wf.index, "arrival_ms": wf.arrival_ms}
        wf.request, wf.k, wf.prev, wf.now = None, wf.k + 1, r.server, end
        record["done"] = wf.k >= self.n_steps[wf.task]
        if record["done"]:
            self.slots[r.slot] = self._arrival(finish=end)
        return record


def request_rewards(r: dict, slo_ttft_ms: float, slo_tpot_ms: float) -> tuple[float, float, float]:
    """(rL, rC, rS) of a completed request, docs/simulator.md §6: the latency term against the request's
    SLO budget slo_ttft + (o - 1) slo_tpot, half of it for a missed SLO; cost and switch as in §3."""
    budget = slo_ttft_ms + (r["output_tokens"] - 1) * slo_tpot_ms
    missed = r["ttft_ms"] > slo_ttft_ms or r["tpot_ms"] > slo_tpot_ms
    r_l = -4 * (0.5 * min(max(r["latency"] / (2 * budget), 0.0), 1.0) + 0.5 * missed)
    _, r_c, r_s = rewards(r["latency"], r["cost"], r["switch"])
    return r_l, r_c, r_s
