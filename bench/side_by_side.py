"""Several schedulers evaluated side by side in one simulator, against one after the other.

    python bench/side_by_side.py                         # the serving rules at default parameters, 3,000 steps
    python bench/side_by_side.py --policies greedy_queue least_loaded --max-steps 0 --json bench/results/side_by_side.json

On the serving study's validation setting (bench/serving_validation.py: its region, train split, load, five seeds
side by side, worlds, warm-up, measured workflows), every `--policies` rule is evaluated twice: one after the other,
each as `evaluate_seeds` runs it, and all at once as `evaluate_side_by_side` runs them (each rule's block of rows in
one simulator). Both ways run at most `--max-steps` steps (0: the protocol's bound), so they simulate the same steps,
and the rows of each rule must come out identical (rules that draw random numbers draw them for the whole batch,
so theirs are not compared). Prints both times and their ratio; the study's evaluations are of this size.
"""
from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import add_json_flag, emit, record  # noqa: E402
from bench.serving_validation import validation_setting  # noqa: E402
from edgesim.serving import SERVING  # noqa: E402
from edgesim.simulator import Simulator  # noqa: E402
from schedkit.evaluation import Evaluation, Policy, evaluate_seeds, evaluate_side_by_side  # noqa: E402
from schedkit.registry import get  # noqa: E402

RULES = ["greedy", "greedy_queue", "least_loaded", "p2c", "telemetry", "maxcompute", "random", "round_robin", "jsq",
         "token_jsq", "kv_jsq"]  # every serving heuristic but the planners (oracle, lookahead)


def same_rows(a: Evaluation, b: Evaluation) -> bool:
    cols = [c for c in a.episodes if c != "decision_ms"]
    return bool(a.episodes[cols].equals(b.episodes[cols]) and a.steps == b.steps
                and (a.requests is None or a.requests.equals(b.requests)))


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", nargs="+", default=RULES)
    p.add_argument("--max-steps", type=int, default=3000, help="steps of each run (0: the protocol's bound)")
    add_json_flag(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    setting = validation_setting()
    protocol = setting.protocol
    steps = args.max_steps or protocol.max_steps
    def maker(name: str) -> Callable[[Simulator, int], Policy]:
        return lambda sim, seed: get(name).load()(sim, seed=seed)
    makers = {name: maker(name) for name in args.policies}
    run = (setting.ds, "train", protocol.episodes, setting.seeds, "cpu", SERVING, setting.params)
    t0 = time.perf_counter()
    apart = {name: evaluate_seeds(*run, make, progress=False, max_steps=steps) for name, make in makers.items()}
    apart_s = time.perf_counter() - t0
    print(f"one after the other: {apart_s:.0f} s", file=sys.stderr)
    t0 = time.perf_counter()
    together = evaluate_side_by_side(*run, makers, progress=False, max_steps=steps)
    together_s = time.perf_counter() - t0
    rows = [{"policy": name, "steps": apart[name][0][1].steps,
             "identical_rows": None if getattr(get(name).load(), "draws_for_the_batch", False) else all(
                 same_rows(a, b) for (_, a), (_, b) in zip(apart[name], together[name]))} for name in makers]
    summary = {"policies": len(makers), "max_steps": steps, "apart_s": apart_s, "side_by_side_s": together_s,
               "speedup": apart_s / together_s}
    emit(args.json, record("bench/side_by_side.py", argv, rows, setting=setting.record(), summary=summary))
    if args.json != "-":
        print(f"validation setting, load {protocol.validation_load:g}, {len(setting.seeds)} seeds x {protocol.worlds} "
              f"worlds; {len(makers)} rules, at most {steps:,} steps each")
        print(f"one after the other {apart_s:.0f} s, side by side {together_s:.0f} s: {apart_s / together_s:.2f}x")
        for r in rows:
            same = {True: "identical rows", False: "ROWS DIFFER", None: "draws for the batch, not compared"}
            print(f"  {r['policy']}: {r['steps']:,} steps, {same[r['identical_rows']]}")
    if any(r["identical_rows"] is False for r in rows):
        sys.exit("error: a rule's rows differ side by side from its own run")
    return rows


if __name__ == "__main__":
    main()
