"""Gymnasium environments over the simulator, so other RL libraries train on it unmodified.

`EdgeMoEEnv` is one environment; `EdgeMoEVectorEnv` steps `num_envs` of them as one batch of the
batched simulator (Gymnasium 1.x `VectorEnv`). Both take any profile, by registered name or as a Profile object:
- paper (and any profile whose worlds do not run on): one Gym episode is one workflow (one decision
  per step, 1-10 steps); tasks drawn at random from the split, or dealt in file order with
  `order="sequential"`.
- a profile whose worlds run on (contention): one Gym episode is one world, idle at reset, for
  `horizon` decisions (then truncated: the world would go on). Each decision is the pending step
  of the world's earliest workflow; `info["episode_id"]` names that workflow and
  `info["workflow_done"]` marks its last step. The observation adds every server's live queue wait.
- a profile with delayed outcomes (serving: `Profile.delayed_outcomes`): episodes as under contention
  (one world, `horizon` decisions, then truncated), each action routing the world's pending
  decision. A request's outcome is known only when it completes, so the step's reward is the sum
  of the (scalarised) rewards of the world's requests that completed during the step's advance,
  whichever decisions routed them: delayed credit, as a serving system sees it. `info["completed"]`
  lists those requests (`COMPLETED_INFO`), for per-request credit; `info["episode_id"]`, `task` and
  `step` name the decision just routed. Output lengths stay hidden: the observation is the
  contention one (live queue waits estimated from known work only).

Observation: see `edgesim.gym_obs` (normalised by default, `normalize=False` for raw units).
Action: a server index; `action_masks()` gives the valid ones (sb3-contrib's convention), and
the "action_mask" observation key holds the same. An invalid server runs on the type's fallback
server (info["fallback"]). Reward: the step's reward vector (info["reward_vector"] = rL, rC, rS; under
delayed outcomes the sum of the completed requests' vectors) scalarised with `weights` (default: the
evaluation weights 0.45 / 0.40 / 0.15).
Info: numbers only (TorchRL turns them into tensors): episode_id, task (index into the split's
task table: `dataset.tasks[split].ids[task]`), step, server, latency_ms, network_ms, compute_ms,
queue_ms, cost, fallback, trap_hit, switch, reward_vector (under delayed outcomes: episode_id, task,
step, reward_vector and completed, a dict of arrays; an object array of them on the vector env); the
names libraries reserve ("episode", "done", "final_*") are left to them.

The single env of the paper profile plays each workflow with the plain-Python model
(`edgesim.scalar_model`, checked step by step against the batched simulator in the tests): tens of
microseconds a step instead of a millisecond or more for a batch-1 torch step. Its draws come from
the env's own `np_random`, so the same seed gives the same episodes, but not the batched simulator's
draws; the evaluation protocol (shared tasks and draws) is `schedkit.gym_eval.evaluate_policy`.
Every other profile's single env steps a batch-1 simulator of that profile. The envs reset and step their
simulator in inference mode (nothing there needs gradients; its small operations skip autograd's bookkeeping),
and hand out NumPy arrays only.
"""
from __future__ import annotations

import math
import os
from numbers import Integral
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, VectorEnv

from .dataset import Dataset, data_root, load_dataset
from .gym_obs import ObservationEncoder
from .inputs import MAX_EPISODES, MAX_SEED, MAX_WORLDS, InputError, choice, flag, integer, number
from .paper import DEFAULT, Profile
from .physics import EVAL_WEIGHTS, UNIFORMS_PER_STEP
from .registry import PROFILES, get_profile, make_simulator, profile_params
from .scalar_model import ScalarEpisode, ScalarTopology
from .simulator import Simulator, simulator_args

