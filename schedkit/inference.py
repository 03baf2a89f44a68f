"""The `inference.py` command line shared by every learned scheduler.

Loads a checkpoint and refuses one trained on another dataset, unless the agent is size-agnostic
(TopoFreeRL with `actor: per_server`), which then schedules the new topology zero-shot. Evaluates
the deterministic policy (argmax over valid servers, DWA weights frozen at their final values)
under the shared protocol, and writes the same episodes.csv / summary.json as
Heuristics/inference.py, plus the decision time at batch 1. Its last line puts the reward in
context: greedy's and the oracle's on the same setting from a table that exists, or the command
that computes them (schedkit/reference.py).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from edgesim.paper import PAPER, Profile
from edgesim.physics import EVAL_WEIGHTS
from edgesim.registry import get_profile, make_simulator
from edgesim.simulator import Observation, Simulator

from .agent_base import MaskedAgent, live_input_problem
from .checkpoints import restore_weights
from .cli import (
    add_eval_flags,
    add_timeline_flag,
    load_or_exit,
    profile_params,
    resolve_device,
    set_threads,
    user_errors,
)
from .config import ConfigError
from .evaluation import eval_simulator, evaluation_outputs, format_table, run_evaluation, write_evaluation
from .outputs import claim_output
from .paths import data_root, run_eval_dir, run_of
from .reference import reference_line
from .rollout import chosen_servers
from .runs import CheckpointError, check_dataset, load_checkpoint, resolve_model_path
from .simulators import default_eval_episodes, profile_meta
from .trainer import AgentFactory


class CompileError(RuntimeError):
    """torch.compile could not build the decision (e.g. no C++ compiler for inductor on the CPU)."""


class GreedyAgentPolicy:
    """Adapter from an agent to the evaluation protocol's `act(sim, obs)`.

    `compile=True` runs the decision (features, networks, argmax) through `torch.compile` (inductor,
    one graph per batch size, compiled on first use in ~10-30 s; needs a C++ compiler on the CPU).
    Fused, the ~100 small operations of a decision stop paying Python dispatch one by one, which is
    what a batch-1 decision costs. Same decisions as eager up to float rounding (tests compare them)."""

    def __init__(self, name: str, agent: MaskedAgent, weights: torch.Tensor, compile: bool = False):
        self.name, self.agent, self.weights = name, agent.evaluation(), weights
        self.compiled = torch.compile(self._decide, dynamic=False) if compile else None

    def _decide(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        return self._choose(self.agent.features(sim, obs, self.weights.to(sim.device)))

    def _choose(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        return chosen_servers(feats, self.agent(feats)[0].argmax(1))

    def act_block(self, sim: Simulator, obs: Observation, rows: torch.Tensor) -> torch.Tensor:
        """Its choices for `rows` (row indices) alone: the features of every row (they read the whole simulator),
        the networks on `rows` only, so that beside other policies in one simulator it pays its networks for its
        own rows (`schedkit.evaluation.SideBySide`). Every feature is per row, and so is each row's forward pass."""
        with torch.inference_mode():
            feats = self.agent.features(sim, obs, self.weights.to(sim.device))
            return self._choose({k: v.index_select(0, rows) for k, v in feats.items()})

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        if self.compiled is None:
            with torch.inference_mode():
                return self._decide(sim, obs)
        try:
            with torch.no_grad():  # inductor cannot take inference-mode tensors
                return self.compiled(sim, obs)
        except torch._dynamo.exc.BackendCompilerFailed as e:
            inner = getattr(e, "inner_exception", None) or e
            first = next((line.strip() for line in str(inner).splitlines() if line.strip()), type(inner).__name__)
            raise CompileError(f"--compile: torch.compile failed ({first}); run without --compile") from None


def policy_from_checkpoint(state: dict, ds, make_agent: AgentFactory, device: torch.device,
                           compile: bool = False, profile: Profile | None = None) -> GreedyAgentPolicy:
    """The deterministic policy a checkpoint holds: its agent and weights, at DWA's final objective weights
    (the evaluation weights for an agent trained without DWA). With `profile`, the profile it will be
    evaluated under: a CheckpointError if its networks read another number of live inputs per server."""
    cfg = state["config"]
    problem = None if profile is None else live_input_problem(cfg, profile)
    if problem:
        raise CheckpointError(problem)
    try:
        agent = make_agent(ds, cfg, device)
    except ConfigError as e:  # a combination of settings its agent refuses
        raise CheckpointError(str(e)) from None
    restore_weights(agent, state["model"], cfg["algo"])
    weights = list(EVAL_WEIGHTS) if state["dwa"] is None else state["dwa"]["weights"]
    return GreedyAgentPolicy(cfg["algo"], agent, torch.tensor(weights, dtype=torch.float32), compile)


