"""Decide a sweep's candidate variants on its study's validation setting, by the rule its file wrote before the runs.

    python total/sweep.py --config sweeps/serving_residual.yaml --workers 2    # train: the rule is in the file
    python total/decide.py --sweep sweeps/serving_residual.yaml --workers 2    # evaluate, tabulate, decide
    python total/decide.py --sweep sweeps/serving_residual.yaml --dry-run      # the commands only

The sweep's `decide` block names the study whose validation setting judges (`study: serving`: total/studies.yaml,
serving.protocol), the variant every other one is paired against (`reference`) and the rule:
- `reward_ci_above_zero`: a candidate is adopted only if its paired reward difference to the reference has a 95%
  CI above zero (total/make_table.py: a t-interval over training runs, evaluation seeds and task clusters) and it
  left no workflow unfinished.
The evaluation (total/evaluate_all.py) is the validation setting: the train split at the validation load, the
validation seed and the seeds after it, as many as the test's evaluation seeds, side by side, the protocol's
worlds, warm-up, measured workflows, step bound and SLOs. It evaluates the sweep's own runs and no other run under
the results root (--only-runs), beside greedy_queue and, for runs whose guidance prior is greedy_queue's score,
the rule at the prior's W (the matched control); the other heuristics are left out. The test split is never read.
The tables go to total/figures/<sweep name>/ (one folder per algorithm when the sweep has several): paired
against the reference, with the verdicts in decision.json beside them; and in vs_rule/ (one table for every
algorithm's rows) against the matched control where there is one. The logs are in
<results>/decisions/<sweep name>/.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from schedkit.cli import closed_output_is_one_line, workers_arg
from schedkit.io import write_json
from schedkit.paths import eval_dir
from schedkit.registry import heuristics
from total.common import ROOT
from total.evaluate_all import eval_tag
from total.reproduce import Study, child, studies_or_exit
from total.reproduce_serving import Protocol, tag
from total.sweep import Run, expand, load_sweep, stop_children_on_signal

CONTROL = "greedy_queue"  # the rule every decision also evaluates: its prior-matched rows come with it
CONTROL_PREFIX = "greedy_queue_prior_w"  # evaluate_all's name of the rule at a prior's W


@dataclass(frozen=True)
class Verdict:
    """One candidate's paired reward difference to the reference and whether the rule adopts it."""

    candidate: str
    reference: str
    d_reward: float
    lo: float
    hi: float
    unfinished: int
    adopted: bool


def validation_seeds(protocol: Protocol) -> list[int]:
    """The validation seed and the seeds after it, as many as the test's: the seeds every decision reads."""
    return [protocol.validation_seed + i for i in range(len(protocol.eval_seeds))]


def evaluate_command(runs: list[Run], protocol: Protocol, workers: int, overwrite: bool) -> list[str]:
    """total/evaluate_all.py's arguments for the sweep's runs (one region entry, data and results root) at the
    validation setting."""
    first = runs[0]
    return ["total/evaluate_all.py", "--data", first.data, "--region", *first.regions, "--split", "train",
            "--profile", "serving", "--load", f"{protocol.validation_load:g}",
            "--worlds", str(protocol.worlds), "--warmup", str(protocol.warmup), "--episodes", str(protocol.episodes),
            "--max-steps", str(protocol.max_steps), *protocol.slo_flags(),
            "--eval-seeds", *map(str, validation_seeds(protocol)), "--results", first.results,
            "--only-runs", *(str(r.dir) for r in runs), "--skip", *[h for h in heuristics() if h != CONTROL],
            "--workers", str(workers), "--no-progress", *(["--overwrite"] if overwrite else [])]


def table_command(runs: list[Run], study: Study, setting: str, reference: str, figures: Path,
                  overwrite: bool) -> list[str]:
    """total/make_table.py's arguments for the paired table against `reference` into `figures`."""
    m = study.margins
    return ["total/make_table.py", "--results", runs[0].results, "--tag", setting,
            "--region", *runs[0].regions, "--reference", reference,
            "--figures", str(figures), "--reward-margin", f"{m.reward:g}", "--p99-margin", f"{m.p99_latency:g}",
            "--slo-margin", f"{m.slo_attainment:g}", *(["--overwrite"] if overwrite else [])]


def verdicts(paired: pd.DataFrame, reference: str, candidates: list[str]) -> list[Verdict]:
    """Rule `reward_ci_above_zero` on a paired table (total/make_table.py's *_paired.csv) against `reference`."""
    rows = paired.set_index("algo")
    missing = [c for c in candidates if c not in rows.index]
    if missing or set(paired["reference"]) != {reference}:
        raise ValueError(f"the paired table against {reference} lacks {missing or 'its reference'}")
    out = []
    for c in candidates:
        r = rows.loc[c]
        unfinished = int(r["unfinished"])
        out.append(Verdict(c, reference, float(r["d_reward"]), float(r["d_reward_lo"]), float(r["d_reward_hi"]),
                           unfinished, unfinished == 0 and float(r["d_reward_lo"]) > 0))
    return out


