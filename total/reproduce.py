"""The one entry to every study: `--study paper` (the default), `contention` or `claims`.

    python total/reproduce.py --study contention --workers 2    # total/reproduce_contention.py's study
    python total/reproduce.py --study claims --help             # a study's own flags

The paper study, from nothing to every figure and table: train every learned algorithm on 3 seeds,
evaluate everything, draw everything.

    python total/reproduce.py            # the full budget (about 15 minutes on 2 CPU cores)
    python total/reproduce.py --quick    # a small budget end to end, about a minute
    python total/reproduce.py --update-committed-figures     # the full budget, refreshing total/figures/

Training goes through the sweep machinery (total/sweep.py), so runs land in
<results>/<Algo>/<region>_seed<S>/: a finished run is skipped, an interrupted one resumes, a run
folder trained with other settings is refused, and re-running the command only redoes what is
missing. Evaluation and figures are always redone from the saved runs. Figures and tables go to
<results>/figures/ (git-ignored) unless --figures or --update-committed-figures says otherwise;
<results>/figures/reproduce.yaml records the resolved arguments and the git commit. --quick uses
its own results root, so its small models never meet the full run's.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from schedkit.cli import region_name, seed_arg, workers_arg
from schedkit.registry import learned
from total import evaluate_all, plot_all_comparison
from total.common import add_output_flags, figures_dir, inputs, paths, provenance, report_written, write_output, writing
from total.sweep import DEFAULTS, Run, expand, run_local, stop_children_on_signal

QUICK: dict[str, Any] = {"epochs": 3, "episodes": 32, "eval_episodes": 20}
QUICK_RESULTS = paths.RESULTS / "quick"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"small budget: {QUICK}")
    p.add_argument("--data", type=Path, default=paths.DATA, help=f"data root (default: {paths.DATA})")
    p.add_argument("--region", type=region_name, default="Server1_Trap")
    p.add_argument("--seeds", type=seed_arg, nargs="+", default=[42, 43, 44])
    p.add_argument("--algos", nargs="+", default=learned(), choices=learned())
    p.add_argument("--workers", type=workers_arg, default=1, help="training runs at once (default 1)")
    add_output_flags(p, results=None, results_help=f"default: {paths.RESULTS}; {QUICK_RESULTS} with --quick")
    args = p.parse_args(argv)
    if args.results is None:
        args.results = QUICK_RESULTS if args.quick else paths.RESULTS
    return args


def train(sweep: dict, workers: int, evaluate: bool = False) -> None:
    """Every run of a sweep config (DEFAULTS plus `sweep`) through the sweep machinery, by default
    without the per-run evaluation (total/evaluate_all.py evaluates everything; runs of `variants`,
    which it would pool, need theirs); stops the script if any failed."""
    runs: list[Run] = [replace(r, evaluate=evaluate) for r in expand(DEFAULTS | sweep)]
    failed = []

    def report(result: dict) -> None:
        word = {"ok": "trained", "resumed": "resumed and trained", "skipped": "finished, skipped"}.get(result["status"])
        print(f"{result['run']}: {word or 'FAILED, ' + (result['reason'] or 'log: ' + result['log'])} "
              f"({result['wall_s']:.1f} s)", flush=True)
        if result["status"] == "failed":
            failed.append(result)

    run_local(runs, max(1, workers), report)
    if failed:
        sys.exit(f"error: {len(failed)} run(s) failed; see the lines above")


def paper_main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with writing(args):
        return reproduce(args)


def study_mains() -> dict[str, Callable[[list[str] | None], int]]:
    """Each study's entry point (its flags, its --help); imported on use, so one study's imports stay its own."""
    from total import reproduce_claims, reproduce_contention
    return {"paper": paper_main, "contention": reproduce_contention.main, "claims": reproduce_claims.main}


def main(argv: list[str] | None = None) -> int:
    """`--study NAME` picks the study; every other argument is that study's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    studies = study_mains()
    picker = argparse.ArgumentParser(add_help=False)
    picker.add_argument("--study", choices=list(studies), default="paper")
    known, rest = picker.parse_known_args(argv)
    return studies[known.study](rest)


def reproduce(args: argparse.Namespace) -> int:
    results, figures = args.results.resolve(), figures_dir(args).resolve()
    budget = {k: QUICK[k] for k in ("epochs", "episodes")} if args.quick else DEFAULTS["budget"]
    evaluation = ["--episodes", str(QUICK["eval_episodes"])] if args.quick else []
    with stop_children_on_signal():
        train({"data": str(args.data.resolve()), "algorithms": args.algos, "seeds": args.seeds,
               "regions": [[args.region]], "budget": budget, "results": str(results)}, args.workers)
        evaluate_all.main(["--data", str(args.data.resolve()), "--region", args.region, "--results", str(results),
                           *evaluation, "--no-progress", *(["--overwrite"] if args.overwrite else [])])
        report_written(plot_all_comparison.draw(results, figures, [args.region]))
    record = write_output(figures / "reproduce.yaml", yaml.safe_dump(provenance(
        args, figures=figures, budget=budget, eval_episodes=QUICK["eval_episodes"] if args.quick else "every task"),
        sort_keys=False), inputs(results, [args.region]))
    print(f"wrote {record}\ndone: figures and tables in {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
