"""What every learned scheduler's agent shares: the base state, the mask, masked logits.

Fair comparison: every learned method sees the same valid-server mask (in training unless the
config says `mask: false`, always at evaluation) and the same 7 base state features (docs/schedulers.md):
step progress, task lon and lat scaled to the servers' bounding box, previous-region id, and
the three DWA weights.

Live load (config `live_load`, shared by every algorithm): under a profile with queues a learned
scheduler may read the live per-server inputs that profile offers (`live_inputs`): under contention
one per server, the queue wait; under serving five (the wait, queued requests, running batch, free KV,
outstanding prompt tokens). Whether its network has them, and how many, is fixed by the *training*
config (`reads_live_load`, `live_width`), so a checkpoint keeps its input sizes when evaluated under
another profile offering as many (the paper profile's queues read as zero) and is refused under one
offering another number (`live_input_problem`).
"""
from __future__ import annotations

import torch
from torch import nn

from edgesim.dataset import Dataset
from edgesim.paper import Profile
from edgesim.registry import get_profile
from edgesim.simulator import Observation, Simulator

from .rollout import MASK_VALUE

BASE_STATE_DIM = 7
QUEUE_SCALE_MS = 100.0


def reads_live_load(cfg: dict) -> bool:
    """Whether an agent of this config has live per-server inputs: trained under a profile with queues
    (contention, serving) with `live_load` on."""
    return get_profile(cfg["profile"]).queues and bool(cfg["live_load"])


def live_width(cfg: dict) -> int:
    """F, the live inputs per server an agent of this config reads: its training profile's count
    (1 under contention, 5 under serving) with `reads_live_load`, else 0. Input widths follow it."""
    return len(get_profile(cfg["profile"]).live_inputs) if reads_live_load(cfg) else 0


def live_input_problem(cfg: dict, profile: Profile) -> str | None:
    """Why a checkpoint of training config `cfg` cannot be evaluated under `profile` (its networks read
    another number of live inputs per server than the profile offers), or None."""
    trained = live_width(cfg)
    offered = profile.live_inputs
    if trained == 0 or trained == len(offered):
        return None
    return (f"it was trained under the {cfg['profile']!r} profile and reads {trained} live input(s) per server, "
            f"but the {profile.name!r} profile offers {len(offered)} ({', '.join(offered)}); evaluate it under "
            f"--profile {cfg['profile']} or train it under {profile.name}")


def queue_feature(wait_ms: torch.Tensor) -> torch.Tensor:
    """A queue wait as a network input: log(1 + wait / 100 ms); 0 for an idle server."""
    return torch.log1p(wait_ms.float() / QUEUE_SCALE_MS)


class LiveInputError(ValueError):
    """An agent asked a simulator for another number of live inputs per server than its profile offers."""


def raw_live_inputs(sim: Simulator, servers: torch.Tensor | None = None, width: int | None = None) -> torch.Tensor:
    """(B, N, F) the live per-server inputs `sim`'s profile offers (`Simulator.live_inputs`) in their own
    units (column 0 the expected wait in ms), or (B, K, F) at `servers` (B, K). `width`: the F the caller's
    networks were built for; another F is a LiveInputError. For an agent that reads the wait in ms too."""
    raw = sim.live_inputs(servers)
    if width is not None and raw.shape[-1] != width:
        raise LiveInputError(f"live inputs: the agent's networks read {width} per server, the "
                             f"{sim.profile.name!r} profile offers {raw.shape[-1]} ({', '.join(sim.profile.live_inputs)})")
    return raw


def live_inputs(sim: Simulator, servers: torch.Tensor | None = None, width: int | None = None) -> torch.Tensor:
    """(B, N, F) float32: the live per-server inputs `sim`'s profile offers (`raw_live_inputs`, same
    arguments), or (B, K, F) at `servers` (B, K), each on a unit scale so that no input dominates the first
    layer: column 0 the expected wait as `queue_feature`, log(1 + wait / 100 ms); under serving then
    log(1 + queued requests), running batch / max_batch and free KV tokens / capacity (both in [0, 1]),
    and log(1 + outstanding prompt tokens / 4,096). F = 1 under contention and paper (exactly the queue
    feature agents read there), 5 under serving. Hidden output lengths never enter (the simulator reads
    known state only)."""
    raw = raw_live_inputs(sim, servers, width)
    wait = queue_feature(raw[..., :1])
    return wait if raw.shape[-1] == 1 else torch.cat([wait, raw[..., 1:].float()], -1)


