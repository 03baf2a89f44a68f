"""The batched edge-cloud MoE simulator: B workflow episodes advance together as torch tensors.

Data flow of one `step(actions)`: the chosen server of every episode (or the fallback server when it
hosts no instance of the required type) -> hop distance from the previous server (the task location
at step 0) -> channel, trap/link, compute and queue latency -> cost -> reward vector (rL, rC, rS).
Per-step work is O(B): link latency comes from a sorted key table, never an N x N matrix, and the
per-episode history (servers visited, busy-until times) is a B x steps array.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch

from . import physics as P
from .dataset import Dataset, DatasetError
from .inputs import MAX_SEED, MAX_WORLDS, InputError, choice, integer
from .paper import PAPER, Profile


def take(x: torch.Tensor, i: torch.Tensor) -> torch.Tensor:
    """x[i]: for a 1-D index without negative entries through index_select, which moves the same data
    as advanced indexing (identical values) at 40-60% of its cost per call; advanced indexing was a
    third of a step's CPU time at B=4096. Other index shapes take x[i] as before."""
    return x.index_select(0, i) if i.dim() == 1 else x[i]


def take_cells(x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """x[i, j] of a contiguous 2-D x, given the flat index i * x.shape[1] + j (one index serves every
    table of that width, e.g. a task's model type and tokens at its current step)."""
    return x.view(-1).index_select(0, flat)


class Topology:
    """The static arrays of a Dataset on one device, computed once at load."""

    def __init__(self, ds: Dataset, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64):
        def f(a):
            return torch.tensor(a, dtype=dtype, device=device)

        def i(a):
            return torch.tensor(a, dtype=torch.long, device=device)

        self.n = ds.n_servers
        self.lon, self.lat, self.nc, self.cost_mult = f(ds.lon), f(ds.lat), f(ds.nc), f(ds.cost_mult)
        self.trap = torch.tensor(ds.is_trap, device=device)
        self.region = i(ds.server_region)
        self.valid = torch.tensor(ds.valid, device=device)  # (T, N)
        # per type, the valid servers packed to the left (padded with their first): O(1) uniform sampling
        self.valid_count = self.valid.sum(1)
        order = torch.argsort((~self.valid).to(torch.int8), dim=1, stable=True)
        self.valid_list = torch.where(torch.arange(self.n, device=device) < self.valid_count[:, None], order, order[:, :1])
        self.price = f(ds.price).nan_to_num(0.0)  # (T, N); only read where valid
        self.fallback_server = i(ds.fallback_server)  # (T,)
        self.mean_out_latency = f(ds.mean_out_latency)
        keys = torch.tensor(ds.link_src * ds.n_servers + ds.link_dst, dtype=torch.long)
        order = torch.argsort(keys)
        self.link_keys = keys[order].to(device)
        self.link_lat = f(ds.link_latency)[order.to(device)]
        self.switch_penalty_ms = float(ds.mean_link_latency)
        self.initial_history_ms = 5.0 * float(ds.mean_link_latency)

    def link_lookup(self, prev: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(BaseLatencyMs of the link prev -> s or 0, whether such a link row exists; never for prev < 0)."""
        if len(self.link_keys) == 0:
            shape = torch.broadcast_shapes(prev.shape, s.shape)
            return (torch.zeros(shape, dtype=self.lon.dtype, device=s.device),
                    torch.zeros(shape, dtype=torch.bool, device=s.device))
        key = prev * self.n + s
        idx = torch.searchsorted(self.link_keys, key).clamp_max(len(self.link_keys) - 1)
        found = (take(self.link_keys, idx) == key) & (prev >= 0)
        return torch.where(found, take(self.link_lat, idx), torch.zeros((), dtype=self.lon.dtype, device=s.device)), found

    def link_latency(self, prev: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """BaseLatencyMs of the link prev -> s, 0 where there is none (or prev < 0)."""
        return self.link_lookup(prev, s)[0]

    def hop_km(self, src_lon: torch.Tensor, src_lat: torch.Tensor, src_region: torch.Tensor,
               from_server: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(distance, same_region) of the hop to server s; server-to-server hops in one region >= 0.5 km."""
        d = P.haversine_km(src_lon, src_lat, take(self.lon, s), take(self.lat, s))
        same_region = take(self.region, s) == src_region
        return torch.where(from_server & same_region, d.clamp_min(P.MIN_HOP_KM), d), same_region


ORDERS = ("random", "sequential")


def simulator_args(dataset: Dataset, batch_size: int, split: str, order: str, seed: int,
                   device: str | torch.device) -> tuple[int, int, torch.device]:
    """(batch_size, seed, device) of a simulator, checked before anything is allocated: each bad one
    raises an InputError naming it."""
    if not isinstance(dataset, Dataset):
        raise InputError(f"dataset: expected an edgesim Dataset (edgesim.dataset.load_dataset(root, region)), "
                         f"got {dataset!r} ({type(dataset).__name__})")
    choice(split, "split", sorted(dataset.tasks))
    choice(order, "order", ORDERS)
    return (integer(batch_size, "batch_size", 1, MAX_WORLDS), integer(seed, "seed", 0, MAX_SEED),
            torch_device(device))


def torch_device(device: Any) -> torch.device:
    """A device torch can run on here: a typo, or CUDA on a machine without it, is an InputError, not
    an assertion deep inside torch."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InputError(f"device: expected a torch device such as 'cpu' or 'cuda', got {device!r}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"device: {device!r} requested but CUDA is not available on this machine")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"device: {device!r} requested but this machine has {torch.cuda.device_count()} "
                             "CUDA device(s)")
    return dev


def _subset(subset: object, k: int, split: str) -> np.ndarray:
    """Task indices into a split of k tasks: a non-empty 1-D list of integers in [0, k); floats or
    strings would be truncated or parsed into other tasks."""
    rows = np.asarray(subset)
    if rows.ndim != 1 or rows.size == 0 or not np.issubdtype(rows.dtype, np.integer) \
            or rows.min() < 0 or rows.max() >= k:
        raise InputError(f"task_subset: expected a non-empty list of integer indices into the {k} {split} tasks "
                         f"([0, {k})), got {_brief(subset)}")
    return rows.astype(np.int64)


def _brief(value: object, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[:width] + "..."


class TaskBatch:
    """One split's tasks on the device."""

    def __init__(self, ds: Dataset, split: str, device, dtype, subset=None):
        if split not in ds.tasks:
            raise DatasetError(f"unknown split {split!r}; the dataset has {sorted(ds.tasks)}")
        t = ds.tasks[split]
        rows = np.arange(len(t)) if subset is None else _subset(subset, len(t), split)
        self.ids = [t.ids[i] for i in rows]
        self.k = len(rows)
        self.lon = torch.tensor(t.lon[rows], dtype=dtype, device=device)
        self.lat = torch.tensor(t.lat[rows], dtype=dtype, device=device)
        self.region = torch.tensor(t.region[rows], device=device)
        self.n_steps = torch.tensor(t.n_steps[rows], device=device)
        self.types = torch.tensor(t.types[rows], device=device)
        self.tokens = torch.tensor(t.tokens[rows], dtype=dtype, device=device)
        self.max_steps = int(t.types.shape[1])


class Observation(NamedTuple):
    """What a scheduler sees before deciding the current step of each episode (all shape (B,))."""

    task: torch.Tensor  # index into the split's task table
    step: torch.Tensor  # current workflow step, 0-based
    n_steps: torch.Tensor
    task_lon: torch.Tensor
    task_lat: torch.Tensor
    task_region: torch.Tensor
    prev_server: torch.Tensor  # -1 at step 0
    prev_region: torch.Tensor  # the task's region at step 0
    required_type: torch.Tensor
    tokens: torch.Tensor
    now_ms: torch.Tensor  # episode clock

    @property
    def progress(self) -> torch.Tensor:
        return self.step.to(self.now_ms.dtype) / self.n_steps.to(self.now_ms.dtype)


class Simulator:
    """B episodes of the `paper` profile stepped at once, seeded, with same-step auto-reset.

    Auto-reset semantics (same-step, like SB3's VecEnv): when `step` finishes an episode, the reward,
    `done` and `info` describe that finished step, and the returned observation is already the
    first step of the row's next task. Tasks are drawn uniformly from the split (`order="random"`)
    or dealt in file order, cycling (`order="sequential"`; the evaluation protocol).

    Randomness: each step consumes exactly `UNIFORMS_PER_STEP` uniforms per episode (bandwidth,
    fading, interference, trap coin) from the noise generator, or takes them from `uniforms`
    (common random numbers across schedulers; the executable-spec tests replay them).
    Task draws use a separate generator, so the noise stream does not depend on episode lengths.
    `task_subset` restricts the split to some of its task indices (e.g. a validation slice).
    With `autoreset=False` finished rows stay at their terminal state (step == n_steps) until
    `reset_done(done)`; the Gymnasium wrappers use this to return terminal observations.
    `profile` is the Profile object whose dynamics these are (a subclass's own, passed up), kept as
    `self.profile` beside its parameters `self.params`, so callers ask it instead of naming it.
    """

    warmup_episodes = 0
    params: Any = None  # the profile's parameters this simulator runs (None: a profile without any)

    def __init__(self, dataset: Dataset, batch_size: int = 1, split: str = "train", order: str = "random",
                 seed: int = 0, device: str | torch.device = "cpu", profile: Profile = PAPER,
                 dtype: torch.dtype = torch.float64, autoreset: bool = True, task_subset=None):
        if not isinstance(profile, Profile):
            raise InputError(f"profile: expected a Profile object, got {profile!r}; a registered profile's simulator "
                             f"comes from edgesim.registry.make_simulator(..., profile=NAME)")
        if profile.params_class is not None and type(self) is Simulator:  # it would run paper dynamics, mislabelled
            raise InputError(f"profile: {profile.name!r} has parameters the paper simulator ignores; build its own "
                             f"simulator with edgesim.registry.make_simulator(..., profile={profile.name!r})")
        batch_size, seed, device = simulator_args(dataset, batch_size, split, order, seed, device)
        if dtype not in (torch.float32, torch.float64):
            raise InputError(f"dtype: expected torch.float64 (the default) or torch.float32, got {dtype!r}")
        self.dataset, self.batch_size, self.split, self.order = dataset, batch_size, split, order
        self.profile = profile  # what agents, heuristics and planners ask about the dynamics
        self.device, self.dtype, self.autoreset = torch.device(device), dtype, autoreset
        self.net = Topology(dataset, self.device, dtype)
        self.tasks = TaskBatch(dataset, split, self.device, dtype, task_subset)
        self.n_servers = self.net.n
        self.reset(seed)

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> Observation:
        """Start B fresh episodes (and re-seed when `seed` is given)."""
        if seed is not None:
            self.seed_streams(seed)
        B, S, dev = self.batch_size, self.tasks.max_steps, self.device
        self.episode = torch.arange(B, device=dev)  # global index of each row's episode, in dealing order
        self.episodes_dealt = torch.tensor(B, device=dev)
        self.task = self._deal(self.episode)
        self.step_idx = torch.zeros(B, dtype=torch.long, device=dev)
        self.prev = torch.full((B,), -1, dtype=torch.long, device=dev)
        self.now = torch.zeros(B, dtype=self.dtype, device=dev)
        self.hist_server = torch.full((B, S), -1, dtype=torch.long, device=dev)
        self.hist_busy = torch.zeros((B, S), dtype=self.dtype, device=dev)
        self.hist_latency = torch.zeros((B, S), dtype=self.dtype, device=dev)
        return self.observe()

    def steps_until_done(self, episodes: int) -> int | None:
        """Steps after `reset()` until the first `episodes` episodes have all finished, read once from
        their tasks (each of the first rows holds one of them to its end); None when the batch holds
        fewer rows than that. Lets a training epoch loop without reading a finished count every step."""
        if episodes > self.batch_size or self.warmup_episodes:
            return None
        return int(take(self.tasks.n_steps, self.task[:episodes]).max())

    def seed_streams(self, seed: int) -> None:
        """Re-seed the random streams (noise, task draws) without touching the rows."""
        self.seed = int(seed)
        self.noise_gen = torch.Generator(self.device).manual_seed(self.seed)
        self.task_gen = torch.Generator(self.device).manual_seed(self.seed + 0x9E3779B9)

    def episode_task(self, episode: torch.Tensor) -> torch.Tensor:
        """The task of episodes `episode`, dealt or not: a bounded evaluation names the workflows it never
        began by them. Known up front in file order only (evaluations deal sequentially)."""
        if self.order != "sequential":
            raise ValueError("episode_task: a simulator dealing tasks at random draws them as it goes")
        return self._deal(episode)

    def _deal(self, episode: torch.Tensor) -> torch.Tensor:
        if self.order == "sequential":
            return episode % self.tasks.k
        return torch.randint(self.tasks.k, episode.shape, generator=self.task_gen, device=self.device)

    def observe(self) -> Observation:
        t, T = self.task, self.tasks
        tk = t * T.max_steps + self._shown_step()
        return Observation(
            task=t, step=self.step_idx, n_steps=take(T.n_steps, t), task_lon=take(T.lon, t), task_lat=take(T.lat, t),
            task_region=take(T.region, t),
            prev_server=self.prev, prev_region=self.hop_region(),
            required_type=take_cells(T.types, tk), tokens=take_cells(T.tokens, tk), now_ms=self.now)

    def _shown_step(self) -> torch.Tensor:
        """The step each row shows: the current one, or the last one for a finished row."""
        return torch.minimum(self.step_idx, take(self.tasks.n_steps, self.task) - 1)

    def required_type(self) -> torch.Tensor:
        """(B,) model type each episode's current step needs."""
        return take_cells(self.tasks.types, self.task * self.tasks.max_steps + self._shown_step())

    def hop_source(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lon, lat, region) each episode's next hop starts from: the task at step 0, else the previous server."""
        t, first, prev_c = self.task, self.prev < 0, self.prev.clamp_min(0)
        return (torch.where(first, take(self.tasks.lon, t), take(self.net.lon, prev_c)),
                torch.where(first, take(self.tasks.lat, t), take(self.net.lat, prev_c)), self.hop_region())

    def hop_region(self) -> torch.Tensor:
        """(B,) region of each episode's hop source (the task's region at step 0)."""
        return torch.where(self.prev < 0, take(self.tasks.region, self.task), take(self.net.region, self.prev.clamp_min(0)))

    def valid_mask(self) -> torch.Tensor:
        """(B, N) bool: servers hosting an instance of each episode's required model type."""
        return take(self.net.valid, self.required_type())

    def sample_valid(self, generator: torch.Generator) -> torch.Tensor:
        """(B,) a uniformly random valid server per episode, in O(B) (no B x N mask)."""
        req = self.required_type()
        u = torch.rand(self.batch_size, generator=generator, device=self.device, dtype=self.dtype)
        slot = (u * take(self.net.valid_count, req)).long()
        return take_cells(self.net.valid_list, req * self.net.n + slot)

    def busy_until(self, servers: torch.Tensor) -> torch.Tensor:
        """(B, K) time each episode's `servers` (B, K) stay busy, 0 for servers it has not used.
        O(B x K x steps): the per-episode history, never a B x N table."""
        match = self.hist_server[:, None, :] == servers[..., None]
        return torch.where(match, self.hist_busy[:, None, :], 0.0).amax(-1)

    def queue_wait(self, servers: torch.Tensor) -> torch.Tensor:
        """(B, K) ms the `servers` (B, K) would make each episode wait now: max(0, busy_until - now).
        Identically zero in the paper profile (docs/simulator.md §2), live under contention."""
        return (self.busy_until(servers) - self.now[:, None]).clamp_min(0.0)

    def measured_bounds(self, episodes: pd.DataFrame) -> dict[str, float]:
        """Bounds the world itself gives on the measured `episodes` (an `evaluate` table of this simulator,
        after its run), the same for every scheduler, written beside each summary: none here."""
        return {}

    @property
    def finishes_per_step(self) -> int:
        """The most workflows one `step` can finish: one per row here (a profile whose step returns the
        requests completed meanwhile, serving, can finish every workflow in flight)."""
        return self.batch_size

    def measured(self, episode: torch.Tensor, episodes: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(mask, index 0..episodes-1) of the measured episodes among the ids `episode`: the first
        `episodes` after the `warmup_episodes` that only load the system (none in the paper profile);
        every one after them for `episodes=None` (training worlds that run on across epochs)."""
        rel = episode - self.warmup_episodes
        return (rel >= 0) & (episodes is None or rel < episodes), rel

    def server_load(self) -> torch.Tensor:
        """(B, N) live load of every server: the queue wait it would impose now (ms). O(B x N)."""
        return self.queue_wait(torch.arange(self.n_servers, device=self.device).expand(self.batch_size, -1))

    def live_inputs(self, servers: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, F) the live per-server inputs the profile offers a scheduler (F = len(profile.live_inputs)),
        or (B, K, F) at `servers` (B, K). Column 0 is the expected wait in ms (`server_load`); a profile
        with more live state appends its own columns, already on unit scale. Here F = 1: the queue wait,
        identically zero in the paper profile, live under contention."""
        wait = self.server_load() if servers is None else self.queue_wait(servers)
        return wait[..., None]

    def latency_history(self) -> torch.Tensor:
        """(B, N) per-server latency history of each episode: 5 x mean link latency, then an EMA
        h = 0.5 * latency + 0.5 * h on every server the episode used. Built on demand."""
        h = torch.full((self.batch_size, self.n_servers), self.net.initial_history_ms, dtype=self.dtype, device=self.device)
        for j in range(self.tasks.max_steps):
            s = self.hist_server[:, j:j + 1]
            used = s >= 0
            sj = s.clamp_min(0)
            new = 0.5 * self.hist_latency[:, j:j + 1] + 0.5 * h.gather(1, sj)
            h.scatter_(1, sj, torch.where(used, new, h.gather(1, sj)))
        return h

    # -------------------------------------------- worlds that run on (profiles with `worlds_run_on`)
    def world_state(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError(f"{type(self).__name__} has no worlds that run on across epochs")

    def load_world_state(self, state: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError(f"{type(self).__name__} has no worlds that run on across epochs")

    def reseed(self, seed: int) -> Observation:
        raise NotImplementedError(f"{type(self).__name__} has no worlds that run on across epochs")

    def every_slot(self) -> AbstractContextManager[Observation]:
        raise NotImplementedError(f"{type(self).__name__} has no worlds that run on across epochs")

    # ------------------------------------------------------------------ dynamics
    def _checked(self, actions: torch.Tensor, uniforms: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(actions, uniforms) as (B,) server indices and (B, UNIFORMS_PER_STEP) draws, validated."""
        B, n = self.batch_size, self.net.n
        a = torch.as_tensor(actions, device=self.device)
        if a.dtype == torch.bool or a.is_floating_point() or a.is_complex():
            raise InputError(f"actions: expected integer server indices, got a {a.dtype} tensor (a float would be "
                             "truncated to another server)")
        a = a.long().reshape(-1)
        if a.shape[0] != B:
            raise ValueError(f"expected {B} actions (one per episode), got {a.shape[0]}")
        if not self.autoreset and bool((self.step_idx >= self.tasks.n_steps[self.task]).any()):
            raise RuntimeError("an episode has finished: call reset_done(done) or reset() before stepping again")
        if a.is_cuda:  # checked on the device: a host read here would make every step wait for the GPU
            torch._assert_async(((a >= 0) & (a < n)).all(), f"actions must be server indices in [0, {n})")
        elif bool(((a < 0) | (a >= n)).any()):
            raise ValueError(f"actions must be server indices in [0, {n}), got min {int(a.min())} max {int(a.max())}")
        if uniforms is None:
            uniforms = torch.rand((B, P.UNIFORMS_PER_STEP), generator=self.noise_gen, device=self.device, dtype=self.dtype)
        return a, uniforms.to(self.device, self.dtype)

    def _hop(self, a: torch.Tensor, u: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything about the current step that does not depend on queues: server (after the
        fallback), distance, channel, trap/link latency, compute, cost and switch."""
        net, T = self.net, self.tasks
        t, k, prev = self.task, self.step_idx, self.prev
        first = prev < 0
        tk = t * T.max_steps + k
        req = take_cells(T.types, tk)
        n = take_cells(T.tokens, tk)
        valid = take_cells(net.valid, req * net.n + a)
        s = torch.where(valid, a, take(net.fallback_server, req))  # reference fallback: first instance of the type
        src_lon, src_lat, src_region = self.hop_source()
        d, same_region = net.hop_km(src_lon, src_lat, src_region, ~first, s)
        trap_hit = take(net.trap, s) | (~first & take(net.trap, prev.clamp_min(0)))
        trap_ms, link_ms = self._trap_and_link(prev, s, trap_hit, u[:, 3])
        return {"server": s, "valid": valid, "channel": P.channel_ms(d, n, P.inverse_rate(d, u[:, 0], u[:, 1], u[:, 2])),
                "trap_hit": trap_hit, "trap_ms": trap_ms, "link_ms": link_ms, "compute": P.compute_ms(n, take(net.nc, s)),
                "cost": P.step_cost(n, take_cells(net.price, req * net.n + s), take(net.cost_mult, s)),
                "switch": ~same_region}

    def _trap_and_link(self, prev: torch.Tensor, s: torch.Tensor, trap_hit: torch.Tensor,
                       u_trap: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Paper profile: a hop touching a trap pays a 100/200 ms surcharge instead of its link."""
        trap_ms = torch.where(trap_hit, torch.where(u_trap < 0.5, P.TRAP_SURCHARGE_MS[1], P.TRAP_SURCHARGE_MS[0]), 0.0)
        return trap_ms, torch.where(trap_hit, 0.0, self.net.link_latency(prev, s))

    def _info(self, h: dict[str, torch.Tensor], latency: torch.Tensor, queue: torch.Tensor,
              done: torch.Tensor, episode: torch.Tensor, task: torch.Tensor, step: torch.Tensor) -> dict:
        return {
            "latency": latency, "network_ms": h["channel"] + h["trap_ms"] + h["link_ms"], "channel_ms": h["channel"],
            "trap_ms": h["trap_ms"], "link_ms": h["link_ms"], "compute_ms": h["compute"], "queue_ms": queue,
            "cost": h["cost"], "switch": h["switch"],
            "switch_penalty_ms": h["switch"].to(self.dtype) * self.net.switch_penalty_ms,
            "fallback": ~h["valid"], "trap_hit": h["trap_hit"], "server": h["server"], "task": task, "step": step,
            "episode": episode, "done": done,
        }

    def step(self, actions: torch.Tensor, uniforms: torch.Tensor | None = None):
        """Advance every episode by one workflow step.

        Returns (observation, reward (B, 3) = (rL, rC, rS), done (B,) bool, info dict of (B,) tensors).
        """
        a, u = self._checked(actions, uniforms)
        h = self._hop(a, u)
        s, compute = h["server"], h["compute"]
        busy_before = self.busy_until(s[:, None])[:, 0]
        queue = (busy_before - self.now).clamp_min(0.0)
        start = torch.maximum(self.now, busy_before)
        latency = h["channel"] + h["trap_ms"] + h["link_ms"] + compute + queue
        reward = P.reward_vector(latency, h["cost"], h["switch"])

        k = self.step_idx
        col = k[:, None]
        self.hist_server.scatter_(1, col, s[:, None])
        self.hist_busy.scatter_(1, col, (start + compute)[:, None])
        self.hist_latency.scatter_(1, col, latency[:, None])
        self.now = start + latency  # docs/simulator.md §2: max(now, busy_until_before) + step latency
        self.prev = s
        self.step_idx = k + 1
        done = self.step_idx >= take(self.tasks.n_steps, self.task)
        info = self._info(h, latency, queue, done, self.episode, self.task, k)
        if self.autoreset:
            self.reset_done(done)
        return self.observe(), reward, done, info

    def reset_done(self, done: torch.Tensor) -> None:
        """Deal the next task to finished rows without a host sync (the dealing counter stays on device)."""
        rank = torch.cumsum(done.long(), 0) - 1
        new_episode = self.episodes_dealt + rank
        self.episode = torch.where(done, new_episode, self.episode)
        self.episodes_dealt = self.episodes_dealt + done.sum()
        self.task = torch.where(done, self._deal(self.episode), self.task)
        self.step_idx = torch.where(done, 0, self.step_idx)
        self.prev = torch.where(done, -1, self.prev)
        self.now = torch.where(done, 0.0, self.now)
        self.hist_server.masked_fill_(done[:, None], -1)
        self.hist_busy.masked_fill_(done[:, None], 0.0)
        self.hist_latency.masked_fill_(done[:, None], 0.0)