def controls(results: Path, regions: list[str], setting: str) -> list[str]:
    """The prior-matched rows evaluate_all wrote at the setting (one per distinct prior W)."""
    summary = pd.read_csv(eval_dir(results, regions, setting) / "summary.csv")
    return sorted(a for a in summary["algo"] if a.startswith(CONTROL_PREFIX))


def main(argv: list[str] | None = None) -> list[Verdict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", required=True, type=Path, help="the sweep YAML, with its `decide` block")
    p.add_argument("--results", type=Path, help="override the sweep's results root (relative to the current directory)")
    p.add_argument("--figures", type=Path, help="where the tables go (default: total/figures/<sweep name>)")
    p.add_argument("--workers", type=workers_arg, default=1, help="schedulers evaluated at once (default 1)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an evaluation or tables made from other runs or settings (default: refuse)")
    p.add_argument("--dry-run", action="store_true", help="print the commands and the rule, run nothing")
    args = p.parse_args(argv)
    sweep = load_sweep(args.sweep, trains=False)
    name = sweep.get("name", args.sweep.stem)
    block = sweep["decide"]
    if block is None:
        sys.exit(f"error: {args.sweep}: no `decide` block (study, reference, rule): nothing says how to decide")
    if args.results:
        sweep["results"] = str(args.results.resolve())
    study = studies_or_exit()[block["study"]]
    protocol = Protocol.from_study(study)
    runs = expand(sweep)
    algorithms = list(dict.fromkeys(r.algo for r in runs))
    setting = eval_tag(tag(protocol.validation_load), "train")
    figures = args.figures or ROOT / "total" / "figures" / name
    results = Path(runs[0].results)
    logs = results / "decisions" / name

    def out(algo: str) -> Path:
        return figures / algo if len(algorithms) > 1 else figures

    evaluate = evaluate_command(runs, protocol, args.workers, args.overwrite)
    print(f"decide {name}: rule {block['rule']}, each candidate paired against its algorithm's "
          f"@{block['reference']}, at study {block['study']}'s validation setting ({setting}, seeds "
          f"{validation_seeds(protocol)})")
    if args.dry_run:
        print("  python " + " ".join(evaluate))
        for algo in algorithms:
            print("  python " + " ".join(table_command(runs, study, setting, f"{algo}@{block['reference']}",
                                                       out(algo), args.overwrite)))
        return []
    missing = [str(r.dir) for r in runs if not (r.dir / "checkpoints" / "final.pt").is_file()]
    if missing:
        sys.exit(f"error: {missing[0]}: not trained yet; run python total/sweep.py --config {args.sweep} first")
    found: list[Verdict] = []
    with stop_children_on_signal():
        child(evaluate, logs / "evaluate.log", "the validation evaluation")
        for algo in algorithms:
            reference = f"{algo}@{block['reference']}"
            child(table_command(runs, study, setting, reference, out(algo), args.overwrite), logs / f"table_{algo}.log",
                  f"the table of {algo}")
            candidates = [f"{algo}@{v}" for v in sweep["variants"] if v != block["reference"]]
            table = out(algo) / f"results_table_{setting}_paired.csv"
            try:
                mine = verdicts(pd.read_csv(table), reference, candidates)
            except ValueError as e:
                sys.exit(f"error: {table}: {e}")
            write_json(out(algo) / "decision.json", {
                "sweep": name, "rule": block["rule"], "study": block["study"], "setting": setting,
                "eval_seeds": validation_seeds(protocol),
                "verdicts": [v.__dict__ for v in mine]})
            found += mine
        rules = controls(results, list(runs[0].regions), setting)  # one table holds every algorithm's rows
        for control in rules:
            into = figures / ("vs_rule" if len(rules) == 1 else f"vs_{control}")
            child(table_command(runs, study, setting, control, into, args.overwrite), logs / f"table_{control}.log",
                  f"the table against {control}")
    for v in found:
        print(f"{v.candidate}: {v.d_reward:+.4f} [{v.lo:+.4f}, {v.hi:+.4f}] against {v.reference}"
              + (f", {v.unfinished} unfinished" if v.unfinished else "")
              + (": adopt" if v.adopted else ": not adopted, the recipe stays"))
    return found


if __name__ == "__main__":
    with closed_output_is_one_line():
        main()
