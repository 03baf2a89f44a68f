"""Convert checkpoints of older versions of this toolkit to the weights-only format.

    python tools/convert_checkpoint.py results/TopoFreeRL/<run>/checkpoints/final.pt
    python tools/convert_checkpoint.py results/TopoFreeRL/<run>          # every checkpoint of a run

Older checkpoints held numpy values, which `torch.load(weights_only=True)` refuses, so the
toolkit no longer loads them. This script loads them the old way, which runs the file's pickle:
convert only files you trust (your own runs, or a colleague's you would run code from). Each file
is rewritten in place with plain values instead of numpy ones; the original is kept beside it as
`<name>.v1` and nothing else changes (weights, optimizer state and config are copied exactly).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

from schedkit.paths import checkpoint_dir
from schedkit.runs import CheckpointError, load_checkpoint, save_checkpoint


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
    try:
        load_checkpoint(path, finite=False)
        return "already weights-only"
    except CheckpointError:
        pass
    state = torch.load(path, map_location="cpu", weights_only=False)  # the trusted, explicit step
    if not isinstance(state, dict) or "model" not in state:
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit")
    state = plain({k: v for k, v in state.items() if k != "format"})
    backup = path.with_name(path.name + ".v1")
    if not backup.exists():
        os.link(path, backup)
    save_checkpoint(path, state)
    load_checkpoint(path, finite=False)  # the converted file loads weights-only
    return f"converted (original kept as {backup.name})"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("paths", nargs="+", help="checkpoint files, or run directories (all their checkpoints)")
    args = p.parse_args(argv)
    files = [f for given in map(Path, args.paths)
             for f in (sorted(checkpoint_dir(given).glob("*.pt")) if given.is_dir() else [given])]
    if not files:
        sys.exit("error: no checkpoint found in " + ", ".join(args.paths))
    for f in files:
        try:
            print(f"{f}: {convert(f)}")
        except (CheckpointError, OSError, RuntimeError) as e:
            sys.exit(f"error: {f}: {e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
