"""Hand-made per-server scores shared by the heuristics and TopoFreeRL: the greedy family's
one-step score and TopoFreeRL's telemetry.

They live here, below both packages, because both read them: the `greedy` heuristics rank servers
by `greedy_score` and TopoFreeRL's `greedy_queue` prior negates it; TopoFreeRL's guidance prior is
the telemetry and the `telemetry` heuristic takes its argmax. Each depends only on the dataset and
the simulator's physics, so keeping them here lets neither package import the other.

Greedy score (lower is better): W * E[latency] / 2000 ms + (1 - W) * cost / $0.05, default W = 0.6.

Telemetry (one value per server): nc * (0.5 + 0.5 (1 - clip(cost_mult / 2, 0, 1))) * exp(-latency / 500),
divided by 1 + 0.3 queue wait / queue_ms under contention. The latency term is what a hop into the
server is charged: the expected trap surcharge for a trap, else the mean over links to non-trap
neighbours.
"""
from __future__ import annotations

import numpy as np
import torch

from edgesim.dataset import Dataset
from edgesim.physics import EXPECTED_TRAP_MS

# greedy's one-step score: 0.6 * E[latency] / 2000 ms + 0.4 * cost / $0.05
GREEDY_LATENCY_WEIGHT, GREEDY_LATENCY_SCALE_MS = 0.6, 2000.0
GREEDY_COST_WEIGHT, GREEDY_COST_SCALE = 0.4, 0.05

# The telemetry's queue scale in TopoFreeRL's shipped config.yaml, the default of the `telemetry`
# heuristic so that it ranks servers as the shipped agent's prior does (a test keeps them equal).
TELEMETRY_QUEUE_MS = 100.0


def check_latency_weight(w: float) -> float:
    """The greedy family's latency weight W, a number in [0, 1] (the cost weight is 1 - W)."""
    if not 0.0 <= w <= 1.0:
        raise ValueError(f"latency weight must be in [0, 1], got {w}")
    return float(w)


def greedy_score(latency_ms: torch.Tensor, cost: torch.Tensor, latency_weight: float) -> torch.Tensor:
    """The greedy family's one-step score, lower is better: W * E[latency] / 2000 ms + (1 - W) * cost / $0.05.
    At the default W the cost weight is exactly 0.4 (1 - 0.6 is not), so the default rule keeps its decisions."""
    cost_weight = GREEDY_COST_WEIGHT if latency_weight == GREEDY_LATENCY_WEIGHT else 1.0 - latency_weight
    return latency_weight * latency_ms / GREEDY_LATENCY_SCALE_MS + cost_weight * cost / GREEDY_COST_SCALE


def telemetry_latency(ds: Dataset) -> np.ndarray:
    """(N,) per-server latency term of the telemetry: the latency a hop into the server is charged
    (module docstring)."""
    payable = ~(ds.is_trap[ds.link_src] | ds.is_trap[ds.link_dst])
    n = ds.n_servers
    mean = np.bincount(ds.link_src[payable], weights=ds.link_latency[payable], minlength=n) / np.maximum(
        np.bincount(ds.link_src[payable], minlength=n), 1)
    return np.where(ds.is_trap, EXPECTED_TRAP_MS, mean)


def static_telemetry(ds: Dataset) -> np.ndarray:
    """(N,) the telemetry before queues and normalisation: nc * cost factor * latency factor."""
    static = (0.5 + 0.5 * (1 - np.clip(ds.cost_mult / 2, 0, 1))) * np.exp(-telemetry_latency(ds) / 500)
    return ds.nc * static


def live_telemetry(nc_static: torch.Tensor, load: torch.Tensor, queue_ms: float) -> torch.Tensor:
    """(B, N) the live telemetry under contention: nc_static / (1 + 0.3 load / queue_ms), divided by its row max."""
    live = nc_static / (1 + 0.3 * load / queue_ms)
    return live / live.amax(1, keepdim=True)
