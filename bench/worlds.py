"""The world a bench evaluates in, from its flags: the generated region of bench/env_throughput.py (or a dataset's
region) and the serving or contention parameters, so the benches that compare two ways of one evaluation share them."""
from __future__ import annotations

import argparse
from pathlib import Path

from bench.env_throughput import dataset
from edgesim.contention import CONTENTION, Contention
from edgesim.dataset import Dataset
from edgesim.paper import Profile
from edgesim.serving import SERVING, Serving
from schedkit.cli import load_or_exit

ROOT = Path(__file__).resolve().parents[1]
PROFILES: dict[str, Profile] = {"serving": SERVING, "contention": CONTENTION}


def add_world_flags(p: argparse.ArgumentParser, worlds_help: str, warmup: int) -> None:
    """--servers / --data / --region (the region), --worlds, --warmup, --load and --arrival-rate."""
    p.add_argument("--servers", type=int, default=30,
                   help="servers of the generated region (500: Server1_Trap; 0: --data/--region)")
    p.add_argument("--data", type=Path, default=ROOT / "data1", help="data root of --region (with --servers 0)")
    p.add_argument("--region", default="Server1_Trap", help="region evaluated with --servers 0")
    p.add_argument("--worlds", type=int, default=2, help=f"{worlds_help} (default 2)")
    p.add_argument("--warmup", type=int, default=warmup, help=f"warm-up workflows per world (default {warmup})")
    p.add_argument("--load", type=float, default=0.9, help="serving: offered utilisation (default 0.9)")
    p.add_argument("--arrival-rate", type=float, default=8.0, help="contention: workflows/s per world (default 8)")


def world_dataset(args: argparse.Namespace) -> Dataset:
    return dataset(args.servers) if args.servers else load_or_exit(args.data, args.region)


def world_params(profile: str, args: argparse.Namespace) -> Serving | Contention:
    if profile == "serving":
        return Serving(load=args.load, worlds=args.worlds, warmup=args.warmup)
    return Contention(arrival_rate=args.arrival_rate, worlds=args.worlds, warmup=args.warmup)
