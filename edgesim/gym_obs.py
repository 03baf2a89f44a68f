"""What the Gymnasium wrappers show an agent: the observation space and how a state is encoded.

Normalised (the default), with the scaling the project's own learned schedulers use, so an
off-the-shelf algorithm starts from well-conditioned inputs:
    state = [progress, task lon, task lat, hop-source lon, hop-source lat, tokens / 2000,
             hop source is a trap, one-hot required model type]
with longitudes and latitudes scaled to the servers' bounding box (centre 0, edges -1 and 1).
Raw (`normalize=False`): the simulator's units
    state = [progress, task lon, task lat, hop-source lon, hop-source lat (degrees),
             required model type id, tokens / 1000, hop source is a trap].
The hop source is the previous server, or the task's location at step 0. Both forms add
"action_mask" (int8, 1 where a server hosts the step's model type) and, under a profile whose
servers keep queues, "queue": every server's live queue wait, log(1 + wait / 100 ms) normalised
or milliseconds raw. Declared bounds are the dataset's own extremes, so they are tight.

One formula serves both callers: the batched simulator's rows (numpy arrays) and the single env's
plain-Python episode (floats), so the two encodings agree exactly.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from .dataset import Dataset
from .simulator import Observation, Simulator

TOKEN_SCALE = 2000.0  # as the learned schedulers' inputs
RAW_TOKEN_SCALE = 1000.0
QUEUE_SCALE_MS = 100.0
QUEUE_FEATURE_MAX = 12.0  # log(1 + wait / 100 ms) is capped here: a wait beyond ~45 h reads as ~45 h


class ObservationEncoder:
    """The observation space of one dataset and profile, and the encoding of simulator states."""

    def __init__(self, ds: Dataset, normalize: bool = True, queues: bool = False):
        self.normalize, self.queues = normalize, queues
        self.n_types, self.n_servers = len(ds.type_names), ds.n_servers
        lon0, lon1, lat0, lat1 = float(ds.lon.min()), float(ds.lon.max()), float(ds.lat.min()), float(ds.lat.max())
        # the learned schedulers' box (schedkit.agent_base.MaskedAgent.geo): centre and half-width
        self.geo = ((lon0 + lon1) / 2, max(lon1 - lon0, 1e-3) / 2, (lat0 + lat1) / 2, max(lat1 - lat0, 1e-3) / 2)
        self.masks = ds.valid.astype(np.int8)  # (T, N)
        self.one_hot = np.eye(self.n_types)
        width = 7 + self.n_types if normalize else 8
        self.rows = np.zeros((self.n_types, width), np.float32)  # per type: a state row with its one-hot set
        if normalize:
            self.rows[:, 7:] = self.one_hot
        self.space = self._space(ds)

    def columns(self, progress, task_lon, task_lat, src_lon, src_lat, req, tokens, trap) -> list:
        """The state's scalar columns (before the one-hot), by arithmetic only: floats or arrays."""
        if not self.normalize:
            return [progress, task_lon, task_lat, src_lon, src_lat, req, tokens / RAW_TOKEN_SCALE, trap]
        c_lon, h_lon, c_lat, h_lat = self.geo
        return [progress, (task_lon - c_lon) / h_lon, (task_lat - c_lat) / h_lat, (src_lon - c_lon) / h_lon,
                (src_lat - c_lat) / h_lat, tokens / TOKEN_SCALE, trap]

    def _space(self, ds: Dataset) -> gym.spaces.Dict:
        lons = np.concatenate([ds.lon, *(t.lon for t in ds.tasks.values())])
        lats = np.concatenate([ds.lat, *(t.lat for t in ds.tasks.values())])
        max_tokens = max(float(t.tokens.max()) for t in ds.tasks.values())
        low = np.array(self.columns(0.0, lons.min(), lats.min(), lons.min(), lats.min(), 0.0, 0.0, 0.0), np.float64)
        high = np.array(self.columns(1.0, lons.max(), lats.max(), lons.max(), lats.max(), float(self.n_types - 1),
                                     max_tokens, 1.0), np.float64)
        if self.normalize:
            low, high = np.concatenate([low, np.zeros(self.n_types)]), np.concatenate([high, np.ones(self.n_types)])
        # float32 rounding is monotonic, so rounded values stay inside the rounded bounds
        low, high = low.astype(np.float32), high.astype(np.float32)
        spaces: dict[str, gym.Space[Any]] = {
            "state": gym.spaces.Box(low, high, low.shape, np.float32),
            "action_mask": gym.spaces.Box(0, 1, (self.n_servers,), np.int8),
        }
        if self.queues:
            spaces["queue"] = gym.spaces.Box(0.0, QUEUE_FEATURE_MAX if self.normalize else np.inf, (self.n_servers,),
                                             np.float32)
        return gym.spaces.Dict(spaces)

    def state(self, columns: list, req: np.ndarray) -> np.ndarray:
        """(B, D) float32 state rows from `columns` ((B,) arrays) and the required types (B,)."""
        cols = np.stack([np.broadcast_to(np.asarray(c, np.float64), req.shape) for c in columns], 1)
        return (np.concatenate([cols, self.one_hot[req]], 1) if self.normalize else cols).astype(np.float32)

    def state_row(self, columns: list[float], req: int) -> np.ndarray:
        """One float32 state from Python floats (the single env's fast path): the same float64 ->
        float32 rounding as `state`, without building arrays per column."""
        row = self.rows[req].copy()
        row[:len(columns)] = columns
        return row

    def queue(self, wait_ms: np.ndarray) -> np.ndarray:
        if not self.normalize:
            return wait_ms.astype(np.float32)
        return np.minimum(np.log1p(wait_ms / QUEUE_SCALE_MS), QUEUE_FEATURE_MAX).astype(np.float32)

    def encode(self, sim: Simulator, obs: Observation | None = None) -> dict[str, np.ndarray]:
        """(B, ...) observation arrays of every row of a batched simulator (`obs`: its current
        observation, when the caller has it already)."""
        obs = sim.observe() if obs is None else obs
        src_lon, src_lat, _ = sim.hop_source()
        prev = obs.prev_server
        trap = torch.where(prev >= 0, sim.net.trap[prev.clamp_min(0)], False)
        req = obs.required_type.cpu().numpy()

        def host(x: torch.Tensor) -> np.ndarray:
            return x.cpu().numpy().astype(np.float64)

        cols = self.columns(host(obs.step) / host(obs.n_steps), host(obs.task_lon), host(obs.task_lat), host(src_lon),
                            host(src_lat), req.astype(np.float64), host(obs.tokens), host(trap))
        out = {"state": self.state(cols, req), "action_mask": self.masks[req]}
        if self.queues:
            out["queue"] = self.queue(host(sim.server_load()))
        return out