ENV_ID = "EdgeMoE-v0"
DEFAULT_HORIZON = 1000  # decisions per Gym episode of a profile whose episodes are worlds
RENDER_MODES = ("ansi",)
METADATA = {"render_modes": list(RENDER_MODES), "render_fps": 4}  # text frames, as Gymnasium's toy-text envs
WEIGHT_TOLERANCE = 1e-6  # how far from 1 the weights' sum may be (float32 weights sum to 1 within 1e-7)
FLOAT_INFO = ("latency_ms", "network_ms", "compute_ms", "queue_ms", "cost")
SIM_INFO = {"latency_ms": "latency", "network_ms": "network_ms", "compute_ms": "compute_ms", "queue_ms": "queue_ms",
            "cost": "cost", "fallback": "fallback", "trap_hit": "trap_hit", "switch": "switch", "server": "server",
            "task": "task", "step": "step", "episode_id": "episode"}
# info["completed"] of a profile with delayed outcomes: one array per key, one entry per completed request
# (the simulator's info key it comes from), plus "reward" (scalarised) and "reward_vector" ((K, 3))
COMPLETED_INFO = {"episode_id": "episode", "step": "step", "task": "task", "server": "server", "latency_ms": "latency",
                  "ttft_ms": "ttft_ms", "tpot_ms": "tpot_ms", "queue_ms": "queue_ms", "cost": "cost",
                  "fallback": "fallback", "workflow_done": "done"}


class ResetNeeded(gym.error.ResetNeeded, RuntimeError):
    """A step, mask or render before `reset()` (or after the episode ended): Gymnasium's error, also a
    RuntimeError."""


def _world_episodes(profile: Profile) -> bool:
    """A Gym episode is one world over a horizon: its worlds run on, or its outcomes arrive after later
    decisions (a workflow's requests complete among other workflows' decisions), so no workflow is an
    episode of its own."""
    return profile.worlds_run_on or profile.delayed_outcomes


def _horizon(profile: Profile, horizon: Any) -> int | None:
    """None for a profile whose episodes are workflows; the decisions per episode otherwise."""
    if not _world_episodes(profile):
        if horizon is not None:
            raise InputError(f"horizon applies to a profile whose Gym episodes are worlds, not {profile.name!r}")
        return None
    return DEFAULT_HORIZON if horizon is None else integer(horizon, "horizon", 1, MAX_EPISODES)


def _weights(weights: Any) -> tuple[float, float, float]:
    """The (latency, cost, switch) weights: three finite numbers >= 0 that sum to 1, as the evaluation's
    and DWA's do (a negative weight would reward what the reward penalises)."""
    if isinstance(weights, (str, bytes, dict)) or not hasattr(weights, "__len__") or len(weights) != 3:
        raise InputError(f"weights: expected 3 numbers (latency, cost, switch) >= 0 that sum to 1, got {weights!r}")
    w = tuple(number(v, f"weights[{i}]", 0.0) for i, v in enumerate(weights))
    if abs(sum(w) - 1.0) > WEIGHT_TOLERANCE:
        raise InputError(f"weights: expected 3 numbers >= 0 that sum to 1, got {w} (sum {sum(w):.6g})")
    return w[0], w[1], w[2]


def _render_mode(mode: Any) -> str | None:
    """None (render() returns None) or one of RENDER_MODES."""
    if mode is None:
        return None
    try:
        return choice(mode, "render_mode", RENDER_MODES)
    except InputError:
        raise InputError(f"render_mode: expected None or one of {', '.join(map(repr, RENDER_MODES))}, "
                         f"got {mode!r}") from None


def _env_args(dataset: Any, n_envs: int, split: Any, order: Any, profile: Any, params: Any) -> tuple[Profile, Any]:
    """The arguments both envs share, checked before anything is built; returns the profile (a registered
    name or a Profile object given) and its parameters."""
    p = get_profile(profile)
    simulator_args(dataset, n_envs, split, order, 0, "cpu")
    return p, profile_params(p, params)


def _action(action: Any, n: int) -> int:
    """One server index (an int, a numpy integer or a 0-d integer array, as `Discrete(n)` contains):
    a float, bool or string is refused, not truncated or parsed."""
    value = action[()] if isinstance(action, np.ndarray) and action.shape == () else action
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, Integral) or not 0 <= int(value) < n:
        raise InputError(f"action: expected a server index, an integer in [0, {n}), got {action!r} "
                         f"({type(action).__name__})")
    return int(value)


