"""One command from nothing to every figure and table: train every learned algorithm on 3 seeds,
evaluate everything, draw everything.

    python total/reproduce.py            # the full budget (about 10 minutes on 2 CPU cores)
    python total/reproduce.py --quick    # a small budget end to end, about a minute

Training goes through the sweep machinery (total/sweep.py), so runs land in
<results>/<Algo>/<region>_seed<S>/: a finished run is skipped, an interrupted one resumes, and
re-running the command only redoes what is missing. Evaluation and figures are always redone
from the saved runs.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from common import LEARNED, ROOT
from sweep import DEFAULTS, expand, run_local

QUICK = {"epochs": 3, "episodes": 32, "eval_episodes": 20}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"small budget: {QUICK}")
    p.add_argument("--data", default="data1")
    p.add_argument("--region", default="Server1_Trap")
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    p.add_argument("--algos", nargs="+", default=list(LEARNED), choices=list(LEARNED))
    p.add_argument("--workers", type=int, default=1, help="training runs at once (default 1)")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--figures", default="total/figures", help="figures folder (default: total/figures)")
    args = p.parse_args(argv)
    results = Path(args.results).resolve()
    budget = {k: QUICK[k] for k in ("epochs", "episodes")} if args.quick else DEFAULTS["budget"]
    runs = [replace(r, evaluate=False) for r in expand(DEFAULTS | {
        "data": args.data, "algorithms": args.algos, "seeds": args.seeds, "regions": [[args.region]],
        "budget": budget, "results": str(results)})]
    failed = []

    def report(result: dict) -> None:
        word = {"ok": "trained", "resumed": "resumed and trained", "skipped": "finished, skipped"}.get(result["status"])
        print(f"{result['run']}: {word or 'FAILED, log: ' + result['log']} ({result['wall_s']:.1f} s)", flush=True)
        if result["status"] == "failed":
            failed.append(result)

    run_local(runs, max(1, args.workers), report)
    if failed:
        sys.exit(f"error: {len(failed)} run(s) failed; see the logs above")
    data = ["--data", str(Path(args.data).resolve())]
    evaluation = ["--episodes", str(QUICK["eval_episodes"])] if args.quick else []
    for cmd in (["total/evaluate_all.py", *data, "--region", args.region, "--results", str(results), *evaluation,
                 "--no-progress"],
                ["total/plot_all_comparison.py", "--results", str(results), "--figures",
                 str(Path(args.figures).resolve()), "--region", args.region]):
        subprocess.run([sys.executable, *cmd], cwd=ROOT, check=True)
    print(f"done: figures and tables in {args.figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
