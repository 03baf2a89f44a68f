"""The batched simulator's steps/s here and at another git revision, side by side in one run.

    python bench/against.py 8be1e82                       # 500 servers, B = 256 and 4096, paper and contention
    python bench/against.py HEAD~3 --servers 500 10000 --batches 4096 --repeats 9
    python bench/against.py 62df95d --profiles serving --batches 256 4096 --steps 20 --repeats 5
    python bench/against.py 8c29d6a --evaluation --servers 30 --profiles serving contention --repeats 3

With --evaluation each timed run is one evaluation instead (`schedkit.evaluation.evaluate_seeds`:
greedy_queue at W 0.6, evaluation seeds 100 and 101, 2 worlds a seed, 100 warm-up and 40 measured
workflows, bounded at 4,000 steps, serving at load 0.9 or contention at 8/s): what a study's evaluation
costs, policy and bookkeeping included; both trees must give the same episode rows (compared by digest).

A speed-up is only believable measured beside its baseline on the same machine at the same time:
the revision is checked out into a temporary git worktree and every timed run alternates between
the two trees (a fresh process each, one torch thread, random valid actions drawn inside the timed
loop as in bench/env_throughput.py), so a busy or slow machine slows both alike. Serving runs at load
0.9 with 64 workflows a world, as bench/env_throughput.py's serving rows; every run first steps at least
20 times, so the queueing worlds are filled when the timing starts. Prints the median of --repeats runs
per tree and their ratio. Only the simulator's stable API is used (`load_dataset`, `Simulator`,
`ContentionSimulator`, `ServingSimulator`), so old revisions can be measured too.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.env_throughput import CACHE, dataset

ROOT = Path(__file__).resolve().parents[1]

TIMED_RUN = """
import json, sys, time, torch
torch.set_num_threads(1)
torch.set_grad_enabled(False)
from edgesim.dataset import load_dataset
from edgesim.simulator import Simulator
root, region, batch, steps, profile = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
ds = load_dataset(root, region)
if profile == "contention":
    from edgesim.contention import Contention, ContentionSimulator
    sim = ContentionSimulator(ds, batch, seed=0, contention=Contention(arrival_rate=16, worlds=batch))
elif profile == "serving":  # load 0.9 and 64 workflows a world, as bench/env_throughput.py's serving rows
    from edgesim.serving import Serving, ServingSimulator
    sim = ServingSimulator(ds, batch, seed=0, serving=Serving(load=0.9, worlds=batch, max_in_flight=64))
elif profile == "paper":
    sim = Simulator(ds, batch_size=batch, seed=0)
else:
    sys.exit(f"error: --profiles: expected paper, contention or serving, got {profile!r}")
