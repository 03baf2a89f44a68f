"""Which torch thread count trains fastest, on an idle machine and on a busy one?

    python bench/threads.py                       # 20 epochs of the default TopoFreeRL run, 1 vs 2 threads
    python bench/threads.py --epochs 100 --json   # the full default budget, JSON output

Each timing is the wall time of `TopoFreeRL/train.py --threads T` through the shell (start-up
included), the median of --repeats runs. "busy" starts one pure-Python spinning process per core
beside the training, as when other jobs share the machine; they are stopped before the next
setting. Runs for one load alternate between the thread counts, so drift hits both alike.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.machine_load import LOADS, machine_load

ROOT = Path(__file__).resolve().parents[1]


def train_seconds(threads: int, epochs: int, out: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, str(ROOT / "TopoFreeRL" / "train.py"), "--epochs", str(epochs), "--threads",
                    str(threads), "--out", str(out), "--no-progress"], check=True, capture_output=True)
    return time.perf_counter() - t0


def measure(load: str, thread_counts: list[int], epochs: int, repeats: int, work: Path) -> dict[int, list[float]]:
    with machine_load(load):
        times: dict[int, list[float]] = {t: [] for t in thread_counts}
        for r in range(repeats):
            for t in thread_counts:
                times[t].append(train_seconds(t, epochs, work / f"{load}_t{t}_r{r}"))
        return times


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=20, help="training epochs per run (default 20; the default run is 100)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare (default 1 2)")
    p.add_argument("--loads", nargs="+", choices=LOADS, default=list(LOADS))
    p.add_argument("--repeats", type=int, default=3, help="runs per setting; the median is reported (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for load in args.loads:
            for t, secs in measure(load, args.threads, args.epochs, args.repeats, Path(tmp)).items():
                rows.append({"load": load, "threads": t, "median_s": statistics.median(secs), "runs_s": secs})
    base = {r["load"]: r["median_s"] for r in rows if r["threads"] == args.threads[0]}
    for r in rows:
        r["vs_first"] = r["median_s"] / base[r["load"]]
    out = {"epochs": args.epochs, "cores": os.cpu_count(), "rows": rows}
    if args.json:
        print(json.dumps(out, indent=2))
        return out
    print(f"TopoFreeRL/train.py, {args.epochs} epochs x 200 episodes, {os.cpu_count()} cores, "
          f"median of {args.repeats}")
    print(f"{'load':<6} {'threads':>7} {'median s':>9} {'vs ' + str(args.threads[0]) + ' thread':>12}  runs")
    for r in rows:
        runs = ", ".join(f"{s:.1f}" for s in r["runs_s"])
        print(f"{r['load']:<6} {r['threads']:>7} {r['median_s']:>9.1f} {r['vs_first']:>12.2f}  {runs}")
    return out


if __name__ == "__main__":
    main()
