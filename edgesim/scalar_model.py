"""Executable specification: one `paper`-profile episode in plain Python, written from docs/simulator.md §2-3.

Deliberately naive (dicts, math, one step at a time) and independent of edgesim.physics, so the
vectorised simulator is checked against a second reading of the spec. It consumes the same four
uniforms per step as the simulator: bandwidth, fading, interference, trap coin.
"""
from __future__ import annotations

import math


def haversine(lon1, lat1, lon2, lat2):
    r = 6371.0
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(min(1.0, max(0.0, a))))


class ScalarEpisode:
    """Plays one task on a Dataset; `step(server, u)` returns a dict of the step's outcome."""

    def __init__(self, ds, split: str, task: int):
        self.ds, self.t = ds, ds.tasks[split]
        self.task = task
        self.k = 0
        self.prev: int | None = None
        self.now = 0.0
        self.busy: dict[int, float] = {}  # per-server busy-until, reset every episode
        self.links: dict[tuple[int, int], float] = {}
        for s, d, lat in zip(ds.link_src.tolist(), ds.link_dst.tolist(), ds.link_latency.tolist()):
            self.links[(s, d)] = lat
        self.history: dict[int, float] = {}  # per-server latency history, starts at 5 x mean link latency
        self.h0 = 5 * ds.mean_link_latency

    def step(self, server: int, u) -> dict:
        ds, t, i = self.ds, self.t, self.task
        req = int(t.types[i, self.k])
        n = float(t.tokens[i, self.k])
        fallback = ds.instance_of[req, server] < 0
        if fallback:  # first instance of the type in the instance file runs the step
            server = int(ds.fallback_server[req])
        s = server
        if self.prev is None:
            d = haversine(t.lon[i], t.lat[i], ds.lon[s], ds.lat[s])
            prev_region = t.region[i]
        else:
            p = self.prev
            d = haversine(ds.lon[p], ds.lat[p], ds.lon[s], ds.lat[s])
            prev_region = ds.server_region[p]
            if ds.server_region[p] == ds.server_region[s]:
                d = max(d, 0.5)
        switch = ds.server_region[s] != prev_region

        bw = 20e6 * (0.25 + 0.75 * u[0])
        fading = -math.log(1.0 - u[1])
        noise_dbm = -174 + 10 * math.log10(bw) + 10
        noise = 10 ** (noise_dbm / 10)
        interference = noise * 10 * u[2]
        gain = (0.1 / max(d, 0.1)) ** 2.5
        sinr = 10 ** (23 / 10) * gain * fading / (noise + interference)
        rate = max(bw * math.log2(1 + sinr), 50e3)
        channel = 0.005 * d + 32 * n / rate * 1000 + 5

        trap = bool(ds.is_trap[s]) or (self.prev is not None and bool(ds.is_trap[self.prev]))
        extra = 0.0
        if trap:
            extra = 200.0 if u[3] < 0.5 else 100.0
        elif self.prev is not None:
            extra = self.links.get((self.prev, s), 0.0)
        compute = 1000 * n / (ds.nc[s] * 2000)
        busy = self.busy.get(s, 0.0)
        queue = max(0.0, busy - self.now)
        latency = channel + extra + compute + queue
        self.busy[s] = max(self.now, busy) + compute
        self.now = max(self.now, busy) + latency

        cost = n / 1000 * ds.price[req, s] * ds.cost_mult[s]
        r_l = -4 * min(max(latency / 5000, 0.0), 1.0)
        r_c = -4 * min(max((cost - 0.00045) / (0.15 - 0.00045), 0.0), 1.0)
        r_s = -0.4 if switch else 0.0
        self.history[s] = 0.5 * latency + 0.5 * self.history.get(s, self.h0)
        self.prev = s
        self.k += 1
        return {"server": s, "latency": latency, "cost": cost, "queue_ms": queue, "compute_ms": compute,
                "trap_hit": trap, "fallback": fallback, "switch": switch, "reward": (r_l, r_c, r_s),
                "done": self.k >= t.n_steps[i]}
