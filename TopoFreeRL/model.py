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
    """The dense actor and critic: `inputs_per_server` values of every server (the telemetry, then under
    serving each server's other live inputs) beside the state; one logit per server."""

    def __init__(self, state_dim: int, n_servers: int, se_gate: bool = True, inputs_per_server: int = 1):
        super().__init__()
        width = n_servers * inputs_per_server
        self.actor = StateServerMLP(state_dim, width, n_servers, gate=SqueezeExcite if se_gate else None)
        self.critic = StateServerMLP(state_dim, width, 1)
        nn.init.orthogonal_(self.actor.head.weight, 0.01)  # near-uniform initial policy: the prior decides early
        nn.init.zeros_(self.actor.head.bias)

    def forward(self, state: torch.Tensor, telemetry: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.actor(state, telemetry), self.critic(state, telemetry).squeeze(-1)


class PerServerActorCritic(nn.Module):
    """Size-agnostic TopoFreeRL: one scorer with shared weights applied to every server.

    state -> 128 -> [SE gate, unless se_gate=False] = e; score_s = MLP(W_e e + W_f f_s) for each server's feature vector
    f_s, so no weight depends on the number of servers and one checkpoint schedules any topology.
    The critic reads the state alone, or with `critic_pool` > 0 the state and a pooled summary of
    the servers (`PooledCritic`).
    """

    def __init__(self, state_dim: int, server_dim: int, width: int = 128, hidden: int = 16, se_gate: bool = True,
                 critic_pool: int = 0):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(state_dim, width), nn.ReLU())  # built first: the seeded weights
        if se_gate:
            self.trunk.append(SqueezeExcite(width, width // 4))
        self.state_proj = nn.Linear(width, hidden)
        self.server_proj = nn.Linear(server_dim, hidden, bias=False)
        self.scorer = nn.Sequential(nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.critic: nn.Module = (PooledCritic(state_dim, server_dim, critic_pool, width) if critic_pool
                                  else StateServerMLP(state_dim, 0, 1, hidden=(width, width)))
        head = cast(nn.Linear, self.scorer[-1])
        nn.init.orthogonal_(head.weight, 0.01)
        nn.init.zeros_(head.bias)
        self.actor = nn.ModuleList([self.trunk, self.state_proj, self.server_proj, self.scorer])

    def forward(self, state: torch.Tensor, servers: torch.Tensor,
                mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """state (B, S), servers (B, N, F), mask (B, N) of the valid servers -> logits (B, N), value (B,)."""
        h = self.state_proj(self.trunk(state))[:, None, :] + self.server_proj(servers)
        value = self.critic(state, servers, mask) if isinstance(self.critic, PooledCritic) else self.critic(state)
        return self.scorer(h).squeeze(-1), value.squeeze(-1)


class PooledCritic(nn.Module):
    """A value function that sees the servers, not only the state: each valid server's feature
    vector is embedded (F -> `pool`, ReLU) and the embeddings' mean and max over the valid servers
    join the state (DeepSets pooling: size-agnostic, any N).

    Why: under contention a workflow's return is mostly the queue waits it will meet, which the
    state (position, progress, weights, one neighbourhood summary) barely shows; the per-server
    features hold every server's live queue wait."""

    def __init__(self, state_dim: int, server_dim: int, pool: int, width: int = 128):
        super().__init__()
        self.embed = nn.Sequential(nn.Linear(server_dim, pool), nn.ReLU())
        self.mlp = StateServerMLP(state_dim, 2 * pool, 1, hidden=(width, width))

    def forward(self, state: torch.Tensor, servers: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        e = self.embed(servers)  # (B, N, pool), >= 0
        m = torch.ones(e.shape[:2], dtype=torch.bool, device=e.device) if mask is None else mask
        w = m[..., None].to(e.dtype)
        mean = (e * w).sum(1) / w.sum(1).clamp_min(1.0)
        return self.mlp(state, torch.cat([mean, (e * w).amax(1)], -1))