gen = torch.Generator().manual_seed(0)
for _ in range(max(20, steps // 10)):  # the queueing worlds fill before the timed steps
    sim.step(sim.sample_valid(gen))
t0 = time.perf_counter()
for _ in range(steps):
    sim.step(sim.sample_valid(gen))
print(json.dumps(steps * batch / (time.perf_counter() - t0)))
"""


TIMED_EVALUATION = """
import hashlib, json, sys, time, torch
torch.set_num_threads(1)
from edgesim.contention import CONTENTION, Contention
from edgesim.dataset import load_dataset
from edgesim.serving import SERVING, Serving
from Heuristics.inference import make_policy
from schedkit.evaluation import evaluate_seeds
root, region, profile = sys.argv[1], sys.argv[2], sys.argv[5]
ds = load_dataset(root, region)
prof, params = (SERVING, Serving(load=0.9, worlds=2, warmup=100)) if profile == "serving" else \
    (CONTENTION, Contention(arrival_rate=8, worlds=2, warmup=100))
t0 = time.perf_counter()
out = evaluate_seeds(ds, "train", 40, [100, 101], "cpu", prof, params,
                     lambda sim, seed: make_policy("greedy_queue", sim, seed, 0.6), progress=False, max_steps=4000)
seconds = time.perf_counter() - t0
rows = "".join(e.episodes.drop(columns="decision_ms").to_csv(index=False) for _, e in out)
print(json.dumps([seconds, hashlib.sha256(rows.encode()).hexdigest()[:16]]))
"""


def timed_run(tree: Path, root: Path, region: str, batch: int, steps: int, profile: str,
              evaluation: bool = False) -> tuple[float, str]:
    """(steps/s, "") of random valid decisions, or with `evaluation` (seconds, digest of the rows) of one evaluation."""
    env = os.environ | {"PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", TIMED_EVALUATION if evaluation else TIMED_RUN, str(root), region,
                          str(batch), str(steps), profile], cwd=tree, env=env, capture_output=True, text=True, check=True)
    value = json.loads(out.stdout.strip().splitlines()[-1])
    return (float(value[0]), value[1]) if evaluation else (float(value), "")


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("rev", help="the git revision to compare with (e.g. a commit before a change)")
    p.add_argument("--servers", type=int, nargs="+", default=[500])
    p.add_argument("--batches", type=int, nargs="+", default=[256, 4096])
    p.add_argument("--profiles", nargs="+", default=["paper", "contention"], choices=["paper", "contention", "serving"])
    p.add_argument("--steps", type=int, default=400, help="timed steps per run (default 400)")
    p.add_argument("--repeats", type=int, default=7, help="timed runs per tree and setting (default 7)")
    p.add_argument("--evaluation", action="store_true",
                   help="time one evaluation per run (seconds; --batches and --steps unused) and compare its rows")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of the table")
    args = p.parse_args(argv)
    if args.evaluation:
        args.batches = [4]  # 2 evaluation seeds x 2 worlds
    rows = []
    with tempfile.TemporaryDirectory(prefix="against_") as tmp:
        old = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), args.rev], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for n in args.servers:
                region = dataset(n).regions[0]  # generated into bench/.cache/ when missing
                root = ROOT / "data1" if n == 500 else CACHE
                for profile in args.profiles:
                    for b in args.batches:
                        runs: dict[str, list[tuple[float, str]]] = {"rev": [], "here": []}
                        for _ in range(args.repeats):  # alternate, so load changes hit both trees
                            for key, tree in (("rev", old), ("here", ROOT)):
                                runs[key].append(timed_run(tree, root, region, b, args.steps, profile, args.evaluation))
                        rev, here = (statistics.median(x for x, _ in runs[k]) for k in ("rev", "here"))
                        row = {"servers": n, "profile": profile, "batch": b}
                        if args.evaluation:  # seconds: the ratio is here / rev, below 1 when faster
                            digests = {d for k in runs for _, d in runs[k]}
                            row |= {"rev_s": rev, "seconds": here, "ratio": here / rev, "same_rows": len(digests) == 1}
                        else:
                            row |= {"rev_steps_per_s": rev, "steps_per_s": here, "ratio": here / rev}
                        rows.append(row)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, capture_output=True)
    if args.json:
        print(json.dumps(rows))
        return rows
    what = "seconds of one evaluation" if args.evaluation else "steps/s"
    columns = [("servers", "servers", "7"), ("profile", "profile", "10")] + (
        [(args.rev[:12], "rev_s", "14.2f"), ("here", "seconds", "8.2f"), ("ratio", "ratio", "6.2f"),
         ("same rows", "same_rows", "9")] if args.evaluation else
        [("batch", "batch", "6"), (args.rev[:12], "rev_steps_per_s", "14,.0f"), ("here", "steps_per_s", "14,.0f"),
         ("ratio", "ratio", "6.2f")])
    print(f"{what}, median of {args.repeats} alternating runs; {args.rev} vs the working tree")
    print(" ".join(f"{head:>{fmt.split('.')[0].rstrip(',')}}" for head, _, fmt in columns))
    for r in rows:
        print(" ".join(f"{str(r[key]) if isinstance(r[key], bool) else r[key]:>{fmt}}" for _, key, fmt in columns))
    return rows


if __name__ == "__main__":
    main()
