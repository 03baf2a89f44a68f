"""Evaluate the reference schedulers (random, greedy, greedy_queue, greedy_switch, maxcompute, oracle,
least_loaded, p2c, lookahead, telemetry, and under `--profile serving` the serving rules round_robin, jsq,
token_jsq and kv_jsq) on a dataset split. `--policy all` leaves out the rules a profile is not made for
(schedkit/registry.py `profiles`); a rule named explicitly runs, or refuses with one line when the
profile lacks the live input it reads.

    python Heuristics/inference.py --data data1 --region Server1_Trap --policy greedy oracle --out results/heuristics
    python Heuristics/inference.py --profile contention --arrival-rate 4 --policy all
    python Heuristics/inference.py --profile contention --arrival-rate 8 --policy greedy_queue --latency-weight 0.8

`--latency-weight W` sets the greedy family's score W * E[latency] / 2000 ms + (1 - W) * cost / $0.05
(greedy, greedy_queue, greedy_switch, p2c, and least_loaded's tie-break; default 0.6) and lookahead's
planning weights (Heuristics/policies.py `planning_weights`; W = 0.6 plans with 0.45/0.40/0.15);
Heuristics/tune.py picks W on the train split. Each summary records the policy's `decision_ms` (wall
time per decision, amortised over the batch) and, for a policy taking W, its `latency_weight`.

Under `--profile contention` the oracle's summary also holds `reward_upper_bound`: its plans'
expected reward with queues left out, which no scheduler can exceed in expectation. Under `--profile
serving` every summary holds `latency_lower_bound_ms`, the solo bound (edgesim/serving.py
`solo_latency_bound`, asked of the simulator: `measured_bounds`): no scheduler's mean episode latency
on those episodes can be lower.

Under `--profile serving` each evaluation also writes requests.csv (one row per measured request) and
its summary adds SLO attainment, goodput, TTFT/TPOT percentiles and the engines' utilisation
(docs/evaluation.md); `--slo-ttft-ms` / `--slo-tpot-ms` set the objectives.

Under `--profile contention` and `serving` the rules that may share a simulator run side by side in one
(schedkit.evaluation.evaluate_side_by_side: each one's rows are those of its own run, for a fraction of the
time; its decision_ms is its time per decision at that batch); p2c, random and lookahead (they draw or plan
for the whole batch), the oracle under contention and every rule with --timeline run alone.

Writes OUT/episodes.csv and OUT/summary.json for one policy, OUT/<policy>/... for several, plus
OUT/config.yaml (the resolved arguments), and prints a comparison table.
"""
from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import torch

from edgesim.dataset import Dataset
from edgesim.inputs import reals
from edgesim.paper import Profile
from edgesim.registry import get_profile
from edgesim.simulator import Simulator
from Heuristics.policies import GREEDY_LATENCY_WEIGHT
from schedkit.cli import (
    add_eval_flags,
    add_timeline_flag,
    arg_type,
    load_or_exit,
    profile_params,
    resolve_device,
    set_threads,
    user_errors,
)
from schedkit.evaluation import (
    Evaluation,
    Policy,
    eval_simulator,
    evaluate_side_by_side,
    evaluation_outputs,
    format_table,
    holds_blocks,
    run_evaluation,
    write_evaluation,
)
from schedkit.io import write_yaml
from schedkit.outputs import claim_output
from schedkit.paths import RESULTS, data_root, git_commit
from schedkit.registry import get, heuristics
from schedkit.simulators import default_eval_episodes, profile_meta


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", nargs="+", choices=[*heuristics(), "all"], default=["all"],
                   help="scheduler(s) to evaluate (default: all)")
    add_latency_weight_flag(p)
    add_eval_flags(p)
    add_timeline_flag(p)
    p.add_argument("--out", default=None,
                   help="output folder (default: <repository>/results/Heuristics/<region>_<split>[_<profile>]_seed<seed>)")
    return p.parse_args(argv)


# argparse type: a number in [0, 1]
unit_interval = arg_type(reals(0, 1, text="a number in [0, 1]"))


def add_latency_weight_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--latency-weight", type=unit_interval, default=GREEDY_LATENCY_WEIGHT, metavar="W",
                   help="greedy family (greedy, greedy_queue, greedy_switch, p2c, least_loaded's tie-break): weight of "
                        "E[latency] / 2000 ms in the score, 1 - W on cost / $0.05; lookahead: the latency share of its "
                        f"planning weights (default: {GREEDY_LATENCY_WEIGHT})")


def make_policy(name: str, sim, seed: int, latency_weight: float):
    """A registered non-learned policy; one that takes a latency weight (`tunable`) gets it."""
    cls = get(name).load()
    if getattr(cls, "tunable", False):
        return cls(sim, seed=seed, latency_weight=latency_weight)
    return cls(sim, seed=seed)


def policy_maker(name: str, latency_weight: float) -> Callable[[Simulator, int], Policy]:
    """How each evaluation makes rule `name` at `latency_weight` (`make_policy`), for `evaluate_seeds` and
    `evaluate_side_by_side`."""
    return lambda sim, seed: make_policy(name, sim, seed, latency_weight)


def policy_settings(name: str, latency_weight: float) -> dict:
    """What a policy's summary records about its own parameters."""
    return {"latency_weight": latency_weight} if getattr(get(name).load(), "tunable", False) else {}


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)
    with user_errors():
        return evaluate_heuristics(args)


