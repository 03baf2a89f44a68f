"""Scaling with the number of servers N: simulator throughput, decision latency, training speed.

    python bench/scale.py                          # N = 500, 1000, 2000, 10000 (~1 min on 2 cores)
    python bench/scale.py --quick                  # smoke run: N = 500, 1000, fewer repeats
    python bench/scale.py --sizes 500 2000 --json scale.json
    python bench/scale.py --threads 1 --json scale.json   # steadier figures on a shared machine

For every N it measures, on the CPU:
  paper steps/s       batched paper-profile simulator (docs/simulator.md §2), B = 4096 rows, random valid actions
                      (`sim.sample_valid`, drawn inside the timed loop); median of --repeats timed runs
                      of --steps steps after a warm-up. Same measurement as bench/env_throughput.py.
  contention steps/s  the same for the contention profile (docs/simulator.md §5): 4096 worlds,
                      Contention(arrival_rate=16, worlds=4096), other parameters at their defaults.
  ratio               paper / contention; the target is contention within 2x of paper (ratio <= 2).
  dense / per_server / shortlist ms
                      median wall time of one batch-1 decision (features + forward + masked argmax,
                      under torch.inference_mode) of a freshly built, untrained TopoFreeRL agent with
                      `actor: dense`, `actor: per_server`, or per_server with `shortlist: 32`, on the
                      test split in sequential order; schedkit.inference.batch1_decision_ms,
                      --decisions decisions after 10 warm-up ones. `compiled`: the shortlist agent's
                      decision through torch.compile (the warm-ups compile it; --no-compile skips it).
  train st/s, RSS     `TopoFreeRL/train.py --episodes 200` (paper profile) run as a subprocess, once
                      with the dense actor (2 epochs) and once per_server with `shortlist: 32` (6
                      epochs): the median over epochs after the first (warm-up) of metrics.csv's
                      `steps_per_s` (env steps per second of rollout + PPO update), and the
                      subprocess's peak resident set size (os.wait4's ru_maxrss).

Datasets: data1/Server1_Trap (500), Server2_Trap (1000), Server3_Trap (2000) are committed; any
other N (10,000 by default) is generated once into the git-ignored bench/.cache/Bench<N>_Trap by
bench/env_throughput.py's `dataset()` (`data1/generate.py --servers N --seed 0`).
Timings depend on the machine and on what else runs on it; `torch_threads` is recorded. On a
shared or small machine pass `--threads 1`: intra-op threads competing with other processes for
the same cores can slow these small kernels down by 10x or more (and make the ratios meaningless).
"""
from __future__ import annotations

import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from bench.env_throughput import CACHE
from bench.env_throughput import dataset as cached_dataset
from bench.record import add_json_flag, emit, record
from edgesim.contention import Contention
from edgesim.dataset import Dataset, load_dataset
from edgesim.registry import make_simulator
from edgesim.simulator import Simulator
from schedkit.config import resolve
from schedkit.inference import GreedyAgentPolicy, batch1_decision_ms
from schedkit.paths import metrics_file
from TopoFreeRL.agent import TopoFreeAgent

ROOT = Path(__file__).resolve().parents[1]

COMMITTED = {500: "Server1_Trap", 1000: "Server2_Trap", 2000: "Server3_Trap"}  # under data1/
BATCH = 4096
ARRIVAL_RATE = 16.0
WEIGHTS = (0.45, 0.40, 0.15)
SHORTLIST = 32
ACTORS = {"dense": ["actor=dense"], "per_server": ["actor=per_server"],
          "shortlist": ["actor=per_server", f"shortlist={SHORTLIST}"]}  # their config --set values
TRAIN_EPOCHS = {"dense": 2, "shortlist": 6}  # the trained actors (per_server alone: 10 env steps/s at 10,000)
COMPILED = "shortlist"  # also timed through torch.compile (GreedyAgentPolicy(compile=True)), unless --no-compile


def locate(servers: int) -> tuple[Path, str, Dataset]:
    """(data root, region folder, loaded dataset) for N servers; uncommitted sizes go to bench/.cache."""
    if servers in COMMITTED:
        return ROOT / "data1", COMMITTED[servers], load_dataset(ROOT / "data1", COMMITTED[servers])
    ds = cached_dataset(servers)  # generates bench/.cache/Bench<N>_Trap when missing
    name = f"Bench{servers}_Trap"
    assert (CACHE / name / "tasks.csv").exists(), CACHE / name
    return CACHE, name, ds


