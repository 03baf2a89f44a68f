"""Tune the latency weight W of the greedy family and lookahead on the train split (never the test split).

    python Heuristics/tune.py --profile contention --arrival-rate 8 --split train --weights 0.5 0.6 0.7 0.8 0.9

Evaluates each policy (default: greedy_queue and p2c) at each W, with the greedy family's score
W * E[latency] / 2000 ms + (1 - W) * cost / $0.05 (lookahead: its planning weights at W,
Heuristics/policies.py `planning_weights`), under the evaluation protocol on the train
split, and picks, per policy, the W of the best mean reward. With `--max-steps N` each evaluation ends
after N steps, and a W that leaves workflows unfinished (its queues outgrew the run: unstable at this
load) is chosen only when every W does, then the one with the fewest. Writes OUT/tuning.json (the table
and the chosen W) and OUT/config.yaml, and prints the table. Evaluate the chosen W on the test split
with `Heuristics/inference.py --latency-weight W`. Under a profile whose simulator holds several worlds' blocks
(contention, serving) the candidates of the deterministic rules run side by side in one simulator, each block's
rows those of its own run (`evaluate_candidates`); their `decision_ms` is then a wall time per decision at the
shared batch.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

import pandas as pd
import torch

from edgesim.dataset import Dataset
from edgesim.paper import Profile
from Heuristics.inference import policy_maker, resolve_setting, unit_interval
from schedkit.cli import add_eval_flags, episodes_arg, set_threads, user_errors
from schedkit.evaluation import evaluate_seeds, evaluate_side_by_side, holds_blocks, summarize, unfinished
from schedkit.io import write_json, write_yaml
from schedkit.outputs import claim_output
from schedkit.paths import RESULTS, git_commit
from schedkit.registry import get, heuristics

FAMILY = [name for name in heuristics() if getattr(get(name).load(), "tunable", False)]
COLUMNS = ("mean_reward", "mean_latency_ms", "p99_latency_ms", "mean_cost", "mean_queue_ms", "decision_ms")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", nargs="+", choices=FAMILY, default=["greedy_queue", "p2c"],
                   help="scheduler(s) taking a latency weight to tune, the greedy family and lookahead "
                        "(default: greedy_queue p2c)")
    p.add_argument("--weights", nargs="+", type=unit_interval, default=[0.5, 0.6, 0.7, 0.8, 0.9], metavar="W",
                   help="latency weights to try, each in [0, 1] (default: 0.5 0.6 0.7 0.8 0.9)")
    p.add_argument("--max-steps", type=episodes_arg,
                   help="end each evaluation after this many steps (default: once its workflows have all finished); "
                        "a W that leaves workflows unfinished is unstable and chosen last")
    add_eval_flags(p)
    p.set_defaults(split="train")
    p.add_argument("--out", default=None,
                   help="output folder (default: <repository>/results/Heuristics/tune/<region>_train[_<profile>]"
                        "_seed<seed>)")
    args = p.parse_args(argv)
    if args.split != "train":
        p.error("--split test is refused: tune W on the train split, then evaluate the chosen W on test "
                "with Heuristics/inference.py --latency-weight W")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)
    with user_errors():
        return tune(args)


def tune(args: argparse.Namespace) -> dict:
    """Evaluate every policy at every W of the flags, write the table and the chosen W."""
    device, profile, params, ds, episodes, out, meta = resolve_setting(args, RESULTS / "Heuristics" / "tune")
    settings = {"policies": list(dict.fromkeys(args.policy)), "weights": list(dict.fromkeys(args.weights)),
                "split": args.split, "seed": args.seed, "episodes": episodes, "max_steps": args.max_steps, **meta,
                "regions": args.region, "dataset_fingerprint": ds.fingerprint}
    with claim_output(out, {"tuning.json": settings, "config.yaml": settings}, args.overwrite):
        candidates = [(name, w) for name in dict.fromkeys(args.policy) for w in dict.fromkeys(args.weights)]
        evaluated = evaluate_candidates(ds, args.split, episodes, args.seed, device, profile, params, candidates,
                                        max_steps=args.max_steps, progress=not args.no_progress)
        rows = []
        for (name, w), episode_rows in zip(candidates, evaluated):
            summary = summarize(episode_rows)
            left = unfinished(episode_rows)
            rows.append({"policy": name, "latency_weight": w, **{k: summary[k] for k in COLUMNS}, "unfinished": left})
            print(f"{name:>14}  W={w:<5g}" + "".join(f"  {k} {rows[-1][k]:.4f}" for k in COLUMNS)
                  + (f"  unfinished {left}" if left else ""), flush=True)
        chosen = {name: max((r for r in rows if r["policy"] == name),
                            key=lambda r: (-r["unfinished"], r["mean_reward"]))["latency_weight"]
                  for name in dict.fromkeys(args.policy)}
        result = {"split": args.split, "seed": args.seed, "episodes": episodes, **meta, "regions": args.region,
                  "dataset_fingerprint": ds.fingerprint, "criterion": "best mean_reward among the W that finish",
                  "max_steps": args.max_steps,
                  "chosen_latency_weight": chosen, "table": rows, "git_commit": git_commit()}
        write_json(out / "tuning.json", result)
        write_yaml(out / "config.yaml", vars(args) | meta | {"episodes": episodes, "device": str(device),
                                                              "dataset_fingerprint": ds.fingerprint,
                                                              "chosen_latency_weight": chosen,
                                                              "git_commit": git_commit()})
    for name, w in chosen.items():
        print(f"chosen {name}: latency weight {w:g}")
    print(f"wrote {out}")
    return result


def evaluate_candidates(ds: Dataset, split: str, episodes: int, seed: int, device: str | torch.device, profile: Profile,
                        params: Any, candidates: list[tuple[str, float]], max_steps: int | None = None,
                        progress: bool = True, say: Callable[[str], object] = print) -> list[pd.DataFrame]:
    """The episode rows of each (policy, W) of `candidates`, in order, each as its own evaluation gives them. Where
    the profile holds several worlds' blocks in one simulator, the candidates whose rule may share one
    (`Scheduler.shares_a_simulator`: every W of greedy_queue and least_loaded, not p2c's batch-wide draws nor
    lookahead's plans) run side by side in one (`evaluate_side_by_side`: each block's rows are its own run's), the
    others one simulator each (`evaluate_seeds`), so the tuning costs a few evaluations' steps rather than one per
    candidate. `say` gets the line naming the candidates that share a simulator."""
    shared = [c for c in candidates if get(c[0]).shares_a_simulator()] \
        if holds_blocks(profile, params, episodes) else []
    found: dict[tuple[str, float], pd.DataFrame] = {}
    if len(shared) > 1:
        say(f"{len(shared)} candidates side by side in one simulator: "
            + ", ".join(f"{name} W={w:g}" for name, w in shared))
        together = evaluate_side_by_side(ds, split, episodes, [seed], device, profile, params,
                                         {f"{name} W={w:g}": policy_maker(name, w) for name, w in shared}, progress=progress,
                                         max_steps=max_steps)
        found = {c: runs[0][1].episodes for c, runs in zip(shared, together.values())}
    for name, w in candidates:
        if (name, w) not in found:
            [(_, alone)] = evaluate_seeds(ds, split, episodes, [seed], device, profile, params, policy_maker(name, w),
                                          progress=progress, max_steps=max_steps)
            found[name, w] = alone.episodes
    return [found[c] for c in candidates]


if __name__ == "__main__":
    main()
