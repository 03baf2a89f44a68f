"""The line an inference run prints under its reward: what greedy and the oracle scored on the same
setting, so a newcomer can tell a good reward from a bad one. It reads only tables that already
exist (an evaluate_all summary.csv whose recorded settings match, or the committed results table for
the default setting) and otherwise prints the command that computes them: it never evaluates more."""
from __future__ import annotations

import argparse
import io
from pathlib import Path
from typing import Any

import pandas as pd

from edgesim.inputs import InputError, read_text
from edgesim.registry import get_profile

from .outputs import RECORD, plain, recorded_settings
from .paths import COMMITTED_FIGURES, DATA, RESULTS, data_root

REFERENCES = ("greedy", "oracle")
PUBLISHED = COMMITTED_FIGURES / "results_table.csv"  # the default setting: Server1_Trap, test split, seed 0
DEFAULT_SETTING = {"regions": ["Server1_Trap"], "split": "test", "seed": 0, "profile": "paper"}


def reference_line(args: argparse.Namespace, settings: dict[str, Any], results: Path = RESULTS) -> str:
    """One line: greedy's and the oracle's reward on this setting and the table they come from, or the
    command that computes them."""
    for table, rewards in (_from_evaluations(settings, results), _from_published(args, settings)):
        if rewards:
            shown = ", ".join(f"{name} {reward:.4f}" for name, reward in rewards.items())
            return f"on this setting: {shown} (from {table})"
    return f"to compare: {heuristics_command(args, settings)}"


def heuristics_command(args: argparse.Namespace, settings: dict[str, Any]) -> str:
    """The Heuristics/inference.py command that evaluates greedy and the oracle on the same setting."""
    words = ["python Heuristics/inference.py --policy", *REFERENCES]
    if data_root(args.data).resolve() != DATA.resolve():
        words += ["--data", str(args.data)]
    words += ["--region", *settings["regions"], "--split", settings["split"], "--seed", str(settings["seed"]),
              "--episodes", str(settings["episodes"]), "--profile", settings["profile"]]
    for flag in get_profile(settings["profile"]).flags:
        value = getattr(args, flag.key, None)
        if value is not None:
            words += [flag.name, str(value)]
    return " ".join(words)


def _from_evaluations(settings: dict[str, Any], results: Path) -> tuple[Path, dict[str, float]]:
    """An evaluate_all summary.csv under `results`/eval whose recorded settings are this setting."""
    want = plain({"region": settings["regions"], "eval_seeds": [settings["seed"]]}
                 | {k: v for k, v in settings.items() if k not in ("policy", "model", "regions", "seed")})
    for record in sorted((results / "eval").glob(f"*/{RECORD}")):
        made = recorded_settings(record.parent).get("summary.csv")
        if isinstance(made, dict) and all(made.get(k) == v for k, v in want.items()):
            table = record.parent / "summary.csv"
            return table, _rewards(table, "algo", "reward")
    return Path(), {}


def _from_published(args: argparse.Namespace, settings: dict[str, Any]) -> tuple[Path, dict[str, float]]:
    """The committed results table, for the default setting on the committed data only."""
    default = all(settings[k] == v for k, v in DEFAULT_SETTING.items()) and args.episodes is None
    if not default or data_root(args.data).resolve() != DATA.resolve():
        return Path(), {}
    return PUBLISHED, _rewards(PUBLISHED, "Scheduler", "Reward")


def _rewards(table: Path, name_column: str, reward_column: str) -> dict[str, float]:
    """{greedy, oracle: mean reward} from a table, the mean being the first number of a "mean [lo, hi]" cell."""
    try:  # read as every input is (a regular file of bounded size), so no table can hang the last line
        df = pd.read_csv(io.StringIO(read_text(table, "results table"))).set_index(name_column)
        return {name: float(str(df.loc[name, reward_column]).split()[0]) for name in REFERENCES}
    except (InputError, ValueError, KeyError, IndexError, pd.errors.ParserError):
        return {}
