"""The per-step formulas of the `paper` profile (docs/simulator.md §2-4), as elementwise torch functions.

They take tensors of any (broadcastable) shape, so the batched simulator, the expected-value model
used by the greedy and oracle schedulers, and the benchmarks all share one copy of the physics.
"""
from __future__ import annotations

import torch

EARTH_RADIUS_KM = 6371.0
MIN_HOP_KM = 0.5  # floor on a hop between two servers of one region
TX_POWER_MW = 10.0 ** (23.0 / 10.0)  # 23 dBm
MAX_BANDWIDTH_HZ = 20e6
MIN_RATE_BPS = 50e3
BITS_PER_TOKEN = 32.0
PROPAGATION_MS_PER_KM = 0.005
OVERHEAD_MS = 5.0
TRAP_SURCHARGE_MS = (100.0, 200.0)  # each with probability 0.5
EXPECTED_TRAP_MS = 0.5 * sum(TRAP_SURCHARGE_MS)
TOKENS_PER_SECOND_AT_FULL_COMPUTE = 2000.0
LATENCY_NORM_MS = 5000.0
COST_LO, COST_HI = 0.00045, 0.15
SWITCH_REWARD = -0.4
REWARD_SCALE = 4.0
EVAL_WEIGHTS = (0.45, 0.40, 0.15)  # fixed (latency, cost, switch) weights of the evaluation protocol
UNIFORMS_PER_STEP = 4  # bandwidth, fading, interference, trap coin


def haversine_km(lon1: torch.Tensor, lat1: torch.Tensor, lon2: torch.Tensor, lat2: torch.Tensor) -> torch.Tensor:
    """Great-circle distance in km between points given in degrees."""
    lon1, lat1, lon2, lat2 = (torch.deg2rad(x) for x in (lon1, lat1, lon2, lat2))
    a = torch.sin((lat2 - lat1) / 2) ** 2 + torch.cos(lat1) * torch.cos(lat2) * torch.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_KM * torch.asin(torch.sqrt(a.clamp(0.0, 1.0)))


def inverse_rate(d_km: torch.Tensor, u_bw: torch.Tensor, u_fade: torch.Tensor, u_interf: torch.Tensor) -> torch.Tensor:
    """Seconds per bit of the wireless hop for uniform draws u in [0, 1).

    Bandwidth B = 20 MHz * U(0.25, 1), Rayleigh fading gain Exp(1) = -log(1 - u), noise
    -174 dBm/Hz + 10 log10 B + 10 dB, interference noise * U(0, 10), path gain (0.1/max(d, 0.1))^2.5;
    rate = max(B log2(1 + SINR), 50 kbit/s).
    """
    bandwidth = MAX_BANDWIDTH_HZ * (0.25 + 0.75 * u_bw)
    fading = -torch.log1p(-u_fade)
    noise_mw = torch.pow(10.0, (-174.0 + 10.0 * torch.log10(bandwidth) + 10.0) / 10.0)
    path_gain = (0.1 / d_km.clamp_min(0.1)) ** 2.5
    sinr = TX_POWER_MW * path_gain * fading / (noise_mw * (1.0 + 10.0 * u_interf))
    rate = (bandwidth * torch.log2(1.0 + sinr)).clamp_min(MIN_RATE_BPS)
    return 1.0 / rate


def channel_ms(d_km: torch.Tensor, tokens: torch.Tensor, inv_rate: torch.Tensor) -> torch.Tensor:
    """Propagation + transmission + fixed overhead of moving a step's tokens over the hop."""
    return PROPAGATION_MS_PER_KM * d_km + BITS_PER_TOKEN * tokens * inv_rate * 1000.0 + OVERHEAD_MS


def compute_ms(tokens: torch.Tensor, nc: torch.Tensor) -> torch.Tensor:
    return 1000.0 * tokens / (nc * TOKENS_PER_SECOND_AT_FULL_COMPUTE)


def step_cost(tokens: torch.Tensor, price_per_1k: torch.Tensor, cost_mult: torch.Tensor) -> torch.Tensor:
    return tokens / 1000.0 * price_per_1k * cost_mult


def latency_reward(latency_ms: torch.Tensor) -> torch.Tensor:
    return -REWARD_SCALE * (latency_ms / LATENCY_NORM_MS).clamp(0.0, 1.0)


def cost_reward(cost: torch.Tensor) -> torch.Tensor:
    return -REWARD_SCALE * ((cost - COST_LO) / (COST_HI - COST_LO)).clamp(0.0, 1.0)


def reward_vector(latency_ms: torch.Tensor, cost: torch.Tensor, switch: torch.Tensor) -> torch.Tensor:
    """(..., 3) reward components (rL, rC, rS); scalarise with a weight vector."""
    return torch.stack([latency_reward(latency_ms), cost_reward(cost), SWITCH_REWARD * switch.to(cost.dtype)], -1)

