"""TopoFreeRL's networks (SPEC section 4): an SE-gated actor over servers and a plain critic.

Both read concat(state, telemetry). The first layer is written as two projections summed,
W [s; t] = W_s s + W_t t, because the telemetry is shared by every sample of a batch in the
paper profile: its projection is then computed once, not once per sample.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class SqueezeExcite(nn.Module):
    """Per-channel gate in (0, 1): the state (DWA preferences included) re-weights hidden features."""

    def __init__(self, channels: int = 256, squeezed: int = 64):
        super().__init__()
        self.down, self.up = nn.Linear(channels, squeezed), nn.Linear(squeezed, channels)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return h * torch.sigmoid(self.up(F.relu(self.down(h))))


class Trunk(nn.Module):
    """concat(state, telemetry) -> 256 -> [SE gate] -> 128 -> 128 -> out."""

    def __init__(self, state_dim: int, n_servers: int, out: int, gate: bool):
        super().__init__()
        self.state_in = nn.Linear(state_dim, 256)
        self.telemetry_in = nn.Linear(n_servers, 256, bias=False)
        self.gate = SqueezeExcite(256) if gate else nn.Identity()
        self.fc1, self.fc2, self.head = nn.Linear(256, 128), nn.Linear(128, 128), nn.Linear(128, out)

    def forward(self, state: torch.Tensor, telemetry: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.state_in(state) + self.telemetry_in(telemetry))  # telemetry (N,) broadcasts
        h = self.gate(h)
        return self.head(F.relu(self.fc2(F.relu(self.fc1(h)))))


class ActorCritic(nn.Module):
    def __init__(self, state_dim: int, n_servers: int):
        super().__init__()
        self.actor = Trunk(state_dim, n_servers, n_servers, gate=True)
        self.critic = Trunk(state_dim, n_servers, 1, gate=False)
        nn.init.orthogonal_(self.actor.head.weight, 0.01)  # near-uniform initial policy: the prior decides early
        nn.init.zeros_(self.actor.head.bias)

    def forward(self, state: torch.Tensor, telemetry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(state, telemetry), self.critic(state, telemetry).squeeze(-1)
