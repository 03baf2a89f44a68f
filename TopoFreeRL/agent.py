"""TopoFreeRL's inputs and decision rule (docs/schedulers.md): spatiotemporal state, per-server
telemetry, the telemetry guidance prior, and masking of servers without the required model.

State (10): step progress, task lon, task lat (both scaled to the servers' bounding box),
previous-region id, the three DWA weights, and three summaries of the previous server's
neighbourhood: mean queue wait of its link neighbours (/5000 ms, clipped), its mean outbound link
bandwidth (/max), and whether it or a neighbour is a high-compute node (top 10% compute).

`state: reference` (the default) is these 10 features. `state: base` (an ablation) keeps only the 7
base features, without the three neighbourhood summaries.

Telemetry (one value per server), divided by its max:
    nc / (1 + 0.3 queue_norm) * (0.5 + 0.5 (1 - clip(cost_mult / 2, 0, 1))) * exp(-mean out latency / 500)
In the paper profile queues are identically zero, so the telemetry is static and computed once.
Under contention it is live, one vector per sample: queue_norm = the server's current queue wait
/ `telemetry_queue_ms` (config; unclipped), then divided by its max over servers.
The latency term is the latency a hop into the server is actually charged by the simulator: the expected
trap surcharge (150 ms) for a trap, else the mean over links to non-trap neighbours (edgesim/scores.py).
The reference telemetry's mean outbound BaseLatencyMs would count 2000 ms trap links that are never
paid (a hop touching a trap pays the surcharge instead), ranking the fast, cheap servers next to traps
among the worst.
Policy logits = actor + alpha * zscore(telemetry), alpha = alpha0 + alpha_slope * progress (0.6 + 0.6 *
progress by default). `guidance.prior: greedy_queue` (per_server only) puts greedy_queue's score at
`guidance.latency_weight` in place of the telemetry (greedy_prior), so the untrained argmax is that rule;
the contention study uses it at W = 0.9 with alpha = 3 + 3 * progress (docs/decisions.md).

Ablation switches (config keys; the defaults are the full method): `se_gate: false` drops the SE
gate (model.py); `guidance.enabled: false` drops the prior term alpha * zscore(telemetry) from the
logits (the networks still read the telemetry); `state: base` (above); `dwa.enabled: false` keeps
the DWA weights fixed (schedkit/trainer.py); `live_load: false` makes every input static under
contention: telemetry with queue_norm = 0, the neighbours' queue-wait summary 0, and the
per-server queue-wait feature 0 ("static telemetry").

Trained under serving with `live_load: true`, the agent also reads the serving profile's other four live
inputs of every server (schedkit/agent_base.py `live_inputs`: log(1 + queued requests), running batch /
max_batch, free KV / capacity, log(1 + outstanding prompt tokens / 4,096)); the queue wait enters as above
(serving's `server_load`, the expected wait before a prefill), and the per-server expected step latency
charges each engine at its live batch and KV, as greedy_queue does (an idle engine's with `live_load: false`).
The dense actor and critic read them after the
N telemetry values (5N in all); the per-server scorer appends them to each server's features
(SERVER_FEATURES, then SERVING_FEATURES). `remaining_tokens: true` (per_server, under serving) appends one more:
the output tokens the server's running requests can still be expected to decode (ServingSimulator
`expected_remaining_tokens`, from the public output-length distribution and how far each request has got, never
its hidden length), log(1 + tokens / 4,096): how long the running batch will hold its KV and slow each iteration.

`actor: dense` (the default, the reference design) has one output per server, so a checkpoint fits one server
count. `actor: per_server` is the size-agnostic variant: a shared scorer reads one feature vector
per server (SERVER_FEATURES, all dimensionless and independent of N) plus the state embedding, so
one checkpoint schedules any number of servers (zero-shot on larger topologies). Its critic reads
the state alone; `critic: pooled` adds a mean and max pool of a learned embedding of every valid
server's features (model.PooledCritic), so the value can see the live queues (a candidate of the
contention benchmark, checked on the validation setting and not adopted: docs/decisions.md).

`shortlist: K` (per_server only; 0, the default, scores every server) is for large topologies: each
decision first ranks all valid servers by a cheap one-step estimate, the weighted reward (under the
agent's current objective weights) of an expected latency (propagation, wireless transmission at the
hop distance, compute, the expected trap surcharge, and under contention the live queue wait) and the
step cost, and the scorer then scores only the best K. Its logits are over those K servers
(`features["shortlist"]` holds their indices; schedkit.rollout.chosen_servers maps a choice back), so
the rollout stores and the PPO update recomputes K scores per decision instead of N (shortlist.py).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from edgesim import physics as P
from edgesim.dataset import Dataset
from edgesim.expectation import ChannelTable, expected_hop
from edgesim.scores import greedy_score, live_telemetry, static_telemetry
from edgesim.serving import ServingSimulator
from edgesim.simulator import Observation, Simulator
from schedkit.agent_base import BASE_STATE_DIM, MaskedAgent, live_width, raw_live_inputs
from schedkit.config import ConfigError

from .model import ActorCritic, PerServerActorCritic
from .shortlist import Shortlist

REFERENCE_STATE_DIM = BASE_STATE_DIM + 3
QUEUE_NORM_MS = 5000.0
HIGH_COMPUTE_QUANTILE = 0.9
CRITIC_POOL = 32  # `critic: pooled`: width of each server's embedding, pooled by mean and max
SERVER_FEATURES = ("telemetry", "telemetry z-score", "compute nc", "cost multiplier / 2", "trap",
                   "queue wait / 1 s", "log(1 + hop km) / 5", "same region as the hop source",
                   "link BaseLatencyMs / 1 s", "step cost / $0.05", "step compute / 1 s",
                   "expected step latency without queues / 5 s")  # serving: each engine at its live batch and KV
SERVING_FEATURES = ("log(1 + queued requests)", "running batch / max_batch", "free KV / capacity",
                    "log(1 + outstanding prompt tokens / 4096)")  # after SERVER_FEATURES, trained under serving
REMAINING_SCALE = 4096.0  # `remaining_tokens`' scale in tokens: the context window, as the outstanding prompt tokens'


def _row_zscore(x: torch.Tensor) -> torch.Tensor:
    """Standardise each row of a (B, N) per-server vector across its servers."""
    return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True) + 1e-8)


def greedy_prior(servers: torch.Tensor, mask: torch.Tensor, latency_weight: float) -> torch.Tensor:
    """(B, N) the `guidance.prior: greedy_queue` prior: greedy_queue's score at W (expected step
    latency plus live queue wait, and step cost; edgesim/scores.py), negated so that higher is
    better, as a z-score over each row's valid servers. Read off the per-server features, so it
    costs O(N) arithmetic; its argmax is greedy_queue's choice at W."""
    f = {name: servers[..., i] for i, name in enumerate(SERVER_FEATURES)}
    latency = f["expected step latency without queues / 5 s"] * P.LATENCY_NORM_MS + f["queue wait / 1 s"] * 1000.0
    cost = f["step cost / $0.05"] * 0.05
    score = -greedy_score(latency, cost, latency_weight)
    m = mask.to(score.dtype)
    n = m.sum(1, keepdim=True).clamp_min(1.0)
    mean = (score * m).sum(1, keepdim=True) / n
    std = (((score - mean) * m).square().sum(1, keepdim=True) / n).sqrt()
    return torch.where(mask, (score - mean) / (std + 1e-8), 0.0)


