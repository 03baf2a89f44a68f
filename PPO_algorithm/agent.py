"""Standard PPO (SPEC section 4): the 7 base state features, no per-server input, tanh MLPs
256-128-128 for actor (logits over servers) and critic."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgesim.dataset import Dataset
from edgesim.simulator import Observation, Simulator
from schedkit.agent_base import BASE_STATE_DIM, MaskedAgent
from schedkit.nets import StateServerMLP


class PPOAgent(MaskedAgent):
    """Subclasses add per-server inputs by overriding `server_features`."""

    algo = "PPO"  # the name in its config and checkpoints

    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        super().__init__(ds, cfg, device)
        vec = self.server_features(ds)
        self.register_buffer("server_vec", None if vec is None else torch.tensor(vec, dtype=torch.float32, device=device),
                             persistent=False)
        width = 0 if vec is None else len(vec)
        self.actor = StateServerMLP(BASE_STATE_DIM, width, ds.n_servers, activation=nn.Tanh).to(device)
        self.critic = StateServerMLP(BASE_STATE_DIM, width, 1, activation=nn.Tanh).to(device)
        nn.init.orthogonal_(self.actor.head.weight, 0.01)

    def server_features(self, ds: Dataset) -> np.ndarray | None:
        """A per-server vector shared by every sample, or None (standard PPO has none)."""
        return None

    def networks(self) -> list[nn.Module]:
        return [self.actor, self.critic]

    def features(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"state": self.base_state(sim, obs, weights), "mask": self.mask(sim)}

    def forward(self, feats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        state = feats["state"]
        return (self.masked(self.actor(state, self.server_vec), feats["mask"]),
                self.critic(state, self.server_vec).squeeze(-1))