class MaskedAgent(nn.Module):
    """The base of every learned scheduler: the agent contract, its defaults, and the inputs all share.

    An algorithm folder's agent is built as `Agent(ds, cfg, device)` and provides
      features(sim, obs, weights) -> dict of (B, ...) tensors   what the rollout stores per decision
      forward(features) -> (masked logits (B, N), value (B,))   via `self.masked(logits, mask)`
      networks() -> [actor, critic, ...]                        gradient norms are clipped per network
    and may override
      reward_bonus(actions) -> (B,)      a training-only term added to each step's scalarised reward
                                         (PF-PPO's fairness bonus; its state belongs in the state_dict)
      prior_kl_coef, prior_log_probs(features) -> (B, N)
                                         a prior policy the PPO update keeps the policy near, by
                                         prior_kl_coef * KL(policy || prior) (TopoFreeRL's guidance.kl)
      size_agnostic(cfg) -> bool         whether a checkpoint schedules datasets other than its own
      config_choices                     the algorithm's own string options of config.yaml
      integer_state                      state_dict entries holding integers (every other one is floating point)
      state_problem(weights) -> str|None why a checkpoint's values cannot be this agent's (e.g. an index out of range)
    `evaluation()` switches it to deterministic evaluation (eval mode, masking always on)."""

    config_choices: dict[str, tuple[str, ...]] = {}
    integer_state: tuple[str, ...] = ()
    prior_kl_coef = 0.0  # no prior to stay near
    geo: torch.Tensor  # (lon centre, lon half-width, lat centre, lat half-width) of the servers

    def features(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def networks(self) -> list[nn.Module]:
        raise NotImplementedError

    def prior_log_probs(self, features: dict[str, torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no prior policy (prior_kl_coef is 0)")

    def __init__(self, ds: Dataset, cfg: dict, device: torch.device):
        super().__init__()
        self.mask_training = bool(cfg["mask"])
        self.greedy = False  # evaluation: masking is then always on
        self.n_regions = len(ds.regions)
        lon0, lon1, lat0, lat1 = ds.lon.min(), ds.lon.max(), ds.lat.min(), ds.lat.max()
        self.register_buffer("geo", torch.tensor(
            [(lon0 + lon1) / 2, max(lon1 - lon0, 1e-3) / 2, (lat0 + lat1) / 2, max(lat1 - lat0, 1e-3) / 2],
            dtype=torch.float32, device=device), persistent=False)

    def base_state(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> torch.Tensor:
        return torch.stack([
            obs.progress.float(),
            (obs.task_lon.float() - self.geo[0]) / self.geo[1],
            (obs.task_lat.float() - self.geo[2]) / self.geo[3],
            obs.prev_region.float() / max(self.n_regions - 1, 1),
            *weights.float().expand(sim.batch_size, 3).T,
        ], 1)

    @staticmethod
    def size_agnostic(cfg: dict) -> bool:
        return False

    def state_problem(self, weights: dict[str, torch.Tensor]) -> str | None:
        """What is wrong with the values of a checkpoint's `weights` for this agent (names, shapes and
        dtypes are already checked), or None."""
        return None

    def reward_bonus(self, actions: torch.Tensor) -> torch.Tensor:
        return torch.zeros(actions.shape, device=actions.device)

    def evaluation(self) -> "MaskedAgent":
        self.eval()
        self.greedy = True
        return self

    def mask(self, sim: Simulator) -> torch.Tensor:
        if self.mask_training or self.greedy:
            return sim.valid_mask()
        return torch.ones((sim.batch_size, sim.n_servers), dtype=torch.bool, device=sim.device)

    @staticmethod
    def masked(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return logits.masked_fill(~mask, MASK_VALUE)