def _actions(actions: Any, num_envs: int, n: int) -> np.ndarray:
    """(num_envs,) server indices of integer dtype: floats, bools, strings and other shapes are refused."""
    a = np.asarray(actions)
    if a.dtype == np.bool_ or not np.issubdtype(a.dtype, np.integer) or a.shape != (num_envs,):
        raise InputError(f"actions: expected an integer array of shape ({num_envs},), one server index per env, "
                         f"got a {a.dtype} array of shape {a.shape}")
    if a.size and (a.min() < 0 or a.max() >= n):
        raise InputError(f"actions: expected server indices in [0, {n}), got min {a.min()} max {a.max()}")
    return a


def _seed(seed: Any, what: str = "seed") -> int:
    return integer(seed, what, 0, MAX_SEED)


def _options(options: Any) -> dict[str, Any]:
    """reset()'s options: a dict or None (Gymnasium's signature)."""
    if options is not None and not isinstance(options, dict):
        raise InputError(f"options: expected a dict (or None), got {options!r}")
    return options or {}


def _autoreset_mode(mode: Any) -> AutoresetMode:
    try:
        return AutoresetMode(mode)
    except ValueError:
        modes = ", ".join(repr(m.value) for m in AutoresetMode)
        raise InputError(f"autoreset_mode: expected an AutoresetMode or one of {modes}, got {mode!r}") from None


def _row_text(ds: Dataset, task_id: str, k: int, n: int, required: int, prev: int) -> str:
    """One episode's state in words (render_mode 'ansi')."""
    where = "the task's location" if prev < 0 else f"server {ds.server_ids[prev]}"
    if k >= n:
        return f"task {task_id}: finished ({n}/{n} steps), last at {where}"
    return f"task {task_id}, step {k + 1}/{n}: needs {ds.type_names[required]}, from {where}"


def _decided(sim: Simulator) -> dict[str, np.ndarray]:
    """(B,) the workflow, task and step of every row's pending decision, read before the step routes it."""
    return {"episode_id": sim.episode.cpu().numpy().astype(np.int64), "task": sim.task.cpu().numpy().astype(np.int64),
            "step": sim.step_idx.cpu().numpy().astype(np.int64)}