class Setting(NamedTuple):
    """What an evaluation of the heuristics runs on, resolved from the command line."""
    device: torch.device
    profile: Profile
    params: Any  # the profile's parameters (None: it has none)
    ds: Dataset
    episodes: int
    out: Path
    meta: dict


def resolve_setting(args: argparse.Namespace, results: Path = RESULTS / "Heuristics") -> Setting:
    """Device, profile, dataset and episodes of the flags, and the output folder (default:
    `results`/<region>_<split>[_<profile>]_seed<seed>)."""
    device = resolve_device(args.device)
    profile = get_profile(args.profile or "paper")
    params = profile_params(args, profile)
    ds = load_or_exit(data_root(args.data), args.region)
    episodes = args.episodes or default_eval_episodes(ds, args.split, profile)
    out = Path(args.out) if args.out else results / f"{'+'.join(args.region)}_{args.split}{profile.suffix}_seed{args.seed}"
    meta = {"profile": profile.name, **profile_meta(profile, params)}
    return Setting(device, profile, params, ds, episodes, out, meta)


def evaluate_heuristics(args: argparse.Namespace) -> dict:
    device, profile, params, ds, episodes, out, meta = resolve_setting(args)
    names = ([name for name in heuristics() if get(name).runs_under(profile)] if "all" in args.policy
             else list(dict.fromkeys(args.policy)))
    common = {"split": args.split, "seed": args.seed, "episodes": episodes, **meta, "regions": args.region,
              "dataset_fingerprint": ds.fingerprint}
    evaluations = {name: {"policy": name, **common, **policy_settings(name, args.latency_weight)} for name in names}
    run = {"policies": names, **common, "latency_weight": args.latency_weight}
    with contextlib.ExitStack() as stack:
        if len(names) == 1:  # one policy: its evaluation goes into OUT itself
            stack.enter_context(claim_output(out, {"config.yaml": run, **evaluation_outputs(evaluations[names[0]])},
                                             args.overwrite))
            targets = {names[0]: out}
        else:
            stack.enter_context(claim_output(out, {"config.yaml": run}, args.overwrite))
            targets = {name: out / name for name in names}
            for name, target in targets.items():
                stack.enter_context(claim_output(target, evaluation_outputs(evaluations[name]), args.overwrite))
        write_yaml(out / "config.yaml", vars(args) | meta | {"policies": names, "episodes": episodes,
                                                              "device": str(device), "dataset_fingerprint": ds.fingerprint,
                                                              "git_commit": git_commit()})
        print(ds.summary())
        together, shared = side_by_side(names, args, profile, params, episodes), {}
        if together:
            print(f"{len(together)} rules side by side in one simulator: {', '.join(together)}")
            shared = evaluate_together(together, args, ds, device, profile, params, episodes)
            own_shape = eval_simulator(ds, args.split, episodes, args.seed, device, profile, params)
            own_shape.reset(args.seed)  # the bounds of a rule's episodes read a simulator of its own run's shape
        summaries = {name: write_evaluation(target, shared[name], evaluations[name] | {"device": str(device)}
                                            | own_shape.measured_bounds(shared[name].episodes))
                     if name in together else evaluate_one(name, target, args, ds, device, profile, params,
                                                           evaluations[name])
                     for name, target in targets.items()}
    print(format_table(summaries))
    print(f"wrote {out}")
    return summaries


def side_by_side(names: list[str], args: argparse.Namespace, profile: Profile, params: Any, episodes: int) -> list[str]:
    """The rules evaluated side by side in one simulator (`evaluate_side_by_side`: each one's rows those of its own
    run, for a fraction of the time): those that may share one (`Scheduler.shares_a_simulator`), where the profile
    holds several worlds' blocks, unless --timeline asks for each rule's own engines; the oracle stays alone where
    its plans bound the reward (the bound reads its own simulator)."""
    if args.timeline or not holds_blocks(profile, params, episodes):
        return []
    together = [n for n in names if get(n).shares_a_simulator() and not (n == "oracle" and profile.plan_bounds_reward)]
    return together if len(together) > 1 else []


def evaluate_together(names: list[str], args: argparse.Namespace, ds: Dataset, device: torch.device, profile: Profile,
                      params: Any, episodes: int) -> dict[str, Evaluation]:
    makers = {n: policy_maker(n, args.latency_weight) for n in names}
    runs = evaluate_side_by_side(ds, args.split, episodes, [args.seed], device, profile, params, makers,
                                 progress=not args.no_progress)
    return {n: runs[n][0][1] for n in names}


def evaluate_one(name: str, target: Path, args: argparse.Namespace, ds: Dataset, device: torch.device,
                 profile: Profile, params: Any, settings: dict) -> dict:
    """Evaluate one heuristic in a simulator of its own and write its episodes.csv and summary.json into `target`."""
    sim = eval_simulator(ds, args.split, settings["episodes"], args.seed, device, profile, params)
    policy = make_policy(name, sim, args.seed, args.latency_weight)
    result = run_evaluation(sim, policy, settings["episodes"], progress=not args.no_progress, timeline=args.timeline)
    extra = {}
    if name == "oracle" and profile.plan_bounds_reward:  # load-blind there: its plan value bounds every rule
        extra["reward_upper_bound"] = policy.bound(sim, list(result.episodes["task_id"]))
    extra |= sim.measured_bounds(result.episodes)
    return write_evaluation(target, result, settings | {"device": str(device)} | extra)


if __name__ == "__main__":
    main()
