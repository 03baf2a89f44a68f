"""TopoFreeRL's networks (docs/schedulers.md): an SE-gated actor over servers and a plain critic,
both reading concat(state, per-server telemetry): 256 -> [SE gate] -> 128 -> 128 -> out.
`se_gate=False` (the config's ablation switch) drops the SE gate: the hidden features go on ungated."""
from __future__ import annotations

from typing import cast

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
    def __init__(self, state_dim: int, n_servers: int, se_gate: bool = True):
        super().__init__()
        self.actor = StateServerMLP(state_dim, n_servers, n_servers, gate=SqueezeExcite if se_gate else None)
        self.critic = StateServerMLP(state_dim, n_servers, 1)
        nn.init.orthogonal_(self.actor.head.weight, 0.01)  # near-uniform initial policy: the prior decides early
        nn.init.zeros_(self.actor.head.bias)

    def forward(self, state: torch.Tensor, telemetry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(state, telemetry), self.critic(state, telemetry).squeeze(-1)


class PerServerActorCritic(nn.Module):
    """Size-agnostic TopoFreeRL: one scorer with shared weights applied to every server.

    state -> 128 -> [SE gate, unless se_gate=False] = e; score_s = MLP(W_e e + W_f f_s) for each server's feature vector
    f_s, so no weight depends on the number of servers and one checkpoint schedules any topology.
    The critic reads the state alone.
    """

    def __init__(self, state_dim: int, server_dim: int, width: int = 128, hidden: int = 16, se_gate: bool = True):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(state_dim, width), nn.ReLU())  # built first: the seeded weights
        if se_gate:
            self.trunk.append(SqueezeExcite(width, width // 4))
        self.state_proj = nn.Linear(width, hidden)
        self.server_proj = nn.Linear(server_dim, hidden, bias=False)
        self.scorer = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.critic = StateServerMLP(state_dim, 0, 1, hidden=(width, width))
        head = cast(nn.Linear, self.scorer[-1])
        nn.init.orthogonal_(head.weight, 0.01)
        nn.init.zeros_(head.bias)
        self.actor = nn.ModuleList([self.trunk, self.state_proj, self.server_proj, self.scorer])

    def forward(self, state: torch.Tensor, servers: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, S), servers (B, N, F) -> logits (B, N), value (B,)."""
        h = self.state_proj(self.trunk(state))[:, None, :] + self.server_proj(servers)
        return self.scorer(h).squeeze(-1), self.critic(state).squeeze(-1)
