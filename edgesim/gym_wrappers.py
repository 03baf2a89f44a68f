"""Gymnasium environments over the simulator, so other RL libraries train on it unmodified.

`EdgeMoEEnv` is one environment; `EdgeMoEVectorEnv` steps `num_envs` of them as one batch of the
batched simulator (Gymnasium 1.x `VectorEnv`). Both take any registered profile:
- paper (and any profile whose worlds do not run on): one Gym episode is one workflow (one decision
  per step, 1-10 steps); tasks drawn at random from the split, or dealt in file order with
  `order="sequential"`.
- a profile whose worlds run on (contention): one Gym episode is one world, idle at reset, for
  `horizon` decisions (then truncated: the world would go on). Each decision is the pending step
  of the world's earliest workflow; `info["episode_id"]` names that workflow and
  `info["workflow_done"]` marks its last step. The observation adds every server's live queue wait.

Observation: see `edgesim.gym_obs` (normalised by default, `normalize=False` for raw units).
Action: a server index; `action_masks()` gives the valid ones (sb3-contrib's convention), and
the "action_mask" observation key holds the same. An invalid server runs on the type's fallback
server (info["fallback"]). Reward: the step's reward vector (info["reward_vector"] = rL, rC, rS)
scalarised with `weights` (default: the evaluation weights 0.45 / 0.40 / 0.15).
Info: numbers only (TorchRL turns them into tensors): episode_id, task (index into the split's
task table: `dataset.tasks[split].ids[task]`), step, server, latency_ms, network_ms, compute_ms,
queue_ms, cost, fallback, trap_hit, switch, reward_vector; the names libraries reserve ("episode",
"done", "final_*") are left to them.

The single env of the paper profile plays each workflow with the plain-Python model
(`edgesim.scalar_model`, checked step by step against the batched simulator in the tests): tens of
microseconds a step instead of a millisecond or more for a batch-1 torch step. Its draws come from
the env's own `np_random`, so the same seed gives the same episodes, but not the batched simulator's
draws; the evaluation protocol (shared tasks and draws) is `schedkit.gym_eval.evaluate_policy`.
Every other profile's single env steps a batch-1 simulator of that profile.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from .dataset import Dataset, data_root, load_dataset
from .gym_obs import ObservationEncoder
from .physics import EVAL_WEIGHTS, UNIFORMS_PER_STEP
from .profile import DEFAULT, Profile
from .profiles import PROFILES, get_profile, make_simulator
from .scalar_model import ScalarEpisode, ScalarTopology
from .simulator import Simulator

ENV_ID = "EdgeMoE-v0"
DEFAULT_HORIZON = 1000  # decisions per Gym episode of a profile whose worlds run on
FLOAT_INFO = ("latency_ms", "network_ms", "compute_ms", "queue_ms", "cost")
SIM_INFO = {"latency_ms": "latency", "network_ms": "network_ms", "compute_ms": "compute_ms", "queue_ms": "queue_ms",
            "cost": "cost", "fallback": "fallback", "trap_hit": "trap_hit", "switch": "switch", "server": "server",
            "task": "task", "step": "step", "episode_id": "episode"}


def _horizon(profile: str, horizon: int | None) -> int | None:
    """None for a profile whose episodes are workflows; the decisions per episode otherwise."""
    if not get_profile(profile).worlds_run_on:
        if horizon is not None:
            raise ValueError(f"horizon applies to a profile whose worlds run on, not {profile!r}")
        return None
    horizon = DEFAULT_HORIZON if horizon is None else int(horizon)
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1 decision, got {horizon}")
    return horizon


def _sim_infos(info: dict[str, torch.Tensor], reward: torch.Tensor, horizon: int | None) -> dict[str, np.ndarray]:
    """The wrappers' info arrays (B,) from the simulator's step info (and (B, 3) reward vectors)."""
    out = {k: info[v].cpu().numpy() for k, v in SIM_INFO.items()}
    for k in FLOAT_INFO:
        out[k] = out[k].astype(np.float64)
    for k in ("server", "task", "step", "episode_id"):
        out[k] = out[k].astype(np.int64)
    out["reward_vector"] = reward.cpu().numpy().astype(np.float64)
    if horizon is not None:
        out["workflow_done"] = info["done"].cpu().numpy()
    return out


class EdgeMoEEnv(gym.Env):
    """One environment (see the module docstring). `params`: the profile's parameters (None: defaults)."""

    metadata = {"render_modes": []}
    sim: Simulator  # profiles other than paper only

    def __init__(self, dataset: Dataset, split: str = "train", profile: str = DEFAULT, params: Any = None,
                 order: str = "random", weights: tuple[float, float, float] = EVAL_WEIGHTS, normalize: bool = True,
                 horizon: int | None = None):
        if order not in ("random", "sequential"):
            raise ValueError(f"order must be 'random' or 'sequential', got {order!r}")
        if split not in dataset.tasks:
            raise ValueError(f"unknown split {split!r}; the dataset has {sorted(dataset.tasks)}")
        self.dataset, self.split, self.profile, self.order = dataset, split, profile, order
        self.weights = tuple(float(w) for w in weights)
        self.horizon = _horizon(profile, horizon)
        self.encoder = ObservationEncoder(dataset, normalize, get_profile(profile).queues)
        self.observation_space = self.encoder.space
        self.action_space = gym.spaces.Discrete(dataset.n_servers)
        self.n_tasks = len(dataset.tasks[split])
        # the paper profile's own dynamics are exactly the plain-Python model's: play them without torch;
        # any other profile (a subclass, even one keeping the paper simulator) steps a batch-1 simulator
        fast = type(get_profile(profile)) is Profile
        self.topology = ScalarTopology(dataset) if fast else None
        if not fast:
            self.sim = make_simulator(dataset, 1, split, order, 0, "cpu", profile, params)
            self.sim.autoreset = self.horizon is not None  # a finished workflow ends the Gym episode
        self.episode: ScalarEpisode | None = None
        self.episodes = 0  # episodes started since the last seeded reset: the fast path's episode_id
        self.decisions, self.started = 0, False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if self.topology is not None:
            if seed is not None:
                self.episodes = 0  # sequential order starts again from the first task
            sequential = self.order == "sequential"
            task = self.episodes % self.n_tasks if sequential else int(self.np_random.integers(self.n_tasks))
            self.episode = ScalarEpisode(self.dataset, self.split, task, self.topology)
            self.episode_id = self.episodes
            self.episodes += 1
        elif self.horizon is not None or seed is not None or not self.started:
            self.sim.reset(int(self.np_random.integers(2**31)))  # a fresh world (or the first episode), from np_random
        else:  # the next workflow, as the simulator deals it
            self.sim.reset_done(torch.ones(1, dtype=torch.bool))
        self.decisions, self.started = 0, True
        return self._observe(), {}

    def _observe(self) -> dict[str, np.ndarray]:
        if self.topology is None:
            return {k: v[0] for k, v in self.encoder.encode(self.sim).items()}
        ep, g, enc = self._started(), self.topology, self.encoder
        i = ep.task
        n = ep.n_steps[i]
        k = min(ep.k, n - 1)  # a finished episode shows its last step
        req = ep.types[i][k]
        if ep.prev is None:
            src_lon, src_lat, trap = ep.lon[i], ep.lat[i], 0.0
        else:
            src_lon, src_lat, trap = g.lon[ep.prev], g.lat[ep.prev], float(g.is_trap[ep.prev])
        cols = enc.columns(ep.k / n, ep.lon[i], ep.lat[i], src_lon, src_lat, float(req), ep.tokens[i][k], trap)
        return {"state": enc.state_row(cols, req), "action_mask": enc.masks[req].copy()}

    def _started(self) -> ScalarEpisode:
        if self.episode is None:
            raise RuntimeError("call reset() before step() or action_masks()")
        return self.episode

    def action_masks(self) -> np.ndarray:
        """(N,) bool: servers that host the current step's model type."""
        if self.topology is None:
            if not self.started:
                raise RuntimeError("call reset() before step() or action_masks()")
            return self.sim.valid_mask()[0].numpy().copy()
        ep = self._started()
        k = min(ep.k, ep.n_steps[ep.task] - 1)
        return self.encoder.masks[ep.types[ep.task][k]].astype(bool)

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = int(action)
        if not 0 <= action < self.dataset.n_servers:
            raise ValueError(f"action must be a server index in [0, {self.dataset.n_servers}), got {action}")
        if self.topology is None:
            return self._step_simulator(action)
        ep = self._started()
        if ep.k >= ep.n_steps[ep.task]:
            raise RuntimeError("the episode has ended: call reset() before stepping again")
        step = ep.k
        out = ep.step(action, self.np_random.random(UNIFORMS_PER_STEP).tolist())
        r, w = out["reward"], self.weights
        info = {"episode_id": self.episode_id, "task": ep.task, "step": step, "server": out["server"],
                "latency_ms": out["latency"], "network_ms": out["network_ms"], "compute_ms": out["compute_ms"],
                "queue_ms": out["queue_ms"], "cost": out["cost"], "fallback": out["fallback"],
                "trap_hit": out["trap_hit"], "switch": out["switch"], "reward_vector": np.array(r)}
        return self._observe(), w[0] * r[0] + w[1] * r[1] + w[2] * r[2], out["done"], False, info

    def _step_simulator(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Any other profile: a batch-1 simulator (a workflow per episode, or a world over the horizon)."""
        if not self.started:
            raise RuntimeError("call reset() before step() or action_masks()")
        ended = (self.decisions >= self.horizon if self.horizon is not None
                 else bool(self.sim.step_idx[0] >= self.sim.tasks.n_steps[self.sim.task[0]]))
        if ended:
            raise RuntimeError("the episode has ended: call reset() before stepping again")
        _, reward, done, info = self.sim.step(torch.tensor([action]))
        self.decisions += 1
        infos = _sim_infos(info, reward, self.horizon)
        out = {k: v[0].item() if v.ndim == 1 else v[0] for k, v in infos.items()}
        scalar = float(out["reward_vector"] @ np.array(self.weights))
        if self.horizon is None:
            return self._observe(), scalar, bool(done[0]), False, out
        return self._observe(), scalar, False, self.decisions >= self.horizon, out


class EdgeMoEVectorEnv(VectorEnv):
    """`num_envs` environments stepped as one batch of the batched simulator (numpy in, numpy out).

    Gymnasium 1.x semantics. `autoreset_mode` SAME_STEP (the default, like the simulator and SB3):
    a finished row's observation is already its next episode's first; `infos["final_obs"]` (object
    array, one observation per row or None) and `infos["final_info"]` hold the finished step, masked
    by `_final_obs` / `_final_info`, and the top-level info of that row is the reset's (empty).
    DISABLED: finished rows wait for `reset(options={"reset_mask": mask})`. Every info key `k` comes
    with its mask `_k`. `reset(seed=None)` continues the random streams; an int seeds the batch; a
    list seeds the batch as a whole (the same list gives the same episodes; row i does not replay a
    single env seeded with seed[i]). Under a profile whose worlds run on, all worlds reach the
    horizon together and are reset together.
    """

    def __init__(self, dataset: Dataset, num_envs: int, split: str = "train", profile: str = DEFAULT,
                 params: Any = None, order: str = "random", weights: tuple[float, float, float] = EVAL_WEIGHTS,
                 normalize: bool = True, horizon: int | None = None, device: str = "cpu",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP):
        mode = AutoresetMode(autoreset_mode)
        if mode == AutoresetMode.NEXT_STEP:
            raise ValueError("EdgeMoEVectorEnv implements SAME_STEP (the default) and DISABLED autoreset; for "
                             "NEXT_STEP wrap single envs: gym.make_vec(..., vectorization_mode='sync')")
        self.dataset, self.split, self.profile = dataset, split, profile
        self.horizon = _horizon(profile, horizon)
        self.num_envs = num_envs
        self.sim: Simulator = make_simulator(dataset, num_envs, split, order, 0, device, profile, params)
        if self.horizon is None:
            self.sim.autoreset = False  # finished rows keep their terminal state until reset_done
        self.weights = torch.tensor(weights, dtype=self.sim.dtype, device=self.sim.device)
        self.encoder = ObservationEncoder(dataset, normalize, get_profile(profile).queues)
        self.metadata = {"render_modes": [], "autoreset_mode": mode}
        self.single_observation_space = self.encoder.space
        self.single_action_space = gym.spaces.Discrete(dataset.n_servers)
        self.observation_space = gym.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gym.vector.utils.batch_space(self.single_action_space, num_envs)
        self.decisions = 0
        self.waiting = np.zeros(num_envs, bool)  # DISABLED: finished rows not reset yet
        self._seeded = False

    @property
    def autoreset_mode(self) -> AutoresetMode:
        return self.metadata["autoreset_mode"]

    def _sim_seed(self, seed: int | list[int | None]) -> int:
        if isinstance(seed, (int, np.integer)):
            return int(seed)
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise ValueError(f"a seed list needs one seed per env ({self.num_envs}), got {len(seeds)}")
        if all(s is None for s in seeds):
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(np.random.SeedSequence([-1 if s is None else int(s) for s in seeds]).generate_state(1)[0] >> 1)

    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        mask = None if options is None else options.get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise ValueError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with at "
                                 "least one True")
            if self.horizon is not None and not mask.all():
                raise ValueError(f"the worlds of the {self.profile!r} profile advance together: reset them together "
                                 "(reset_mask all True)")
        if seed is not None or not self._seeded:
            if seed is None:  # the first reset without a seed: a fresh one, as Gymnasium does
                seed = [None] * self.num_envs
            self.sim.seed_streams(self._sim_seed(seed))
            self._seeded = True
        if mask is not None and self.horizon is None and not mask.all():
            self.sim.reset_done(torch.as_tensor(mask, device=self.sim.device))
            self.waiting &= ~mask
        else:
            self.sim.reset(None)
            self.waiting[:] = False
            self.decisions = 0
        return self.encoder.encode(self.sim), {}

    def action_masks(self) -> np.ndarray:
        """(num_envs, N) bool: the valid servers of every row (sb3-contrib's convention)."""
        return self.sim.valid_mask().cpu().numpy()

    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self.waiting.any():
            raise RuntimeError(f"rows {np.flatnonzero(self.waiting).tolist()} have finished: reset them with "
                               "reset(options={'reset_mask': mask}) (autoreset_mode DISABLED)")
        if self.horizon is not None and self.decisions >= self.horizon:
            raise RuntimeError("the worlds reached the horizon: call reset()")
        obs, reward, done, info = self.sim.step(torch.as_tensor(np.asarray(actions), device=self.sim.device))
        rewards = (reward @ self.weights).cpu().numpy().astype(np.float64)
        infos: dict[str, Any] = _sim_infos(info, reward, self.horizon)
        if self.horizon is None:
            terminated, truncated = done.cpu().numpy(), np.zeros(self.num_envs, bool)
        else:
            self.decisions += 1
            terminated = np.zeros(self.num_envs, bool)
            truncated = np.full(self.num_envs, self.decisions >= self.horizon)
        ended = terminated | truncated
        for k in list(infos):
            infos["_" + k] = np.ones(self.num_envs, bool)
        current = self.encoder.encode(self.sim, obs)
        if ended.any():
            if self.autoreset_mode == AutoresetMode.DISABLED:
                self.waiting = ended.copy()
            else:
                infos = self._autoreset(infos, ended, current)
                current = self.encoder.encode(self.sim)  # the restarted rows' first observations
        return current, rewards, terminated, truncated, infos

    def _autoreset(self, infos: dict[str, Any], ended: np.ndarray, final: dict[str, np.ndarray]) -> dict[str, Any]:
        """SAME_STEP: keep the finished rows' last observation (`final`) and info, then start their next episodes."""
        final_obs = np.full(self.num_envs, None, dtype=object)
        for i in np.flatnonzero(ended):
            final_obs[i] = {k: v[i] for k, v in final.items()}
        final_info = {k: v for k, v in infos.items() if not k.startswith("_")}
        final_info |= {"_" + k: ended.copy() for k in final_info}
        top = {k: v for k, v in infos.items() if not k.startswith("_")}
        top |= {"_" + k: ~ended for k in top}
        if self.horizon is None:
            self.sim.reset_done(torch.as_tensor(ended, device=self.sim.device))
        else:
            self.sim.reset(None)
            self.decisions = 0
        return top | {"final_obs": final_obs, "_final_obs": ended.copy(), "final_info": final_info,
                      "_final_info": ended.copy()}


def resolve_dataset(data: Dataset | str | Path, region: str | list[str] | tuple[str, ...]) -> Dataset:
    """A Dataset as given, or loaded from a root folder (a relative one is also looked up in the repository)."""
    return data if isinstance(data, Dataset) else load_dataset(data_root(data), region)


def make_env(data: Dataset | str | Path = "data1", region: str | list[str] = "Server1_Trap", **kwargs) -> EdgeMoEEnv:
    """`gym.make("EdgeMoE-v0", data=..., region=..., profile=..., ...)`: the dataset by root and region(s)."""
    return EdgeMoEEnv(resolve_dataset(data, region), **kwargs)


def make_vector_env(num_envs: int = 1, data: Dataset | str | Path = "data1", region: str | list[str] = "Server1_Trap",
                    **kwargs) -> EdgeMoEVectorEnv:
    """`gym.make_vec("EdgeMoE-v0", num_envs, vectorization_mode="vector_entry_point", ...)`."""
    return EdgeMoEVectorEnv(resolve_dataset(data, region), num_envs, **kwargs)


def env_id(profile: str) -> str:
    """The registered id of a profile's environments: EdgeMoE-v0 for the default, EdgeMoE<Name>-v0 otherwise."""
    return ENV_ID if profile == DEFAULT else f"EdgeMoE{profile.capitalize()}-v0"


def register_envs() -> None:
    """Register one id per simulator profile (idempotent); `edgesim` calls it on import."""
    for name in PROFILES:
        if env_id(name) not in gym.registry:
            gym.register(env_id(name), entry_point=make_env, vector_entry_point=make_vector_env,
                         kwargs={"profile": name}, disable_env_checker=False)
