"""Command-line pieces every script shares: the common flags, device choice, dataset loading."""
from __future__ import annotations

import argparse
import sys
import warnings

import torch

from edgesim.dataset import Dataset, DatasetError, load_dataset
from edgesim.simulator import PROFILES


def add_eval_flags(p: argparse.ArgumentParser) -> None:
    """Flags of the evaluation protocol, identical in every inference script."""
    p.add_argument("--data", default="data1", help="data root holding region folders (default: data1)")
    p.add_argument("--region", nargs="+", default=["Server1_Trap"],
                   help="region folder(s) under --data to load together (default: Server1_Trap)")
    p.add_argument("--split", choices=["train", "test"], default="test", help="task split to evaluate (default: test)")
    p.add_argument("--episodes", type=int, default=None,
                   help="episodes to run; tasks are dealt in file order, cycling (default: one per task of the split)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed: fixes every channel and trap draw (default: 0)")
    p.add_argument("--profile", choices=PROFILES, default="paper", help="simulator dynamics (default: paper)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu with a warning)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def resolve_device(name: str) -> torch.device:
    """`cuda` without a GPU falls back to the CPU with a warning instead of failing."""
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        warnings.warn("--device cuda requested but no CUDA GPU is available; running on cpu", stacklevel=2)
        return torch.device("cpu")
    return dev


def load_or_exit(data: str, regions: list[str]) -> Dataset:
    """Load a dataset; a bad dataset ends the script with its one-line message, not a traceback."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = load_dataset(data, regions)
    except DatasetError as e:
        sys.exit(f"error: {e}")
    for note in ds.warnings:
        print(f"warning: {note}", file=sys.stderr)
    return ds
