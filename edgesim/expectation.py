"""Expected step latency, cost and reward (queues left out), for planning schedulers and features.

The only continuous randomness of a step is the wireless rate. Transmission time is
`32 * tokens * 1000 / rate`, so its expectation is `32 * tokens * 1000 * E[1/rate(d)]`, and
E[1/rate(d)] depends on the hop distance alone. `ChannelTable` integrates it once (midpoint rules
over the bandwidth, fading and interference draws, log-spaced for deep fades) on a log-distance grid; the greedy and oracle
schedulers then read expectations off the table instead of sampling. The latency reward is clipped
at 5000 ms, which makes it non-linear; where a step can exceed the clip, `expected_step` averages
the clipped reward over equal-probability bins of 1/rate and both trap outcomes.
"""
from __future__ import annotations

import functools
import math
import weakref

import torch

from . import physics as P
from .contention import attempt_probabilities
from .paper import TrapModel
from .simulator import Observation, Simulator, TaskBatch, Topology


class ChannelTable:
    """E[1/rate] and `bins` equal-probability bin means of 1/rate, tabulated over distance."""

    def __init__(self, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64,
                 grid: int = 256, d_min: float = 0.1, d_max: float = 40000.0,
                 nodes: tuple[int, int, int] = (12, 144, 12), bins: int = 64):
        self.log_d = torch.linspace(math.log(d_min), math.log(d_max), grid, dtype=torch.float64)
        nb, nf, ni = nodes
        ub, wb = _midpoints(torch.linspace(0, 1, nb + 1, dtype=torch.float64))
        ui, wi = _midpoints(torch.linspace(0, 1, ni + 1, dtype=torch.float64))
        # deep fades (u -> 0) push the rate to its floor and dominate E[1/rate] far from the server:
        # log-spaced nodes resolve them, linear ones the bulk
        n_log = 2 * nf // 3
        edges = torch.cat([torch.zeros(1, dtype=torch.float64), torch.logspace(-12, -1, n_log, dtype=torch.float64),
                           torch.linspace(0.1, 1, nf - n_log + 1, dtype=torch.float64)[1:]])
        uf, wf = _midpoints(edges)
        grids = torch.meshgrid(ub, uf, ui, indexing="ij")
        w = (wb[:, None, None] * wf[None, :, None] * wi[None, None, :]).reshape(-1)
        d = torch.exp(self.log_d)[:, None]
        inv = P.inverse_rate(d, *(g.reshape(1, -1) for g in grids))  # (grid, nodes)
        self.mean = (inv * w).sum(1).to(device, dtype)
        # equal-probability bins of the weighted distribution of 1/rate at each distance
        values, order = inv.sort(1)
        weight = w[order]  # gathered once: (grid, nodes) each time
        cdf = torch.cumsum(weight, 1)
        which = ((cdf - 0.5 * weight) * bins).long().clamp(0, bins - 1)
        mass = torch.zeros(grid, bins, dtype=torch.float64).scatter_add_(1, which, weight)
        total = torch.zeros(grid, bins, dtype=torch.float64).scatter_add_(1, which, weight * values)
        self.bins = (total / mass.clamp_min(1e-300)).to(device, dtype)
        # the bins' plain average and their largest value: where even the largest bin cannot reach
        # the clip, the bin average of the clipped reward is the unclipped reward of this average
        self.bin_mean, self.bin_max = self.bins.mean(1), self.bins[:, -1].contiguous()
        self.log_d = self.log_d.to(device, dtype)
        self.d_min = float(torch.exp(self.log_d[0]))  # a Python number: no host read per lookup
        self.max_inv = 1.0 / P.MIN_RATE_BPS  # the rate floor bounds transmission time

    @staticmethod
    def shared(device: torch.device | str = "cpu", dtype: torch.dtype = torch.float64) -> "ChannelTable":
        """The default table for (device, dtype), integrated once per process (about a second) and
        shared: every scheduler reads it and none writes it."""
        return _shared_table(torch.device(device), dtype)

    def _interp(self, table: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """Linear interpolation in log-distance; below d_min the path gain is constant, so is the value."""
        x = torch.log(d.clamp_min(self.d_min))
        step = self.log_d[1] - self.log_d[0]
        pos = ((x - self.log_d[0]) / step).clamp(0, len(self.log_d) - 1 - 1e-9)
        i = pos.floor().long()
        w = (pos - i).to(table.dtype)
        if table.dim() == 2:
            w = w[..., None]
        return table[i] * (1 - w) + table[i + 1] * w

    def mean_inv_rate(self, d_km: torch.Tensor) -> torch.Tensor:
        return self._interp(self.mean, d_km)

    def inv_rate_bins(self, d_km: torch.Tensor) -> torch.Tensor:
        return self._interp(self.bins, d_km)

    def inv_rate_bin_mean(self, d_km: torch.Tensor) -> torch.Tensor:
        return self._interp(self.bin_mean, d_km)

    def inv_rate_bin_max(self, d_km: torch.Tensor) -> torch.Tensor:
        return self._interp(self.bin_max, d_km)


def _midpoints(edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Midpoint-rule nodes and weights of the intervals between `edges`."""
    return 0.5 * (edges[1:] + edges[:-1]), edges[1:] - edges[:-1]


def trap_outcomes(trap: torch.Tensor, explicit_link_ms: torch.Tensor,
                  traps: TrapModel = TrapModel()) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, probabilities), shape (..., A): the trap latency outcomes of each hop under the trap
    model `traps` (a simulator's: `sim.profile.trap_model(sim.params)`).

    Every trap hit pays one of the two surcharges (the paper profile's 100 or 200 ms by default). Where
    the model retries (contention), a hop over an explicit trap link pays its BaseLatencyMs once per
    attempt instead (attempts 1..max with their probabilities). A hop without a trap hit has the single
    outcome 0."""
    retries = traps.max_attempts
    n = 2 if retries is None else max(2, retries)
    zeros = torch.zeros(n, dtype=explicit_link_ms.dtype, device=trap.device)
    flat_v, flat_p = zeros.clone(), zeros.clone()
    flat_v[:2] = torch.tensor(traps.surcharge_ms)
    flat_p[:2] = 0.5
    values = torch.where(trap[..., None], flat_v, zeros)
    probs = torch.where(trap[..., None], flat_p, zeros + (torch.arange(n, device=trap.device) == 0))
    if retries is not None:
        k = torch.arange(1, n + 1, dtype=zeros.dtype, device=trap.device)
        p_k = zeros.clone()
        p_k[:retries] = torch.tensor(attempt_probabilities(traps.loss, retries))
        explicit = trap & (explicit_link_ms > 0)
        values = torch.where(explicit[..., None], explicit_link_ms[..., None] * k, values)
        probs = torch.where(explicit[..., None], p_k, probs)
    return values, probs


def expected_step(net: Topology, table: ChannelTable, src_lon: torch.Tensor, src_lat: torch.Tensor,
                  src_region: torch.Tensor, prev: torch.Tensor, tokens: torch.Tensor, req: torch.Tensor,
                  servers: torch.Tensor, with_reward: bool = True,
                  traps: TrapModel = TrapModel(),
                  queue_ms: torch.Tensor | None = None,
                  compute_ms: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Expected latency, cost and reward terms of running a step on `servers`, queues left out.

    Arguments broadcast: e.g. sources (R, 1) against candidate servers (1, C). `prev` is the
    previous server (-1 at step 0, when the source is the task location). `traps` is the simulator's
    trap model (`sim.profile.trap_model(sim.params)`; default: the paper profile's). Returns tensors of the
    broadcast shape: `latency` (E[ms]), `cost`, and (`with_reward`) expected rewards `rL`, `rC`, `rS`.
    `queue_ms` (broadcastable, optional) is a known wait added to every outcome's latency, so the
    clipped latency reward accounts for it; None (queues left out) and zeros give the same numbers.
    `compute_ms` (broadcastable, optional) is the step's expected compute time on `servers` as the
    simulator's profile models it (`Profile.expected_compute_ms`); None: the paper's compute time.
    """
    from_server = prev >= 0
    d, same_region = net.hop_km(src_lon, src_lat, src_region, from_server, servers)
    trap = net.trap[servers] | (from_server & net.trap[prev.clamp_min(0)])
    link_ms, found = net.link_lookup(prev, servers)
    link = torch.where(trap, 0.0, link_ms)
    compute = P.compute_ms(tokens, net.nc[servers]) if compute_ms is None else compute_ms
    base = P.PROPAGATION_MS_PER_KM * d + P.OVERHEAD_MS + link + compute
    if queue_ms is not None:
        base = base + queue_ms
    k = P.BITS_PER_TOKEN * tokens * 1000.0  # ms per unit of 1/rate
    base, k, trap, link_ms, found = torch.broadcast_tensors(base, k + torch.zeros_like(base), trap, link_ms, found)
    values, probs = trap_outcomes(trap, torch.where(found, link_ms, 0.0), traps)
    latency = base + k * table.mean_inv_rate(d) + (values * probs).sum(-1)
    cost = P.step_cost(tokens, net.price[req, servers], net.cost_mult[servers]) + torch.zeros_like(base)
    if not with_reward:
        return {"latency": latency, "cost": cost}
    r_latency = P.latency_reward(latency)  # exact wherever the clip cannot bind
    can_clip = base + k * table.max_inv + values.amax(-1) > P.LATENCY_NORM_MS
    if bool(can_clip.any()):
        r_latency = r_latency.index_put(*_clipped_latency_reward(table, d, base, k, values, probs, can_clip))
    switch = torch.broadcast_to(~same_region, base.shape)
    return {"latency": latency, "cost": cost, "rL": r_latency, "rC": P.cost_reward(cost),
            "rS": P.SWITCH_REWARD * switch.to(base.dtype)}


class HopTable:
    """Every hop a simulator's decisions can make, server to server and task location to server: its
    distance, link latency and the token-free parts of its expected step latency, tabulated once.

    The greedy family and TopoFreeRL's per-server features score every server at every decision, and a
    hop starts at the previous step's server or, at step 0, at the task's location: a fixed set of
    (N + T) x N hops for N servers and T tasks, whose terms are the same decision after decision.
    `expected_hop` reads them off this table and adds the step's tokens with the very operations
    `expected_step` uses, so the result is the same to the bit. Built per simulator, trap model and
    channel table, up to MAX_PAIRS hops (32 bytes each)."""

    MAX_PAIRS = 1 << 22

    def __init__(self, net: Topology, tasks: TaskBatch, table: ChannelTable, traps: TrapModel):
        n, device = net.n, net.lon.device
        servers = torch.arange(n, device=device)[None]
        # rows: the N servers as hop sources, then the T task locations (step 0: no previous server)
        prev = torch.cat([servers[0], torch.full((tasks.k,), -1, device=device)])[:, None]
        from_server = prev >= 0
        src_lon, src_lat = torch.cat([net.lon, tasks.lon])[:, None], torch.cat([net.lat, tasks.lat])[:, None]
        src_region = torch.cat([net.region, tasks.region])[:, None]
        d, _ = net.hop_km(src_lon, src_lat, src_region, from_server, servers)
        trap = net.trap[servers] | (from_server & net.trap[prev.clamp_min(0)])
        link_ms, found = net.link_lookup(prev, servers)
        # as expected_step sums them, left to right: ((propagation + overhead) + link) + compute
        self.fixed_ms = P.PROPAGATION_MS_PER_KM * d + P.OVERHEAD_MS + torch.where(trap, 0.0, link_ms)
        self.mean_inv = table.mean_inv_rate(d)
        values, probs = trap_outcomes(trap, torch.where(found, link_ms, 0.0), traps)
        self.trap_ms = (values * probs).sum(-1)
        # features, read as float32: the unclamped distance and the link's latency
        self.km = P.haversine_km(src_lon, src_lat, net.lon[servers], net.lat[servers]).float()
        self.link_ms = link_ms.float()
        self.n = n

    @staticmethod
    def of(sim: Simulator, table: ChannelTable) -> "HopTable | None":
        """The table of this simulator (its topology, tasks and trap model) and channel table, built on
        first use and dropped with the simulator; None above MAX_PAIRS hops."""
        net, tasks, traps = sim.net, sim.tasks, sim.profile.trap_model(sim.params)
        if (net.n + tasks.k) * net.n > HopTable.MAX_PAIRS:
            return None
        tables = _HOP_TABLES.setdefault(sim, {})
        key = (table, traps)
        if key not in tables:
            tables[key] = HopTable(net, tasks, table, traps)
        return tables[key]


_HOP_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def expected_hop(sim: Simulator, obs: Observation, table: ChannelTable,
                 servers: torch.Tensor, live: bool = False) -> dict[str, torch.Tensor]:
    """Expected latency and cost of each decision's step on `servers` ((1, C) or (B, C)), queues left
    out, equal to `expected_step(..., with_reward=False)` bit for bit; plus, as float32 features, the
    hop's unclamped distance `km` and link latency `link` (0 without a link row). Read off the
    simulator's `HopTable`; computed directly where the table would be too large. The compute term is
    the profile's (`Profile.expected_compute_ms` of the rows' active decisions): on idle servers, or
    with `live` at the servers' live engine state; in the paper and contention profiles both are the
    paper's compute time."""
    net, B = sim.net, sim.batch_size
    cols = servers.expand(B, -1)
    tok = obs.tokens[:, None]
    rows = torch.arange(B, device=cols.device)[:, None]
    compute = sim.profile.expected_compute_ms(sim, tok, cols, rows, live=live, current=True)
    cost = P.step_cost(tok, net.price[obs.required_type[:, None], cols], net.cost_mult[cols])
    hops = HopTable.of(sim, table)
    if hops is None:
        lon, lat, region = (x[:, None] for x in sim.hop_source())
        latency = expected_step(net, table, lon, lat, region, obs.prev_server[:, None], tok,
                                obs.required_type[:, None], cols, with_reward=False,
                                traps=sim.profile.trap_model(sim.params), compute_ms=compute)["latency"]
        return {"latency": latency, "cost": cost,
                "km": P.haversine_km(lon, lat, net.lon[cols], net.lat[cols]).float(),
                "link": net.link_lookup(obs.prev_server[:, None], cols)[0].float()}
    source = torch.where(obs.prev_server >= 0, obs.prev_server, net.n + obs.task)
    flat = (source[:, None] * hops.n + cols).reshape(-1)

    def pair(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1).index_select(0, flat).reshape(B, -1)

    base = pair(hops.fixed_ms) + compute
    latency = base + P.BITS_PER_TOKEN * tok * 1000.0 * pair(hops.mean_inv) + pair(hops.trap_ms)
    return {"latency": latency, "cost": cost, "km": pair(hops.km), "link": pair(hops.link_ms)}


def _clipped_latency_reward(table: ChannelTable, d: torch.Tensor, base: torch.Tensor, k: torch.Tensor,
                            values: torch.Tensor, probs: torch.Tensor,
                            can_clip: torch.Tensor) -> tuple[tuple[torch.Tensor, ...], torch.Tensor]:
    """(index, expected latency reward) of the steps whose latency can reach the clip: the average
    over equal-probability bins of 1/rate and the trap outcomes of the clipped reward.

    Only a step whose largest bin (plus its largest trap outcome) reaches the clip needs the bins;
    for the others the average of the clipped rewards is the reward of the average latency. Trap-free
    steps have the single outcome 0, so their bins are averaged without the outcome axis. Both
    shortcuts give the full average's numbers (up to rounding) at a fraction of its work."""
    idx = can_clip.nonzero(as_tuple=True)
    d_c, base_c, k_c = torch.broadcast_to(d, base.shape)[idx], base[idx], k[idx]
    values_c, probs_c = values[idx], probs[idx]
    largest = values_c.amax(-1)
    reward = P.latency_reward(base_c + k_c * table.inv_rate_bin_mean(d_c) + (values_c * probs_c).sum(-1))
    binds = base_c + k_c * table.inv_rate_bin_max(d_c) + largest > P.LATENCY_NORM_MS
    if bool(binds.any()):
        b = binds.nonzero().squeeze(1)
        lat = base_c[b, None] + k_c[b, None] * table.inv_rate_bins(d_c[b])  # (M, bins)
        trap = largest[b] > 0
        out = torch.empty_like(lat[:, 0])
        out[~trap] = P.latency_reward(lat[~trap]).mean(-1)
        v, p = values_c[b][trap], probs_c[b][trap]
        out[trap] = (P.latency_reward(lat[trap][:, None, :] + v[:, :, None]).mean(-1) * p).sum(-1)
        reward[b] = out
    return idx, reward


@functools.lru_cache(maxsize=None)
def _shared_table(device: torch.device, dtype: torch.dtype) -> ChannelTable:
    return ChannelTable(device, dtype)
