"""TopoFreeRL's networks (SPEC section 4): an SE-gated actor over servers and a plain critic,
both reading concat(state, per-server telemetry): 256 -> [SE gate] -> 128 -> 128 -> out."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from schedkit.nets import StateServerMLP


class SqueezeExcite(nn.Module):
    """Per-channel gate in (0, 1): the state (DWA preferences included) re-weights hidden features."""

    def __init__(self, channels: int = 256, squeezed: int = 64):
        super().__init__()
        self.down, self.up = nn.Linear(channels, squeezed), nn.Linear(squeezed, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * torch.sigmoid(self.up(F.relu(self.down(h))))


class ActorCritic(nn.Module):
    def __init__(self, state_dim: int, n_servers: int):
        super().__init__()
        self.actor = StateServerMLP(state_dim, n_servers, n_servers, gate=SqueezeExcite)
        self.critic = StateServerMLP(state_dim, n_servers, 1)
        nn.init.orthogonal_(self.actor.head.weight, 0.01)  # near-uniform initial policy: the prior decides early
        nn.init.zeros_(self.actor.head.bias)

    def forward(self, state: torch.Tensor, telemetry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(state, telemetry), self.critic(state, telemetry).squeeze(-1)
