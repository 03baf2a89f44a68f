"""What every learned scheduler's agent shares: the base state, the mask, masked logits.

Fair comparison: every learned method sees the same valid-server mask (in training unless the
config says `mask: false`, always at evaluation) and the same 7 base state features (docs/schedulers.md):
step progress, task lon and lat scaled to the servers' bounding box, previous-region id, and
the three DWA weights.

Live load (config `live_load`, shared by every algorithm): under the contention profile a learned
scheduler may read each server's live queue wait, scaled by `queue_feature`. Whether its network has
that input is fixed by the *training* config (`reads_live_load`), so a checkpoint keeps its input
sizes when evaluated under another profile (the paper profile's queues read as zero).
"""
from __future__ import annotations

import torch
from torch import nn

from edgesim.dataset import Dataset
from edgesim.registry import get_profile
from edgesim.simulator import Observation, Simulator

from .rollout import MASK_VALUE

BASE_STATE_DIM = 7
QUEUE_SCALE_MS = 100.0


def reads_live_load(cfg: dict) -> bool:
    """Whether an agent of this config has live queue-wait inputs: trained under contention with
    `live_load` on."""
    return get_profile(cfg["profile"]).queues and bool(cfg["live_load"])


def queue_feature(wait_ms: torch.Tensor) -> torch.Tensor:
    """A queue wait as a network input: log(1 + wait / 100 ms); 0 for an idle server."""
    return torch.log1p(wait_ms.float() / QUEUE_SCALE_MS)


class MaskedAgent(nn.Module):
    """The base of every learned scheduler: the agent contract, its defaults, and the inputs all share.

    An algorithm folder's agent is built as `Agent(ds, cfg, device)` and provides
      features(sim, obs, weights) -> dict of (B, ...) tensors   what the rollout stores per decision
      forward(features) -> (masked logits (B, N), value (B,))   via `self.masked(logits, mask)`
      networks() -> [actor, critic, ...]                        gradient norms are clipped per network
    and may override
      reward_bonus(actions) -> (B,)      a training-only term added to each step's scalarised reward
                                         (PF-PPO's fairness bonus; its state belongs in the state_dict)
      size_agnostic(cfg) -> bool         whether a checkpoint schedules datasets other than its own
      config_choices                     the algorithm's own string options of config.yaml
      integer_state                      state_dict entries holding integers (every other one is floating point)
      state_problem(weights) -> str|None why a checkpoint's values cannot be this agent's (e.g. an index out of range)
    `evaluation()` switches it to deterministic evaluation (eval mode, masking always on)."""

    config_choices: dict[str, tuple[str, ...]] = {}
    integer_state: tuple[str, ...] = ()
    geo: torch.Tensor  # (lon centre, lon half-width, lat centre, lat half-width) of the servers

    def features(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def networks(self) -> list[nn.Module]:
        raise NotImplementedError

    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        super().__init__()
        self.mask_training = bool(cfg["mask"])
        self.greedy = False  # evaluation: masking is then always on
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

    @staticmethod
    def size_agnostic(cfg: dict) -> bool:
        return False

    def state_problem(self, weights: dict[str, torch.Tensor]) -> str | None:
        """What is wrong with the values of a checkpoint's `weights` for this agent (names, shapes and
        dtypes are already checked), or None."""
        return None

    def reward_bonus(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.zeros(actions.shape, device=actions.device)

    def evaluation(self) -> "MaskedAgent":
        self.eval()
        self.greedy = True
        return self

    def mask(self, sim: Simulator) -> torch.Tensor:
        if self.mask_training or self.greedy:
            return sim.valid_mask()
        return torch.ones((sim.batch_size, sim.n_servers), dtype=torch.bool, device=sim.device)

    @staticmethod
    def masked(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~mask, MASK_VALUE)
