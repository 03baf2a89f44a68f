"""The evaluation protocol (docs/evaluation.md) shared by every scheduler's inference script.

Episodes deal the split's tasks in file order (cycling), with a fixed evaluation seed, so all
schedulers face the same tasks and the same channel draws. One row per episode goes to
`episodes.csv`; means per episode go to `summary.json`. A simulator whose steps report completed
requests (`RequestReporting`: the serving profile) adds one row per measured request
(`requests.csv`), SLO attainment, goodput, TTFT/TPOT percentiles and its engines' measured state to
the summary (docs/evaluation.md, "Serving metrics").
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, cast, runtime_checkable

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from edgesim.dataset import Dataset
from edgesim.inputs import InputError
from edgesim.paper import PAPER, Profile
from edgesim.physics import EVAL_WEIGHTS
from edgesim.simulator import Observation, Simulator

from .io import write_csv, write_csv_or_remove, write_json
from .paths import git_commit
from .simulators import profile_simulator

# per-step info fields summed into each episode's row
SUMMED = {"latency_ms": "latency", "network_ms": "network_ms", "compute_ms": "compute_ms", "queue_ms": "queue_ms",
          "trap_ms": "trap_ms", "link_ms": "link_ms", "cost": "cost", "trap_hits": "trap_hit",
          "switches": "switch", "fallbacks": "fallback"}


# per-episode info fields of simulators whose workflows arrive over time (contention, serving): which
# arrival of which world the episode is, so two schedulers' rows can be checked to meet the same arrivals
ARRIVAL = {"world": torch.long, "arrival_index": torch.long, "arrival_ms": None}


# per-request info fields kept for requests.csv (column: info key)
REQUEST_FIELDS = {"step": "step", "world": "world", "server": "server", "ttft_ms": "ttft_ms", "tpot_ms": "tpot_ms",
                  "latency_ms": "latency", "queue_ms": "queue_ms", "arrival_ms": "arrival_ms", "end_ms": "end_ms"}
REQUEST_COLUMNS = ["episode", "step", "world", "server", "ttft_ms", "tpot_ms", "latency_ms", "queue_ms", "slo_met",
                   "arrival_ms", "end_ms"]
# timeline.csv: after each step, each world's engines at its next decision (ServingSimulator.engine_snapshot)
TIMELINE_COLUMNS = ["step", "world", "now_ms", "running_batch", "kv_occupancy", "queued"]
# serving_stats() keys reported in summary.json (summary key: stats key)
SERVING_STATS = {"utilisation": "utilisation", "busy_share": "busy_share", "mean_batch_size": "mean_running_batch",
                 "kv_occupancy": "kv_occupancy", "mean_queue_length": "mean_queue_length",
                 "mean_queue_wait_ms": "mean_queue_wait_ms"}


class Policy(Protocol):
    name: str

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor: ...


@runtime_checkable
class BlockDeciding(Protocol):
    """A policy that can decide some rows alone (a learned policy: its networks' cost grows with the rows), so that
    beside others in one simulator (`SideBySide`) it pays for its own block only."""

    name: str

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor: ...

    def act_block(self, sim: Simulator, obs: Observation, rows: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class RequestReporting(Protocol):
    """A simulator whose `step` returns the requests that completed (info: `ttft_ms`, `tpot_ms`, `world`,
    `arrival_ms` of the workflow, `end_ms` of the request, besides the summed fields), judged by SLOs."""

    def request_slo_ms(self) -> tuple[float, float]: ...

    def serving_stats(self, worlds: torch.Tensor | None = None) -> dict[str, float]: ...

    def engine_snapshot(self) -> torch.Tensor: ...

    def freeze_stats(self, worlds: torch.Tensor) -> None: ...


@runtime_checkable
class SeedBatching(Protocol):
    """A simulator whose rows can hold several evaluation seeds' worlds (edgesim.contention, edgesim.serving):
    `worlds_per_seed` rows each, in seed order, once `seed_worlds` has been called (None before)."""

    worlds_per_seed: int | None

    def seed_worlds(self, seeds: list[int]) -> None: ...


@dataclass(frozen=True)
class Evaluation:
    """What one evaluation measured: the episode rows, and for a `RequestReporting` simulator the
    measured requests' rows, its SLO thresholds and its measured-period statistics. `steps`: the
    simulator steps the run took, so a bounded run can be read against its cap. `timeline` (asked for):
    each world's engines at each of its decisions (TIMELINE_COLUMNS), warm-up included. `seed_stats`: where the
    rows held several seeds' worlds (`SeedBatching`), `stats` of each seed's worlds alone, in seed order, and
    `seed_steps` the step at which each seed's own run would have stopped (its measured workflows finished)."""

    episodes: pd.DataFrame
    requests: pd.DataFrame | None = None
    slo_ms: tuple[float, float] | None = None
    stats: dict[str, float] = field(default_factory=dict)
    steps: int = 0
    timeline: pd.DataFrame | None = None
    seed_stats: list[dict[str, float]] = field(default_factory=list)
    seed_steps: list[int] = field(default_factory=list)


def eval_simulator(ds: Dataset, split: str, episodes: int, seed: int, device: str | torch.device = "cpu",
                   profile: Profile = PAPER, params: Any = None) -> Simulator:
    """A simulator that deals the split's tasks in file order (paper: up to 1024 episodes at a time);
    `params`: the profile's parameters (None: its defaults)."""
    return profile_simulator(ds, profile, params, split, "sequential", seed, device, episodes)


def evaluate(sim: Simulator, policy: Policy, episodes: int, weights: tuple[float, float, float] = EVAL_WEIGHTS,
             progress: bool = True) -> pd.DataFrame:
    """The episode rows of `run_evaluation` (what every profile reports)."""
    return run_evaluation(sim, policy, episodes, weights, progress).episodes


@torch.inference_mode()
def run_evaluation(sim: Simulator, policy: Policy, episodes: int,
                   weights: tuple[float, float, float] = EVAL_WEIGHTS, progress: bool = True,
                   max_steps: int | None = None, timeline: bool = False) -> Evaluation:
    """Run the first `episodes` measured episodes of a freshly reset sequential simulator; one row each.

    Step results are summed per episode id (`info["episode"]`), so rows that interleave workflows
    (the contention profile) are accounted for like rows that run one at a time. `decision_ms` is
    the policy's wall time per decision, amortised over the batch. A `RequestReporting` simulator's
    measured requests are kept one row each, and an episode's `slo_met` says whether all its steps met
    both SLOs.

    `max_steps` bounds the run: a scheduler that overloads the servers grows its queues without end,
    and its measured workflows may never all finish. A bounded evaluation's rows say whether each
    episode `finished`; an unfinished one's sums are those of its steps so far (a censored episode:
    its latency is a lower bound, its reward an upper one).

    `timeline` records, after every step, each world's engine state at its next decision (a
    `RequestReporting` simulator's `engine_snapshot`): batch and KV occupancy over time, sampled at decisions.

    It runs in inference mode: nothing here needs gradients, and a step's few hundred small tensor operations
    then skip autograd's bookkeeping (about a tenth of an evaluation's time, the same rows). The simulator's
    tensors it creates are inference tensors, so it is reset before it is stepped outside inference mode.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if max_steps is not None and max_steps < 1:
        raise ValueError(f"max_steps must be >= 1 (or None: until every measured episode finishes), got {max_steps}")
    obs = sim.reset(sim.seed)
    B, dev = sim.batch_size, sim.device
    w = torch.tensor(weights, dtype=sim.dtype, device=dev)
    acc = {k: torch.zeros(episodes, dtype=sim.dtype, device=dev) for k in (*SUMMED, "reward", "steps", "decision_s")}
    task = torch.zeros(episodes, dtype=torch.long, device=dev)
    arrival: dict[str, torch.Tensor] = {}
    jobs: list[tuple[torch.Tensor, ...]] = []  # (world, start, compute) of every job, for the servers' busy time
    last_decision = torch.full((B,), -torch.inf, dtype=sim.dtype, device=dev)  # per world, of a measured step
    reporter = sim if isinstance(sim, RequestReporting) else None
    requests: list[dict[str, torch.Tensor]] = []
    done_count, steps = 0, 0
    policy_s = 0.0  # the policy's wall time per decision, summed over steps
    finished_ep = torch.zeros(episodes, dtype=torch.bool, device=dev)
    if timeline and reporter is None:
        raise InputError(f"--timeline: the {type(sim).__name__} has no engines to sample; only --profile serving has")
    snapshots: list[torch.Tensor] = []
    group = seed_groups(sim)
    n_groups = int(group[-1]) + 1
    episode_group = group[(torch.arange(episodes, device=dev) + sim.warmup_episodes) % B]
    left = torch.bincount(episode_group, minlength=n_groups)  # measured episodes of each seed still running
    group_steps = torch.zeros(n_groups, dtype=torch.long, device=dev)  # the step at which each seed's run would stop
    bar = tqdm(total=episodes, desc=f"eval {policy.name}", unit="ep", disable=not progress, leave=False)
    while done_count < episodes and (max_steps is None or steps < max_steps):
        steps += 1
        t0 = time.perf_counter()
        decided_at = obs.now_ms
        actions = policy.act(sim, obs)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        per_decision = (time.perf_counter() - t0) / B
        policy_s += per_decision
        obs, reward, done, info = sim.step(actions)
        keep, index = sim.measured(info["episode"], episodes)
        ep = index[keep]
        for col, key in SUMMED.items():
            acc[col].index_add_(0, ep, info[key][keep].to(sim.dtype))
        acc["reward"].index_add_(0, ep, (reward @ w)[keep])
        acc["steps"].index_add_(0, ep, torch.ones_like(ep, dtype=sim.dtype))
        if isinstance(policy, SideBySide):  # each block its own policy's time
            acc["decision_s"].index_add_(0, ep, policy.seconds_per_row.index_select(0, info["world"][keep]))
        else:
            acc["decision_s"].index_add_(0, ep, torch.full_like(ep, per_decision, dtype=sim.dtype))
        task[ep] = info["task"][keep]
        if "arrival_ms" in info:
            for col, dtype in ARRIVAL.items():
                arrival.setdefault(col, torch.zeros(episodes, dtype=dtype or sim.dtype, device=dev))[ep] = info[col][keep]
        if "start_ms" in info:
            jobs.append((info["world"], info["start_ms"], info["compute_ms"]))
            last_decision = torch.where(keep, torch.maximum(last_decision, decided_at), last_decision)
        if reporter is not None:
            requests.append({"episode": ep, **{col: info[key][keep] for col, key in REQUEST_FIELDS.items()}})
        ended = index[done & keep]
        finished_ep[ended] = True
        if n_groups > 1 and len(ended):
            running = left > 0
            left -= torch.bincount(episode_group[ended], minlength=n_groups)
            stopped = running & (left == 0)  # seeds whose measured workflows have all finished: their runs would stop
            if isinstance(policy, SideBySide):
                policy.finish(left)
            if bool(stopped.any()):
                group_steps[stopped] = steps
                if reporter is not None:
                    reporter.freeze_stats(stopped[group])
        if timeline and reporter is not None:
            snapshots.append(reporter.engine_snapshot())
        finished = int((done & keep).sum())
        done_count += finished
        bar.update(finished)
    bar.close()
    unseen = (acc["steps"] == 0).nonzero()[:, 0]
    if len(unseen):  # measured workflows a bounded run never began (they waited for a slot): who they are
        ids = unseen + sim.warmup_episodes
        task[unseen] = sim.episode_task(ids)
        for col, value in (("world", ids % B), ("arrival_index", ids // B), ("arrival_ms", torch.nan)):
            if col in arrival:
                arrival[col][unseen] = value
    df = pd.DataFrame({k: v.cpu().numpy() for k, v in acc.items()})
    df.insert(0, "episode", np.arange(episodes))
    df.insert(1, "task_id", [sim.tasks.ids[t] for t in task.tolist()])
    for i, (col, values) in enumerate(arrival.items()):
        df.insert(2 + i, col, values.cpu().numpy())
    df["decision_ms"] = df.pop("decision_s") / df["steps"] * 1000.0
    if len(unseen):  # no decision of its own: the run's mean wall time per decision
        df.loc[unseen.cpu().numpy(), "decision_ms"] = policy_s / steps * 1000.0
    for col in ("trap_hits", "switches", "fallbacks", "steps"):
        df[col] = df[col].round().astype(int)
    if max_steps is not None:
        df["finished"] = finished_ep.cpu().numpy()
    front = ["episode", "task_id", *arrival, "latency_ms", "network_ms", "compute_ms", "queue_ms", "cost", "reward"]
    df = df[front + [c for c in df.columns if c not in front]]
    own_steps = torch.where(group_steps > 0, group_steps, steps).tolist() if n_groups > 1 else []
    if reporter is None:
        if not jobs:
            return Evaluation(df, steps=steps, seed_steps=own_steps)
        world, start, compute = (torch.cat(x).cpu().numpy() for x in zip(*jobs))
        job_rows = pd.DataFrame({"world": world, "start_ms": start, "compute_ms": compute})
        last, n_valid, of = last_decision.cpu().numpy(), int(sim.net.valid.any(0).sum()), group.cpu().numpy()
        stats = load_measures(df, job_rows, last, n_valid)
        per_seed = [load_measures(df[of[df["world"]] == i], job_rows[of[job_rows["world"]] == i], last, n_valid)
                    for i in range(n_groups)] if n_groups > 1 else []
        return Evaluation(df, stats=stats, steps=steps, seed_stats=per_seed, seed_steps=own_steps)
    slo = reporter.request_slo_ms()
    req = pd.DataFrame({col: torch.cat([r[col] for r in requests]).cpu().numpy() for col in requests[0]})
    req = req.sort_values(["episode", "step"], kind="stable").reset_index(drop=True)
    req["slo_met"] = (req["ttft_ms"] <= slo[0]) & (req["tpot_ms"] <= slo[1])
    met = req.groupby("episode")["slo_met"].all().reindex(df["episode"], fill_value=True).to_numpy()
    df = df.assign(slo_met=met & df.get("finished", True))  # an unfinished workflow has not met its SLOs
    trace = None
    if snapshots:
        rows = torch.stack(snapshots).cpu().numpy()  # (steps, G, 4)
        trace = pd.DataFrame(rows.reshape(-1, rows.shape[-1]), columns=TIMELINE_COLUMNS[2:])
        trace.insert(0, "world", np.tile(np.arange(rows.shape[1]), rows.shape[0]))
        trace.insert(0, "step", np.repeat(np.arange(1, rows.shape[0] + 1), rows.shape[1]))
    per_seed = [reporter.serving_stats(group == i) for i in range(n_groups)] if n_groups > 1 else []
    return Evaluation(df, req, slo, reporter.serving_stats(), steps, trace, per_seed, own_steps)


def seed_groups(sim: Simulator) -> torch.Tensor:
    """(B,) the seed of each row among the seeds its rows hold (`SeedBatching`); all 0 for one seed."""
    per_seed = sim.worlds_per_seed if isinstance(sim, SeedBatching) and sim.worlds_per_seed else sim.batch_size
    return torch.arange(sim.batch_size, device=sim.device) // per_seed


def holds_blocks(profile: Profile, params: Any, episodes: int) -> bool:
    """Whether one simulator of `profile` can hold several blocks of worlds side by side, each measuring `episodes`
    episodes: the profile batches seeds (`Profile.batches_seeds`) and `episodes` fills whole worlds."""
    return profile.batches_seeds and episodes % profile.batch_size(params, episodes) == 0


def batches_seeds(profile: Profile, params: Any, episodes: int, seeds: list[int]) -> bool:
    """Whether `evaluate_seeds` runs these seeds' worlds side by side in one simulator: there are several and one
    simulator can hold their blocks (`holds_blocks`)."""
    return len(seeds) > 1 and holds_blocks(profile, params, episodes)


def seed_simulators(ds: Dataset, split: str, episodes: int, seeds: list[int], device: str | torch.device,
                    profile: Profile, params: Any) -> Iterator[Simulator]:
    """The simulators `evaluate_seeds` runs, made one at a time: one holding every seed's worlds side by side
    (`batches_seeds`), else one per seed."""
    if not batches_seeds(profile, params, episodes, seeds):
        for seed in seeds:
            yield eval_simulator(ds, split, episodes, seed, device, profile, params)
        return
    S, G = len(seeds), profile.batch_size(params, episodes)
    sim = eval_simulator(ds, split, episodes * S, seeds[0], device, profile, replace(params, worlds=G * S))
    if not isinstance(sim, SeedBatching):
        raise TypeError(f"the {profile.name} profile says it batches seeds, but its simulator has no seed_worlds")
    sim.seed_worlds(seeds)
    yield sim


def evaluate_seeds(ds: Dataset, split: str, episodes: int, seeds: list[int], device: str | torch.device,
                   profile: Profile, params: Any, make_policy: Callable[[Simulator, int], Policy],
                   progress: bool = True, max_steps: int | None = None) -> list[tuple[int, Evaluation]]:
    """(seed, evaluation) of `episodes` measured episodes at each evaluation seed, each as `run_evaluation`
    of that seed's simulator gives it. A profile whose worlds carry their own seeds (`Profile.batches_seeds`:
    contention) runs every seed's worlds side by side in one simulator, so the seeds cost one evaluation's
    steps; the rows (episodes, and requests where the simulator reports them), the load statistics and the steps are then
    split back by seed, numbered as that seed's own run numbers them. Policies that draw random numbers draw them
    for the whole batch (made once, with the first seed), so only theirs differ from separate runs.
    `make_policy(sim, seed)` makes the policy (batched: once, with the first seed); `max_steps` bounds each
    simulator's run (`run_evaluation`)."""
    S = len(seeds)
    sims = seed_simulators(ds, split, episodes, seeds, device, profile, params)
    if not batches_seeds(profile, params, episodes, seeds):
        return [(seed, run_evaluation(sim, make_policy(sim, seed), episodes, progress=progress,
                                      max_steps=max_steps)) for seed, sim in zip(seeds, sims)]
    (sim,) = sims
    result = run_evaluation(sim, make_policy(sim, seeds[0]), episodes * S, progress=progress, max_steps=max_steps)
    return list(zip(seeds, split_groups(result, sim, S, params.warmup)))


