"""Convert checkpoints of older versions of this toolkit to the current format.

    python tools/convert_checkpoint.py results/TopoFreeRL/<run>/checkpoints/final.pt
    python tools/convert_checkpoint.py results/TopoFreeRL/<run>          # every checkpoint of a run

Older checkpoints (format 1) held numpy values, which the toolkit no longer loads. This script reads
them under the same rule as every checkpoint (schedkit/checkpoints.py): only tensors, plain values
and numeric numpy arrays and scalars are rebuilt, and a file that refers to anything else is refused,
so converting a file never runs code from it. The converted checkpoint is checked like any other
before it is written; each file is rewritten in place with plain values instead of numpy ones, the
original kept beside it as `<name>.v1`, and nothing else changes (weights, optimizer state and config
are copied exactly).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from schedkit.checkpoints import CHECKPOINT_FORMAT, check_checkpoint, read_checkpoint, survey
from schedkit.cli import user_errors
from schedkit.paths import checkpoint_dir
from schedkit.runs import CheckpointError, save_checkpoint


def plain(value: Any) -> Any:
    """numpy arrays and scalars -> lists and Python numbers, recursively; tensors stay tensors."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(plain(v) for v in value)
    return value


def convert(path: Path) -> str:
    state = read_checkpoint(path)
    if not isinstance(state, dict):
        check_checkpoint(state, path)  # says what it holds instead
    if state.get("format") == CHECKPOINT_FORMAT and survey(state, path) is None:
        check_checkpoint(state, path, finite=False)
        return "already in the current format"
    if state.get("format") not in (None, 1, CHECKPOINT_FORMAT):
        check_checkpoint(state, path)  # names the format it does not read
    survey(state, path)  # bounded before plain() walks it
    converted = {"format": CHECKPOINT_FORMAT, **plain({k: v for k, v in state.items() if k != "format"})}
    check_checkpoint(converted, path, finite=False)
    backup = path.with_name(path.name + ".v1")
    if not backup.exists():
        os.link(path, backup)
    save_checkpoint(path, converted)
    return f"converted (original kept as {backup.name})"


def checkpoint_files(given: Path) -> list[Path]:
    """A file as given; for a run directory, the .pt files of its checkpoints folder."""
    if not given.is_dir():
        return [given]
    files = sorted(p for p in checkpoint_dir(given).glob("*.pt") if not p.name.startswith("."))
    if not files:
        raise CheckpointError(f"{given}: no checkpoint found (expected a checkpoint file, or a run directory "
                              "holding checkpoints/*.pt)")
    return files


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="checkpoint files, or run directories (all their checkpoints)")
    args = p.parse_args(argv)
    with user_errors(CheckpointError):
        for f in [f for given in map(Path, args.paths) for f in checkpoint_files(given)]:
            print(f"{f}: {convert(f)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
