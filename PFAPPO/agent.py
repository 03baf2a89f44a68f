"""PF-PPO (after Sun et al., IEEE TSC 2024): standard PPO whose networks also read per-server
compute and cost, and whose reward adds a proportional-fairness bonus for spreading load.

Fairness bonus of choosing server s (exact formula; PFAPPO/README.md explains it):
    x_s   = (decisions on s among the last W decisions) / W          load share, sliding window
    gain  = log(eps + x_s + 1/W) - log(eps + x_s)                    marginal log-utility of one more
    bonus = weight * gain / log(1 + 1 / (eps * W))                   in (0, weight]; 1 at x_s = 0
The window is part of the agent's state_dict, so a resumed run continues it exactly.
With `live_load: true` the per-server inputs also hold each server's live inputs (PPO_algorithm/agent.py):
its queue wait under contention (3N), the serving profile's five live inputs under serving (7N).
"""
from __future__ import annotations

import math

import numpy as np
import torch

from edgesim.dataset import Dataset
from PPO_algorithm.agent import PPOAgent


class PFPPOAgent(PPOAgent):
    algo = "PFAPPO"  # the name in its config and checkpoints
    recent: torch.Tensor  # the servers of the last `window` decisions (-1: empty), a ring buffer
    cursor: torch.Tensor  # where the next decision goes in it
    integer_state = ("recent", "cursor")

    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        pf = cfg["fairness"]
        self.pf_weight, self.pf_eps, self.window = float(pf["weight"]), float(pf["eps"]), int(pf["window"])
        self.n_servers = ds.n_servers
        super().__init__(ds, cfg, device)
        self.register_buffer("recent", torch.full((self.window,), -1, dtype=torch.long, device=device))
        self.register_buffer("cursor", torch.zeros((), dtype=torch.long, device=device))

    def server_features(self, ds: Dataset) -> np.ndarray:
        """Normalised compute and cost multiplier of every server, concatenated (float32 arithmetic)."""
        cost = ds.cost_mult.astype(np.float32)
        return np.concatenate([ds.nc.astype(np.float32), cost / cost.max()])

    def state_problem(self, weights: dict[str, torch.Tensor]) -> str | None:
        recent, cursor = weights["recent"], weights["cursor"]
        if bool(((recent < -1) | (recent >= self.n_servers)).any()):
            return f"its fairness window 'recent' holds entries outside [-1, {self.n_servers})"
        if not 0 <= int(cursor) < self.window:
            return f"its fairness window 'cursor' is {int(cursor)}, outside [0, {self.window})"
        return None

    def load_shares(self) -> torch.Tensor:
        filled = self.recent[self.recent >= 0]
        return torch.bincount(filled, minlength=self.n_servers).float() / self.window

    @torch.no_grad()
    def reward_bonus(self, actions: torch.Tensor) -> torch.Tensor:
        """Bonus of each decision against the window before this step; then the window moves on."""
        x = self.load_shares()
        gain = torch.log(self.pf_eps + x + 1.0 / self.window) - torch.log(self.pf_eps + x)
        bonus = self.pf_weight * gain[actions] / math.log(1.0 + 1.0 / (self.pf_eps * self.window))
        new = actions[-self.window:]
        slots = (self.cursor + torch.arange(len(new), device=new.device)) % self.window
        self.recent[slots] = new
        self.cursor.copy_((self.cursor + len(new)) % self.window)
        return bonus