def batch1_decision_ms(ds, split: str, policy: GreedyAgentPolicy, device: torch.device, decisions: int = 200,
                       profile: Profile = PAPER, params: Any = None) -> float:
    """Median wall time of one decision for a single episode or world (the latency a live scheduler adds)."""
    sim = make_simulator(ds, 1, split, "sequential", 0, device, profile, params)
    obs, times = sim.reset(), []
    for _ in range(decisions + 10):
        t0 = time.perf_counter()
        a = policy.act(sim, obs)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
        obs, *_ = sim.step(a)
    return statistics.median(times[10:]) * 1000.0


def inference_main(make_agent: AgentFactory, description: str, argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help="checkpoint, e.g. results/<Algo>/latest/checkpoints/final.pt, or "
                        "results/<Algo>/models/LATEST_<region>_seed<S>_final.pt for the newest such run")
    add_eval_flags(p)
    add_timeline_flag(p)
    p.add_argument("--out", help="output folder (default: <run dir>/eval_<split>_seed<seed>)")
    p.add_argument("--compile", action="store_true",
                   help="run each decision through torch.compile (first decision of each batch size compiles, "
                        "~10-30 s; then much faster at small batches, e.g. batch 1)")
    args = p.parse_args(argv)
    set_threads(args.threads)
    with user_errors(CheckpointError, CompileError):
        return _evaluate_checkpoint(args, make_agent)


def _evaluate_checkpoint(args: argparse.Namespace, make_agent: AgentFactory) -> dict:
    device = resolve_device(args.device)
    ds = load_or_exit(data_root(args.data), args.region)
    given = resolve_model_path(args.model)  # errors name the path as given, not where a symlink leads
    state = load_checkpoint(given, map_location=device, algo=getattr(make_agent, "algo", None))
    model_path = given.resolve()
    cfg = state["config"]
    zero_shot = state["dataset"]["fingerprint"] != ds.fingerprint
    if not (zero_shot and make_agent.size_agnostic(cfg)):
        check_dataset(state, ds, model_path)
    if zero_shot:
        print(f"zero-shot: the checkpoint was trained on {len(state['dataset']['server_ids'])} servers of "
              f"{state['dataset']['regions']}; scheduling {ds.n_servers} servers of {list(ds.regions)}")
    profile = get_profile(args.profile or cfg["profile"])
    params = profile_params(args, profile, cfg.get(profile.name))
    try:
        policy = policy_from_checkpoint(state, ds, make_agent, device, args.compile, profile)
    except CheckpointError as e:
        raise CheckpointError(f"{model_path}: {e}") from None
    episodes = args.episodes or default_eval_episodes(ds, args.split, profile)
    out = Path(args.out) if args.out else run_eval_dir(run_of(model_path), args.split, args.seed, profile)
    settings = {"policy": cfg["algo"], "model": str(model_path), "split": args.split, "seed": args.seed,
                "episodes": episodes, "profile": profile.name, **profile_meta(profile, params), "regions": args.region,
                "dataset_fingerprint": ds.fingerprint}
    with claim_output(out, evaluation_outputs(settings), args.overwrite):
        sim = eval_simulator(ds, args.split, episodes, args.seed, device, profile, params)
        if args.compile:
            policy.act(sim, sim.observe())  # compile outside the timed decisions; evaluate() resets the sim
        result = run_evaluation(sim, policy, episodes, progress=not args.no_progress, timeline=args.timeline)
        summary = write_evaluation(out, result, settings | {
            "train_seed": cfg["seed"], "trained_epochs": state["epoch"],
            "decision_ms_batch1": batch1_decision_ms(ds, args.split, policy, device, profile=profile, params=params),
            "zero_shot": zero_shot, "trained_regions": state["dataset"]["regions"], "device": str(device),
            "compiled": args.compile})
    print(format_table({cfg["algo"]: summary}))
    print(f"decision time: {summary['decision_ms']:.4f} ms batched ({sim.batch_size} episodes), "
          f"{summary['decision_ms_batch1']:.3f} ms at batch 1 (median)")
    print(f"wrote {out}")
    print(reference_line(args, settings))
    return summary