def steps_per_s(sim: Simulator, steps: int, repeats: int) -> float:
    """Env steps/s (rows x calls) with random valid actions: median of timed runs after a warm-up."""
    gen = torch.Generator(sim.device).manual_seed(0)

    def run(n: int) -> float:
        t0 = time.perf_counter()
        for _ in range(n):
            sim.step(sim.sample_valid(gen))
        return time.perf_counter() - t0

    run(max(5, steps // 10))  # warm-up
    return statistics.median(steps * sim.batch_size / run(steps) for _ in range(repeats))


def decision_ms(ds: Dataset, actor: str, decisions: int, compile: bool = False) -> float:
    cfg = resolve(ROOT / "TopoFreeRL" / "config.yaml", sets=ACTORS[actor])
    agent = TopoFreeAgent(ds, cfg, torch.device("cpu"))
    policy = GreedyAgentPolicy("TopoFreeRL", agent, torch.tensor(WEIGHTS), compile)  # warm-ups compile
    return batch1_decision_ms(ds, "test", policy, torch.device("cpu"), decisions=decisions)


def train_run(root: Path, region: str, threads: int | None, actor: str) -> dict:
    """Run TopoFreeRL/train.py in a subprocess; its steps/s from metrics.csv and its own peak RSS."""
    with tempfile.TemporaryDirectory(prefix="scale_train_") as tmp:
        out, log_path = Path(tmp) / "run", Path(tmp) / "train.log"
        cmd = [sys.executable, str(ROOT / "TopoFreeRL" / "train.py"), "--data", str(root), "--regions", region,
               "--epochs", str(TRAIN_EPOCHS[actor]), "--episodes", "200", "--no-progress", "--out", str(out),
               *(arg for value in ACTORS[actor] for arg in ("--set", value))]
        if threads is not None:
            cmd += ["--threads", str(threads)]
        env = os.environ | ({} if threads is None else {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
        t0 = time.perf_counter()
        with open(log_path, "w") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env)
            _, status, usage = os.wait4(proc.pid, 0)  # this child's rusage, not the max over all children
            proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
        with open(metrics_file(out), newline="") as f:
            per_epoch = [float(r["steps_per_s"]) for r in csv.DictReader(f)]
    return {f"{actor}_train_steps_per_s": statistics.median(per_epoch[1:] or per_epoch),
            f"{actor}_train_steps_per_s_epochs": per_epoch, f"{actor}_train_wall_s": wall,
            f"{actor}_train_peak_rss_mb": usage.ru_maxrss / 1024}  # Linux: ru_maxrss in KiB


def measure(servers: int, steps: int, repeats: int, decisions: int, train: bool, threads: int | None,
            compile: bool) -> dict:
    root, region, ds = locate(servers)
    row: dict = {"servers": servers, "dataset": str((root / region).relative_to(ROOT))}
    with torch.inference_mode():
        paper = make_simulator(ds, BATCH, "train", "random", 0, "cpu", "paper")
        row["paper_steps_per_s"] = steps_per_s(paper, steps, repeats)
        del paper
        contention = make_simulator(ds, BATCH, "train", "random", 0, "cpu", "contention",
                                    Contention(arrival_rate=ARRIVAL_RATE, worlds=BATCH))
        row["contention_steps_per_s"] = steps_per_s(contention, steps, repeats)
        del contention
    row["paper_over_contention"] = row["paper_steps_per_s"] / row["contention_steps_per_s"]
    for actor in ACTORS:
        row[f"{actor}_decision_ms"] = decision_ms(ds, actor, decisions)
    if compile:
        row[f"{COMPILED}_compiled_decision_ms"] = decision_ms(ds, COMPILED, decisions, compile=True)
    if train:
        for actor in TRAIN_EPOCHS:
            row |= train_run(root, region, threads, actor)
    return row


def fmt(v, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict]) -> None:
    print(f"{'':>6} {'':>11} {'':>11} {'':>6} {'decision ms':^43} {'dense training':^21} {'shortlist training':^21}")
    print(f"{'N':>6} {'paper st/s':>11} {'cont. st/s':>11} {'ratio':>6} {'dense':>10} {'per_server':>10} "
          f"{'shortlist':>10} {'compiled':>10} {'st/s':>10} {'RSS MB':>10} {'st/s':>10} {'RSS MB':>10}")
    for r in rows:
        print(f"{r['servers']:>6} {r['paper_steps_per_s']:>11,.0f} {r['contention_steps_per_s']:>11,.0f} "
              f"{r['paper_over_contention']:>6.2f} {r['dense_decision_ms']:>10.2f} {r['per_server_decision_ms']:>10.2f} "
              f"{r['shortlist_decision_ms']:>10.2f} {fmt(r.get(f'{COMPILED}_compiled_decision_ms'), '.2f'):>10} "
              + " ".join(f"{fmt(r.get(f'{a}_train_{k}'), ',.0f'):>10}" for a in TRAIN_EPOCHS
                         for k in ("steps_per_s", "peak_rss_mb")))
    print(f"ratio = paper / contention steps/s (target <= 2); B = {BATCH} rows, contention arrival_rate "
          f"{ARRIVAL_RATE:g}/s; decision = batch-1 median; shortlist = actor: per_server, shortlist: {SHORTLIST}; "
          f"compiled = {COMPILED} through torch.compile; "
          "training = TopoFreeRL/train.py --episodes 200, median epoch after the first")


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=None, help="server counts (default 500 1000 2000 10000)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: sizes 500 1000 (unless --sizes), 50 steps x 3 repeats, 100 decisions")
    p.add_argument("--steps", type=int, default=None, help="timed simulator steps per run (default 100; quick 50)")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per figure, median reported (default 5; quick 3)")
    p.add_argument("--decisions", type=int, default=None, help="timed batch-1 decisions (default 200; quick 100)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads, here and in the training subprocess (default: torch's default)")
    p.add_argument("--no-train", action="store_true", help="skip the training subprocesses")
    p.add_argument("--no-compile", action="store_true", help="skip the compiled decision (about 10-30 s of compiling per N)")
    add_json_flag(p)
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or ([500, 1000] if args.quick else [500, 1000, 2000, 10000])
    steps = args.steps or (50 if args.quick else 100)
    repeats = args.repeats or (3 if args.quick else 5)
    decisions = args.decisions or (100 if args.quick else 200)

    rows = []
    for n in sizes:
        t0 = time.perf_counter()
        rows.append(measure(n, steps, repeats, decisions, not args.no_train, args.threads, not args.no_compile))
        print(f"[N = {n}: {time.perf_counter() - t0:.0f} s]", file=sys.stderr, flush=True)
    out = record("bench/scale.py", argv, rows, batch=BATCH, arrival_rate=ARRIVAL_RATE, steps=steps, repeats=repeats,
                 decisions=decisions)
    if args.json != "-":
        print_table(rows)
    emit(args.json, out)
    return out


if __name__ == "__main__":
    main()
