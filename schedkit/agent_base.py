"""What every learned scheduler's agent shares: the base state, the mask, masked logits.

Fair comparison: every learned method sees the same valid-server mask (in training unless the
config says `mask: false`, always at evaluation) and the same 7 base state features (SPEC 4):
step progress, task lon and lat scaled to the servers' bounding box, previous-region id, and
the three DWA weights.
"""
from __future__ import annotations

import torch
from torch import nn

from edgesim.dataset import Dataset
from edgesim.simulator import Observation, Simulator

from .rollout import MASK_VALUE

BASE_STATE_DIM = 7


class MaskedAgent(nn.Module):
    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        super().__init__()
        self.mask_training = bool(cfg["mask"])
        self.greedy = False  # set for evaluation: masking is then always on
        self.n_regions = len(ds.regions)
        lon0, lon1, lat0, lat1 = ds.lon.min(), ds.lon.max(), ds.lat.min(), ds.lat.max()
        self.register_buffer("geo", torch.tensor(
            [(lon0 + lon1) / 2, max(lon1 - lon0, 1e-3) / 2, (lat0 + lat1) / 2, max(lat1 - lat0, 1e-3) / 2],
            dtype=torch.float32, device=device), persistent=False)

    def base_state(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> torch.Tensor:
        return torch.stack([
            obs.progress.float(),
            (obs.task_lon.float() - self.geo[0]) / self.geo[1],
            (obs.task_lat.float() - self.geo[2]) / self.geo[3],
            obs.prev_region.float() / max(self.n_regions - 1, 1),
            *weights.float().expand(sim.batch_size, 3).T,
        ], 1)

    def mask(self, sim: Simulator) -> torch.Tensor:
        if self.mask_training or self.greedy:
            return sim.valid_mask()
        return torch.ones((sim.batch_size, sim.n_servers), dtype=torch.bool, device=sim.device)

    @staticmethod
    def masked(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~mask, MASK_VALUE)
