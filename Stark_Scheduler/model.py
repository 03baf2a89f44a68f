"""STARK-style transformer scheduler (docs/schedulers.md, after Yan et al., ICCV 2021).

Tokens: one task token [progress, task lon, task lat, tokens / 2000, required-type one-hot] and one
token per candidate server [lon, lat, nc, cost multiplier / max, latency history / 1000 ms,
distance to the task / 100 km, valid], plus, with `live_load: true` (the default), the server's
live inputs (schedkit/agent_base.py `live_inputs`): under contention its queue wait (`queue_feature`,
log(1 + wait / 100 ms)), which the expert greedy_queue ranks by; trained under serving the profile's
five (the wait, then queued requests, running batch, free KV and outstanding prompt tokens). A
transformer encoder mixes them; a decoder with one learned query reads the encoding; each server's
score is the dot product of the decoded query with that server's encoding (a pointer head). With no
positional encoding the scores are permutation-equivariant in the server tokens, and one model handles
any number of candidates.

Candidates: a transformer over all 500 server tokens is costly on 2 CPU cores, so each decision
looks at the `candidates` valid servers with the highest static score nc / cost multiplier for the
step's model type (a fixed per-type list). README reports how often the expert's choice is inside.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import nn

from edgesim.dataset import Dataset
from edgesim.physics import haversine_km
from edgesim.simulator import Observation, Simulator
from schedkit.agent_base import MaskedAgent, live_inputs, live_width
from schedkit.rollout import MASK_VALUE

SERVER_FEATURES = 7  # without the live inputs
TOKEN_SCALE, HISTORY_SCALE_MS, DISTANCE_SCALE_KM = 2000.0, 1000.0, 100.0


class StarkNet(nn.Module):
    def __init__(self, task_dim: int, d_model: int = 64, heads: int = 4, layers: int = 2,
                 server_dim: int = SERVER_FEATURES):
        super().__init__()
        self.task_embed = nn.Linear(task_dim, d_model)
        self.server_embed = nn.Linear(server_dim, d_model)
        block: dict[str, Any] = dict(d_model=d_model, nhead=heads, dim_feedforward=4 * d_model, dropout=0.0,
                                     batch_first=True)
        self.encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(**block), layers, enable_nested_tensor=False)
        self.decoder = nn.TransformerDecoder(nn.TransformerDecoderLayer(**block), 1)
        self.query = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
        self.pointer = nn.Linear(d_model, d_model)

    def forward(self, task: torch.Tensor, servers: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """task (B, task_dim), servers (B, K, server_dim), pad (B, K) True where a slot is empty -> (B, K) scores."""
        tokens = torch.cat([self.task_embed(task)[:, None], self.server_embed(servers)], 1)
        pad = torch.cat([torch.zeros_like(pad[:, :1]), pad], 1)  # the task token is never padding
        enc = self.encoder(tokens, src_key_padding_mask=pad)
        q = self.decoder(self.query.expand(len(task), -1, -1), enc, memory_key_padding_mask=pad)
        scores = (enc[:, 1:] @ self.pointer(q).transpose(1, 2)).squeeze(-1) / math.sqrt(enc.shape[-1])
        return scores.masked_fill(pad[:, 1:], MASK_VALUE)


def candidate_table(ds: Dataset, k: int) -> np.ndarray:
    """(T, k) per model type, its valid servers by descending nc / cost multiplier; -1 pads."""
    score = ds.nc / ds.cost_mult
    table = np.full((len(ds.type_names), k), -1, np.int64)
    for t in range(len(ds.type_names)):
        valid = np.flatnonzero(ds.instance_of[t] >= 0)
        best = valid[np.argsort(-score[valid], kind="stable")][:k]
        table[t, :len(best)] = best
    return table


class StarkAgent(MaskedAgent):
    """Scores the candidate servers; every other server gets MASK_VALUE."""

    algo = "STARK"  # the name in its config and checkpoints
    cands: torch.Tensor  # (types, K) candidate servers per model type, -1 padded
    static: torch.Tensor  # (N, F) static server features
    net: "StarkNet"

    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        super().__init__(ds, cfg, device)
        m = cfg["model"]
        self.n_types, self.n_servers = len(ds.type_names), ds.n_servers
        self.register_buffer("cands", torch.tensor(candidate_table(ds, int(m["candidates"])), device=device),
                             persistent=False)
        g = self.geo.cpu().numpy()
        static = np.stack([(ds.lon - g[0]) / g[1], (ds.lat - g[2]) / g[3], ds.nc, ds.cost_mult / ds.cost_mult.max()], 1)
        self.register_buffer("static", torch.tensor(static, dtype=torch.float32, device=device), persistent=False)
        self.live_width = live_width(cfg)
        self.live_load = self.live_width > 0
        self.net = StarkNet(4 + self.n_types, int(m["d_model"]), int(m["heads"]), int(m["layers"]),
                            SERVER_FEATURES + self.live_width).to(device)

    def networks(self) -> list[nn.Module]:
        return [self.net]

    def features(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        cands = self.cands[obs.required_type]  # (B, K)
        pad = cands < 0
        c = cands.clamp_min(0)
        history = sim.latency_history().gather(1, c).float() / HISTORY_SCALE_MS
        dist = haversine_km(obs.task_lon[:, None], obs.task_lat[:, None], sim.net.lon[c], sim.net.lat[c])
        valid = sim.valid_mask().gather(1, c) & ~pad
        live = [live_inputs(sim, c, self.live_width)] if self.live_load else []
        servers = torch.cat([self.static[c], history[..., None], (dist.float() / DISTANCE_SCALE_KM)[..., None],
                             valid.float()[..., None], *live], -1)
        task = torch.cat([torch.stack([obs.progress.float(), (obs.task_lon.float() - self.geo[0]) / self.geo[1],
                                       (obs.task_lat.float() - self.geo[2]) / self.geo[3],
                                       obs.tokens.float() / TOKEN_SCALE], 1),
                          torch.nn.functional.one_hot(obs.required_type, self.n_types).float()], 1)
        return {"task": task, "servers": servers, "pad": pad | ~valid,
                "cands": torch.where(pad, self.n_servers, cands)}  # padding scatters to a dropped column

    def forward(self, feats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        scores = self.net(feats["task"], feats["servers"], feats["pad"])
        logits = torch.full((len(scores), self.n_servers + 1), MASK_VALUE, device=scores.device)
        logits = logits.scatter(1, feats["cands"], scores)[:, :-1]
        return logits, torch.zeros(len(scores), device=scores.device)
