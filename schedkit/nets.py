"""Networks shared by the learned schedulers."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn


class StateServerMLP(nn.Module):
    """concat(state, per-server vector) -> hidden layers -> out.

    The first layer is written as W_s state + W_v vector, the same function as one Linear on the
    concatenation. A per-server vector shared by the whole batch (static telemetry or features)
    is then projected once instead of once per sample. `gate` (e.g. squeeze-and-excitation)
    is built on the first hidden layer's width and applied right after it.
    """

    def __init__(self, state_dim: int, server_dim: int, out: int, hidden: tuple[int, ...] = (256, 128, 128),
                 activation: Callable[[], nn.Module] = nn.ReLU, gate: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.state_in = nn.Linear(state_dim, hidden[0])
        self.server_in = nn.Linear(server_dim, hidden[0], bias=False) if server_dim else None
        self.gate = gate(hidden[0]) if gate else nn.Identity()
        self.act = activation()
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(hidden[:-1], hidden[1:]))
        self.head = nn.Linear(hidden[-1], out)

    def forward(self, state: torch.Tensor, server_vec: torch.Tensor | None = None) -> torch.Tensor:
        h = self.state_in(state)
        if self.server_in is not None:
            h = h + self.server_in(server_vec)  # (N,) or (B, N); broadcasts
        h = self.gate(self.act(h))
        for layer in self.hidden:
            h = self.act(layer(h))
        return self.head(h)