def split_groups(result: Evaluation, sim: Simulator, groups: int, warmup: int) -> list[Evaluation]:
    """The evaluation of each of the `groups` blocks of rows of `sim` (`seed_worlds`: a seed's worlds each), as
    that block's own run gives it: its rows (episodes, and requests where the simulator reports them), its worlds
    and episodes numbered as its own run numbers them, its load statistics and its steps."""
    if groups == 1:
        return [result]
    G = sim.batch_size // groups
    df, req = result.episodes, result.requests

    def own(rows: pd.DataFrame, arrival: pd.Series, i: int) -> pd.DataFrame:
        local = rows["world"] % G
        mine = rows.assign(world=local, episode=arrival * G + local - warmup * G)[rows["world"] // G == i]
        return mine.sort_values(["episode", "step"] if "step" in mine else "episode", kind="stable") \
            .reset_index(drop=True)

    return [Evaluation(own(df, df["arrival_index"], i),
                       None if req is None else own(req, (req["episode"] + sim.warmup_episodes) // sim.batch_size, i),
                       result.slo_ms, result.seed_stats[i], result.seed_steps[i]) for i in range(groups)]


class SideBySide:
    """Several policies in one batch: policy i decides block i of the rows (`evaluate_side_by_side`). A policy that
    can decide its block alone (`BlockDeciding`: the learned ones) does so; any other acts on every row and keeps its
    own block's choices (a rule's cost hardly grows with the rows). The rows are independent worlds, so what a policy
    decides for its rows does not depend on the others'. `seconds_per_row`: each row's policy's wall time of the last
    step over the rows it decided for.

    Once every measured workflow of a block has finished (`finish`), its policy is no longer asked: its rows take a
    running policy's choices, since nothing they do is measured any more. So a unit whose slowest block drains for
    long pays for that block's policy alone, not for every policy until the end."""

    def __init__(self, policies: list[Policy], rows_each: int):
        self.policies, self.rows_each = policies, rows_each
        self.name = " + ".join(p.name for p in policies)
        self.seconds_per_row = torch.zeros(0)
        self.running = [True] * len(policies)
        self.by_block = [isinstance(p, BlockDeciding) for p in policies]  # which decide their own rows alone

    def finish(self, groups_left: torch.Tensor) -> None:
        """`groups_left`: the measured workflows each seed group still has running, the blocks' groups in order
        (they only decrease, so a finished block stays finished)."""
        self.running = groups_left.view(len(self.policies), -1).gt(0).any(1).tolist()

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        assert any(self.running), "run_evaluation stops once every block's measured workflows have finished"
        every_row: dict[int, torch.Tensor] = {}  # this step's choices of the policies that decide every row

        def decide(i: int, rows: torch.Tensor) -> torch.Tensor:
            p = self.policies[i]
            if self.by_block[i]:
                return cast(BlockDeciding, p).act_block(sim, obs, rows)
            if i not in every_row:
                every_row[i] = p.act(sim, obs)
            return every_row[i].index_select(0, rows)

        def block(i: int) -> torch.Tensor:
            return torch.arange(i * self.rows_each, (i + 1) * self.rows_each, device=sim.device)
        parts, seconds = [], []
        for i in range(len(self.policies)):
            if not self.running[i]:
                seconds.append(0.0)
                continue
            t0 = time.perf_counter()
            rows = block(i)
            parts.append((rows, decide(i, rows)))
            if sim.device.type == "cuda":
                torch.cuda.synchronize(sim.device)
            seconds.append((time.perf_counter() - t0) / (self.rows_each if self.by_block[i] else sim.batch_size))
        finished = [block(i) for i, running in enumerate(self.running) if not running]
        if finished:  # one running policy decides them all at once: one that decided every row already, if any
            running = [i for i, r in enumerate(self.running) if r]
            stand_in = next((i for i in running if i in every_row), running[0])
            rows = torch.cat(finished)
            parts.append((rows, decide(stand_in, rows)))
        self.seconds_per_row = torch.tensor(seconds, dtype=sim.dtype, device=sim.device).repeat_interleave(self.rows_each)
        rows, choices = (torch.cat(x) for x in zip(*parts))
        return torch.empty_like(choices).index_copy_(0, rows, choices)


def evaluate_side_by_side(ds: Dataset, split: str, episodes: int, seeds: list[int], device: str | torch.device,
                          profile: Profile, params: Any, makers: dict[str, Callable[[Simulator, int], Policy]],
                          progress: bool = True, max_steps: int | None = None) -> dict[str, list[tuple[int, Evaluation]]]:
    """`evaluate_seeds` of every policy of `makers` (name: make_policy), all in one simulator: its rows hold, for
    each policy in turn, every seed's worlds (`seed_worlds`), so one run's steps evaluate them all. At the
    sizes of the serving study a step costs mostly the number of its operations, not its rows, so evaluations side
    by side cost a fraction of one after the other (bench/side_by_side.py measures it).

    Each policy's rows, statistics and step count are those of its own `evaluate_seeds` run (a block's worlds stop
    being measured, and its policy being asked, when its own measured workflows have finished), except: policies
    that draw random numbers draw them for the whole batch, and `decision_ms` is the policy's wall time per decision
    at this batch (a learned policy decides its own block's rows, a rule every row, keeping its own block's)."""
    P, S = len(makers), len(seeds)
    if P < 1 or not holds_blocks(profile, params, episodes):
        raise ValueError(f"evaluate_side_by_side: the {profile.name} profile cannot hold several worlds' blocks in one "
                         f"simulator here (it needs Profile.batches_seeds and episodes a multiple of the worlds)")
    (sim,) = seed_simulators(ds, split, episodes, seeds * P, device, profile, params)  # each policy's seeds in turn
    policy = SideBySide([make(sim, seeds[0]) for make in makers.values()], sim.batch_size // P)
    result = run_evaluation(sim, policy, episodes * S * P, progress=progress, max_steps=max_steps)
    parts = split_groups(result, sim, S * P, params.warmup)
    return {name: list(zip(seeds, parts[i * S:(i + 1) * S])) for i, name in enumerate(makers)}


def load_measures(episodes: pd.DataFrame, jobs: pd.DataFrame, last_decision: np.ndarray,
                  n_valid: int) -> dict[str, float]:
    """How loaded the worlds were while the measured workflows ran (contention). `utilisation`: the busy
    share of the valid servers, = the time the servers spent on jobs (any workflow's, measured or not)
    inside each world's measured window, from its first measured arrival to its last measured decision,
    over valid servers x the windows' summed length. `mean_queue_wait_ms`: the mean wait of a measured
    step for its server and (at step 0) for a slot."""
    first = episodes.groupby("world")["arrival_ms"].min()
    lo = jobs["world"].map(first).to_numpy()
    hi = last_decision[jobs["world"].to_numpy()]
    busy = (np.minimum(jobs["start_ms"] + jobs["compute_ms"], hi) - np.maximum(jobs["start_ms"], lo)).clip(lower=0)
    window = float(np.sum(last_decision[first.index.to_numpy()] - first.to_numpy()))
    return {"utilisation": float(busy.sum() / (n_valid * window)) if window > 0 else math.nan,
            "mean_queue_wait_ms": float(episodes["queue_ms"].sum() / episodes["steps"].sum())}


def measured_world_s(requests: pd.DataFrame) -> float:
    """Measured simulated time in world-seconds: per world, from its first measured workflow's arrival to
    its last measured request's completion, summed over worlds (goodput's denominator)."""
    per_world = requests.groupby("world").agg(first=("arrival_ms", "min"), last=("end_ms", "max"))
    return float((per_world["last"] - per_world["first"]).sum() / 1000.0)


def unfinished(episodes: pd.DataFrame) -> int:
    """Episodes a bounded evaluation (`run_evaluation(max_steps=...)`) ended before they finished; 0 where it was
    not bounded (no `finished` column). A scheduler with any is unstable at that load."""
    return int((~episodes["finished"].astype(bool)).sum()) if "finished" in episodes else 0


def serving_summary(result: Evaluation) -> dict[str, Any]:
    """The summary keys of a `RequestReporting` evaluation (docs/evaluation.md, "Serving metrics")."""
    req, df = result.requests, result.episodes
    if req is None or result.slo_ms is None:
        raise ValueError("serving_summary: the evaluation has no requests (its simulator reports none)")
    ttft, tpot = req["ttft_ms"].to_numpy(), req["tpot_ms"].to_numpy()
    span_s = measured_world_s(req)
    met = int(df["slo_met"].sum())
    return {"slo_attainment": met / len(df), "request_slo_attainment": float(req["slo_met"].mean()),
            "goodput_per_s": met / span_s if span_s > 0 else float("nan"),
            "ttft_p50_ms": float(np.percentile(ttft, 50)), "ttft_p99_ms": float(np.percentile(ttft, 99)),
            "tpot_p50_ms": float(np.percentile(tpot, 50)), "tpot_p99_ms": float(np.percentile(tpot, 99)),
            **{key: float(result.stats[stat]) for key, stat in SERVING_STATS.items()},
            "requests": int(len(req)), "measured_world_s": span_s,
            "slo_ttft_ms": float(result.slo_ms[0]), "slo_tpot_ms": float(result.slo_ms[1])}


def summarize(result: pd.DataFrame | Evaluation) -> dict[str, Any]:
    """Means per episode (rates per decision), the keys every inference script reports; an evaluation
    with requests adds the serving keys (`serving_summary`)."""
    df = result.episodes if isinstance(result, Evaluation) else result
    extra: dict[str, Any] = {}
    if isinstance(result, Evaluation):
        extra = serving_summary(result) if result.requests is not None else dict(result.stats)
    steps = df["steps"].sum()
    lat = df["latency_ms"].to_numpy()
    return {
        "episodes": int(len(df)),
        "mean_latency_ms": float(lat.mean()),
        "p50_latency_ms": float(np.percentile(lat, 50)),
        "p90_latency_ms": float(np.percentile(lat, 90)),
        "p99_latency_ms": float(np.percentile(lat, 99)),
        "mean_network_ms": float(df["network_ms"].mean()),
        "mean_compute_ms": float(df["compute_ms"].mean()),
        "mean_queue_ms": float(df["queue_ms"].mean()),
        "mean_cost": float(df["cost"].mean()),
        "mean_reward": float(df["reward"].mean()),
        "trap_hit_rate": float(df["trap_hits"].sum() / steps),
        "fallback_rate": float(df["fallbacks"].sum() / steps),
        "switches": float(df["switches"].mean()),
        "decision_ms": float((df["decision_ms"] * df["steps"]).sum() / steps),
    } | extra


# requests.csv and timeline.csv: written by evaluations with requests (a timeline when asked); claimed always, so a
# stale one never outlives its folder's evaluation
EVALUATION_FILES = ("episodes.csv", "requests.csv", "timeline.csv", "summary.json")


def evaluation_outputs(settings: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The files an evaluation writes, each with the settings it is made with (for `claim_output`)."""
    return {name: settings for name in EVALUATION_FILES}


def write_evaluation(out_dir: str | Path, result: pd.DataFrame | Evaluation, meta: dict[str, Any]) -> dict[str, Any]:
    """Write `episodes.csv`, `requests.csv` and `timeline.csv` (evaluations with requests, a timeline when
    asked; a stale one is removed otherwise) and `summary.json` (summary keys first, then `meta` and the
    code's git commit) atomically."""
    out = Path(out_dir)
    summary = summarize(result) | meta | {"git_commit": git_commit()}
    result = result if isinstance(result, Evaluation) else Evaluation(result)
    write_csv(out / "episodes.csv", result.episodes)
    write_csv_or_remove(out / "requests.csv", None if result.requests is None else result.requests[REQUEST_COLUMNS])
    write_csv_or_remove(out / "timeline.csv", result.timeline)
    write_json(out / "summary.json", summary)
    return summary


SERVING_COLUMNS = [("SLO att", "slo_attainment", "{:.3f}"), ("goodput/s", "goodput_per_s", "{:.3f}"),
                   ("TTFT p99", "ttft_p99_ms", "{:.1f}"), ("TPOT p99", "tpot_p99_ms", "{:.1f}"),
                   ("util", "utilisation", "{:.3f}")]


def format_table(summaries: dict[str, dict[str, Any]]) -> str:
    """A short fixed-width comparison table, one row per scheduler; the serving columns where a summary has them."""
    cols = [("episodes", "episodes", "{:d}"), ("latency ms", "mean_latency_ms", "{:.1f}"),
            ("p99 ms", "p99_latency_ms", "{:.1f}"), ("cost $", "mean_cost", "{:.5f}"),
            ("reward", "mean_reward", "{:.4f}"), ("trap hit", "trap_hit_rate", "{:.3f}"),
            ("fallback", "fallback_rate", "{:.3f}"), ("decision ms", "decision_ms", "{:.4f}")]
    cols += [c for c in SERVING_COLUMNS if any(c[1] in s for s in summaries.values())]
    name_w = max(len("scheduler"), *(len(n) for n in summaries))
    cells = [[fmt.format(s[key]) if key in s else "-" for _, key, fmt in cols] for s in summaries.values()]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(cols)]
    lines = ["scheduler".ljust(name_w) + "  " + "  ".join(h.rjust(wd) for (h, _, _), wd in zip(cols, widths))]
    lines += [n.ljust(name_w) + "  " + "  ".join(c.rjust(wd) for c, wd in zip(row, widths))
              for n, row in zip(summaries, cells)]
    return "\n".join(lines)
