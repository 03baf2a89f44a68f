"""Several schedulers evaluated side by side in one simulator, against each in its own.

    python bench/side_by_side.py                         # the serving rules at default parameters, 3,000 steps
    python bench/side_by_side.py --policies greedy_queue least_loaded --max-steps 0 --json bench/results/side_by_side.json
    python bench/side_by_side.py --runs results/side_by_side_bench --max-steps 1500   # learned runs too (the sweep
                                                         # sweeps/side_by_side_bench.yaml trains them)
    python bench/side_by_side.py --runs results/side_by_side_bench --max-steps 300 --side-by-side-only
                                                         # the shared way alone: to time a change against the code before

On the serving study's validation setting (bench/serving_validation.py: its region, train split, load, five seeds
side by side, worlds, warm-up, measured workflows), every scheduler is evaluated in its own simulator, as
`evaluate_seeds` runs it, and all at once, as `evaluate_side_by_side` runs them (each scheduler's block of rows in
one simulator). With `--runs`, the learned runs' final checkpoints under that results root are evaluated as well,
and a third way is timed: the rules side by side and each learned run in its own simulator (what
total/evaluate_all.py did before learned runs shared one; side by side each learned run's networks decide its own
rows only, `GreedyAgentPolicy.act_block`). Every way runs at most `--max-steps` steps (0: the
protocol's bound), so they simulate the same steps. Each scheduler's choice for each of its rows at every step
must be the same in every way (the rows are independent worlds: the same choices make the same trajectories), and
so must its rows; rules that draw random numbers draw them for the whole batch, so theirs are not compared.
Prints the times and their ratios; the study's evaluations are of this size.
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
from schedkit.evaluation import (  # noqa: E402
    BlockDeciding,
    Evaluation,
    Observation,
    Policy,
    evaluate_seeds,
    evaluate_side_by_side,
)
from schedkit.inference import policy_from_checkpoint  # noqa: E402
from schedkit.registry import get  # noqa: E402
from schedkit.runs import CheckpointError, load_checkpoint  # noqa: E402
from total.common import agent_factory, final_checkpoints  # noqa: E402

RULES = ["greedy", "greedy_queue", "least_loaded", "p2c", "telemetry", "maxcompute", "random", "round_robin", "jsq",
         "token_jsq", "kv_jsq"]  # every serving heuristic but the planners (oracle, lookahead)


class Recorded:
    """A policy that keeps every choice it makes, with the rows it made it for (None: every row)."""

    def __init__(self, policy: Policy):
        self.policy, self.name = policy, policy.name
        self.choices: list[tuple[torch.Tensor | None, torch.Tensor]] = []

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        chosen = self.policy.act(sim, obs)
        self.choices.append((None, chosen.clone()))
        return chosen

    def block(self, i: int, rows: int) -> torch.Tensor:
        """(steps, rows) its choices for block `i` of `rows` rows at every step it decided them."""
        mine = torch.arange(i * rows, (i + 1) * rows)
        return torch.stack([c.narrow(0, i * rows, rows) if at is None else c for at, c in self.choices
                            if at is None or torch.equal(at, mine)])


class RecordedBlocks(Recorded):
    """`Recorded` for a policy that decides some rows alone (`BlockDeciding`), as it does side by side."""

    def __init__(self, policy: BlockDeciding):
        super().__init__(policy)
        self.deciding = policy

    def act_block(self, sim: Simulator, obs: Observation, rows: torch.Tensor) -> torch.Tensor:
        chosen = self.deciding.act_block(sim, obs, rows)
        self.choices.append((rows.clone(), chosen.clone()))
        return chosen


def same_rows(a: Evaluation, b: Evaluation) -> bool:
    cols = [c for c in a.episodes if c != "decision_ms"]
    return bool(a.episodes[cols].equals(b.episodes[cols]) and a.steps == b.steps
                and (a.requests is None or a.requests.equals(b.requests)))


def always(policy: Policy) -> Callable[[Simulator, int], Policy]:
    """A maker that gives `policy` for every seed (a learned run: one policy, however many seeds)."""
    return lambda sim, seed: policy


def learned_makers(root: Path, ds) -> dict[str, Callable[[Simulator, int], Policy]]:
    """A maker of each final checkpoint under `root` trained on `ds` under the serving profile."""
    makers: dict[str, Callable[[Simulator, int], Policy]] = {}
    for ckpt in final_checkpoints(root):
        algo = ckpt.parents[2].name
        try:
            state = load_checkpoint(ckpt, map_location="cpu", algo=algo)
        except CheckpointError as e:  # its message names the file
            sys.exit(f"error: {e}")
        try:
            if state["dataset"]["fingerprint"] != ds.fingerprint or state["config"]["profile"] != "serving":
                raise CheckpointError("not trained on the validation setting's region under the serving profile")
            policy = policy_from_checkpoint(state, ds, agent_factory(algo), torch.device("cpu"), profile=SERVING)
        except CheckpointError as e:
            sys.exit(f"error: {ckpt}: {e}")
        makers[f"{algo} seed {state['config']['seed']}"] = always(policy)
    if not makers:
        sys.exit(f"error: --runs {root}: no finished run (<root>/<Algo>/<run>/checkpoints/final.pt)")
    return makers


def timed(evaluate: Callable[[dict], dict], makers: dict) -> tuple[dict, dict[str, Recorded], float]:
    """`evaluate(makers)` with each policy recorded: its evaluations, the recorded policies and its seconds."""
    recorded: dict[str, Recorded] = {}

    def recording(name: str, make: Callable) -> Callable:
        def made(sim: Simulator, seed: int) -> Recorded:
            policy = make(sim, seed)
            recorded[name] = RecordedBlocks(policy) if isinstance(policy, BlockDeciding) else Recorded(policy)
            return recorded[name]
        return made
    t0 = time.perf_counter()
    out = evaluate({name: recording(name, make) for name, make in makers.items()})
    return out, recorded, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", nargs="+", default=RULES)
    p.add_argument("--runs", type=Path, help="a results root whose learned runs are evaluated too")
    p.add_argument("--max-steps", type=int, default=3000, help="steps of each run (0: the protocol's bound)")
    p.add_argument("--side-by-side-only", action="store_true",
                   help="time all side by side only (no run alone, nothing compared): to time a change of the shared "
                        "step against the code before it")
    add_json_flag(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    setting = validation_setting()
    protocol = setting.protocol
    steps = args.max_steps or protocol.max_steps

    def maker(name: str) -> Callable[[Simulator, int], Policy]:
        return lambda sim, seed: get(name).load()(sim, seed=seed)
    rules = {name: maker(name) for name in args.policies}
    learned = learned_makers(args.runs, setting.ds) if args.runs else {}
    run = (setting.ds, "train", protocol.episodes, setting.seeds, "cpu", SERVING, setting.params)

    def together(some: dict) -> dict:
        return evaluate_side_by_side(*run, some, progress=False, max_steps=steps)

    if args.side_by_side_only:
        _, _, both_s = timed(together, rules | learned)
        emit(args.json, record("bench/side_by_side.py", argv, [], setting=setting.record(),
                               summary={"rules": len(rules), "learned_runs": len(learned), "max_steps": steps,
                                        "side_by_side_s": both_s}))
        print(f"all side by side: {both_s:.1f} s", file=sys.stderr)
        return []
    alone, alone_rec, alone_s = {}, {}, {}
    for name, make in (rules | learned).items():
        out, rec, alone_s[name] = timed(lambda one: {n: evaluate_seeds(*run, m, progress=False, max_steps=steps)
                                                     for n, m in one.items()}, {name: make})
        alone[name], alone_rec[name] = out[name], rec[name]
    apart_s = sum(alone_s.values())
    print(f"each alone: {apart_s:.0f} s", file=sys.stderr)
    summary: dict = {"rules": len(rules), "learned_runs": len(learned), "max_steps": steps, "apart_s": apart_s}
    if learned:
        _, _, rules_s = timed(together, rules)
        learned_s = sum(alone_s[name] for name in learned)
        before = rules_s + learned_s
        summary |= {"rules_side_by_side_s": rules_s, "learned_alone_s": learned_s,
                    "rules_side_by_side_learned_alone_s": before}
        print(f"rules side by side, each learned run alone: {before:.0f} s", file=sys.stderr)
    both, both_rec, both_s = timed(together, rules | learned)
    summary |= {"side_by_side_s": both_s, "speedup": apart_s / both_s}
    if learned:
        summary["speedup_over_learned_alone"] = summary["rules_side_by_side_learned_alone_s"] / both_s
    rows_each = len(setting.seeds) * protocol.worlds
    rows = []
    for i, name in enumerate(rules | learned):
        draws = name in rules and getattr(get(name).load(), "draws_for_the_batch", False)
        same = None if draws else bool(
            torch.equal(alone_rec[name].block(0, rows_each), both_rec[name].block(i, rows_each))
            and all(same_rows(a, b) for (_, a), (_, b) in zip(alone[name], both[name])))
        rows.append({"policy": name, "learned": name in learned, "steps": alone[name][0][1].steps,
                     "alone_s": alone_s[name], "identical": same})
    emit(args.json, record("bench/side_by_side.py", argv, rows, setting=setting.record(), summary=summary))
    if args.json != "-":
        print(f"validation setting, load {protocol.validation_load:g}, {len(setting.seeds)} seeds x {protocol.worlds} "
              f"worlds; {len(rules)} rules and {len(learned)} learned runs, at most {steps:,} steps each")
        print(f"each alone {apart_s:.0f} s, all side by side {both_s:.0f} s: {apart_s / both_s:.2f}x")
        if learned:
            print(f"rules side by side and each learned run alone {summary['rules_side_by_side_learned_alone_s']:.0f}"
                  f" s: {summary['speedup_over_learned_alone']:.2f}x")
        verdict = {True: "the same choices and rows", False: "CHOICES OR ROWS DIFFER",
                   None: "draws for the batch, not compared"}
        for r in rows:
            print(f"  {r['policy']}: {r['steps']:,} steps, alone {r['alone_s']:.0f} s, {verdict[r['identical']]}")
    if any(r["identical"] is False for r in rows):
        sys.exit("error: a scheduler's choices or rows differ side by side from its own run's")
    return rows


if __name__ == "__main__":
    main()
