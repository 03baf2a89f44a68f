"""What one TopoFreeRL training run costs under each queueing profile, side by side (docs/simulator.md §6).

    python bench/training_cost.py                                     # 30-server region, 2 epochs of 64
    python bench/training_cost.py --servers 0 --epochs 1 --episodes 200  # Server1_Trap, the defaults

Runs `TopoFreeRL/train.py --profile P --epochs E --episodes K` once per `--profiles` entry, each in its
own process on one thread, one after the other, with every other setting at the algorithm's defaults
for that profile (its recipe included). Reports the wall time, the rollout and update seconds summed
from its metrics.csv, and each profile's wall time as a multiple of the first's. `--servers N` trains
on the deterministic N-server region bench/env_throughput.py generates (data1/generate.py, seed 0) into
bench/.cache/; 0 trains on `--region`.
"""
from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.env_throughput import CACHE, dataset  # noqa: E402
from bench.record import add_json_flag, emit, record  # noqa: E402
from schedkit.cli import episodes_arg, region_name  # noqa: E402
from schedkit.paths import metrics_file  # noqa: E402


def region(servers: int, data: Path, name: str) -> tuple[Path, str]:
    """(data root, region): the named region, or the cached generated one of `servers` servers."""
    if servers == 0:
        return data, name
    dataset(servers)  # generated into bench/.cache/Bench<N>_Trap once (500: the committed Server1_Trap)
    return (ROOT / "data1", "Server1_Trap") if servers == 500 else (CACHE, f"Bench{servers}_Trap")


def train(root: Path, name: str, profile: str, epochs: int, episodes: int) -> dict:
    """One training run in a subprocess: its wall time and the rollout and update seconds of its epochs."""
    with tempfile.TemporaryDirectory(prefix="training_cost_") as tmp:
        out = Path(tmp) / "run"
        cmd = [sys.executable, str(ROOT / "TopoFreeRL" / "train.py"), "--data", str(root), "--regions", name,
               "--profile", profile, "--epochs", str(epochs), "--episodes", str(episodes), "--out", str(out),
               "--threads", "1", "--no-progress", "--no-tensorboard"]
        env = os.environ | {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"training_cost: {' '.join(cmd)} failed ({proc.returncode}): "
                             f"{(proc.stderr or proc.stdout).strip().splitlines()[-1:]}")
        with open(metrics_file(out), newline="") as f:
            rows = list(csv.DictReader(f))
    return {"profile": profile, "epochs": epochs, "episodes": episodes, "wall_s": wall,
            "rollout_s": sum(float(r["rollout_s"]) for r in rows), "update_s": sum(float(r["update_s"]) for r in rows)}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=ROOT / "data1")
    p.add_argument("--region", type=region_name, default="Server1_Trap")
    p.add_argument("--servers", type=int, default=30, help="a generated region of this many servers; 0: --region")
    p.add_argument("--profiles", nargs="+", default=["contention", "serving"], choices=["paper", "contention", "serving"])
    p.add_argument("--epochs", type=episodes_arg, default=2)
    p.add_argument("--episodes", type=episodes_arg, default=64)
    add_json_flag(p)
    args = p.parse_args(argv)
    if args.servers < 0 or args.servers == 1:
        p.error(f"--servers: expected 0 (use --region) or at least 2, got {args.servers}")
    root, name = region(args.servers, args.data, args.region)
    rows: list[dict] = []
    for profile in args.profiles:
        row = {"region": name, **train(root, name, profile, args.epochs, args.episodes)}
        if rows:
            row["x_first"] = row["wall_s"] / rows[0]["wall_s"]
        rows.append(row)
        if args.json != "-":  # the JSON alone on standard output
            print(f"{name} {profile:>10}: {row['wall_s']:8.1f} s wall ({row['rollout_s']:.1f} s rollout, "
                  f"{row['update_s']:.1f} s update)" + (f", {row['x_first']:.1f}x {rows[0]['profile']}"
                                                       if "x_first" in row else ""), flush=True)
    emit(args.json, record("bench/training_cost.py", argv, rows))


if __name__ == "__main__":
    main()
