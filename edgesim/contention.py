"""The `contention` profile (docs/simulator.md §5): workflows arrive over time and compete for the servers.

Every batch row is one independent *world*: a copy of the topology with its own arrival stream,
its own server busy-until times and up to `max_in_flight` workflows in flight at once. A call to
`step` makes one decision in every world: the pending decision of the world's earliest workflow
(event order, ties to the lowest slot). So decisions within a world happen in simulated-time
order, and a server's queue holds jobs of every workflow that picked it.

Per decision, with the active workflow's clock `now` and chosen server `s` (all docs/simulator.md §2 formulas
otherwise):
    wait      = max(0, busy_until[s] - now)
    start     = now + wait                            the job occupies s for `compute` from here
    busy_until[s] = start + compute                   persists for the whole run, across workflows
    latency   = channel + trap + link + compute + wait (+ admission wait at step 0)
    now      <- now + latency - admission             the clock advances by the step once
Arrivals: gaps are exponential with mean 1000/arrival_rate ms (Poisson), or the inter-arrival gaps
of a request trace rescaled to that mean (each world starts at its own random point of the trace,
and cycles). Arrivals take slots in arrival order: a workflow's last decision hands its slot to
the next arrival, which waits for that workflow to finish if it came earlier; that admission wait
counts as queue delay of its first step. The slot handed on is not always the first to free.
Trap links: a hop over an explicit link touching a trap pays the link's BaseLatencyMs once per
transmission attempt; each attempt is lost with probability `trap_loss`, up to
`trap_max_attempts` (the last always gets through). Other trap hits (step 0, or no link row between
the two servers) keep the flat 100/200 ms surcharge, times `trap_surcharge_scale` (1 by default).
Live load: `queue_wait(servers)` / `server_load()` give max(0, busy_until - now) per server.
Warm-up: every world starts idle, so the first `warmup` x worlds workflows dealt (the first
`warmup` arrivals of each world, for warmup <= max_in_flight) run but are not measured.

Common random numbers (edgesim/crn.py). Arrival n of world g is episode n x worlds + g, whatever the
schedule; its arrival time (the sum of gaps 0..n, each drawn from (seed, g, n)), its task (file order
under sequential dealing, else drawn from (seed, g, n)) and every step's four uniforms (three as in the
paper profile, the fourth the trap coin or the retransmission draw; drawn from (seed, g, n, step)) are
hashes of those keys, not positions in a stream. Two schedulers run from one seed therefore meet the same
workflows at the same times with the same draws; only when a slot frees, and so when a workflow enters,
depends on the schedule. A trace's gaps are read on from a start drawn from (seed, g).
"""
from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import physics as P
from .crn import GAP, NETWORK, TASK, TRACE_START, crn_uniform, draw_key
from .dataset import Dataset
from .inputs import MAX_EPISODES, MAX_SLOTS, MAX_WORLDS, InputError, Range, ints, parameters, reals, regular_file
from .paper import Flag, Profile, TrapModel
from .simulator import Observation, Simulator, simulator_args

MIN_RATE, MAX_RATE = 1e-6, 1e6  # workflows per second: one every 11 days to one a microsecond
MAX_ATTEMPTS = 1000  # transmission attempts over a trap link (attempt_probabilities lists them all)
MAX_SURCHARGE_SCALE = 1e6  # the flat trap delay stays below 2e8 ms, like every other latency bound
MAX_IN_FLIGHT = 1 << 16  # workflows in flight in one world
MAX_TIMESTAMP_S = 1e12  # numeric trace timestamps, seconds (~31,700 years): gaps stay finite


class ContentionError(InputError):
    """A bad contention parameter or arrival trace; the message names the field or file and line."""


