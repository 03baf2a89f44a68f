"""Executable specification: one `paper`-profile episode in plain Python, written from docs/simulator.md §2-3.

Deliberately naive (dicts, math, one step at a time) and independent of edgesim.physics, so the
vectorised simulator is checked against a second reading of the spec. It consumes the same four
uniforms per step as the simulator: bandwidth, fading, interference, trap coin. `hop` and `rewards`
are the per-step parts the contention world of `scalar_contention.py` shares.
"""
from __future__ import annotations

import math


def haversine(lon1, lat1, lon2, lat2):
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(min(1.0, max(0.0, a))))


class ScalarTopology:
    """A Dataset's arrays as Python lists and a dict of links, built once: episodes then cost only
    their own steps (the single Gymnasium env plays one of these per workflow)."""

    def __init__(self, ds):
        self.ds = ds
        self.lon, self.lat, self.nc = ds.lon.tolist(), ds.lat.tolist(), ds.nc.tolist()
        self.cost_mult, self.is_trap = ds.cost_mult.tolist(), ds.is_trap.tolist()
        self.region, self.fallback = ds.server_region.tolist(), ds.fallback_server.tolist()
        self.hosts = (ds.instance_of >= 0).tolist()  # [type][server]
        self.price = ds.price.tolist()
        self.links = dict(zip(zip(ds.link_src.tolist(), ds.link_dst.tolist()), ds.link_latency.tolist()))
        self.h0 = 5 * ds.mean_link_latency
        self.tasks = {}  # split -> (lon, lat, region, n_steps, types, tokens) lists

    def split(self, name: str):
        if name not in self.tasks:
            t = self.ds.tasks[name]
            self.tasks[name] = (t.lon.tolist(), t.lat.tolist(), t.region.tolist(), t.n_steps.tolist(), t.types.tolist(),
                                t.tokens.tolist())
        return self.tasks[name]


class ScalarEpisode:
    """Plays one task on a Dataset; `step(server, u)` returns a dict of the step's outcome.
    `topology`: a ScalarTopology of the same Dataset, to share between episodes."""

    def __init__(self, ds, split: str, task: int, topology: ScalarTopology | None = None):
        self.topo = topology or ScalarTopology(ds)
        self.lon, self.lat, self.region, self.n_steps, self.types, self.tokens = self.topo.split(split)
        self.task = task
        self.k = 0
        self.prev: int | None = None
        self.now = 0.0
        self.busy: dict[int, float] = {}  # per-server busy-until, reset every episode
        self.history: dict[int, float] = {}  # per-server latency history, starts at 5 x mean link latency

    def step(self, server: int, u) -> dict:
        g = self.topo
        h = hop(g, (self.lon, self.lat, self.region, self.types, self.tokens), self.task, self.k, self.prev, server, u)
        s = h["server"]
        extra = 0.0
        if h["trap_hit"]:
            extra = 200.0 if u[3] < 0.5 else 100.0
        elif self.prev is not None:
            extra = g.links.get((self.prev, s), 0.0)
        compute = h["compute_ms"]
        busy = self.busy.get(s, 0.0)
        queue = max(0.0, busy - self.now)
        latency = h["channel_ms"] + extra + compute + queue
        self.busy[s] = max(self.now, busy) + compute
        self.now = max(self.now, busy) + latency
        self.history[s] = 0.5 * latency + 0.5 * self.history.get(s, g.h0)
        self.prev = s
        self.k += 1
        return {"server": s, "latency": latency, "network_ms": h["channel_ms"] + extra, "cost": h["cost"],
                "queue_ms": queue, "compute_ms": compute, "trap_hit": h["trap_hit"], "fallback": h["fallback"],
                "switch": h["switch"], "reward": rewards(latency, h["cost"], h["switch"]),
                "done": self.k >= self.n_steps[self.task]}


def hop(g: ScalarTopology, task_rows: tuple, i: int, k: int, prev: int | None, server: int, u) -> dict:
    """The parts of step k of task i that both profiles share (docs/simulator.md §2): the server
    after the fallback, whether the hop touches a trap, the region switch, the channel, compute and
    cost. `task_rows`: the split's (lon, lat, region, types, tokens) lists; `u`: the step's uniforms."""
    lon, lat, region, types, tokens = task_rows
    req = types[i][k]
    n = tokens[i][k]
    fallback = not g.hosts[req][server]
    if fallback:  # first instance of the type in the instance file runs the step
        server = g.fallback[req]
    s = server
    if prev is None:
        d = haversine(lon[i], lat[i], g.lon[s], g.lat[s])
        prev_region = region[i]
    else:
        d = haversine(g.lon[prev], g.lat[prev], g.lon[s], g.lat[s])
        prev_region = g.region[prev]
        if g.region[prev] == g.region[s]:
            d = max(d, 0.5)
    switch = g.region[s] != prev_region

    bw = 20e6 * (0.25 + 0.75 * u[0])
    fading = -math.log(1.0 - u[1])
    noise_dbm = -174 + 10 * math.log10(bw) + 10
    noise = 10 ** (noise_dbm / 10)
    interference = noise * 10 * u[2]
    gain = (0.1 / max(d, 0.1)) ** 2.5
    sinr = 10 ** (23 / 10) * gain * fading / (noise + interference)
    rate = max(bw * math.log2(1 + sinr), 50e3)
    channel = 0.005 * d + 32 * n / rate * 1000 + 5

    trap = bool(g.is_trap[s]) or (prev is not None and bool(g.is_trap[prev]))
    return {"server": s, "fallback": fallback, "switch": switch, "channel_ms": channel, "trap_hit": trap,
            "compute_ms": 1000 * n / (g.nc[s] * 2000), "cost": n / 1000 * g.price[req][s] * g.cost_mult[s]}


def rewards(latency: float, cost: float, switch: bool) -> tuple[float, float, float]:
    """(rL, rC, rS) of a step, docs/simulator.md §3."""
    r_l = -4 * min(max(latency / 5000, 0.0), 1.0)
    r_c = -4 * min(max((cost - 0.00045) / (0.15 - 0.00045), 0.0), 1.0)
    return r_l, r_c, (-0.4 if switch else 0.0)