def _completed_infos(decided: dict[str, np.ndarray], info: dict[str, torch.Tensor], reward: torch.Tensor,
                     weights: torch.Tensor, num_envs: int) -> tuple[np.ndarray, dict[str, Any]]:
    """A step of a profile with delayed outcomes: (num_envs,) rewards, each the sum of its world's completed
    requests' scalarised rewards, and the info: the routed decisions (`decided`), the summed reward vectors
    and "completed", an object array holding each world's requests (`COMPLETED_INFO`) in completion order."""
    scalar = reward @ weights
    world = info["world"]
    totals = torch.zeros(num_envs, dtype=reward.dtype, device=reward.device).index_add_(0, world, scalar)
    vectors = torch.zeros((num_envs, 3), dtype=reward.dtype, device=reward.device).index_add_(0, world, reward)
    order = torch.argsort(world, stable=True).cpu().numpy()
    cols = {k: info[v].cpu().numpy()[order] for k, v in COMPLETED_INFO.items()}
    for k in ("episode_id", "step", "task", "server"):
        cols[k] = cols[k].astype(np.int64)
    cols["reward"] = scalar.cpu().numpy().astype(np.float64)[order]
    cols["reward_vector"] = reward.cpu().numpy().astype(np.float64)[order]
    ends = np.cumsum(np.bincount(world.cpu().numpy(), minlength=num_envs))
    completed = np.empty(num_envs, dtype=object)
    for i, (a, b) in enumerate(zip(np.concatenate([[0], ends[:-1]]), ends)):
        completed[i] = {k: v[a:b] for k, v in cols.items()}
    infos = decided | {"reward_vector": vectors.cpu().numpy().astype(np.float64), "completed": completed}
    return totals.cpu().numpy().astype(np.float64), infos


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

    metadata = METADATA
    sim: Simulator  # profiles other than paper only

    def __init__(self, dataset: Dataset, split: str = "train", profile: str | Profile = DEFAULT, params: Any = None,
                 order: str = "random", weights: tuple[float, float, float] = EVAL_WEIGHTS, normalize: bool = True,
                 horizon: int | None = None, render_mode: str | None = None):
        p, params = _env_args(dataset, 1, split, order, profile, params)
        self.render_mode = _render_mode(render_mode)
        self.dataset, self.split, self.profile, self.order = dataset, split, p, order
        self.weights = _weights(weights)
        self.horizon = _horizon(p, horizon)
        self.encoder = ObservationEncoder(dataset, flag(normalize, "normalize"), p.queues)
        self.observation_space = self.encoder.space
        self.action_space = gym.spaces.Discrete(dataset.n_servers)
        self.n_tasks = len(dataset.tasks[split])
        # the paper profile's own dynamics are exactly the plain-Python model's: play them without torch;
        # any other profile (a subclass, even one keeping the paper simulator) steps a batch-1 simulator
        fast = type(p) is Profile
        self.topology = ScalarTopology(dataset) if fast else None
        if not fast:
            self.sim = make_simulator(dataset, 1, split, order, 0, "cpu", p, params)
            self.sim.autoreset = self.horizon is not None  # a finished workflow ends the Gym episode
        self.episode: ScalarEpisode | None = None
        self.episodes = 0  # episodes started since the last seeded reset: the fast path's episode_id
        self.decisions, self.started = 0, False
        self.last: tuple[int, float, float] | None = None  # the last step's server, latency and reward (render)
        self.last_completed = 0  # requests completed during the last step (delayed outcomes: its latency is NaN)

    @torch.inference_mode()
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        _options(options)
        super().reset(seed=None if seed is None else _seed(seed))
        self.last = None
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
            raise ResetNeeded("call reset() before step(), action_masks() or render()")
        return self.episode

    def action_masks(self) -> np.ndarray:
        """(N,) bool: servers that host the current step's model type."""
        if self.topology is None:
            if not self.started:
                raise ResetNeeded("call reset() before step(), action_masks() or render()")
            return self.sim.valid_mask()[0].numpy().copy()
        ep = self._started()
        k = min(ep.k, ep.n_steps[ep.task] - 1)
        return self.encoder.masks[ep.types[ep.task][k]].astype(bool)

    @torch.inference_mode()
    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        action = _action(action, self.dataset.n_servers)
        if self.topology is None:
            return self._step_simulator(action)
        ep = self._started()
        if ep.k >= ep.n_steps[ep.task]:
            raise ResetNeeded("the episode has ended: call reset() before stepping again")
        step = ep.k
        out = ep.step(action, self.np_random.random(UNIFORMS_PER_STEP).tolist())
        r, w = out["reward"], self.weights
        info = {"episode_id": self.episode_id, "task": ep.task, "step": step, "server": out["server"],
                "latency_ms": out["latency"], "network_ms": out["network_ms"], "compute_ms": out["compute_ms"],
                "queue_ms": out["queue_ms"], "cost": out["cost"], "fallback": out["fallback"],
                "trap_hit": out["trap_hit"], "switch": out["switch"], "reward_vector": np.array(r)}
        scalar = w[0] * r[0] + w[1] * r[1] + w[2] * r[2]
        self.last = out["server"], out["latency"], scalar
        return self._observe(), scalar, out["done"], False, info

    def _step_simulator(self, action: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Any other profile: a batch-1 simulator (a workflow per episode, or a world over the horizon)."""
        if not self.started:
            raise ResetNeeded("call reset() before step(), action_masks() or render()")
        ended = (self.decisions >= self.horizon if self.horizon is not None
                 else bool(self.sim.step_idx[0] >= self.sim.tasks.n_steps[self.sim.task[0]]))
        if ended:
            raise ResetNeeded("the episode has ended: call reset() before stepping again")
        if self.horizon is not None and self.profile.delayed_outcomes:
            return self._step_delayed(action, self.horizon)
        _, reward, done, info = self.sim.step(torch.tensor([action]))
        self.decisions += 1
        infos = _sim_infos(info, reward, self.horizon)
        out = {k: v[0].item() if v.ndim == 1 else v[0] for k, v in infos.items()}
        scalar = float(out["reward_vector"] @ np.array(self.weights))
        self.last = out["server"], out["latency_ms"], scalar
        if self.horizon is None:
            return self._observe(), scalar, bool(done[0]), False, out
        return self._observe(), scalar, False, self.decisions >= self.horizon, out

    def _step_delayed(self, action: int, horizon: int) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """A profile with delayed outcomes: route the world's pending decision; the reward is what the world's
        requests that completed meanwhile earned (module docstring)."""
        decided = _decided(self.sim)
        _, reward, _, info = self.sim.step(torch.tensor([action]))
        self.decisions += 1
        weights = torch.tensor(self.weights, dtype=reward.dtype)
        rewards, infos = _completed_infos(decided, info, reward, weights, 1)
        out = {k: v[0] if k in ("completed", "reward_vector") else v[0].item() for k, v in infos.items()}
        scalar = float(rewards[0])
        self.last, self.last_completed = (action, math.nan, scalar), len(out["completed"]["reward"])
        return self._observe(), scalar, False, self.decisions >= horizon, out

    def render(self) -> str | None:
        """render_mode 'ansi': the current state (task, step, model type needed, where the workflow is) and
        the last step's outcome, as text; None without a render_mode (Gymnasium's convention, with a warning)."""
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode returns nothing: make the env with render_mode='ansi'")
            return None
        if self.topology is None:
            if not self.started:
                raise ResetNeeded("call reset() before step(), action_masks() or render()")
            return _sim_row_text(self.sim, 0) + self._last_text()
        ep = self._started()
        n = ep.n_steps[ep.task]
        k = min(ep.k, n - 1)
        prev = -1 if ep.prev is None else ep.prev
        task_id = self.dataset.tasks[self.split].ids[ep.task]
        return _row_text(self.dataset, task_id, ep.k, n, ep.types[ep.task][k], prev) + self._last_text()

    def _last_text(self) -> str:
        if self.last is None:
            return ""
        server, latency, reward = self.last
        if self.profile.delayed_outcomes:
            return (f"; last decision: server {self.dataset.server_ids[server]}, {self.last_completed} requests "
                    f"completed, reward {reward:.4f}")
        return f"; last step: server {self.dataset.server_ids[server]}, {latency:.1f} ms, reward {reward:.4f}"


def _sim_row_text(sim: Simulator, i: int) -> str:
    """Row i of a simulator in words (render_mode 'ansi'), with its clock."""
    task, k = int(sim.task[i]), int(sim.step_idx[i])
    n = int(sim.tasks.n_steps[task])
    required = int(sim.tasks.types[task, min(k, n - 1)])
    text = _row_text(sim.dataset, sim.tasks.ids[task], k, n, required, int(sim.prev[i]))
    return f"{text} (clock {float(sim.now[i]):.1f} ms)"


class EdgeMoEVectorEnv(VectorEnv):
    """`num_envs` environments stepped as one batch of the batched simulator (numpy in, numpy out).

    Gymnasium 1.x semantics. `autoreset_mode` SAME_STEP (the default, like the simulator and SB3):
    a finished row's observation is already its next episode's first; `infos["final_obs"]` (object
    array, one observation per row or None) and `infos["final_info"]` hold the finished step, masked
    by `_final_obs` / `_final_info`, and the top-level info of that row is the reset's (empty).
    DISABLED: finished rows wait for `reset(options={"reset_mask": mask})`. Every info key `k` comes
    with its mask `_k`. `reset(seed=None)` continues the random streams; an int seeds the batch; a
    list seeds the batch as a whole (the same list gives the same episodes; row i does not replay a
    single env seeded with seed[i]). Under a profile whose episodes are worlds, all worlds reach the
    horizon together and are reset together.
    """

    def __init__(self, dataset: Dataset, num_envs: int, split: str = "train", profile: str | Profile = DEFAULT,
                 params: Any = None, order: str = "random", weights: tuple[float, float, float] = EVAL_WEIGHTS,
                 normalize: bool = True, horizon: int | None = None, device: str = "cpu",
                 autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP, render_mode: str | None = None):
        mode = _autoreset_mode(autoreset_mode)
        if mode == AutoresetMode.NEXT_STEP:
            raise ValueError("EdgeMoEVectorEnv implements SAME_STEP (the default) and DISABLED autoreset; for "
                             "NEXT_STEP wrap single envs: gym.make_vec(..., vectorization_mode='sync')")
        num_envs = integer(num_envs, "num_envs", 1, MAX_WORLDS)
        p, params = _env_args(dataset, num_envs, split, order, profile, params)
        self.render_mode = _render_mode(render_mode)
        self.dataset, self.split, self.profile = dataset, split, p
        self.horizon = _horizon(p, horizon)
        weights = _weights(weights)
        normalize = flag(normalize, "normalize")
        self.num_envs = num_envs
        self.sim: Simulator = make_simulator(dataset, num_envs, split, order, 0, device, p, params)
        if self.horizon is None:
            self.sim.autoreset = False  # finished rows keep their terminal state until reset_done
        self.weights = torch.tensor(weights, dtype=self.sim.dtype, device=self.sim.device)
        self.encoder = ObservationEncoder(dataset, normalize, p.queues)
        self.metadata = METADATA | {"autoreset_mode": mode}
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
        """The batch's seed: an int as is; a list of one int (or None) per env hashed as a whole; a list
        holding any None draws a fresh seed (the rows share one generator)."""
        if not isinstance(seed, (list, tuple, np.ndarray)):
            return _seed(seed)
        seeds = list(seed)
        if len(seeds) != self.num_envs:
            raise InputError(f"seed: a seed list needs one seed per env ({self.num_envs}), got {len(seeds)}")
        given = [_seed(s, f"seed[{i}]") for i, s in enumerate(seeds) if s is not None]
        if len(given) < len(seeds):
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(np.random.SeedSequence(given).generate_state(1)[0] >> 1)

    @torch.inference_mode()
    def reset(self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None):
        mask = _options(options).get("reset_mask")
        if mask is not None:
            mask = np.asarray(mask)
            if mask.shape != (self.num_envs,) or mask.dtype != np.bool_ or not mask.any():
                raise InputError(f"options['reset_mask'] must be a bool array of shape ({self.num_envs},) with at "
                                 "least one True")
            if self.horizon is not None and not mask.all():
                raise InputError(f"the worlds of the {self.profile.name!r} profile advance together: reset them together "
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
        self._check_reset()
        return self.sim.valid_mask().cpu().numpy()

    def _check_reset(self) -> None:
        if not self._seeded:
            raise ResetNeeded("call reset() before step(), action_masks() or render()")

    def render(self) -> tuple[str, ...] | None:
        """render_mode 'ansi': one line of text per env (as SyncVectorEnv returns one render per env);
        None without a render_mode."""
        if self.render_mode is None:
            gym.logger.warn("render() without a render_mode returns nothing: make the env with render_mode='ansi'")
            return None
        self._check_reset()
        return tuple(_sim_row_text(self.sim, i) for i in range(self.num_envs))

    @torch.inference_mode()
    def step(self, actions: Any) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        self._check_reset()
        actions = _actions(actions, self.num_envs, self.dataset.n_servers)
        if self.waiting.any():
            raise ResetNeeded(f"rows {np.flatnonzero(self.waiting).tolist()} have finished: reset them with "
                               "reset(options={'reset_mask': mask}) (autoreset_mode DISABLED)")
        if self.horizon is not None and self.decisions >= self.horizon:
            raise ResetNeeded("the worlds reached the horizon: call reset()")
        decided = _decided(self.sim) if self.profile.delayed_outcomes else {}
        obs, reward, done, info = self.sim.step(torch.as_tensor(actions, device=self.sim.device))
        infos: dict[str, Any]
        if self.profile.delayed_outcomes:
            rewards, infos = _completed_infos(decided, info, reward, self.weights, self.num_envs)
        else:
            rewards = (reward @ self.weights).cpu().numpy().astype(np.float64)
            infos = _sim_infos(info, reward, self.horizon)
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
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, (str, os.PathLike)) or data == "":
        raise InputError(f"data: expected a Dataset or a data root folder (a str or Path), got {data!r} "
                         f"({type(data).__name__})")
    return load_dataset(data_root(data), region)


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