def _trace_path(value: object, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InputError(f"{what}: expected a CSV path (a non-empty string) or None, got {value!r}")


# Each numeric field's range: bounds far beyond any study setting, tight enough that the clocks stay
# finite and the worlds fit in memory. The config's contention keys and their flags read these too
# (schedkit/config.py RANGES), so every door shares one range per field.
RANGES: dict[str, Range] = {
    "arrival_rate": reals(MIN_RATE, MAX_RATE, text=f"a finite number > 0 (from {MIN_RATE:g}) and <= {MAX_RATE:g}"),
    "max_in_flight": ints(1, MAX_IN_FLIGHT),
    "worlds": ints(1, MAX_WORLDS),
    "trap_loss": reals(0, 1, hi_open=True, text="a probability in [0, 1)"),
    "trap_max_attempts": ints(1, MAX_ATTEMPTS),
    "trap_surcharge_scale": reals(0, MAX_SURCHARGE_SCALE),
    "warmup": ints(0, MAX_EPISODES),
}


@dataclass(frozen=True)
class Contention:
    """Parameters of the contention profile (the `contention:` block of every config)."""

    arrival_rate: float = 1.0          # workflows per second arriving in each world
    arrival_trace: str | None = None   # CSV with a TIMESTAMP (Azure) or Timestamp (BurstGPT) column
    max_in_flight: int = 64            # workflows in flight per world; more arrivals wait for a slot
    worlds: int = 8                    # independent worlds simulated side by side (the batch)
    trap_loss: float = 0.3             # loss probability of one attempt over a trap link
    trap_max_attempts: int = 4
    trap_surcharge_scale: float = 1.0  # multiplies the flat 100/200 ms of a trap hit without a link row
    warmup: int = 32                   # first workflows of each world run unmeasured, to load the servers

    def __post_init__(self) -> None:
        """Every field checked however the parameters are made (a config block, a dict, the constructor)."""
        try:
            _trace_path(self.arrival_trace, "contention.arrival_trace")
            for name, allowed in RANGES.items():
                allowed.check(getattr(self, name), f"contention.{name}")
        except InputError as e:
            raise ContentionError(str(e)) from None
        slots = self.worlds * self.max_in_flight
        if slots > MAX_SLOTS:  # every world keeps max_in_flight slots of ~50 bytes of state: 2**24 is ~1 GB
            raise ContentionError(f"contention.worlds x contention.max_in_flight: worlds x max_in_flight must be at "
                                  f"most {MAX_SLOTS} slots (about 1 GB of world state), got {self.worlds} x "
                                  f"{self.max_in_flight} = {slots}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "Contention":
        """The `contention:` block of a config: unknown keys refused, the trace read now (a bad one fails here)."""
        c = parameters(cls, d, "contention", ContentionError)
        if c.arrival_trace is not None:
            try:
                load_arrival_gaps(c.arrival_trace)  # fail now, with the file's own message
            except ContentionError as e:
                raise ContentionError(f"contention.arrival_trace: {e}") from None
        return c

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def surcharge_ms(self) -> tuple[float, float]:
        """The two equally likely delays of a trap hit without a link row."""
        low, high = P.TRAP_SURCHARGE_MS
        return self.trap_surcharge_scale * low, self.trap_surcharge_scale * high

    @property
    def mean_gap_ms(self) -> float:
        return 1000.0 / self.arrival_rate


def contention_tag(rate: float, trace: str | None = None, trap_loss: float | None = None,
                   surcharge: float | None = None, max_in_flight: int | None = None, warmup: int | None = None) -> str:
    """The evaluation tag of a contention setting: contention_r<rate>, plus _<trace file stem> for
    trace arrivals, _loss<P>, _surcharge<X>, _slots<N> and _warmup<N> for a trap loss, surcharge scale,
    max_in_flight or warm-up given (None: the default), so such an evaluation never lands in (or replaces)
    the default one."""
    return (f"contention_r{rate:g}" + (f"_{Path(trace).stem}" if trace else "")
            + (f"_loss{trap_loss:g}" if trap_loss is not None else "")
            + (f"_surcharge{surcharge:g}" if surcharge is not None else "")
            + (f"_slots{max_in_flight}" if max_in_flight is not None else "")
            + (f"_warmup{warmup}" if warmup is not None else ""))


def read_trace(path: str | Path, what: str, error: type[InputError]) -> tuple[Path, pd.DataFrame]:
    """A request trace's CSV as a table: a regular file only (a FIFO or a device would hang the read),
    and one `error` line naming the file for anything unreadable."""
    try:
        p = regular_file(path, what)
    except InputError as e:
        raise error(str(e)) from None
    try:
        return p, pd.read_csv(p)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise error(f"{p}: not a readable CSV ({' '.join(str(e).split())})") from None
    except OSError as e:
        raise error(f"{p}: {what} cannot be read ({e.strerror or e})") from None


def load_arrival_gaps(path: str | Path) -> np.ndarray:
    """Inter-arrival gaps of a request trace, normalised to mean 1 (in trace order after sorting).

    Accepts the Azure LLM trace (`TIMESTAMP` as date-time strings) and BurstGPT (`Timestamp` in
    seconds from the trace's start, so >= 0); any column named timestamp, case-insensitively. Only a
    regular file is opened (a FIFO or a device would hang the read)."""
    path, df = read_trace(path, "arrival trace", ContentionError)
    cols = [c for c in df.columns if str(c).strip().lower() == "timestamp"]
    if not cols:
        raise ContentionError(f"{path}: no 'TIMESTAMP' / 'Timestamp' column; columns are {list(df.columns)}")
    seconds = _trace_seconds(path, df[cols[0]], cols[0])
    if len(seconds) < 2:
        raise ContentionError(f"{path}: need at least 2 timestamps to form arrival gaps, got {len(seconds)}")
    gaps = np.diff(np.sort(seconds))
    positive = int((gaps > 0).sum())
    if positive == 0:
        raise ContentionError(f"{path}: all timestamps are equal; the trace spans no time")
    if positive == 1 and len(gaps) > 1:
        raise ContentionError(f"{path}: only 2 distinct timestamps among {len(seconds)}: every arrival would come in "
                              "one burst per cycle; expected at least 3 distinct timestamps")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # refused just below
        normalised = gaps / gaps.mean()
    if not np.isfinite(normalised).all():
        raise ContentionError(f"{path}: the timestamps' gaps are too small to resolve (at most "
                              f"{gaps.max():.3g} s); expected seconds or date-times")
    return normalised


def _trace_seconds(path: Path, raw: pd.Series, col: str) -> np.ndarray:
    """A trace's timestamps in seconds: numbers in [0, MAX_TIMESTAMP_S] or date-times; the first bad
    row is named."""
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        seconds = raw.to_numpy(dtype=np.float64)
        bad = ~((seconds >= 0) & (seconds <= MAX_TIMESTAMP_S))
        expected = f"a timestamp in seconds, >= 0 and <= {MAX_TIMESTAMP_S:g}"
    else:
        stamps = pd.to_datetime(raw.astype(str), errors="coerce", format="mixed")
        bad = stamps.isna().to_numpy()
        seconds = (stamps - stamps.min()).dt.total_seconds().to_numpy()
        expected = "a timestamp (a date-time, or seconds as a number)"
    if bad.any():
        row = int(np.argmax(bad))
        value = raw.iloc[row]
        shown = value.item() if isinstance(value, np.generic) else value
        raise ContentionError(f"{path}: line {row + 2}, field '{col}': expected {expected}, got {shown!r}")
    return seconds


def attempts(u: torch.Tensor, loss: float, max_attempts: int) -> torch.Tensor:
    """Transmission attempts for uniform draws u: P(K > k) = loss**k, capped at max_attempts."""
    if loss <= 0.0:
        return torch.ones_like(u)
    k = 1.0 + torch.floor(torch.log1p(-u) / math.log(loss))
    return k.clamp(1.0, float(max_attempts))


def attempt_probabilities(loss: float, max_attempts: int) -> list[float]:
    """P(K = 1..max_attempts) of `attempts`."""
    probs = [(1.0 - loss) * loss ** (k - 1) for k in range(1, max_attempts)]
    return probs + [loss ** (max_attempts - 1)]


class ContentionSimulator(Simulator):
    """B independent worlds of the contention profile, one decision per world per `step`.

    The row views the base class reads (`task`, `step_idx`, `prev`, `now`, `episode`) are those of
    each world's active workflow, so observations, masks and agents work unchanged. Consecutive
    decisions of a row may belong to different workflows: `info["episode"]` and `info["step"]` say
    which. `done` marks the last step of a workflow.
    """

    def __init__(self, dataset: Dataset, batch_size: int = 1, split: str = "train", order: str = "random",
                 seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                 task_subset=None, contention: Contention | None = None, profile: Profile | None = None):
        batch_size, seed, device = simulator_args(dataset, batch_size, split, order, seed, device)
        if contention is not None and not isinstance(contention, Contention):
            raise ContentionError(f"contention: expected a Contention (or None: the defaults), got {contention!r}")
        self.contention = self.params = c = contention or Contention()
        if batch_size * c.max_in_flight > MAX_SLOTS:
            raise ContentionError(f"batch_size x contention.max_in_flight: expected at most {MAX_SLOTS} workflows in "
                                  f"flight, got {batch_size} x {c.max_in_flight} = {batch_size * c.max_in_flight}")
        self._trace = None if c.arrival_trace is None else torch.tensor(
            load_arrival_gaps(c.arrival_trace), dtype=dtype, device=device)
        super().__init__(dataset, batch_size, split, order, seed, device, profile or CONTENTION, dtype, True,
                         task_subset)
        self.warmup_episodes = c.warmup * batch_size

    # ------------------------------------------------------------------ state
    def steps_until_done(self, episodes: int) -> int | None:
        return None  # workflows arrive and interleave: when they finish depends on the decisions

    def reset(self, seed: int | None = None) -> Observation:
        if seed is not None:
            self.seed_streams(seed)
        G, W, dev = self.batch_size, self.contention.max_in_flight, self.device
        self.rows = torch.arange(G, device=dev)
        # Slot state, flat over (world, slot): clock, arrival time, admission wait, [episode, task, step, prev].
        # Slot w of world g holds the world's w-th arrival, episode w * G + g: low ids spread over worlds.
        episode = torch.arange(G * W, device=dev).reshape(W, G).T.reshape(-1)
        index = torch.arange(W, device=dev).expand(G, W)
        arrival = torch.cumsum(self._gap(self.rows[:, None], index), 1)
        self.next_index = torch.full((G,), W, dtype=torch.long, device=dev)
        self.next_arrival = arrival[:, -1] + self._gap(self.rows, self.next_index)
        self.slot_now = arrival.reshape(-1)
        self.slot_arrival = self.slot_now.clone()
        self.slot_admit = torch.zeros(G * W, dtype=self.dtype, device=dev)
        self.slot_int = [episode, self._deal(episode), torch.zeros_like(episode), torch.full_like(episode, -1)]
        self.busy = torch.zeros((G, self.n_servers), dtype=self.dtype, device=dev)
        self.history = torch.full((G, self.n_servers), self.net.initial_history_ms, dtype=self.dtype, device=dev)
        self._activate()
        return self.observe()

    def reseed(self, seed: int) -> Observation:
        """Re-seed the noise, task and arrival streams and go on from the worlds' current state.

        Training runs the worlds on from one epoch to the next (queues stay loaded, no warm-up per
        epoch) and re-seeds them from (seed, epoch), so an epoch's draws depend only on the seed, the
        epoch and `world_state()`, which checkpoints carry: a resumed run continues the same worlds."""
        self.seed_streams(seed)
        return self.observe()

    world_seeds: torch.Tensor | None = None  # per row, when the rows hold several seeds' worlds (seed_worlds)
    worlds_per_seed: int | None = None  # then the worlds of each seed (None: every row is one seed's world)

    WORLD_KEYS: tuple[str, ...] = ("busy", "history", "slot_now", "slot_arrival", "slot_admit", "next_arrival",
                                   "next_index")
    WORLD_DICTS: tuple[str, ...] = ()  # attributes holding dicts of such tensors, saved as "<name>.<key>"
    MAY_BE_INF: tuple[str, ...] = ()  # time keys that may hold +inf (nothing measured yet)
    SLOT_INTS = ("episode", "task", "step", "prev")  # slot_int's tensors, saved as "slot_<name>"

    def world_state(self) -> dict[str, torch.Tensor]:
        """Every tensor that carries the worlds to their next decision (not the random streams)."""
        state = {k: getattr(self, k).clone() for k in self.WORLD_KEYS}
        for name in self.WORLD_DICTS:
            state |= {f"{name}.{k}": x.clone() for k, x in getattr(self, name).items()}
        return state | {f"slot_{name}": x.clone() for name, x in zip(self.SLOT_INTS, self.slot_int)}

    def load_world_state(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from `world_state()` of a simulator with the same dataset, split and parameters."""
        mine = self.world_state()
        if set(state) != set(mine) or any(state[k].shape != v.shape or state[k].dtype != v.dtype
                                          for k, v in mine.items()):
            raise ValueError("the saved world state does not fit this simulator (other worlds, slots, servers "
                             "or arrival process)")
        state = {k: v.to(self.device) for k, v in state.items()}
        problem = self._world_problem(state)
        if problem is not None:
            raise ValueError(f"the saved world state cannot be a state of these worlds: {problem}")
        for k in self.WORLD_KEYS:
            setattr(self, k, state[k].clone())
        for name in self.WORLD_DICTS:
            setattr(self, name, {k: state[f"{name}.{k}"].clone() for k in getattr(self, name)})
        self.slot_int = [state[f"slot_{name}"].clone() for name in self.SLOT_INTS]
        self._activate()

    def _world_problem(self, state: dict[str, torch.Tensor]) -> str | None:
        """Values no world of this simulator holds (a damaged or hand-edited checkpoint), which would index
        out of range or carry NaN into training; None if there are none. `state` is on the device."""
        bad = next((k for k, v in state.items() if v.is_floating_point() and bool(
            (torch.isnan(v) | torch.isneginf(v) | (torch.isposinf(v) & (k not in self.MAY_BE_INF))).any())), None)
        if bad is not None:
            return f"{bad} holds NaN or inf"
        task, step, prev, k = state["slot_task"], state["slot_step"], state["slot_prev"], self.tasks.k
        if bool(((task < 0) | (task >= k)).any()):
            return f"slot_task holds task indices outside [0, {k})"
        if bool(((step < 0) | (step >= self.tasks.n_steps[task])).any()):
            return "slot_step holds steps outside its task's steps"
        if bool(((prev < -1) | (prev >= self.n_servers)).any()):
            return f"slot_prev holds servers outside [-1, {self.n_servers})"
        return None

    @contextmanager
    def every_slot(self) -> Iterator[Observation]:
        """Show every slot's pending decision as a row (worlds x max_in_flight rows, world-major) for
        the duration of the block, so a policy can score every in-flight workflow at once (training
        bootstraps the value of workflows still running at the end of an epoch). Nothing changes."""
        G, W = self.batch_size, self.contention.max_in_flight
        saved = self.batch_size, self.rows, self.busy, self.history
        self.batch_size, self.rows = G * W, torch.arange(G * W, device=self.device)
        self.busy, self.history = self.busy.repeat_interleave(W, 0), self.history.repeat_interleave(W, 0)
        self._point(self.rows)
        try:
            yield self.observe()
        finally:
            self.batch_size, self.rows, self.busy, self.history = saved
            self._activate()

    def seed_worlds(self, seeds: list[int]) -> None:
        """Let the rows hold the worlds of several evaluation seeds, len(rows) / len(seeds) each in seed order:
        row r runs world r mod that count of seed seeds[r // count], exactly the world a simulator of that
        seed runs (the draws are keyed by seed and world), so one batch evaluates every seed at once.
        Takes effect at the next `reset`."""
        G, S = self.batch_size, len(seeds)
        if S < 1 or G % S:
            raise ValueError(f"seed_worlds: {G} worlds do not split evenly over {S} seeds")
        self.worlds_per_seed = G // S
        self.world_seeds = torch.tensor(seeds, dtype=torch.long, device=self.device).repeat_interleave(G // S)

    def world_identity(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(seed, world) of the rows: the key of their draws."""
        seed = torch.full_like(rows, self.seed) if self.world_seeds is None else self.world_seeds[rows]
        return seed, rows % (self.worlds_per_seed or self.batch_size)

    def _u(self, world: torch.Tensor | int, index: torch.Tensor | int, step: torch.Tensor | int,
           purpose: torch.Tensor | int) -> torch.Tensor:
        """The uniform draw of (world, arrival index, step, purpose) under the world's seed."""
        seed, world = self.world_identity(torch.as_tensor(world, device=self.device))
        return crn_uniform(seed, index, draw_key(world, step, purpose), dtype=self.dtype).to(self.device)

    def _gap(self, world: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """The gap (ms) before arrival `index` of `world`: exponential (Poisson), or the trace's gaps read on
        from the world's start, cycling."""
        mean = self.contention.mean_gap_ms
        if self._trace is None:
            return -torch.log1p(-self._u(world, index, 0, GAP)) * mean
        n = len(self._trace)
        start = (self._u(world, 0, 0, TRACE_START) * n).long()
        return self._trace.index_select(0, ((start + index) % n).reshape(-1)).reshape(index.shape) * mean

    def episode_task(self, episode: torch.Tensor) -> torch.Tensor:
        """The task of episodes `episode` (ids, warm-up included), dealt or not: a bounded evaluation names the
        workflows it never began by them."""
        return self._deal(episode)

    def _deal(self, episode: torch.Tensor) -> torch.Tensor:
        """The task of episode `episode` (arrival episode // worlds of world episode % worlds): file order
        under sequential dealing, else drawn from (seed, world, arrival index)."""
        index, row = episode // self.batch_size, episode % self.batch_size
        if self.order == "sequential":  # the episode's number among its own seed's worlds, in file order
            per_seed = self.worlds_per_seed or self.batch_size
            return (index * per_seed + row % per_seed) % self.tasks.k
        return (self._u(row, index, 0, TASK) * self.tasks.k).long().clamp_max(self.tasks.k - 1)

    def network_uniforms(self) -> torch.Tensor:
        """(B, 4) the active decisions' network draws, from (seed, world, arrival index, step)."""
        G = self.batch_size
        return self._u((self.episode % G)[:, None], (self.episode // G)[:, None], self.step_idx[:, None],
                       NETWORK + torch.arange(P.UNIFORMS_PER_STEP, device=self.device))

    def _activate(self) -> None:
        """Point the row views at each world's earliest pending decision (ties: the lowest slot)."""
        W = self.contention.max_in_flight
        self._point(self.rows * W + self.slot_now.view(-1, W).argmin(1))

    def _point(self, active: torch.Tensor) -> None:
        """Row views of the flat slots `active`."""
        self.active = active
        self.now = self.slot_now.index_select(0, self.active)
        self.episode, self.task, self.step_idx, self.prev = (x.index_select(0, self.active) for x in self.slot_int)

    def busy_until(self, servers: torch.Tensor) -> torch.Tensor:
        return self.busy.gather(1, servers)

    def server_load(self) -> torch.Tensor:
        return (self.busy - self.now[:, None]).clamp_min(0.0)

    def latency_history(self) -> torch.Tensor:
        """(B, N) per-server latency EMA of each world, live across workflows."""
        return self.history.clone()

    def reset_done(self, done: torch.Tensor) -> None:
        raise RuntimeError("the contention profile deals the next arrival itself; reset_done is not used")

    # ------------------------------------------------------------------ dynamics
    def _trap_and_link(self, prev, s, trap_hit, u_trap):
        link, found = self.net.link_lookup(prev, s)
        c = self.contention
        retransmitted = link * attempts(u_trap, c.trap_loss, c.trap_max_attempts)
        low, high = c.surcharge_ms
        surcharge = torch.where(u_trap < 0.5, high, low)
        trap_ms = torch.where(trap_hit & found, retransmitted, torch.where(trap_hit, surcharge, 0.0))
        return trap_ms, torch.where(trap_hit, 0.0, link)

    def step(self, actions: torch.Tensor, uniforms: torch.Tensor | None = None):
        a, u = self._checked(actions, self.network_uniforms() if uniforms is None else uniforms)
        h = self._hop(a, u)
        s, compute = h["server"], h["compute"]
        cell = self.rows * self.n_servers + s  # flat (world, server) index into busy and history
        busy, history = self.busy.view(-1), self.history.view(-1)
        k, episode, task = self.step_idx, self.episode, self.task
        admission = torch.where(k == 0, self.slot_admit.index_select(0, self.active), 0.0)
        busy_before = busy.index_select(0, cell)
        wait = (busy_before - self.now).clamp_min(0.0)
        start = self.now + wait
        travel = h["channel"] + h["trap_ms"] + h["link_ms"] + compute
        queue = wait + admission
        latency = travel + queue
        reward = P.reward_vector(latency, h["cost"], h["switch"])
        busy.index_copy_(0, cell, start + compute)
        history.index_copy_(0, cell, 0.5 * latency + 0.5 * history.index_select(0, cell))

        next_step = k + 1
        done = next_step >= self.tasks.n_steps[task]
        finish = start + travel
        # a finished workflow's slot takes the world's next arrival (waiting for the slot if it came earlier)
        new_episode = self.next_index * self.batch_size + self.rows
        arrival, workflow_arrival = self.next_arrival, self.slot_arrival.index_select(0, self.active)
        self.next_index = self.next_index + done.long()
        self.next_arrival = torch.where(done, arrival + self._gap(self.rows, self.next_index), arrival)

        for slots, value in zip(self.slot_int, (torch.where(done, new_episode, episode),
                                                torch.where(done, self._deal(new_episode), task),
                                                torch.where(done, 0, next_step), torch.where(done, -1, s))):
            slots.index_copy_(0, self.active, value)
        self.slot_now.index_copy_(0, self.active, torch.where(done, torch.maximum(arrival, finish), finish))
        self.slot_arrival.index_copy_(0, self.active, torch.where(done, arrival, workflow_arrival))
        self.slot_admit.index_copy_(0, self.active, torch.where(done, (finish - arrival).clamp_min(0.0), 0.0))
        self._activate()
        info = self._info(h, latency, queue, done, episode, task, k)
        info |= {"admission_ms": admission, "world": self.rows, "arrival_index": episode // self.batch_size,
                 "arrival_ms": workflow_arrival, "start_ms": start}
        return self.observe(), reward, done, info


class ContentionProfile(Profile):
    """Workflows arrive over time and compete for the servers (docs/simulator.md §5): `worlds` rows,
    each an independent world; ten passes over the split by default, so queues reach steady state."""

    name = "contention"
    params_class = Contention
    queues = True
    worlds_run_on = True
    plan_bounds_reward = True  # queues only add latency, so the load-blind plan value is an upper bound
    eval_passes = 10
    batches_seeds = True
    flags = (  # the parameters most often changed; the rest: --set contention.KEY=V
        Flag("--arrival-rate", "arrival_rate", "positive_float",
             "workflows arriving per second in each world (config: contention.arrival_rate)", "PER_S"),
        Flag("--arrival-trace", "arrival_trace", "text",
             "take arrival gaps from a request trace (Azure TIMESTAMP or BurstGPT Timestamp column), rescaled to "
             "--arrival-rate (config: contention.arrival_trace)", "CSV"),
        Flag("--worlds", "worlds", "positive_int", "independent worlds simulated side by side (config: contention.worlds)"),
        Flag("--max-in-flight", "max_in_flight", "positive_int",
             "workflows in flight per world (config: contention.max_in_flight)"),
        Flag("--warmup", "warmup", "non_negative_int",
             "unmeasured first arrivals of each world, to load the servers (config: contention.warmup, default 32)"),
        Flag("--trap-loss", "trap_loss", "probability_below_one",
             "loss probability of one attempt over a trap link, the traps' severity (config: contention.trap_loss, "
             "default 0.3)", "P"),
        Flag("--trap-surcharge-scale", "trap_surcharge_scale", "non_negative_float",
             "multiply the flat 100/200 ms delay of a trap hit without a link row, the common trap hit (config: "
             "contention.trap_surcharge_scale, default 1)", "X"),
    )

    def simulator(self, ds: Dataset, batch_size: int, split: str = "train", order: str = "random", seed: int = 0,
                  device: str | torch.device = "cpu", params: Contention | None = None,
                  task_subset=None) -> Simulator:
        return ContentionSimulator(ds, batch_size, split, order, seed, device, task_subset=task_subset,
                                   contention=params, profile=self)

    def trap_model(self, params: Contention) -> TrapModel:
        """A hop over an explicit trap link is retried (`trap_loss`, `trap_max_attempts`); other trap hits pay
        the paper's surcharge times `trap_surcharge_scale`."""
        return TrapModel(params.surcharge_ms, params.trap_loss, params.trap_max_attempts)

    def batch_size(self, params: Contention, episodes: int) -> int:
        return params.worlds

    def tag(self, params: Contention) -> str:
        """contention_r<rate>, plus the trace and the trap parameters where they are not the defaults."""
        def given(value: Any, default: Any) -> Any:
            return None if value == default else value
        return contention_tag(params.arrival_rate, params.arrival_trace, given(params.trap_loss, Contention.trap_loss),
                              given(params.trap_surcharge_scale, Contention.trap_surcharge_scale),
                              given(params.max_in_flight, Contention.max_in_flight), given(params.warmup, Contention.warmup))


CONTENTION = ContentionProfile()  # the contention profile; a ContentionSimulator built without one runs it
