"""The `serving` profile (docs/simulator.md §6): LLM servers with continuous batching, a KV-cache
budget, prefill and decode iterations, and output lengths the schedulers never see.

Worlds and slots are those of the contention profile (§5): G worlds are the batch rows, each holds
W = `max_in_flight` workflow slots, and a finished workflow's slot takes the world's next arrival
(waiting for the slot counts as queue delay of its first step). Each workflow step is one LLM
request to the chosen server; its network part (channel, trap, link, region switch, cost, fallback
to a valid server) is the contention profile's hop (`ContentionSimulator._hop`).

Engines. Every server of every world runs one continuous-batching engine for all the model types
it hosts. Its GPU class and tensor-parallel degree are the dataset's GPUClass column where
servers.csv has one (edgesim/gpu_classes.py names them), else they follow the tercile of the server's
NormalizedCompute (ComputationCapacity divided by the dataset's largest; the loader keeps only
that): lowest third a100-80gb TP2, middle h100-80gb-pcap TP4, top h100-80gb TP8, all serving
llama2-70b (`GPU_CLASSES`, `server_gpu_classes`). The coefficients and KV capacity of a class are those of the fitted
model (edgesim/serving_perf.py, data1/serving/perf_model.json; `EnginePerf` holds them per server):
    prefill iteration ms = max(floor, p0 + p1 * T + p2 * Q + p3 * n)  (T prompt tokens in all, Q = sum
                           of squared prompts, n prompts in the iteration)
    decode iteration ms  = d0 + d1 * b + d2 * K  (b requests in the batch, K = their cached tokens: prompt
                           plus tokens generated so far, each; the first token counts)

Request lifecycle. Decided at t0 -> travels (channel + trap + link ms) -> arrives at t_arr and joins
the server's FIFO queue -> admitted at an iteration boundary when it fits: reserved KV + prompt +
output <= kv_capacity and running < max_batch, strictly FIFO (a head that does not fit blocks the
rest) -> prefilled: every request admitted at one boundary is prefilled in one iteration while the
running decodes pause (prefill priority, no chunking, as vLLM without chunked prefill) -> its first
token at the prefill's end (TTFT = first token - t0, network and queueing included, plus the wait
for a free slot at step 0) -> one token per decode iteration until its output length o (the first
token counts: o - 1 decode iterations)
-> completes at that boundary, frees its KV reservation, and the workflow's next step is decided
then (the response's way back is not modelled separately), or the workflow finishes. Admission
reserves prompt + output tokens, like a server reserving a request's max_tokens; there is no
preemption, so KV use never exceeds capacity. Token pairs are cut to the 4,096-token context
window: prompt <= 4095, output <= 4096 - prompt, both >= 1.

Exact events. A decoding server whose batch b started its segment at `seg` with K0 cached tokens
runs iterations of D + i * d2 * b ms (i = 0, 1, ..; D = d0 + d1 * b + d2 * K0): every iteration adds
b tokens. k iterations end at seg + span(k), span(k) = k * D + d2 * b * k * (k - 1) / 2
(serving_perf.decode_span_ms). Its next event is seg + span(k) with k = min(r_min, k_admit): r_min
the fewest decode iterations left in the batch (completions), k_admit the fewest whole iterations
with span(k) >= t_head - seg when the queue's head fits (a request arriving mid-iteration waits for
the next boundary; the root of the quadratic, checked one iteration either way against rounding).
The growth of K is therefore exact, not frozen at the segment's start. A prefilling server's next event
is the prefill's end (arrivals during a prefill wait for it); an idle server admits at the
arrival. State changes only at these events, so the advance is exact. `step` applies every
world's decision, then advances each world event by event (all worlds at once, each its earliest
event: a request reaching its server, or a server event; ties: arrivals, then server events, then
decisions) until every world's earliest event is a pending decision.

Outcomes. A request's outcome is known when it completes, so `step` returns the K requests that
completed during its advance (K varies, often differs from the batch): reward (K, 3) (`reward`: the
latency term against each request's SLO budget), done (K,)
(the workflow finished with this request) and info of (K,) tensors, with `episode` and `step`
saying whose. `schedkit.evaluation.evaluate` sums them per episode unchanged; the training rollout
(`schedkit.rollout.collect`) gives each decision the reward of its own request, matched by
(episode, step) when the request completes, so learned agents train on the reward the tables report. Its Gym envs
(`EdgeMoEServing-v0`) credit each world the requests that completed during a step
(ServingProfile.delayed_outcomes).

Non-clairvoyance. Output lengths are drawn for each step from the workflow's keys and kept in
`hidden_output` and `hidden_remaining`; the Observation and the live inputs (`queue_length`,
`running_batch`, `free_kv_tokens`, `outstanding_tokens`, `server_load`, and `live_inputs`, which learned
agents read) never read them. Only
`hidden_*` members, `token_pairs` (bound-only), the admission rule and completed requests' info use
them.

Common random numbers. Every random quantity is a counter-based hash of (seed, world, arrival
index, step, purpose) (`crn_uniform`): arrival gaps, each workflow's task, each step's (prompt,
output) pair and its four network uniforms. Two schedulers therefore meet identical arrivals
(gaps summed in whole microseconds, exactly), tasks, token counts and network draws.

Load. `load` U sets arrival_rate = U x capacity, capacity = the most workflows per second the world's
servers finish with every request on a server hosting its model type (`edgesim.capacity`: the minimum
over sets S of model types of the saturated rate of the servers hosting a type in S over the requests
of S per workflow), each server's saturated rate being 1 / E_pairs[w_s(p, o)], where w_s = prefill_ms_s(p
alone) + o x decode_ms_s(max_batch, max_batch x (p + o / 2)) / max_batch is a request's share of a
saturated server (a batch of max_batch such requests halfway through their outputs). A scheduler that
spreads requests in proportion to the servers' speed and keeps the other types off the bottleneck
type's hosts runs those at U; one that spreads them evenly overloads the slow ones first.
`serving_stats()` reports the measured utilisation = requests completed in the measured period / the
requests the saturated cluster would complete in it (capacity x mean steps x time): throughput over
capacity, so a stable scheduler measures its load U and one whose queues grow measures less. Beside it:
busy share (time an engine runs >= 1 request), running batch, KV occupancy, queue length and queue wait.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple, NoReturn

import numpy as np
import pandas as pd
import torch

from . import physics as P
from .capacity import CapacityError, saturation_rate
from .contention import (
    CONTENTION,
    MAX_ATTEMPTS,
    MAX_IN_FLIGHT,
    MAX_RATE,
    MAX_SURCHARGE_SCALE,
    MIN_RATE,
    Contention,
    ContentionError,
    ContentionSimulator,
    load_arrival_gaps,
    read_trace,
)
from .crn import GAP, NETWORK, OUTPUT, PROMPT, TOKEN_ROW, TRACE_START, crn_uniform, draw_key
from .dataset import Dataset
from .gpu_classes import GPU_CLASSES, tercile_classes
from .inputs import MAX_EPISODES, MAX_SLOTS, MAX_WORLDS, InputError, Range, ints, parameters, reals
from .paper import Flag, Profile, TrapModel
from .serving_perf import ServingCoefficients, load_perf_model
from .simulator import Observation, Simulator, simulator_args, take

CONTEXT_TOKENS = 4096  # the model's context window: prompt + output of one request
MAX_LOAD = 1.2
MAX_BATCH = 4096
# The synthetic token pairs: lognormals fitted roughly to the Azure LLM inference trace (conversation):
# mean prompt ~1,150 tokens, mean output ~210 (before the context window's cut).
PROMPT_SIGMA, OUTPUT_SIGMA = 1.0, 0.8
PROMPT_MU, OUTPUT_MU = math.log(1150.0) - PROMPT_SIGMA ** 2 / 2, math.log(210.0) - OUTPUT_SIGMA ** 2 / 2
TOKEN_SAMPLE = 8192  # synthetic pairs averaged for the load's capacity, the same draws (seed 0) under every seed

PENDING, TRAVEL, QUEUED, RUNNING = range(4)  # a slot's phase


class ServingError(InputError):
    """A bad serving parameter or token trace; the message names the field or file and line."""


def _path_or_none(value: object, what: str) -> None:
    if value is not None and (not isinstance(value, str) or not value):
        raise InputError(f"{what}: expected a CSV path (a non-empty string) or None, got {value!r}")


RANGES: dict[str, Range] = {
    "load": reals(0, MAX_LOAD, lo_open=True, text=f"a utilisation > 0 and <= {MAX_LOAD:g}"),
    "arrival_rate": reals(MIN_RATE, MAX_RATE, text=f"a finite number > 0 (from {MIN_RATE:g}) and <= {MAX_RATE:g}"),
    "worlds": ints(1, MAX_WORLDS),
    "max_in_flight": ints(1, MAX_IN_FLIGHT),
    "max_batch": ints(1, MAX_BATCH),
    "warmup": ints(0, MAX_EPISODES),
    "slo_ttft_ms": reals(0, 86_400_000, lo_open=True),
    "slo_tpot_ms": reals(0, 86_400_000, lo_open=True),
    "trap_loss": reals(0, 1, hi_open=True, text="a probability in [0, 1)"),
    "trap_max_attempts": ints(1, MAX_ATTEMPTS),
    "trap_surcharge_scale": reals(0, MAX_SURCHARGE_SCALE),
}


@dataclass(frozen=True)
class Serving:
    """Parameters of the serving profile (the `serving:` block of every config)."""

    load: float = 0.7                  # offered utilisation U of the valid servers (arrival_rate None)
    arrival_rate: float | None = None  # workflows per second per world; None: from `load`
    arrival_trace: str | None = None   # CSV with a timestamp column: gaps rescaled to the rate
    token_trace: str | None = None     # CSV of (prompt, output) token pairs; None: the synthetic lognormals
    worlds: int = 8                    # independent worlds side by side (the batch)
    max_in_flight: int = 4096          # workflows in flight per world
    max_batch: int = 64                # running requests per engine
    warmup: int = 64                   # first workflows of each world run unmeasured
    # DistServe's chatbot SLOs for its 66B model (Zhong et al., OSDI 2024), the size closest to 70B
    slo_ttft_ms: float = 2500.0
    slo_tpot_ms: float = 150.0
    trap_loss: float = 0.3
    trap_max_attempts: int = 4
    trap_surcharge_scale: float = 1.0

    def __post_init__(self) -> None:
        """Every field checked however the parameters are made (a config block, a dict, the constructor)."""
        try:
            _path_or_none(self.arrival_trace, "serving.arrival_trace")
            _path_or_none(self.token_trace, "serving.token_trace")
            for name, allowed in RANGES.items():
                value = getattr(self, name)
                if not (name == "arrival_rate" and value is None):
                    allowed.check(value, f"serving.{name}")
        except InputError as e:
            raise ServingError(str(e)) from None
        slots = self.worlds * self.max_in_flight
        if slots > MAX_SLOTS:
            raise ServingError(f"serving.worlds x serving.max_in_flight: expected at most {MAX_SLOTS} slots, got "
                               f"{self.worlds} x {self.max_in_flight} = {slots}")

    @classmethod
    def from_dict(cls, d: dict | None) -> "Serving":
        """The `serving:` block of a config: unknown keys refused, the traces read now (a bad one fails here)."""
        c = parameters(cls, d, "serving", ServingError)
        if c.arrival_trace is not None:
            try:
                load_arrival_gaps(c.arrival_trace)
            except ContentionError as e:
                raise ServingError(f"serving.arrival_trace: {e}") from None
        if c.token_trace is not None:
            try:
                load_token_pairs(c.token_trace)
            except ServingError as e:
                raise ServingError(f"serving.token_trace: {e}") from None
        return c

    def as_dict(self) -> dict:
        return asdict(self)

    def hop(self, worlds: int) -> Contention:
        """The contention parameters of the network hop serving shares with that profile (its trap model)."""
        return Contention(max_in_flight=self.max_in_flight, worlds=worlds, trap_loss=self.trap_loss,
                          trap_max_attempts=self.trap_max_attempts, trap_surcharge_scale=self.trap_surcharge_scale,
                          warmup=self.warmup)


TOKEN_COLUMNS = (("ContextTokens", "GeneratedTokens"), ("Request tokens", "Response tokens"))


def load_token_pairs(path: str | Path) -> np.ndarray:
    """(R, 2) int64 (prompt, output) tokens of a request trace, cut to the context window.

    Azure LLM inference traces name them ContextTokens / GeneratedTokens, BurstGPT Request tokens /
    Response tokens. Counts are integers >= 0; a 0 (BurstGPT's failed requests) becomes 1."""
    p, df = read_trace(path, "token trace", ServingError)
    cols = next((pair for pair in TOKEN_COLUMNS if all(c in df.columns for c in pair)), None)
    if cols is None:
        raise ServingError(f"{p}: expected columns ContextTokens and GeneratedTokens (Azure) or 'Request tokens' and "
                           f"'Response tokens' (BurstGPT); columns are {list(df.columns)}")
    if len(df) == 0:
        raise ServingError(f"{p}: the token trace has no rows")
    out = []
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
        bad = ~(np.isfinite(values) & (values >= 0) & (values == np.floor(values)) & (values <= 1e9))
        if bad.any():
            row = int(np.argmax(bad))
            raise ServingError(f"{p}: line {row + 2}, field '{col}': expected a token count (an integer >= 0), "
                               f"got {df[col].iloc[row]!r}")
        out.append(values.astype(np.int64))
    return np.stack(out, 1)


def synthetic_tokens(u: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    """Tokens of the synthetic default at uniform draws `u`: the lognormal's quantiles, rounded."""
    return torch.exp(mu + sigma * torch.special.ndtri(u)).round().long()


def synthetic_pair(u_prompt: torch.Tensor, u_output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt, output) tokens of the synthetic default at uniform draws (`synthetic_tokens`)."""
    return synthetic_tokens(u_prompt, PROMPT_MU, PROMPT_SIGMA), synthetic_tokens(u_output, OUTPUT_MU, OUTPUT_SIGMA)


def cut_to_context(prompt: torch.Tensor, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(prompt, output) within the context window: prompt in [1, 4095], output in [1, 4096 - prompt]."""
    prompt = prompt.clamp(1, CONTEXT_TOKENS - 1)
    return prompt, torch.minimum(output.clamp_min(1), CONTEXT_TOKENS - prompt)


# ---------------------------------------------------------------------------------------------- engines
@functools.lru_cache(maxsize=1)
def gpu_class_perf() -> tuple[tuple[ServingCoefficients, int], ...]:
    """(coefficients, KV capacity in tokens) of every GPU class, read once from the fitted model."""
    model = load_perf_model()
    return tuple((model.get(*key), model.kv_capacity_tokens(*key)) for key in GPU_CLASSES)


class EnginePerf(NamedTuple):
    """Per-server (N,) coefficients of edgesim/serving_perf.py and KV capacity, for all servers at once.

    prefill ms = max(floor, p0 + p1 * T + p2 * Q + p3 * b), decode ms = d0 + d1 * b + d2 * K; a decode
    segment of constant batch b whose first iteration attends to K0 tokens grows K by b per iteration,
    so its i-th iteration (from 0) takes D + i * d2 * b with D = d0 + d1 * b + d2 * K0. Decode-side
    methods broadcast (G, N) state against the (N,) coefficients."""

    floor: torch.Tensor
    p0: torch.Tensor
    p1: torch.Tensor
    p2: torch.Tensor
    p3: torch.Tensor
    d0: torch.Tensor
    d1: torch.Tensor
    d2: torch.Tensor
    kv_capacity: torch.Tensor  # tokens (int64)
    max_batch: int
    gpu_class: torch.Tensor  # index into GPU_CLASSES

    def prefill_ms(self, s: torch.Tensor, tokens: torch.Tensor, squares: torch.Tensor,
                   prompts: torch.Tensor) -> torch.Tensor:
        """One prefill iteration on servers `s` of `prompts` prompts, `tokens` in all, `squares` their squares."""
        linear = take(self.p0, s) + take(self.p1, s) * tokens + take(self.p2, s) * squares + take(self.p3, s) * prompts
        return torch.maximum(linear, take(self.floor, s))

    def decode_ms(self, batch: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        """One decode iteration of `batch` sequences attending to `kv` cached tokens, (G, N)."""
        return self.d0 + self.d1 * batch + self.d2 * kv

    def span_ms(self, batch: torch.Tensor, kv0: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """k decode iterations of a constant batch, the first attending to kv0 tokens (serving_perf.decode_span_ms)."""
        return k * self.decode_ms(batch, kv0) + self.d2 * batch * k * (k - 1) / 2

    def _root(self, batch: torch.Tensor, kv0: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """The real k >= 0 with span_ms(k) = elapsed (>= 0): a*k^2 + b*k = elapsed, in the form that stays
        exact when d2 = 0."""
        a = self.d2 * batch / 2
        lin = self.decode_ms(batch, kv0) - a  # > 0: kv0 >= 2 * batch (a prompt token and the first token each)
        x = elapsed.clamp_min(0)
        return 2 * x / (lin + torch.sqrt(lin * lin + 4 * a * x))

    def iterations_within(self, batch: torch.Tensor, kv0: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """The most whole iterations that end by `elapsed` ms into the segment (a float tensor of integers)."""
        k = torch.floor(self._root(batch, kv0, elapsed))
        k = torch.where(self.span_ms(batch, kv0, k + 1) <= elapsed, k + 1, k)  # rounding of the root, either way
        return torch.where((k > 0) & (self.span_ms(batch, kv0, k) > elapsed), k - 1, k)

    def iterations_reaching(self, batch: torch.Tensor, kv0: torch.Tensor, elapsed: torch.Tensor) -> torch.Tensor:
        """The fewest whole iterations that end at or after `elapsed` ms into the segment: the boundary at
        which a request arriving then is admitted."""
        k = torch.ceil(self._root(batch, kv0, elapsed))
        k = torch.where(self.span_ms(batch, kv0, k) < elapsed, k + 1, k)
        return torch.where((k > 0) & (self.span_ms(batch, kv0, k - 1) >= elapsed), k - 1, k)

    def share_ms(self, s: torch.Tensor, prompt: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """w_s(p, o): a request's share of a saturated server: its prefill alone, and o decode iterations
        split max_batch ways, each of max_batch such requests halfway through their outputs."""
        mb = float(self.max_batch)
        decode = take(self.d0, s) + take(self.d1, s) * mb + take(self.d2, s) * mb * (prompt + output / 2)
        return self.prefill_ms(s, prompt, prompt * prompt, torch.ones_like(prompt)) + output * decode / mb


def server_gpu_classes(ds: Dataset) -> np.ndarray:
    """(N,) index into GPU_CLASSES of every server: the dataset's GPUClass column where its servers.csv has
    one, else the tercile of the server's NormalizedCompute over the loaded servers (`tercile_classes`)."""
    return ds.gpu_class if ds.gpu_class is not None else tercile_classes(ds.nc)


def builtin_perf(classes: torch.Tensor, max_batch: int, dtype: torch.dtype = torch.float64) -> EnginePerf:
    """Every server's engine from its GPU class (`classes`, (N,) indices into GPU_CLASSES, on the device)."""
    cls = classes.long()
    perf = gpu_class_perf()
    names = [f.name for f in fields(ServingCoefficients)]
    table = torch.tensor([[getattr(c, n) for n in names] for c, _ in perf], dtype=dtype, device=cls.device)[cls]
    kv = torch.tensor([capacity for _, capacity in perf], dtype=torch.long, device=cls.device)[cls]
    coefficients = dict(zip(names, table.unbind(1)))
    return EnginePerf(**coefficients, kv_capacity=kv, max_batch=max_batch, gpu_class=cls)


def solo_latency_bound(sim: ServingSimulator, episodes: pd.DataFrame) -> float:
    """A bound, not a scheduler: a lower bound (ms) on the mean episode latency any scheduler can reach on
    the measured `episodes` (an `evaluate` table of this simulator, after its run), from the same perf
    model. Each request runs alone on the valid server where it finishes fastest, with its true output
    length o: min over valid s of prefill_s(p) + o - 1 decode iterations of batch 1 attending to p + 1
    cached tokens, summed over the workflow's steps.

    It reads the output lengths (`token_pairs`, bound-only), which no scheduler may. It is a bound because
    every part of a request's latency is at least this: network and queueing add time, a prefill shared
    with other prompts takes longer (prefill grows with the batch's tokens and squares), a decode
    iteration of b >= 1 requests takes d(b) >= d(1), and other prefills only pause decodes. Token pairs
    are keyed by (world, arrival index, step), the same for every scheduler of one seed, so the bound is
    one number for all of them."""
    dev, T, perf = sim.device, sim.tasks, sim.perf
    ids = torch.tensor(episodes["episode"].tolist(), dtype=torch.long, device=dev) + sim.warmup_episodes
    row = {tid: i for i, tid in enumerate(T.ids)}
    task = torch.tensor([row[t] for t in episodes["task_id"]], dtype=torch.long, device=dev)
    world, arrival = ids % sim.batch_size, ids // sim.batch_size
    servers = torch.arange(sim.n_servers, device=dev)[None]
    total = torch.zeros(len(ids), dtype=sim.dtype, device=dev)
    for k in range(int(T.n_steps[task].max())):
        live = k < T.n_steps[task]
        prompt, output = sim.token_pairs(world, arrival, torch.full_like(ids, k))
        p, o = prompt.to(sim.dtype)[:, None], output.to(sim.dtype)[:, None]
        one = torch.ones_like(p)
        solo = perf.prefill_ms(servers, p, p * p, one) + perf.span_ms(one, p + 1, o - 1)  # prompt + first token
        valid = sim.net.valid[T.types[task, k].clamp_min(0)]
        total += torch.where(live, solo.masked_fill(~valid, torch.inf).amin(1), 0.0)
    return float(total.mean())


# ---------------------------------------------------------------------------------------------- simulator
INF = math.inf


class ServingSimulator(ContentionSimulator):
    """B worlds of the serving profile; each `step` makes one decision per world and returns the
    requests that completed meanwhile (module docstring)."""

    def __init__(self, dataset: Dataset, batch_size: int = 1, split: str = "train", order: str = "random",
                 seed: int = 0, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float64,
                 task_subset=None, serving: Serving | None = None, profile: Profile | None = None):
        batch_size, seed, device = simulator_args(dataset, batch_size, split, order, seed, device)
        if serving is not None and not isinstance(serving, Serving):
            raise ServingError(f"serving: expected a Serving (or None: the defaults), got {serving!r}")
        self.serving = self.params = c = serving or Serving()
        if batch_size * c.max_in_flight > MAX_SLOTS:
            raise ServingError(f"batch_size x serving.max_in_flight: expected at most {MAX_SLOTS} workflows in "
                               f"flight, got {batch_size} x {c.max_in_flight} = {batch_size * c.max_in_flight}")
        self.contention = c.hop(batch_size)  # ContentionSimulator._trap_and_link reads the trap parameters here
        self._gap_trace = None if c.arrival_trace is None else torch.tensor(
            load_arrival_gaps(c.arrival_trace), dtype=dtype, device=device)
        self._token_pairs = None if c.token_trace is None else torch.tensor(
            load_token_pairs(c.token_trace), dtype=torch.long, device=device)
        self.warmup_episodes = c.warmup * batch_size
        Simulator.__init__(self, dataset, batch_size, split, order, seed, device, profile or SERVING, dtype, True,
                           task_subset)

    # ------------------------------------------------------------------ random quantities
    def _gap_us(self, world: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Inter-arrival gap before arrival `index` of `world`, in whole microseconds (sums are exact)."""
        mean_us = 1e6 / self.rate_per_s
        if self._gap_trace is None:
            gap = -torch.log1p(-self._u(world, index, 0, GAP)) * mean_us
        else:
            n = len(self._gap_trace)
            start = (self._u(world, 0, 0, TRACE_START) * n).long()
            gap = take(self._gap_trace, (start + index) % n) * mean_us
        return gap.round().long()

    def _deal_for(self, world: torch.Tensor, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(episode, task) of arrival `index` of `world`: episode index * G + world, in every scheduler's run, and
        its task as the contention profile deals it (`ContentionSimulator._deal`)."""
        episode = index * self.batch_size + world
        return episode, self._deal(episode)

    def _token_purposes(self) -> tuple[int, ...]:
        """The draws a workflow step's token pair is made of: (prompt, output) uniforms, or the trace row's."""
        return (PROMPT, OUTPUT) if self._token_pairs is None else (TOKEN_ROW,)

    def _tokens_at(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt, output) tokens, cut to the context window, from the `_token_purposes` draws (last dim)."""
        if self._token_pairs is None:
            prompt, output = synthetic_pair(u[..., 0], u[..., 1])
        else:
            row = (u[..., 0] * len(self._token_pairs)).long()
            pair = self._token_pairs.index_select(0, row.clamp_max(len(self._token_pairs) - 1))
            prompt, output = pair[:, 0], pair[:, 1]
        return cut_to_context(prompt, output)

    def token_pairs(self, world: torch.Tensor, index: torch.Tensor, step: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompt, output) tokens of a workflow step, cut to the context window. Bound-only: the output
        length is what a scheduler must not see; only the simulator and bounds call this."""
        purposes = torch.tensor(self._token_purposes(), device=self.device)
        return self._tokens_at(self._u(world[:, None], index[:, None], step[:, None], purposes))

    def _point(self, active: torch.Tensor) -> None:
        super()._point(active)
        self._decision_draws: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._live: dict[str, torch.Tensor] = {}  # the live state at these decisions (`_once`)

    def _draws(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The active decisions' (B, 4) network uniforms and their (B,) prompt and hidden output tokens: one
        hash of (seed, world, arrival index, step) for every purpose, made once per decision although the
        router (`decision_prompt`), the hop and the engine each read it."""
        if self._decision_draws is None:
            j = self.active
            purposes = torch.tensor((*range(NETWORK, NETWORK + P.UNIFORMS_PER_STEP), *self._token_purposes()),
                                    device=self.device)
            u = self._u(take(self.slot_world, j)[:, None], take(self.slot_index, j)[:, None], self.step_idx[:, None],
                        purposes)
            self._decision_draws = (u[:, :P.UNIFORMS_PER_STEP], *self._tokens_at(u[:, P.UNIFORMS_PER_STEP:]))
        return self._decision_draws

    def _capacity_per_s(self) -> float:
        """Workflows per second one world's servers finish at saturation, each request on a server hosting
        its model type (module docstring, `edgesim.capacity`)."""
        if self._token_pairs is None:  # a fixed sample, the same for every seed: a load is one rate
            i = torch.arange(TOKEN_SAMPLE, device=self.device)
            u = [crn_uniform(0, i, draw_key(0, 0, purpose), dtype=self.dtype) for purpose in (PROMPT, OUTPUT)]
            prompt, output = cut_to_context(*synthetic_pair(*u))
        else:
            prompt, output = cut_to_context(self._token_pairs[:, 0], self._token_pairs[:, 1])
        pf, of = prompt.to(self.dtype), output.to(self.dtype)
        servers = torch.arange(self.n_servers, device=self.device)
        w = self.perf.share_ms(servers[:, None], pf[None, :], of[None, :]).mean(1)  # (N,) mean share per server
        types = self.tasks.types
        demand = torch.stack([(types == t).sum(1).to(self.dtype).mean() for t in range(self.net.valid.shape[0])])
        self.mean_steps = float(demand.sum())
        try:
            return saturation_rate(self.net.valid.cpu().numpy(), (1000.0 / w).cpu().numpy(), demand.cpu().numpy())
        except CapacityError as e:
            raise ServingError(str(e)) from None

    # ------------------------------------------------------------------ state
    def reset(self, seed: int | None = None) -> Observation:
        if seed is not None:
            self.seed_streams(seed)
        G, W, N, dev, dt = self.batch_size, self.serving.max_in_flight, self.n_servers, self.device, self.dtype
        c = self.serving
        classes = torch.tensor(server_gpu_classes(self.dataset), device=dev)
        self.perf = builtin_perf(classes, c.max_batch, dt)
        if bool((self.perf.kv_capacity < CONTEXT_TOKENS).any()):  # a request that can never fit would block its queue
            raise ServingError(f"engine KV capacity: expected at least {CONTEXT_TOKENS} tokens (one full context) on "
                               f"every server, got {int(self.perf.kv_capacity.min())}")
        self.valid_server = self.net.valid.any(0)
        self.n_valid = int(self.valid_server.sum())
        self.capacity_per_s = self._capacity_per_s()
        self.rate_per_s = c.arrival_rate if c.arrival_rate is not None else c.load * self.capacity_per_s
        self.rows = torch.arange(G, device=dev)
        self.slot_world = torch.arange(G * W, device=dev) // W
        index = torch.arange(W, device=dev).expand(G, W)
        arrival_us = torch.cumsum(self._gap_us(self.rows[:, None], index), 1)
        self.next_index = torch.full((G,), W, dtype=torch.long, device=dev)
        self.next_arrival_us = arrival_us[:, -1] + self._gap_us(self.rows, self.next_index)
        self.measure_start = torch.full((G,), INF, dtype=dt, device=dev)
        if c.warmup < W:
            self.measure_start = arrival_us[:, c.warmup].to(dt) / 1000.0
        # the time-weighted statistics start there too, or, where the first measured arrival is dealt late (it
        # waited for a slot), when it is dealt: the state before was not tracked as measured
        self.stats_start = self.measure_start.clone()
        self.slot_index = index.reshape(-1).clone()
        episode, task = self._deal_for(self.slot_world, self.slot_index)
        self.slot_int = [episode, task, torch.zeros_like(episode), torch.full_like(episode, -1)]
        self.slot_now = arrival_us.reshape(-1).to(dt) / 1000.0
        self.slot_arrival = self.slot_now.clone()  # the workflow's arrival
        self.slot_admit = torch.zeros(G * W, dtype=dt, device=dev)
        self.slot_phase = torch.full((G * W,), PENDING, dtype=torch.long, device=dev)
        self.slot_server = torch.full((G * W,), -1, dtype=torch.long, device=dev)
        self.slot_qseq = torch.zeros(G * W, dtype=torch.long, device=dev)
        self.slot_prompt = torch.zeros(G * W, dtype=torch.long, device=dev)
        self.slot_generated = torch.zeros(G * W, dtype=torch.long, device=dev)
        self.slot_prefilling = torch.zeros(G * W, dtype=torch.bool, device=dev)
        self.slot_prefills = torch.zeros(G * W, dtype=torch.long, device=dev)
        self.hidden_output = torch.zeros(G * W, dtype=torch.long, device=dev)
        self.hidden_remaining = torch.zeros(G * W, dtype=torch.long, device=dev)
        self.slot_time = {k: torch.zeros(G * W, dtype=dt, device=dev)
                          for k in ("t0", "arrive", "admit", "first", "channel", "trap_ms", "link_ms", "cost")}
        self.slot_flag = {k: torch.zeros(G * W, dtype=torch.bool, device=dev) for k in ("switch", "trap_hit", "fallback")}
        self.srv_batch = torch.zeros((G, N), dtype=torch.long, device=dev)
        self.srv_kv = torch.zeros((G, N), dtype=torch.long, device=dev)
        # cached tokens of the decoding requests at their segment's start, and the tokens the running prefill
        # adds to them when it ends (prompts and first tokens): kept up to date at every event rather than
        # summed from the slots each time
        self.srv_seg_kv = torch.zeros((G, N), dtype=torch.long, device=dev)
        self.srv_prefill_tokens = torch.zeros((G, N), dtype=torch.long, device=dev)
        # prompt tokens of the running prefill, and of the queue with their squares: what the live inputs sum
        self.srv_prefill_prompts = torch.zeros((G, N), dtype=torch.long, device=dev)
        self.srv_queued_tokens = torch.zeros((G, N), dtype=torch.long, device=dev)
        self.srv_queued_squares = torch.zeros((G, N), dtype=torch.long, device=dev)
        self.srv_queue = torch.zeros((G, N), dtype=torch.long, device=dev)
        self.srv_prefill = torch.zeros((G, N), dtype=torch.bool, device=dev)
        self.srv_pend = torch.zeros((G, N), dtype=dt, device=dev)
        self.srv_seg = torch.zeros((G, N), dtype=dt, device=dev)
        self.qcount = torch.zeros(G, dtype=torch.long, device=dev)
        self.world_clock = torch.zeros(G, dtype=dt, device=dev)  # each world's latest event or decision
        self.stats_end = torch.full((G,), INF, dtype=dt, device=dev)  # where `freeze_stats` ended the measured period
        self.cell_clock = torch.zeros(G * N, dtype=dt, device=dev)  # each server's state integrated up to here
        self.history = torch.full((G, N), self.net.initial_history_ms, dtype=dt, device=dev)
        self._stats = {k: torch.zeros(G, dtype=dt, device=dev)
                       for k in ("busy", "batch", "kv", "queue", "work", "wait", "admitted", "served", "slo")}
        self.events = self.rounds = 0  # events processed, and the rounds that took them (`_advance`)
        self._rebuild_events()
        self._activate()
        return self.observe()

    @property
    def finishes_per_step(self) -> int:
        return self.batch_size * self.serving.max_in_flight

    def measured_bounds(self, episodes: pd.DataFrame) -> dict[str, float]:
        """`latency_lower_bound_ms`: the solo bound (`solo_latency_bound`), the same for every policy since
        the episodes and token pairs are common random numbers."""
        return {"latency_lower_bound_ms": solo_latency_bound(self, episodes)}

    # ------------------------------------------------------------------ worlds that run on across epochs
    WORLD_KEYS = ("next_index", "next_arrival_us", "measure_start", "stats_start", "slot_index", "slot_now",
                  "slot_arrival", "slot_admit", "slot_phase", "slot_server", "slot_qseq", "slot_prompt",
                  "slot_generated", "slot_prefilling", "slot_prefills", "hidden_output", "hidden_remaining",
                  "srv_batch", "srv_kv", "srv_seg_kv", "srv_prefill_tokens", "srv_prefill_prompts",
                  "srv_queued_tokens", "srv_queued_squares", "srv_queue", "srv_prefill", "srv_pend", "srv_seg",
                  "qcount", "world_clock", "cell_clock", "history")
    WORLD_DICTS = ("slot_time", "slot_flag", "_stats")
    MAY_BE_INF = ("measure_start", "stats_start")  # inf until a world's first measured workflow arrives

    def reseed(self, seed: int) -> Observation:
        """Re-seed the draws of what has not happened yet (arrivals, tasks, token counts, network draws of
        decisions still to come) and go on from the worlds' current state: training runs the engines on from
        one epoch to the next, loaded, with no warm-up per epoch (`ContentionSimulator.reseed`)."""
        self.seed_streams(seed)
        return self.observe()

    def every_slot(self) -> NoReturn:
        raise NotImplementedError("the serving profile shows no view of every slot: a continuing rollout carries "
                                  "each workflow's last decision into the next epoch instead (schedkit.rollout)")

    def load_world_state(self, state: dict[str, torch.Tensor]) -> None:
        """Continue from `world_state()` (`ContentionSimulator.load_world_state`; a state whose engines disagree
        with their requests, a damaged or hand-edited checkpoint, is refused), then each server's next event."""
        super().load_world_state(state)
        self._rebuild_events()

    def _world_problem(self, state: dict[str, torch.Tensor]) -> str | None:
        """The contention profile's checks (`ContentionSimulator._world_problem`), then: phases, servers and
        token counts out of range, or engine totals (queue, running batch, reserved KV) that differ from the
        requests in their slots."""
        problem = super()._world_problem(state)
        if problem is not None:
            return problem
        N = self.n_servers
        phase, server = state["slot_phase"], state["slot_server"]
        if bool(((phase < PENDING) | (phase > RUNNING)).any()):
            return "slot_phase holds phases outside [0, 3]"
        engaged = phase != PENDING
        if bool(((server < 0) | (server >= N))[engaged].any()):
            return f"slot_server holds servers outside [0, {N})"
        prompt, output = state["slot_prompt"], state["hidden_output"]
        if bool(((prompt < 1) | (output < 1) | (prompt + output > CONTEXT_TOKENS))[engaged].any()):
            return f"a request's prompt and output tokens lie outside the {CONTEXT_TOKENS}-token context window"
        remaining, generated = state["hidden_remaining"], state["slot_generated"]
        if bool(((remaining < 0) | (generated < 0) | (generated + remaining > output))[engaged].any()):
            return "a request's generated and remaining tokens do not add up to at most its output"
        G = self.batch_size
        cell = (torch.arange(G * self.serving.max_in_flight, device=self.device) // self.serving.max_in_flight) * N \
            + server.clamp(0, N - 1)

        def per_cell(mask: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
            return torch.zeros(G * N, dtype=torch.long, device=self.device).index_add_(
                0, cell[mask], value[mask]).view(G, N)

        running, queued = phase == RUNNING, phase == QUEUED
        one = torch.ones_like(prompt)
        for key, total in (("srv_queue", per_cell(queued, one)), ("srv_queued_tokens", per_cell(queued, prompt)),
                           ("srv_batch", per_cell(running, one)), ("srv_kv", per_cell(running, prompt + output))):
            if not torch.equal(state[key], total):
                return f"{key} differs from the requests in the slots"
        if bool((state["srv_kv"] > self.perf.kv_capacity).any() | (state["srv_batch"] > self.perf.max_batch).any()):
            return "an engine holds more KV tokens or requests than it can"
        return None

    def _activate(self) -> None:
        """Point the row views at each world's earliest pending decision (ties: the lowest slot)."""
        W = self.serving.max_in_flight
        pending = torch.where(self.slot_phase == PENDING, self.slot_now, INF).view(-1, W)
        self._point(self.rows * W + pending.argmin(1))

    # ------------------------------------------------------------------ live inputs (B, N), non-clairvoyant
    def _once(self, name: str, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """A copy of the live quantity `name` at the current decisions, computed on the first call: the state it
        reads changes only when the rows move to their next decisions (`_point`), and every policy deciding
        them (several, side by side) asks for the same."""
        if name not in self._live:
            self._live[name] = compute()
        return self._live[name].clone()

    def queue_length(self) -> torch.Tensor:
        """Requests waiting in each server's queue."""
        return self.srv_queue.clone()

    def running_batch(self) -> torch.Tensor:
        """Requests admitted and not yet completed (prefilling or decoding) on each server."""
        return self.srv_batch.clone()

    def _segment_kv(self) -> torch.Tensor:
        """(G, N) KV tokens the first decode iteration of each server's segment attends to: prompt plus tokens
        generated so far of its decoding requests (their counts are those of the segment's start)."""
        return self.srv_seg_kv.to(self.dtype)

    def _iterations_in_segment(self) -> torch.Tensor:
        """(G, N) decode iterations each decoding server has finished since its segment began, at `now`."""
        decoding = ~self.srv_prefill & (self.srv_batch > 0)
        elapsed = self.now[:, None] - self.srv_seg
        return torch.where(decoding, self.perf.iterations_within(self.srv_batch, self._segment_kv(), elapsed), 0.0)

    def free_kv_tokens(self) -> torch.Tensor:
        """KV tokens not in use now: capacity minus the prompts and the tokens generated so far of the
        running requests. (Admission also holds back the unknown rest of their outputs.)"""
        return self._once("free_kv_tokens", lambda: self.perf.kv_capacity.to(self.dtype) - (
            (self.srv_seg_kv + self._prefill_prompts()).to(self.dtype) + self.srv_batch * self._iterations_in_segment()))

    def outstanding_tokens(self) -> torch.Tensor:
        """Prompt tokens each server still has to prefill (queued, or in the running prefill)."""
        return (self.srv_queued_tokens + self._prefill_prompts()).to(self.dtype)

    def _prefill_prompts(self) -> torch.Tensor:
        """(G, N) prompt tokens of each server's running prefill (0: none). With the decoding requests' cached
        tokens at their segment's start (`srv_seg_kv`), the tokens the running requests hold now."""
        return torch.where(self.srv_prefill, self.srv_prefill_prompts, 0)

    def server_load(self) -> torch.Tensor:
        """(B, N) expected wait (ms) before a request arriving now would start its prefill, from known
        work only: the rest of a running prefill, the rest of the current decode iteration, and one
        prefill of every queued prompt. KV and batch blocking depend on hidden output lengths and are
        left out, so this is a lower estimate."""
        return self._once("server_load", self._server_load)

    def _server_load(self) -> torch.Tensor:
        now = self.now[:, None]
        tokens, squares = self.srv_queued_tokens.to(self.dtype), self.srv_queued_squares.to(self.dtype)
        s = torch.arange(self.n_servers, device=self.device).expand(self.batch_size, -1).reshape(-1)
        prompts = self.srv_queue.to(self.dtype).view(-1)
        queue_ms = torch.where(self.srv_queue > 0, self.perf.prefill_ms(s, tokens.view(-1), squares.view(-1), prompts)
                               .view(self.batch_size, -1), 0.0)
        decoding = ~self.srv_prefill & (self.srv_batch > 0)
        elapsed = (now - self.srv_seg).clamp_min(0)
        kv0 = self._segment_kv()
        done = self.perf.iterations_within(self.srv_batch, kv0, elapsed)
        iteration_ms = torch.where(decoding, self.perf.span_ms(self.srv_batch, kv0, done + 1) - elapsed, 0.0)
        prefill_ms = torch.where(self.srv_prefill, (self.srv_pend - now).clamp_min(0), 0.0)
        return prefill_ms + iteration_ms + queue_ms

    def queue_wait(self, servers: torch.Tensor) -> torch.Tensor:
        return self.server_load().gather(1, servers)

    def live_inputs(self, servers: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, 5) or (B, K, 5) at `servers`: the profile's `live_inputs`, from known state only (no hidden
        output length enters): the expected wait in ms (`server_load`), log(1 + queued requests), running
        batch / max_batch, free KV tokens / KV capacity, log(1 + outstanding prompt tokens / 4,096) (the
        context window). Batch and KV lie in [0, 1]; the logs keep long queues on the scale of short ones."""
        x = self._once("live_inputs", lambda: torch.stack([
            self.server_load(),
            torch.log1p(self.queue_length().to(self.dtype)),
            self.running_batch().to(self.dtype) / self.perf.max_batch,
            self.free_kv_tokens() / self.perf.kv_capacity.to(self.dtype),
            torch.log1p(self.outstanding_tokens() / CONTEXT_TOKENS),
        ], -1))
        return x if servers is None else x.gather(1, servers[..., None].expand(-1, -1, x.shape[-1]))

    def busy_until(self, servers: torch.Tensor) -> torch.Tensor:
        return self.now[:, None] + self.queue_wait(servers)

    def engine_snapshot(self) -> torch.Tensor:
        """(G, 4) each world at its next decision: its clock (ms), then over its valid servers the mean running
        batch, the mean KV occupancy (reserved tokens / capacity, as `serving_stats` integrates it) and the
        requests queued. What an evaluation's timeline samples (schedkit.evaluation `run_evaluation`)."""
        valid = self.valid_server[None, :]
        kv = torch.where(valid, self.srv_kv.to(self.dtype) / self.perf.kv_capacity.to(self.dtype), 0.0)
        batch = torch.where(valid, self.srv_batch, 0).sum(1).to(self.dtype) / self.n_valid
        return torch.stack([self.now, batch, kv.sum(1) / self.n_valid,
                            torch.where(valid, self.srv_queue, 0).sum(1).to(self.dtype)], 1)

    def hidden_reserved_kv(self) -> torch.Tensor:
        """(B, N) KV tokens reserved by admission (prompt + full output): bound-only, it sums hidden lengths."""
        return self.srv_kv.clone()

    def freeze_stats(self, worlds: torch.Tensor) -> None:
        """End the measured period of `worlds` ((G,) bool) at their clocks, their next decisions: what they
        do afterwards no longer enters `serving_stats`. An evaluation whose rows hold several seeds' worlds
        freezes each seed's when its measured workflows have finished, where that seed's own run would stop
        (schedkit.evaluation `run_evaluation`), so its statistics are those of its own run."""
        self.stats_end = torch.where(worlds, torch.minimum(self.stats_end, self.world_clock), self.stats_end)

    def serving_stats(self, worlds: torch.Tensor | None = None) -> dict[str, float]:
        """Measured-period summary over `worlds` ((G,) bool; None: every world) (module docstring): utilisation,
        busy share, mean running batch, KV occupancy, queue length (time-weighted, per valid server), queue wait
        and SLO attainment."""
        self._integrate_to_clock(torch.arange(self.batch_size * self.n_servers, device=self.device))
        mine = torch.ones(self.batch_size, dtype=torch.bool, device=self.device) if worlds is None else worlds
        s = {k: float(v[mine].sum()) for k, v in self._stats.items()}
        end = torch.minimum(self.world_clock, self.stats_end)
        s["time"] = float((end - self.stats_start).clamp_min(0)[mine].sum())  # each world's measured period
        server_time = self.n_valid * s["time"]
        ratio = lambda a, b: a / b if b > 0 else math.nan  # noqa: E731
        capacity = s["time"] / 1000.0 * self.capacity_per_s * self.mean_steps  # requests the period could serve
        return {"utilisation": ratio(s["work"], capacity), "busy_share": ratio(s["busy"], server_time),
                "mean_running_batch": ratio(s["batch"], s["busy"]), "kv_occupancy": ratio(s["kv"], server_time),
                "mean_queue_length": ratio(s["queue"], server_time), "mean_queue_wait_ms": ratio(s["wait"], s["admitted"]),
                "slo_attainment": ratio(s["slo"], s["served"]), "served": s["served"], "measured_ms": s["time"],
                "arrival_rate_per_s": self.rate_per_s, "capacity_per_s": self.capacity_per_s}

    # ------------------------------------------------------------------ dynamics
    def network_uniforms(self) -> torch.Tensor:
        """(B, 4) the active decisions' network draws, from (seed, world, arrival index, step)."""
        return self._draws()[0]

    def step(self, actions: torch.Tensor, uniforms: torch.Tensor | None = None):
        a, u = self._checked(actions, self.network_uniforms() if uniforms is None else uniforms)
        h = self._hop(a, u)
        j = self.active
        _, prompt, output = self._draws()
        network = h["channel"] + h["trap_ms"] + h["link_ms"]
        self.slot_phase.index_fill_(0, j, TRAVEL)
        self.slot_server.index_copy_(0, j, h["server"])
        self.slot_prompt.index_copy_(0, j, prompt)
        self.hidden_output.index_copy_(0, j, output)
        self.hidden_remaining.index_copy_(0, j, output - 1)
        self.slot_generated.index_fill_(0, j, 0)
        for key, value in (("t0", self.now), ("arrive", self.now + network), ("channel", h["channel"]),
                           ("trap_ms", h["trap_ms"]), ("link_ms", h["link_ms"]), ("cost", h["cost"])):
            self.slot_time[key].index_copy_(0, j, value)
        for key, flag in (("switch", h["switch"]), ("trap_hit", h["trap_hit"]), ("fallback", ~h["valid"])):
            self.slot_flag[key].index_copy_(0, j, flag)
        done_rows = self._advance()
        self._activate()
        return (self.observe(), *done_rows)

    def _advance(self) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Process every world's events up to its next pending decision; the completed requests' rows.

        Servers of one world interact only through decisions: a completion opens the workflow's next
        decision, and a decision's request reaches its server later. So each round takes, on every
        server at once, its next event (an arrival, a prefill's end, decode iterations up to a
        completion or an admission), up to the world's horizon: its next decision, or the earliest time
        at which any of its requests could complete (`_cell_events`). Events before the horizon cannot
        change what another server does before it, so the rounds give the order of one event at a time.
        A round reads only the slots of the servers it moves: no request enters an engine during the
        advance, so the engine's slots are sorted by server once (`_by_cell`), and each server's
        fewest remaining decode iterations is kept up to date as its events change it (`_r_min`)."""
        G, W, N = self.batch_size, self.serving.max_in_flight, self.n_servers
        rows: list[dict[str, torch.Tensor]] = []
        self._t_dec = torch.where(self.slot_phase == PENDING, self.slot_now, INF).view(G, W).min(1).values
        self._index_engine()
        decided = self.active
        self._store_events(torch.unique(self.slot_world.index_select(0, decided) * N
                                        + self.slot_server.index_select(0, decided)))
        # only cells whose next event comes before their world's next decision can move in this advance: the
        # horizon never passes that decision, a cell's soonest completion never precedes its next event, and only
        # the cells that move change (their events are recomputed as they do)
        # (a cell without a request in its engine has no event: only the engine's cells are compared, in order;
        # capped at the latest finite time, the limit leaves out a world with no pending decision)
        latest = torch.finfo(self.dtype).max
        occupied = torch.unique_consecutive(self._cell_of)
        cells = occupied[self._events[0].index_select(0, occupied)
                         <= self._t_dec.clamp_max(latest).index_select(0, occupied // N)]
        events = tuple(x.index_select(0, cells) for x in self._events)
        world = cells // N
        while True:
            t, _, _, soonest = events
            horizon = self._t_dec.scatter_reduce(0, world, soonest, "amin").clamp_max_(latest)
            moved = (t <= horizon.index_select(0, world)).nonzero()[:, 0]
            if not len(moved):
                break
            c = cells.index_select(0, moved)
            t, k, arriving = (x.index_select(0, moved) for x in events[:3])
            self._integrate(c, t)
            self.events += len(c)
            self.rounds += 1
            arrival = arriving >= 0
            if bool(arrival.any()):
                self._arrive(arriving[arrival])
            serve = ~arrival
            if bool(serve.any()):
                done = self._serve(c[serve], t[serve], k[serve])
                if done is not None:
                    rows.append(done)
            for x, fresh in zip(events, self._store_events(c)):
                x.index_copy_(0, moved, fresh)
        self.world_clock = torch.where(torch.isfinite(self._t_dec), torch.maximum(self.world_clock, self._t_dec),
                                       self.world_clock)
        keys = rows[0].keys() if rows else self._empty_row().keys()
        info = {k: torch.cat([r[k] for r in rows]) if rows else self._empty_row()[k] for k in keys}
        return self.reward(info), info["done"], info

    def _index_engine(self) -> None:
        """Sort the engine's slots (those not awaiting a decision) by (cell, slot) into `_by_cell` / `_cell_of`, and
        each cell's fewest remaining decode iterations into `_r_min`: no request enters an engine during an advance,
        so a round reads the slots of the cells it moves from this one sort (`_slots_at`)."""
        N = self.n_servers
        engine = (self.slot_phase != PENDING).nonzero()[:, 0]
        cell = self.slot_world.index_select(0, engine) * N + self.slot_server.index_select(0, engine)
        order = torch.argsort(cell, stable=True)
        self._by_cell, self._cell_of = engine[order], cell[order]
        phase = self.slot_phase.index_select(0, self._by_cell)
        decoding = (phase == RUNNING) & ~self.slot_prefilling.index_select(0, self._by_cell)
        # in place, in a buffer made once: a fresh G x N tensor and the out-of-place form's copies of it cost about
        # a tenth of a step at 4096 worlds
        self._r_min.fill_(INF).scatter_reduce_(
            0, self._cell_of[decoding], self.hidden_remaining.index_select(0, self._by_cell)[decoding].to(self.dtype),
            "amin")

    def _store_events(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The next events of cells `c` (`_cell_events`), kept in `_events` (one entry per cell of every world):
        a cell's next event depends on its own state alone, which changes only when it moves or a decision
        sends it a request, so the entries of the others stay right from one advance to the next."""
        fresh = self._cell_events(c)
        for x, value in zip(self._events, fresh):
            x.index_copy_(0, c, value)
        return fresh

    def _rebuild_events(self) -> None:
        """`_events` of every cell from the state: none where no request is travelling, queued or running."""
        G, N, dev = self.batch_size, self.n_servers, self.device
        self._events = (torch.full((G * N,), INF, dtype=self.dtype, device=dev),
                        torch.zeros(G * N, dtype=self.dtype, device=dev),
                        torch.full((G * N,), -1, dtype=torch.long, device=dev),
                        torch.full((G * N,), INF, dtype=self.dtype, device=dev))
        self._r_min = torch.empty(G * N, dtype=self.dtype, device=dev)
        self._index_engine()
        self._store_events(torch.unique(self._cell_of))

    def reward(self, info: dict[str, torch.Tensor]) -> torch.Tensor:
        """(K, 3) reward of completed requests (rL, rC, rS): the paper's cost and switch terms; the latency
        term is scored against the request's own SLO budget, budget = slo_ttft + (o - 1) x slo_tpot (what its
        objectives allow it), rL = -REWARD_SCALE x (0.5 x min(latency / (2 x budget), 1) + 0.5 x missed SLO).
        The paper's 5,000 ms latency scale would saturate on LLM requests that take seconds each."""
        r_latency = self.latency_reward(info["latency"], info["output_tokens"].to(self.dtype), info["ttft_ms"],
                                        info["tpot_ms"])
        return torch.stack([r_latency, P.cost_reward(info["cost"]), P.SWITCH_REWARD * info["switch"].to(self.dtype)], -1)

    def latency_reward(self, latency: torch.Tensor, output_tokens: torch.Tensor | float, ttft: torch.Tensor,
                       tpot: torch.Tensor) -> torch.Tensor:
        """The reward's latency term (`reward`) of requests of `output_tokens` tokens out, from their latency,
        TTFT and TPOT (ms): what the tables report, and what the planners score with expected values."""
        s = self.serving
        budget = s.slo_ttft_ms + (output_tokens - 1) * s.slo_tpot_ms
        missed = (ttft > s.slo_ttft_ms) | (tpot > s.slo_tpot_ms)
        return -P.REWARD_SCALE * (0.5 * (latency / (2 * budget)).clamp(0.0, 1.0) + 0.5 * missed.to(self.dtype))

    def _empty_row(self) -> dict[str, torch.Tensor]:
        e = torch.zeros(0, dtype=self.dtype, device=self.device)
        i = torch.zeros(0, dtype=torch.long, device=self.device)
        b = torch.zeros(0, dtype=torch.bool, device=self.device)
        return {**{k: e for k in ("latency", "network_ms", "channel_ms", "trap_ms", "link_ms", "compute_ms", "queue_ms",
                                  "admission_ms", "ttft_ms", "tpot_ms", "cost", "switch_penalty_ms", "end_ms",
                                  "arrival_ms")},
                **{k: i for k in ("episode", "step", "task", "server", "world", "arrival_index", "prompt_tokens",
                                  "output_tokens", "decode_iterations", "prefills")},
                **{k: b for k in ("switch", "trap_hit", "fallback", "done")}}

    def _cell_events(self, c: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """For cells `c` (world x N + server, ascending, unique): each one's next event's time (INF: none),
        the decode iterations until it (decoding servers), the travelling slot that arrives then (-1: an engine
        event; an arrival goes first on a tie), and the soonest time at which any request there could complete.

        That bound: a prefill's end (a request of one output token completes there); a decoding batch's
        fewest remaining iterations, were nothing admitted (an admission pauses and slows the batch); an
        admission or an arrival plus the server's prefill floor (the least a prefill takes). The arithmetic
        runs on these cells alone, elementwise, and reads only their slots (`_slots_at`)."""
        N = self.n_servers
        dev, dt = self.device, self.dtype
        queue, batch_all = self.srv_queue.view(-1), self.srv_batch.view(-1)
        n = len(c)
        s = c % N
        h, p = self._slots_at(c)
        phase = self.slot_phase.index_select(0, h)
        travelling = phase == TRAVEL
        trav, t_pos = h[travelling], p[travelling]
        t_trav = self.slot_time["arrive"].index_select(0, trav)
        t_arr = torch.full((n,), INF, dtype=dt, device=dev).scatter_reduce_(0, t_pos, t_trav, "amin")
        first = t_trav == t_arr.index_select(0, t_pos)
        arriving = torch.full((n,), torch.iinfo(torch.long).max, dtype=torch.long, device=dev).scatter_reduce_(
            0, t_pos[first], trav[first], "amin")
        queued = phase == QUEUED
        q, q_pos = h[queued], p[queued]
        batch = batch_all.index_select(0, c)
        r_min = self._r_min.index_select(0, c)
        seg = self.srv_seg.view(-1).index_select(0, c)
        kv0 = self.srv_seg_kv.view(-1).index_select(0, c).to(dt)
        perf = self.perf._replace(d0=self.perf.d0.index_select(0, s), d1=self.perf.d1.index_select(0, s),
                                  d2=self.perf.d2.index_select(0, s))
        prefilling = self.srv_prefill.view(-1).index_select(0, c)
        decoding = ~prefilling & (batch > 0)
        to_completion = torch.where(decoding, r_min, 0.0)
        if len(q):
            q_seq = self.slot_qseq.index_select(0, q)
            head_q = torch.full((n,), torch.iinfo(torch.long).max, dtype=torch.long, device=dev).scatter_reduce_(
                0, q_pos, q_seq, "amin")
            is_head = q_seq == head_q.index_select(0, q_pos)
            head_slot = torch.zeros(n, dtype=torch.long, device=dev).index_copy_(0, q_pos[is_head], q[is_head])
            need = (self.slot_prompt.index_select(0, head_slot) + self.hidden_output.index_select(0, head_slot))
            t_head = self.slot_time["arrive"].index_select(0, head_slot)
            fits = (queue.index_select(0, c) > 0) & (self.srv_kv.view(-1).index_select(0, c) + need
                                                     <= self.perf.kv_capacity.index_select(0, s)) \
                & (batch < self.perf.max_batch)
            k_admit = torch.where(fits, perf.iterations_reaching(batch, kv0, t_head - seg), INF)
            k = torch.where(decoding, torch.minimum(r_min, k_admit), 0.0)
            span_next, span_done = perf.span_ms(batch, kv0, torch.stack([k, to_completion])).unbind(0)
        else:  # nothing queued: no admission, so a decoding batch's next boundary is its next completion
            fits, t_head = torch.zeros(n, dtype=torch.bool, device=dev), seg
            k = to_completion
            span_next = span_done = perf.span_ms(batch, kv0, k)
        pend = self.srv_pend.view(-1).index_select(0, c)
        # a decoding batch's next boundary (a completion or an admission), else an idle server's admission
        boundary = torch.where(decoding, seg + span_next, torch.maximum(t_head, seg))
        t_eng = torch.where(prefilling, pend, torch.where(decoding | fits, boundary, INF))
        floor = self.perf.floor.index_select(0, s)
        soonest = torch.minimum(torch.where(prefilling, pend, torch.where(decoding, seg + span_done, INF)),
                                torch.minimum(torch.where(fits & ~prefilling, boundary, INF), t_arr) + floor)
        arrival = t_arr <= t_eng
        t = torch.where(arrival, t_arr, t_eng)
        return t, k, torch.where(arrival & torch.isfinite(t_arr), arriving, -1), soonest

    def _integrate(self, c: torch.Tensor, te: torch.Tensor) -> None:
        """Accumulate the time-weighted state of event cells `c` over the measured period, from each cell's own
        clock up to its event at `te`, before the event changes it; the world's clock is its latest event (after
        an advance, its next decision).

        A cell's state changes only at its own events, so a cell without one is integrated later, in one
        piece (`_integrate_to_clock`, when the statistics are read). The busy, batch and queue sums are
        integers, exact over servers."""
        N, st = self.n_servers, self._stats
        g, s = c // N, c % N
        start = torch.maximum(self.cell_clock.index_select(0, c), self.stats_start.index_select(0, g))
        end = torch.minimum(te, self.stats_end.index_select(0, g))
        dt = (end - start).clamp_min(0) * self.valid_server.index_select(0, s)
        batch, queue = self.srv_batch.view(-1).index_select(0, c), self.srv_queue.view(-1).index_select(0, c)
        kv = self.srv_kv.view(-1).index_select(0, c).to(self.dtype) / self.perf.kv_capacity.index_select(0, s)
        for key, value in (("busy", (batch > 0).to(self.dtype)), ("batch", batch.to(self.dtype)), ("kv", kv),
                           ("queue", queue.to(self.dtype))):
            st[key].index_add_(0, g, dt * value)
        self.cell_clock.index_copy_(0, c, te)
        self.world_clock.scatter_reduce_(0, g, te, "amax")

    def _integrate_to_clock(self, c: torch.Tensor) -> None:
        """Integrate cells `c` up to their world's clock: its next decision, the measured period's end so far
        (`serving_stats` does so for every cell before it reads the sums)."""
        self._integrate(c, self.world_clock.index_select(0, c // self.n_servers))

    def _slots_at(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The slots in the engines of cells `c` (ascending), by (cell, slot), and their cell's position in `c`;
        slots that completed during this advance are among them (they are PENDING now)."""
        start = torch.searchsorted(self._cell_of, c)
        count = torch.searchsorted(self._cell_of, c, right=True) - start
        p = torch.repeat_interleave(torch.arange(len(c), device=self.device), count)
        offset = torch.cumsum(count, 0) - count
        at = start.index_select(0, p) + torch.arange(len(p), device=self.device) - offset.index_select(0, p)
        return self._by_cell.index_select(0, at), p

    def _arrive(self, j: torch.Tensor) -> None:
        """Travelling requests `j` (at most one per server, ascending) join their servers' FIFO queues; their
        queue numbers follow their world's arrivals so far (within a round, in server order: a queue number
        orders requests of one server only)."""
        g = self.slot_world.index_select(0, j)
        count = torch.zeros_like(self.qcount).index_add_(0, g, torch.ones_like(g))
        rank = torch.arange(len(j), device=self.device) - (torch.cumsum(count, 0) - count).index_select(0, g)
        self.slot_phase.index_fill_(0, j, QUEUED)
        self.slot_qseq.index_copy_(0, j, self.qcount.index_select(0, g) + rank)
        self.qcount += count
        cell, prompt = g * self.n_servers + self.slot_server.index_select(0, j), self.slot_prompt.index_select(0, j)
        self.srv_queue.view(-1).index_add_(0, cell, torch.ones_like(g))
        self.srv_queued_tokens.view(-1).index_add_(0, cell, prompt)
        self.srv_queued_squares.view(-1).index_add_(0, cell, prompt * prompt)

    def _serve(self, c: torch.Tensor, te: torch.Tensor, k: torch.Tensor) -> dict[str, torch.Tensor] | None:
        """One engine event on each server cell `c` at `te`: a prefill ends or k decode iterations pass;
        completed requests leave, then the queue's head admits as many as fit and starts their prefill."""
        h, p = self._slots_at(c)
        phase, prefilling = self.slot_phase.index_select(0, h), self.slot_prefilling.index_select(0, h)
        te_slot = te.index_select(0, p)
        running = phase == RUNNING
        prefill_cell = self.srv_prefill.view(-1).index_select(0, c)
        prefill_slot = prefill_cell.index_select(0, p)
        ended = running & prefilling & prefill_slot
        first = torch.where(ended, te_slot, self.slot_time["first"].index_select(0, h))
        prefilling = prefilling & ~ended
        decoding = running & ~ended & ~prefill_slot
        steps = torch.where(decoding, k.long().index_select(0, p), 0)
        generated = torch.where(ended, 1, self.slot_generated.index_select(0, h)) + steps
        remaining = self.hidden_remaining.index_select(0, h) - steps
        for slots, value in ((self.slot_time["first"], first), (self.slot_prefilling, prefilling),
                             (self.slot_generated, generated), (self.hidden_remaining, remaining)):
            slots.index_copy_(0, h, value)
        # the server's segment KV: a finished prefill adds its prompts and their first tokens, k decode
        # iterations add one token per request of the batch (every running request decodes when none prefills)
        grown = torch.where(prefill_cell, self.srv_prefill_tokens.view(-1).index_select(0, c),
                            self.srv_batch.view(-1).index_select(0, c) * k.long())
        self.srv_seg_kv.view(-1).index_add_(0, c, grown)
        complete = running & ~prefilling & (remaining == 0)
        row = self._complete(h[complete], te_slot[complete]) if bool(complete.any()) else None
        queued = phase == QUEUED
        self._admit(h[queued], p[queued], c, te)
        # the decode iterations left that end each server's next batch segment (admitted requests prefill first)
        phase = self.slot_phase.index_select(0, h)
        decoding = (phase == RUNNING) & ~self.slot_prefilling.index_select(0, h)
        left = torch.where(decoding, remaining.to(self.dtype), INF)
        self._r_min.index_copy_(0, c, torch.full((len(c),), INF, dtype=self.dtype, device=self.device)
                                .scatter_reduce_(0, p, left, "amin"))
        return row

    def _complete(self, j: torch.Tensor, end: torch.Tensor) -> dict[str, torch.Tensor]:
        """Requests `j` complete at `end`: they free their KV; their workflows go to the next step or take the
        next arrival. `j` is ordered by (world, server, slot): one event at a time would take requests that
        complete at one instant on several servers lowest server first."""
        N = self.n_servers
        g, srv = self.slot_world.index_select(0, j), self.slot_server.index_select(0, j)
        cell = g * N + srv
        prompt, output = self.slot_prompt.index_select(0, j), self.hidden_output.index_select(0, j)
        self.srv_kv.view(-1).index_add_(0, cell, -(prompt + output))
        self.srv_batch.view(-1).index_add_(0, cell, -torch.ones_like(cell))
        self.srv_seg_kv.view(-1).index_add_(0, cell, -(prompt + self.slot_generated.index_select(0, j)))
        t = {k: v.index_select(0, j) for k, v in self.slot_time.items()}
        episode, task, step, _ = (x.index_select(0, j) for x in self.slot_int)
        admission = torch.where(step == 0, self.slot_admit.index_select(0, j), 0.0)
        network = t["arrive"] - t["t0"]
        queue = t["admit"] - t["arrive"] + admission
        latency = end - t["t0"] + admission
        ttft = t["first"] - t["t0"] + admission  # a workflow's first request waits for its slot too
        tpot = torch.where(output > 1, (end - t["first"]) / (output - 1).clamp_min(1), 0.0)
        flags = {k: v.index_select(0, j) for k, v in self.slot_flag.items()}
        history = self.history.view(-1)
        # requests completing together on one server enter its EMA as their mean latency
        hit, at = torch.unique(cell, return_inverse=True)
        total = torch.zeros(len(hit), dtype=self.dtype, device=self.device).index_add_(0, at, latency)
        count = torch.zeros(len(hit), dtype=self.dtype, device=self.device).index_add_(0, at, torch.ones_like(latency))
        history.index_copy_(0, hit, 0.5 * total / count + 0.5 * history.index_select(0, hit))
        n_steps = take(self.tasks.n_steps, task)
        finished = step + 1 >= n_steps
        measured = episode >= self.warmup_episodes
        one = torch.ones_like(latency)
        met = (ttft <= self.serving.slo_ttft_ms) & (tpot <= self.serving.slo_tpot_ms)
        # utilisation counts every request finishing inside the measured period, warm-up workflows' included:
        # they load the servers of that period too; waits and SLOs are those of measured workflows
        before_end = end <= self.stats_end.index_select(0, g)
        in_period = (end >= self.measure_start.index_select(0, g)) & before_end
        measured = measured & before_end
        self._stats["work"].index_add_(0, g, in_period.to(self.dtype))
        for key, value in (("wait", t["admit"] - t["arrive"]), ("admitted", one),
                           ("served", one), ("slo", met.to(self.dtype))):
            self._stats[key].index_add_(0, g, torch.where(measured, value, 0.0))
        row = {"latency": latency, "network_ms": network, "channel_ms": t["channel"], "trap_ms": t["trap_ms"],
               "link_ms": t["link_ms"], "compute_ms": end - t["admit"], "queue_ms": queue, "admission_ms": admission,
               "ttft_ms": ttft, "tpot_ms": tpot, "cost": t["cost"],
               "switch_penalty_ms": flags["switch"].to(self.dtype) * self.net.switch_penalty_ms, "end_ms": end,
               "episode": episode, "step": step, "task": task, "server": srv, "world": g,
               "arrival_index": self.slot_index.index_select(0, j), "arrival_ms": self.slot_arrival.index_select(0, j),
               "prompt_tokens": prompt, "output_tokens": output,
               "decode_iterations": self.slot_generated.index_select(0, j) - 1,
               "prefills": self.slot_prefills.index_select(0, j), **flags, "done": finished}
        self._next(j, g, srv, end, step, finished)
        self._t_dec.scatter_reduce_(0, g, self.slot_now.index_select(0, j), "amin")
        return row

    def _next(self, j: torch.Tensor, g: torch.Tensor, srv: torch.Tensor, end: torch.Tensor, step: torch.Tensor,
              finished: torch.Tensor) -> None:
        """Slots `j` (grouped by world; by server, then slot, within it) wait for their workflow's next decision at `end`;
        those whose workflow finished take their world's next arrivals, in slot order (`_deal_next`)."""
        self.slot_int[2].index_copy_(0, j, step + 1)
        self.slot_int[3].index_copy_(0, j, srv)
        self.slot_now.index_copy_(0, j, end)
        self.slot_admit.index_fill_(0, j, 0.0)
        self.slot_phase.index_fill_(0, j, PENDING)
        self.slot_server.index_fill_(0, j, -1)
        self.slot_prefills.index_fill_(0, j, 0)
        if bool(finished.any()):
            self._deal_next(j[finished], g[finished], end[finished])

    def _deal_next(self, j: torch.Tensor, g: torch.Tensor, end: torch.Tensor) -> None:
        """Slots `j` (grouped by world), whose workflows finished at `end`, take their worlds' next arrivals in
        order: a workflow waits for its slot (its admission wait) when it arrived before `end`."""
        G = self.batch_size
        count = torch.zeros(G, dtype=torch.long, device=self.device).index_add_(0, g, torch.ones_like(g))
        before = torch.cumsum(count, 0) - count
        rank = torch.arange(len(j), device=self.device) - before.index_select(0, g)  # rank among the world's finished
        index = self.next_index.index_select(0, g) + rank
        gap = torch.where(rank > 0, self._gap_us(g, index), 0)
        gap_total = torch.zeros(G, dtype=torch.long, device=self.device).index_add_(0, g, gap)
        offset = (torch.cumsum(gap_total, 0) - gap_total).index_select(0, g)
        arrival_us = self.next_arrival_us.index_select(0, g) + torch.cumsum(gap, 0) - offset
        arrival = arrival_us.to(self.dtype) / 1000.0
        episode, task = self._deal_for(g, index)
        self.next_index = self.next_index + count
        self.next_arrival_us = self.next_arrival_us + gap_total + torch.where(
            count > 0, self._gap_us(self.rows, self.next_index), 0)
        starts = index == self.serving.warmup
        self.measure_start.index_copy_(0, g[starts], arrival[starts])
        self.stats_start.index_copy_(0, g[starts], torch.maximum(arrival, end)[starts])
        self.slot_index.index_copy_(0, j, index)
        for slots, value in zip(self.slot_int, (episode, task, torch.zeros_like(episode), torch.full_like(episode, -1))):
            slots.index_copy_(0, j, value)
        self.slot_now.index_copy_(0, j, torch.maximum(arrival, end))
        self.slot_arrival.index_copy_(0, j, arrival)
        self.slot_admit.index_copy_(0, j, (end - arrival).clamp_min(0))

    def _admit(self, j: torch.Tensor, p: torch.Tensor, c: torch.Tensor, te: torch.Tensor) -> None:
        """Admit the queued requests `j` of event cells `c` (`p`: their cell's position in `c`) in FIFO order
        while the head fits; start the admitted prefill."""
        N, n, dev = self.n_servers, len(c), self.device
        if len(j) == 0:  # nothing queued: each server's batch segment restarts at its event, no prefill
            self.srv_prefill.view(-1).index_fill_(0, c, False)
            self.srv_seg.view(-1).index_copy_(0, c, te)
            self.srv_prefill_tokens.view(-1).index_fill_(0, c, 0)
            self.srv_prefill_prompts.view(-1).index_fill_(0, c, 0)
            return
        order = torch.argsort(p * (1 << 40) + self.slot_qseq.index_select(0, j))
        j, p = j[order], p[order]
        need = self.slot_prompt.index_select(0, j) + self.hidden_output.index_select(0, j)
        count = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, p, torch.ones_like(p))
        rank = torch.arange(len(j), device=dev) - (torch.cumsum(count, 0) - count).index_select(0, p)
        per_cell = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, p, need)
        cum = torch.cumsum(need, 0) - (torch.cumsum(per_cell, 0) - per_cell).index_select(0, p)
        cell = c.index_select(0, p)
        fits = (self.srv_kv.view(-1).index_select(0, cell) + cum <= self.perf.kv_capacity.index_select(0, cell % N)) \
            & (self.srv_batch.view(-1).index_select(0, cell) + rank + 1 <= self.perf.max_batch)
        # need and rank grow along each queue, so the requests that fit are a FIFO prefix
        a, pa_cell, ca = j[fits], p[fits], cell[fits]
        pa = self.slot_prompt.index_select(0, a)
        self.slot_phase.index_fill_(0, a, RUNNING)
        self.slot_prefilling.index_fill_(0, a, True)
        self.slot_prefills.index_add_(0, a, torch.ones_like(a))
        self.slot_time["admit"].index_copy_(0, a, te.index_select(0, pa_cell))
        self.srv_kv.view(-1).index_add_(0, ca, pa + self.hidden_output.index_select(0, a))
        self.srv_batch.view(-1).index_add_(0, ca, torch.ones_like(ca))
        self.srv_queue.view(-1).index_add_(0, ca, -torch.ones_like(ca))
        self.srv_queued_tokens.view(-1).index_add_(0, ca, -pa)
        self.srv_queued_squares.view(-1).index_add_(0, ca, -pa * pa)
        pf = pa.to(self.dtype)
        tokens = torch.zeros(n, dtype=self.dtype, device=dev).index_add_(0, pa_cell, pf)
        squares = torch.zeros(n, dtype=self.dtype, device=dev).index_add_(0, pa_cell, pf * pf)
        admitted = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, pa_cell, torch.ones_like(pa_cell))
        first_tokens = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, pa_cell, pa + 1)
        prompts = torch.zeros(n, dtype=torch.long, device=dev).index_add_(0, pa_cell, pa)
        start = admitted > 0
        pend = te + self.perf.prefill_ms(c % N, tokens, squares, admitted.to(self.dtype))
        self.srv_prefill.view(-1).index_copy_(0, c, start)
        self.srv_pend.view(-1).index_copy_(0, c, torch.where(start, pend, self.srv_pend.view(-1).index_select(0, c)))
        self.srv_seg.view(-1).index_copy_(0, c, torch.where(start, pend, te))
        self.srv_prefill_tokens.view(-1).index_copy_(0, c, first_tokens)
        self.srv_prefill_prompts.view(-1).index_copy_(0, c, prompts)

    # ------------------------------------------------------------------ evaluation (schedkit.evaluation)
    def request_slo_ms(self) -> tuple[float, float]:
        """(TTFT, TPOT) objectives in ms a completed request is judged by: the evaluation's SLO attainment and
        goodput count the workflows whose every request met both."""
        return self.serving.slo_ttft_ms, self.serving.slo_tpot_ms

    # ------------------------------------------------------------------ what a router knows of a request
    def decision_prompt(self) -> torch.Tensor:
        """(B,) prompt tokens of each world's active decision. A router sees a request's prompt before it
        routes it; the output length stays hidden (the prompt's cut to the context window ignores it)."""
        return self._draws()[1]

    def _token_distribution(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The public (prompt, output) token distribution, cut to the context window, as equally likely pairs: the
        token trace's, or the synthetic lognormals' (a midpoint rule over 1024 quantiles of each, the same for
        every seed); on the CPU."""
        if self._token_pairs is None:
            u = (torch.arange(1024, dtype=torch.float64) + 0.5) / 1024
            quantile = lambda mu, sigma: torch.exp(mu + sigma * torch.special.ndtri(u)).round().long()  # noqa: E731
            prompt, output = cut_to_context(quantile(PROMPT_MU, PROMPT_SIGMA)[:, None],
                                            quantile(OUTPUT_MU, OUTPUT_SIGMA)[None, :])
        else:
            prompt, output = cut_to_context(self._token_pairs[:, 0].cpu(), self._token_pairs[:, 1].cpu())
        return prompt.reshape(-1), output.reshape(-1)

    def expected_tokens(self) -> tuple[float, float]:
        """(E[prompt], E[output]) tokens of the token distribution (`_token_distribution`). Public: a router knows
        the distribution of output lengths, never one request's."""
        cached = getattr(self, "_expected_tokens", None)
        if cached is None:
            prompt, output = self._token_distribution()
            cached = self._expected_tokens = (float(prompt.double().mean()), float(output.double().mean()))
        return cached

    def expected_rest_tokens(self, generated: torch.Tensor) -> torch.Tensor:
        """E[o - g | o > g] for requests that have generated g = `generated` tokens (integers, any shape), o the
        output length of the token distribution (`_token_distribution`): a request's expected output still to
        come, given how far it has got; 1 where no output of the distribution is that long (a running request
        makes one more token at least). Public: it reads the distribution, never a request's own length."""
        cached = getattr(self, "_residual", None)
        if cached is None:
            output = torch.sort(self._token_distribution()[1].double()).values
            g = torch.arange(CONTEXT_TOKENS + 1, dtype=torch.float64)
            first = torch.searchsorted(output, g, right=True)  # outputs > g start here
            above = torch.cat([torch.zeros(1, dtype=torch.float64), torch.cumsum(output, 0)])
            count = len(output) - first
            total = above[-1] - above.index_select(0, first)
            mean = torch.where(count > 0, total / count.clamp_min(1) - g, 1.0)
            cached = self._residual = mean.to(device=self.device, dtype=self.dtype)
        return cached[generated.clamp(0, CONTEXT_TOKENS)]

    def expected_remaining_tokens(self) -> torch.Tensor:
        """(B, N) output tokens each server can expect still to decode for its running requests: the sum over them
        of E[o - g | o > g] (`expected_rest_tokens`), g the tokens each has generated so far (what the engine knows),
        never the hidden lengths. How long the running batch will hold its KV and slow each iteration."""
        G, N = self.batch_size, self.n_servers
        running = (self.slot_phase == RUNNING).nonzero()[:, 0]
        cell = self.slot_world.index_select(0, running) * N + self.slot_server.index_select(0, running)
        decoding = ~self.slot_prefilling.index_select(0, running) & ~self.srv_prefill.view(-1).index_select(0, cell)
        done = self._iterations_in_segment().view(-1).index_select(0, cell).long()
        generated = self.slot_generated.index_select(0, running) + torch.where(decoding, done, 0)
        rest = self.expected_rest_tokens(generated)
        return torch.zeros(G * N, dtype=self.dtype, device=self.device).index_add_(0, cell, rest).view(G, N)

    def expected_engine_ms(self, servers: torch.Tensor, prompt: torch.Tensor, batch: torch.Tensor,
                           kv: torch.Tensor) -> torch.Tensor:
        """Expected time (ms) on `servers` of a request of `prompt` tokens and the expected output length E[o]
        that joins a running batch of `batch` requests attending to `kv` cached tokens (arguments broadcast):
        its prefill alone, then E[o] - 1 decode iterations of batch + 1 requests, the others' KV held at `kv`
        (their growth and their completions taken to balance) and its own growing by one token an iteration.
        On an idle server (batch = kv = 0) this is the solo time of `solo_latency_bound` with E[o] for o."""
        return self.expected_request_ms(servers, prompt, batch, kv)[0]

    def expected_request_ms(self, servers: torch.Tensor, prompt: torch.Tensor, batch: torch.Tensor,
                            kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(engine ms, prefill ms, TPOT ms) of the request `expected_engine_ms` times (same arguments): the
        engine time is that method's; its first token comes at its prefill's end, and its TPOT is the mean of
        its E[o] - 1 decode iterations, the i-th (from 0) taking d2 x i longer than the first; 0 where
        E[o] <= 1, as the simulator's TPOT of o = 1."""
        perf, p = self.perf, prompt.to(self.dtype)
        k = self.expected_tokens()[1] - 1.0
        d2 = take(perf.d2, servers)
        decode = take(perf.d0, servers) + take(perf.d1, servers) * (batch + 1) + d2 * (kv + p + 1)
        prefill = perf.prefill_ms(servers, p, p * p, torch.ones_like(p))
        tpot = decode + d2 * (k - 1) / 2 if k > 0 else torch.zeros_like(decode)
        return prefill + k * decode + d2 * k * (k - 1) / 2, prefill, tpot


class ServingProfile(Profile):
    """LLM serving engines with continuous batching and KV-cache admission (docs/simulator.md §6): `worlds`
    rows, each an independent world; ten passes over the split by default. A step's outcomes are the
    requests that completed, not the decisions made (`delayed_outcomes`)."""

    name = "serving"
    params_class = Serving
    queues = True
    live_inputs = ("expected wait (ms)", "log(1 + queued requests)", "running batch / max_batch",
                   "free KV tokens / capacity", "log(1 + outstanding prompt tokens / 4096)")
    worlds_run_on = True
    batches_seeds = True
    shares_learned_runs = True  # 2.24x on the serving study's validation setting (docs/decisions.md, 2026-12-07, late)
    delayed_outcomes = True  # a step returns the requests completed meanwhile, not the decisions made
    eval_passes = 10
    flags = (  # the flags contention has too are one option each (schedkit/cli.py add_profile_flags)
        Flag("--load", "load", "positive_float",
             "offered utilisation of the valid servers, in (0, 1.2] (config: serving.load, default 0.7)", "U"),
        Flag("--arrival-rate", "arrival_rate", "positive_float",
             "workflows arriving per second in each world, instead of --load (config: serving.arrival_rate)", "PER_S"),
        Flag("--arrival-trace", "arrival_trace", "text",
             "arrival gaps from a request trace's timestamps (config: serving.arrival_trace)", "CSV"),
        Flag("--token-trace", "token_trace", "text",
             "(prompt, output) token pairs from a request trace: Azure ContextTokens/GeneratedTokens or BurstGPT "
             "Request tokens/Response tokens (config: serving.token_trace)", "CSV"),
        Flag("--worlds", "worlds", "positive_int", "independent worlds simulated side by side (config: serving.worlds)"),
        Flag("--max-in-flight", "max_in_flight", "positive_int",
             "workflows in flight per world (config: serving.max_in_flight)"),
        Flag("--warmup", "warmup", "non_negative_int",
             "unmeasured first workflows of each world, to load the servers (config: serving.warmup, default 64)"),
        Flag("--max-batch", "max_batch", "positive_int", "running requests per engine (config: serving.max_batch)"),
        Flag("--slo-ttft-ms", "slo_ttft_ms", "positive_float",
             "time-to-first-token objective of a request, ms (config: serving.slo_ttft_ms, default 2500)", "MS"),
        Flag("--slo-tpot-ms", "slo_tpot_ms", "positive_float",
             "time-per-output-token objective of a request, ms (config: serving.slo_tpot_ms, default 150)", "MS"),
        Flag("--trap-loss", "trap_loss", "probability_below_one",
             "loss probability of one attempt over a trap link (config: serving.trap_loss)", "P"),
        Flag("--trap-surcharge-scale", "trap_surcharge_scale", "non_negative_float",
             "multiply the flat trap delay (config: serving.trap_surcharge_scale)", "X"),
    )

    def simulator(self, ds: Dataset, batch_size: int, split: str = "train", order: str = "random", seed: int = 0,
                  device: str | torch.device = "cpu", params: Serving | None = None,
                  task_subset=None) -> Simulator:
        return ServingSimulator(ds, batch_size, split, order, seed, device, task_subset=task_subset, serving=params,
                                profile=self)

    def trap_model(self, params: Serving) -> TrapModel:
        """The contention profile's trap model with this profile's trap parameters."""
        return CONTENTION.trap_model(params.hop(params.worlds))

    def batch_size(self, params: Serving, episodes: int) -> int:
        return params.worlds

    def tag(self, params: Serving) -> str:
        """serving_u<load> (or _r<rate>), then each trace by its role and file stem: _trace-<stem> where one file
        gives the arrivals and the tokens, else _arr-<stem> and _tok-<stem>, so an arrival trace and a token
        trace of one file never share a tag."""
        base = f"serving_r{params.arrival_rate:g}" if params.arrival_rate is not None else f"serving_u{params.load:g}"
        arrivals, tokens = params.arrival_trace, params.token_trace
        if arrivals and tokens and Path(arrivals).resolve() == Path(tokens).resolve():
            return f"{base}_trace-{Path(arrivals).stem}"
        return base + "".join(f"_{role}-{Path(t).stem}" for role, t in (("arr", arrivals), ("tok", tokens)) if t)

    def expected_compute_ms(self, sim: Simulator, tokens: torch.Tensor, servers: torch.Tensor,
                            rows: torch.Tensor | None = None, live: bool = False,
                            current: bool = False) -> torch.Tensor:
        """The engine's time, `ServingSimulator.expected_engine_ms`, not the paper's compute time: for the
        prompt of the rows' active decision (`current`) or the expected prompt (a step not yet decided), with
        the expected output length, on idle servers or (`live`) at the rows' live running batch and KV in use.
        The dataset's step tokens play no part (they price the step and size its transmission)."""
        sim, prompt, batch, kv = self._engine_state("expected_compute_ms", sim, servers, rows, live, current)
        return sim.expected_engine_ms(servers, prompt, batch, kv)

    def expected_latency_reward(self, sim: Simulator, step: dict[str, torch.Tensor], servers: torch.Tensor,
                                rows: torch.Tensor | None = None, live: bool = False,
                                current: bool = False) -> torch.Tensor:
        """The serving reward's latency term (`ServingSimulator.latency_reward`) of a request with the expected
        output length E[o], as the planners score it: its expected latency `step["latency"]` (hop, wait and
        `expected_compute_ms` with the same arguments) against the budget slo_ttft + (E[o] - 1) x slo_tpot,
        and an SLO miss where its expected TTFT (that latency less the engine's decode time: hop, wait and
        prefill) or its expected TPOT (`expected_request_ms`) exceeds its objective. Point estimates
        in a non-linear reward, so a plan's value is a rule's score, not an expected reward."""
        sim, prompt, batch, kv = self._engine_state("expected_latency_reward", sim, servers, rows, live, current)
        engine, prefill, tpot = sim.expected_request_ms(servers, prompt, batch, kv)
        ttft = step["latency"] - engine + prefill
        return sim.latency_reward(step["latency"], sim.expected_tokens()[1], ttft, tpot)

    @staticmethod
    def _engine_state(what: str, sim: Simulator, servers: torch.Tensor, rows: torch.Tensor | None, live: bool,
                      current: bool) -> tuple["ServingSimulator", torch.Tensor, torch.Tensor, torch.Tensor]:
        """(sim, prompt, running batch, KV in use) a planner charges a step on `servers` with: the prompt of the
        rows' active decision (`current`) or the expected prompt; the rows' live engine state (`live`) or idle."""
        if not isinstance(sim, ServingSimulator):
            raise ServingError(f"serving.{what}: expected a ServingSimulator, got {type(sim).__name__}")
        if rows is None and (live or current):
            raise ServingError(f"serving.{what}: live state and the decision's prompt need `rows`")
        zero = torch.zeros((), dtype=sim.dtype, device=sim.device)
        prompt = sim.decision_prompt()[rows] if current else zero + sim.expected_tokens()[0]
        batch, kv = zero, zero
        if live:
            batch = sim.running_batch().to(sim.dtype)[rows, servers]
            kv = (sim.perf.kv_capacity.to(sim.dtype) - sim.free_kv_tokens())[rows, servers]
        return sim, prompt, batch, kv


SERVING = ServingProfile()  # the serving profile; a ServingSimulator built without one runs it
