"""TopoFreeRL's shortlist (config `shortlist: K`): which K servers the per-server scorer looks at.

On a topology of thousands of servers, scoring every server costs O(N) features and network rows
per decision, in the rollout and again in every PPO update. The shortlist ranks every valid server
by a one-step estimate that costs about twenty arithmetic passes over N, and keeps the best K:

    score = w_L * latency_reward(latency) + w_C * cost_reward(cost) + w_S * switch_reward

under the agent's current objective weights w (the reward's own clipping and scales), with

    latency = overhead + expected trap surcharge + tokens * (compute + transmission per token at d)
              + live queue wait (contention)

The distance d is equirectangular and the transmission time per token, bits per token * E[1/rate](d),
is read at the nearest node of the channel table's log-distance grid: exact enough to rank, and the
scorer reads the exact expected latency of every shortlisted server. Propagation (0.005 ms/km) and
link latencies (a table lookup per (previous server, server) pair) are left to the scorer too.
Everything is float32 and written in place: the estimate only orders servers.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from edgesim import physics as P
from edgesim.dataset import Dataset
from edgesim.expectation import ChannelTable
from edgesim.simulator import Observation, Simulator


class Shortlist(nn.Module):
    """Per-server constants of the estimate, precomputed once; call it for a batch of decisions."""

    lon: torch.Tensor
    lat: torch.Tensor
    fixed_ms: torch.Tensor
    compute_ms_per_token: torch.Tensor
    price: torch.Tensor
    region: torch.Tensor
    tx_ms_per_token: torch.Tensor
    cost_offset: torch.Tensor

    def __init__(self, ds: Dataset, k: int, device: torch.device):
        super().__init__()
        self.k = k
        table = ChannelTable.shared(device)
        log_d = table.log_d.cpu().numpy()
        # node of squared angular distance q: round((log(R sqrt q) - log_d[0]) / step) = a log q + b
        step = float(log_d[1] - log_d[0])
        self.node_a, self.node_b = 0.5 / step, (math.log(P.EARTH_RADIUS_KM) - float(log_d[0])) / step + 0.5
        self.q_lo = (math.exp(float(log_d[0])) / P.EARTH_RADIUS_KM) ** 2  # q at the first and last node
        self.q_hi = (math.exp(float(log_d[-1])) / P.EARTH_RADIUS_KM) ** 2
        self.switches = len(ds.regions) > 1

        def buf(name: str, a, dtype=torch.float32):
            self.register_buffer(name, torch.tensor(np.asarray(a), dtype=dtype, device=device), persistent=False)

        buf("lon", np.deg2rad(ds.lon))
        buf("lat", np.deg2rad(ds.lat))
        buf("fixed_ms", P.OVERHEAD_MS + np.where(ds.is_trap, P.EXPECTED_TRAP_MS, 0.0))
        buf("compute_ms_per_token", 1000.0 / (ds.nc * P.TOKENS_PER_SECOND_AT_FULL_COMPUTE))
        buf("price", np.nan_to_num(ds.price) * ds.cost_mult / 1000.0)  # (types, N): cost per token
        buf("region", ds.server_region, torch.long)
        buf("tx_ms_per_token", P.BITS_PER_TOKEN * 1000.0 * table.mean.cpu().numpy())  # per grid node
        buf("cost_offset", -P.COST_LO / (P.COST_HI - P.COST_LO))  # cost_reward's scaled cost = tokens x this + offset

    def forward(self, sim: Simulator, obs: Observation, weights: torch.Tensor, mask: torch.Tensor,
                load: torch.Tensor | None) -> torch.Tensor:
        """(B, K) indices of the best-scored servers, masked ones last (they fill a row short of K valid)."""
        lon, lat, region = sim.hop_source()
        lon1, lat1 = torch.deg2rad(lon.float())[:, None], torch.deg2rad(lat.float())[:, None]
        cos1 = torch.cos(lat1)
        q = torch.addcmul(-lon1 * cos1, self.lon, cos1).square_()  # ((lon - lon1) cos lat1)^2
        y = self.lat - lat1
        q.addcmul_(y, y).clamp_(self.q_lo, self.q_hi)
        node = q.log_().mul_(self.node_a).add_(self.node_b).long()
        per_token = self.tx_ms_per_token.index_select(0, node.view(-1)).view_as(node).add_(self.compute_ms_per_token)
        latency = torch.addcmul(self.fixed_ms, obs.tokens.float()[:, None], per_token)
        if load is not None:
            latency += load
        w = weights.float().expand(sim.batch_size, 3).T[..., None]  # weights (3,) or (B, 3)
        # latency_reward = -4 min(latency / 5000, 1) (latency >= 0); cost_reward alike over [COST_LO, COST_HI]
        score = latency.clamp_max_(P.LATENCY_NORM_MS).mul_(w[0] * (-P.REWARD_SCALE / P.LATENCY_NORM_MS))
        span = P.COST_HI - P.COST_LO
        cost = torch.addcmul(self.cost_offset, obs.tokens.float()[:, None] / span,
                             self.price.index_select(0, obs.required_type)).clamp_(0.0, 1.0)
        score.addcmul_(cost, w[1] * -P.REWARD_SCALE)
        if self.switches:
            score.add_((self.region != region[:, None]) * (w[2] * P.SWITCH_REWARD))
        return score.masked_fill_(~mask, -torch.inf).topk(min(self.k, score.shape[1]), 1, sorted=False).indices
