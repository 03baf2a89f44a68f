"""Where things live, independent of the directory a script is started from.

Defaults point into the repository (`data1/`, `results/`), so `python /path/to/TopoFreeRL/train.py`
behaves the same from any working directory. A relative path the user types is relative to the
current directory, as with every command-line tool. The committed figures (`total/figures/`) are
written only when a script is asked to explicitly; by default figures go under `results/figures/`.
"""
from __future__ import annotations

import subprocess
from functools import lru_cache
from pathlib import Path

from edgesim.dataset import REPO as REPO  # the clone the packages run from
from edgesim.dataset import data_root as data_root  # the rule lives with the loader; scripts import it here
from edgesim.paper import PAPER, Profile

DATA = REPO / "data1"
RESULTS = REPO / "results"
COMMITTED_FIGURES = REPO / "total" / "figures"
FIGURES = RESULTS / "figures"

# The results layout, written down once (every script reads it from here):
#   <results>/<Algo>/<run>/config.yaml, metrics.csv   one training run (train.py)
#   <results>/<Algo>/<run>/checkpoints/final.pt        its selected weights; epoch_XXXX.pt to resume
#   <results>/<Algo>/<run>/tensorboard/                the same metrics as TensorBoard events (optional)
#   <results>/<Algo>/latest                            symlink to the newest run
#   <results>/eval/<regions>[_<tag>]/                  total/evaluate_all.py: episodes.csv, summary.csv
#                                                      (tag: the profile's, then `train` for the train split)
#   <folder>/.lock, <folder>/.outputs.json             every output folder: its writer's lock, each file's settings
#   <results>/figures/                                 figures and tables


def metrics_file(run: Path) -> Path:
    return run / "metrics.csv"


def tensorboard_dir(run: Path) -> Path:
    return run / "tensorboard"


def checkpoint_dir(run: Path) -> Path:
    return run / "checkpoints"


def final_checkpoint(run: Path) -> Path:
    return checkpoint_dir(run) / "final.pt"


def epoch_checkpoint(run: Path, next_epoch: int) -> Path:
    """The checkpoint to resume from before epoch `next_epoch` (0-based)."""
    return checkpoint_dir(run) / f"epoch_{next_epoch:04d}.pt"


def run_of(checkpoint: Path) -> Path:
    """The run folder a checkpoint file lies in."""
    return checkpoint.parent.parent


def run_name(regions: list[str], seed: int, profile: Profile = PAPER, variant: str = "", stamp: str = "") -> str:
    """<regions>[_<profile>][_<variant>]_seed<S>[_<time>]: a sweep's run (no time; the profile named
    unless `paper`) or a plain train.py run (with its start time)."""
    return ("+".join(regions) + profile.suffix + (f"_{variant}" if variant else "")
            + f"_seed{seed}" + (f"_{stamp}" if stamp else ""))


def run_eval_dir(run: Path, split: str, seed: int, profile: Profile = PAPER, episodes: int | None = None) -> Path:
    """<run>/eval_<split>[_<profile>]_seed<S>[_ep<episodes>]: an inference.py evaluation of one run (the
    profile named unless the default); a sweep's own evaluation names its episode count instead."""
    return run / (f"eval_{split}{profile.suffix}_seed{seed}" + (f"_ep{episodes}" if episodes else ""))


def eval_dir(results: Path, regions: list[str], tag: str = "") -> Path:
    """<results>/eval/<regions>[_<tag>]: the tag names a non-default evaluation, e.g. contention_r16."""
    return results / "eval" / ("+".join(regions) + (f"_{tag}" if tag else ""))


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's commit (with `+dirty` for uncommitted changes), or 'unknown' outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return "unknown"
        # read-only: without --no-optional-locks `git status` refreshes the index under .git/index.lock
        dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
