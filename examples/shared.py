"""What the three examples share: their common flags, the output folder, and the evaluation with the
project's protocol printed beside a reference scheduler. Each example keeps its training loop."""
from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgesim.dataset import Dataset
from schedkit.cli import load_or_exit
from schedkit.evaluation import format_table
from schedkit.gym_eval import evaluate_heuristic, evaluate_policy
from schedkit.io import write_json
from schedkit.paths import RESULTS, data_root


def parser(description: str, name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="data1", help="data root (default: the repository's data1)")
    p.add_argument("--region", nargs="+", default=["Server1_Trap"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=None, help="evaluation episodes (default: the whole test split)")
    p.add_argument("--reference", default="oracle", help="a non-learned scheduler to print beside it, or none")
    p.add_argument("--out", type=Path, default=None,
                   help=f"default: the repository's results/examples/{name}_seed<SEED>")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier run in OUT")
    p.add_argument("--no-progress", action="store_true")
    return p


def dataset(args: argparse.Namespace) -> Dataset:
    """--data / --region loaded; a bad dataset is one error line naming the file and field."""
    return load_or_exit(data_root(args.data), args.region)


def output_folder(args: argparse.Namespace, name: str, artifact: str) -> Path:
    """OUT, refused when it already holds a trained `artifact` (unless --overwrite): checked before training."""
    out = args.out or RESULTS / "examples" / f"{name}_seed{args.seed}"
    if (out / artifact).exists() and not args.overwrite:
        raise SystemExit(f"error: {out} already holds {artifact}; pass --overwrite or another --out")
    return out


def evaluate_and_report(args: argparse.Namespace, ds: Dataset, out: Path, name: str, label: str,
                        predict: Callable[[dict[str, np.ndarray], np.ndarray], Any]) -> dict:
    """The test-split evaluation with the protocol (OUT/episodes.csv, OUT/summary.json), the run's
    flags (OUT/config.json), and a table with the reference scheduler on the same episodes."""
    summary = evaluate_policy(predict, data=ds, episodes=args.episodes, out=out, name=name,
                              overwrite=args.overwrite, progress=not args.no_progress)
    write_json(out / "config.json", vars(args) | {"out": str(out)})
    rows = {label: summary}
    if args.reference != "none":
        rows[args.reference] = evaluate_heuristic(args.reference, data=ds, episodes=summary["episodes"],
                                                  progress=False)
    print(format_table(rows))
    return summary