def _neighbour_table(ds: Dataset) -> np.ndarray:
    """(N, D) link neighbours of each server, padded with -1."""
    order = np.argsort(ds.link_src, kind="stable")
    src, dst = ds.link_src[order], ds.link_dst[order]
    deg = np.bincount(src, minlength=ds.n_servers)
    table = np.full((ds.n_servers, max(1, deg.max(initial=0))), -1, np.int64)
    slot = np.arange(len(src)) - np.repeat(np.cumsum(deg) - deg, deg)
    table[src, slot] = dst
    return table


class TopoFreeAgent(MaskedAgent):
    algo = "TopoFreeRL"  # the name in its config and checkpoints
    # buffers (static per-server inputs; see __init__)
    telemetry: torch.Tensor
    nc_static: torch.Tensor
    telemetry_z: torch.Tensor
    neighbours: torch.Tensor
    out_bandwidth: torch.Tensor
    high_near: torch.Tensor
    cost_half: torch.Tensor
    trap: torch.Tensor
    net: PerServerActorCritic | ActorCritic
    # the string options of TopoFreeRL's config, checked before a run starts
    config_choices = {"state": ("reference", "base"), "actor": ("dense", "per_server"), "critic": ("state", "pooled"),
                      "guidance.prior": ("telemetry", "greedy_queue")}

    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        super().__init__(ds, cfg, device)
        self.per_server = cfg["actor"] == "per_server"
        self.telemetry_queue_ms = float(cfg["telemetry_queue_ms"])
        self.base_only = cfg["state"] == "base"
        self.live_load = bool(cfg["live_load"])
        self.live_width = live_width(cfg)  # 5 trained under serving: the wait, then `live_extra` more per server
        self.live_extra = max(self.live_width - 1, 0)
        self.remaining_tokens = bool(cfg["remaining_tokens"])
        if self.remaining_tokens and (self.live_extra == 0 or cfg["actor"] != "per_server"):
            raise ConfigError("config 'remaining_tokens': true needs profile: serving, live_load: true and "
                              "actor: per_server (it is one more live input of each server's features)")
        g = cfg["guidance"]
        self.alpha0, self.alpha_slope = float(g["alpha0"]), float(g["alpha_slope"])
        self.guidance = bool(g["enabled"])
        self.prior_kl_coef = float(g["kl"])
        if self.prior_kl_coef and not self.guidance:
            raise ConfigError(f"config 'guidance.kl': {self.prior_kl_coef:g} needs guidance.enabled: true (it keeps "
                              "training near the prior in the logits)")
        self.greedy_prior = g["prior"] == "greedy_queue"
        self.prior_latency_weight = float(g["latency_weight"])
        if self.greedy_prior and not self.per_server:
            raise ConfigError("config 'guidance.prior: greedy_queue' needs actor: per_server (it is read off the "
                              "per-server features)")
        k = int(cfg["shortlist"])
        if k and not self.per_server:
            raise ConfigError(f"config 'shortlist': {k} needs actor: per_server (the dense actor has one output "
                              "per server)")
        self.shortlist = Shortlist(ds, k, device) if k else None
        se_gate = bool(cfg["se_gate"])
        pooled = cfg["critic"] == "pooled"
        if pooled and not self.per_server:
            raise ConfigError("config 'critic: pooled' needs actor: per_server (the dense critic already reads the "
                              "telemetry of every server)")
        n = ds.n_servers
        nc_static = static_telemetry(ds)
        telemetry = nc_static / nc_static.max()
        nbr = _neighbour_table(ds)
        bw = np.bincount(ds.link_src, weights=ds.link_bandwidth, minlength=n) / np.maximum(
            np.bincount(ds.link_src, minlength=n), 1)
        high = ds.nc >= np.quantile(ds.nc, HIGH_COMPUTE_QUANTILE)
        high_near = high | (np.where(nbr >= 0, high[np.maximum(nbr, 0)], False)).any(1)

        def buf(name, a, dtype=torch.float32):
            self.register_buffer(name, torch.tensor(a, dtype=dtype, device=device), persistent=False)

        buf("telemetry", telemetry)
        buf("nc_static", nc_static)
        buf("telemetry_z", (telemetry - telemetry.mean()) / (telemetry.std() + 1e-8))
        buf("neighbours", nbr, torch.long)
        buf("out_bandwidth", bw / max(bw.max(), 1e-8))
        buf("high_near", high_near.astype(np.float32))
        buf("cost_half", np.clip(ds.cost_mult / 2, 0, 1))
        buf("trap", ds.is_trap.astype(np.float32))
        state_dim = BASE_STATE_DIM if self.base_only else REFERENCE_STATE_DIM
        if self.per_server:
            self.channel = ChannelTable.shared(device)
            width = len(SERVER_FEATURES) + self.live_extra + int(self.remaining_tokens)
            self.net = PerServerActorCritic(state_dim, width, se_gate=se_gate,
                                            critic_pool=CRITIC_POOL if pooled else 0).to(device)
        else:
            self.net = ActorCritic(state_dim, n, se_gate=se_gate, inputs_per_server=1 + self.live_extra).to(device)

    @staticmethod
    def size_agnostic(cfg: dict) -> bool:
        """Whether a checkpoint of this config schedules any dataset (no weight depends on N or the types)."""
        return cfg["actor"] == "per_server"

    def networks(self) -> list[nn.Module]:
        return [self.net.actor, self.net.critic]

    def server_features(self, sim: Simulator, obs: Observation, telemetry: torch.Tensor,
                        load: torch.Tensor | None, shortlist: torch.Tensor | None = None,
                        live: torch.Tensor | None = None) -> torch.Tensor:
        """(B, N, len(SERVER_FEATURES)) inputs of the per-server scorer, or (B, K, ...) for the
        servers of a (B, K) `shortlist` (the telemetry's z-score still standardises over all N); with
        `live` (B, N, E), the serving inputs besides the wait, its E columns appended."""
        net, B = sim.net, sim.batch_size
        servers = torch.arange(sim.n_servers, device=sim.device)[None] if shortlist is None else shortlist

        def at(x: torch.Tensor) -> torch.Tensor:
            """The shortlisted columns of a per-server (N,), (1, N) or (B, N) quantity, as (B, K)."""
            if shortlist is None:
                return x.expand(B, -1)
            return x.gather(1, shortlist) if x.shape[0] == B and x.dim() == 2 else x.reshape(-1)[shortlist]

        region = sim.hop_region()
        hop = expected_hop(sim, obs, self.channel, servers, live=self.live_load)  # serving: engines at their live batch
        km, link, expected = hop["km"], hop["link"], hop["latency"].float()
        tokens = obs.tokens.float()[:, None]
        cost = P.step_cost(tokens, at(net.price[obs.required_type].float()), at(net.cost_mult.float()))
        if shortlist is None:
            telemetry = telemetry.expand(B, -1)
        nc = at(net.nc.float())
        features = torch.stack([
            at(telemetry), at(_row_zscore(telemetry.reshape(-1, sim.n_servers))), nc, at(self.cost_half), at(self.trap),
            torch.zeros_like(km) if load is None else at(load) / 1000.0,
            torch.log1p(km) / 5, (at(net.region) == region[:, None]).float(), link / 1000.0,
            cost / 0.05, tokens / (nc * P.TOKENS_PER_SECOND_AT_FULL_COMPUTE), expected / P.LATENCY_NORM_MS,
        ], -1)
        if live is None:
            return features
        if shortlist is not None:
            live = live.gather(1, shortlist[..., None].expand(-1, -1, live.shape[-1]))
        return torch.cat([features, live], -1)

    def state(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> torch.Tensor:
        """The base state, then (unless `state: base`) the previous server's neighbourhood summaries."""
        base = self.base_state(sim, obs, weights)
        if self.base_only:
            return base
        prev = obs.prev_server.clamp_min(0)
        has_prev = (obs.prev_server >= 0).float()
        if self.live_load:
            nbr = self.neighbours[prev]  # (B, D)
            wait = sim.queue_wait(nbr.clamp_min(0)).float()
            valid_nbr = (nbr >= 0).float()
            nbr_wait = (wait * valid_nbr).sum(1) / valid_nbr.sum(1).clamp_min(1) / QUEUE_NORM_MS
        else:
            nbr_wait = torch.zeros_like(has_prev)
        return torch.cat([base, torch.stack([
            has_prev * nbr_wait.clamp(0, 1),
            has_prev * self.out_bandwidth[prev],
            has_prev * self.high_near[prev],
        ], 1)], 1)

    def features(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        state = self.state(sim, obs, weights)
        feats = {"state": state, "progress": obs.progress.float(), "mask": self.mask(sim)}
        raw = raw_live_inputs(sim, width=self.live_width) if self.live_extra else None  # serving: (B, N, 5)
        load = None  # the wait (ms) read once: under serving it is the first live input
        if sim.profile.queues and self.live_load:
            load = (sim.server_load() if raw is None else raw[..., 0]).float()
            feats["telemetry"] = live_telemetry(self.nc_static, load, self.telemetry_queue_ms)
        extra = None if raw is None else raw[..., 1:].float()  # (B, N, E): the other live inputs
        if self.remaining_tokens:
            assert isinstance(sim, ServingSimulator) and extra is not None  # the config allows it under serving only
            remaining = torch.log1p(sim.expected_remaining_tokens().float() / REMAINING_SCALE)
            extra = torch.cat([extra, remaining[..., None]], -1)
        if self.shortlist is not None:
            short = self.shortlist(sim, obs, weights, feats["mask"], load)
            live = feats.pop("telemetry", None)  # (B, N): not stored, only its values at the shortlist are read
            feats["servers"] = self.server_features(sim, obs, self.telemetry if live is None else live, load, short,
                                                    extra)
            # the guidance prior of the full actor (forward), at the shortlist: live, it is the z-score feature
            feats["prior"] = self.telemetry_z[short] if live is None else feats["servers"][..., 1]
            feats["mask"], feats["shortlist"] = feats["mask"].gather(1, short), short
        elif self.per_server:
            feats["servers"] = self.server_features(sim, obs, feats.get("telemetry", self.telemetry), load, None,
                                                    extra)
        elif extra is not None:
            feats["live"] = extra
        if self.greedy_prior and self.guidance:  # without guidance no prior enters the logits
            feats["prior"] = greedy_prior(feats["servers"], feats["mask"], self.prior_latency_weight)
        return feats

    def prior_term(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """alpha * the prior's z-score, (B, N) or (B, K) at a shortlist: what guidance adds to the actor's logits."""
        if "prior" in feats:  # greedy_queue's score, or the telemetry at a shortlist
            z = feats["prior"]
        elif "telemetry" in feats:  # live, (B, N)
            z = _row_zscore(feats["telemetry"])
        else:  # static, (N,)
            z = self.telemetry_z.expand(len(feats["progress"]), -1)
        return (self.alpha0 + self.alpha_slope * feats["progress"])[:, None] * z

    def prior_log_probs(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        """The prior's own policy, softmax(alpha * z) over the valid servers: `guidance.kl` keeps training near it."""
        return torch.log_softmax(self.masked(self.prior_term(feats), feats["mask"]), -1)

    def forward(self, feats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        telemetry = feats.get("telemetry", self.telemetry)
        if isinstance(self.net, PerServerActorCritic):
            logits, value = self.net(feats["state"], feats["servers"], feats["mask"])
        elif "live" in feats:  # serving: the N telemetry values, then each server's other live inputs
            live = feats["live"]
            logits, value = self.net(feats["state"], torch.cat([telemetry.expand(len(live), -1), live.flatten(1)], 1))
        else:
            logits, value = self.net(feats["state"], telemetry)
        if self.guidance:
            logits = logits + self.prior_term(feats)
        return self.masked(logits, feats["mask"]), value
