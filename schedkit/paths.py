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

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data1"
RESULTS = REPO / "results"
COMMITTED_FIGURES = REPO / "total" / "figures"
FIGURES = RESULTS / "figures"


def data_root(path: str | Path) -> Path:
    """A data root as written in a config or typed by a user: absolute as is; relative, the folder in
    the current directory if there is one, else the repository's (so `data: data1` works anywhere)."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (REPO / path).exists():
        return path
    return REPO / path


@lru_cache(maxsize=1)
def git_commit() -> str:
    """The repository's commit (with `+dirty` for uncommitted changes), or 'unknown' outside a git checkout."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=30)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=30)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
