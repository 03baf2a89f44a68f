"""Standard PPO (docs/schedulers.md): the 7 base state features, no per-server input, tanh MLPs
256-128-128 for actor (logits over servers) and critic.

Under the contention profile with `live_load: true` (the default) both networks also read every
server's live queue wait, one value per server and sample (`queue_feature`, log(1 + wait / 100 ms)),
appended to the per-server vector. Trained under serving they read the profile's five live inputs per
server (schedkit/agent_base.py `live_inputs`): the N queue-wait features as under contention, then the
other four of every server (queued requests, running batch, free KV, outstanding prompt tokens), 5N in
all. `live_load: false` and the paper profile keep the published inputs.

`load_logit: true` (the default) also adds each server's own queue feature to that server's logit,
times one learned weight (initialised to -1: a longer queue is worse). The dense MLP alone has to
learn which of its N load inputs belongs to which of its N outputs; in 100 epochs on 500 servers it
does not, and its argmax sends every workflow to the same few servers (PPO 505 s mean latency at
8/s against 4.2 s for `greedy_queue`). Chosen on the train split at 8/s (README, "Results under
contention")."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgesim.dataset import Dataset
from edgesim.simulator import Observation, Simulator
from schedkit.agent_base import BASE_STATE_DIM, MaskedAgent, live_inputs, live_width
from schedkit.nets import StateServerMLP


class PPOAgent(MaskedAgent):
    """Subclasses add static per-server inputs by overriding `server_features`; the live inputs
    (`live_load`: the queue waits, then under serving the other live inputs of every server) follow them."""

    algo = "PPO"  # the name in its config and checkpoints
    server_vec: torch.Tensor | None  # the static per-server inputs (a buffer)
    actor: StateServerMLP
    critic: StateServerMLP

    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        super().__init__(ds, cfg, device)
        vec = self.server_features(ds)
        self.register_buffer("server_vec", None if vec is None else torch.tensor(vec, dtype=torch.float32, device=device),
                             persistent=False)
        self.live_width = live_width(cfg)
        self.live_load = self.live_width > 0
        width = (0 if vec is None else len(vec)) + ds.n_servers * self.live_width
        self.actor = StateServerMLP(BASE_STATE_DIM, width, ds.n_servers, activation=nn.Tanh).to(device)
        self.critic = StateServerMLP(BASE_STATE_DIM, width, 1, activation=nn.Tanh).to(device)
        nn.init.orthogonal_(self.actor.head.weight, 0.01)
        self.load_logit = self.live_load and bool(cfg["load_logit"])
        if self.load_logit:
            self.load_weight = nn.Parameter(torch.tensor(-1.0, device=device))

    def server_features(self, ds: Dataset) -> np.ndarray | None:
        """A per-server vector shared by every sample, or None (standard PPO has none)."""
        return None

    def networks(self) -> list[nn.Module]:
        return [self.actor, self.critic]

    def features(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = {"state": self.base_state(sim, obs, weights), "mask": self.mask(sim)}
        if self.live_load:
            live = live_inputs(sim, width=self.live_width)  # (B, N, F)
            feats["load"] = live[..., 0]  # the queue-wait feature, which load_logit also reads
            if self.live_width > 1:
                feats["live"] = live[..., 1:]
        return feats

    def server_input(self, feats: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """The per-server vector the networks read: the static one (N',) or, with live load, (B, N' + F N):
        the static one, the N queue-wait features, then each server's other live inputs."""
        if not self.live_load:
            return self.server_vec
        load = feats["load"]
        parts = [] if self.server_vec is None else [self.server_vec.expand(len(load), -1)]
        parts.append(load)
        if "live" in feats:
            parts.append(feats["live"].flatten(1))
        return parts[0] if len(parts) == 1 else torch.cat(parts, 1)

    def forward(self, feats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        state, servers = feats["state"], self.server_input(feats)
        logits = self.actor(state, servers)
        if self.load_logit:
            logits = logits + self.load_weight * feats["load"]
        return (self.masked(logits, feats["mask"]),
                self.critic(state, servers).squeeze(-1))
