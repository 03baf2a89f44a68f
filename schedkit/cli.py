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
                   help="episodes to run; tasks are dealt in file order, cycling (default: one per task of the "
                        "split; ten per task under --profile contention)")
    p.add_argument("--seed", type=int, default=0, help="evaluation seed: fixes every channel and trap draw (default: 0)")
    add_contention_flags(p, unset="default: a checkpoint's own profile; paper for the heuristics")
    p.add_argument("--device", default="cpu", help="cpu or cuda (falls back to cpu with a warning)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_contention_flags(p: argparse.ArgumentParser, default_profile: str | None = None,
                         unset: str = "config: profile") -> None:
    """--profile and the contention parameters most often changed (the rest: --set contention.KEY=V).
    `unset` says where the profile comes from when neither the flag nor `default_profile` is given."""
    shown = f"default: {default_profile}" if default_profile else unset
    p.add_argument("--profile", choices=PROFILES, default=default_profile, help=f"simulator dynamics ({shown})")
    p.add_argument("--arrival-rate", type=float, metavar="PER_S",
                   help="contention: workflows arriving per second in each world (config: contention.arrival_rate)")
    p.add_argument("--arrival-trace", metavar="CSV",
                   help="contention: take arrival gaps from a request trace (Azure TIMESTAMP or BurstGPT "
                        "Timestamp column), rescaled to --arrival-rate (config: contention.arrival_trace)")
    p.add_argument("--worlds", type=int, help="contention: independent worlds simulated side by side "
                                              "(config: contention.worlds)")
    p.add_argument("--max-in-flight", type=int, help="contention: workflows in flight per world "
                                                     "(config: contention.max_in_flight)")


def contention_flags(args: argparse.Namespace) -> dict:
    """The contention overrides given on the command line (None where not given)."""
    return {"arrival_rate": args.arrival_rate, "arrival_trace": args.arrival_trace, "worlds": args.worlds,
            "max_in_flight": args.max_in_flight}


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
