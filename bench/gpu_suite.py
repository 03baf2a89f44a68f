"""The CUDA checks and benchmarks in one command, for the short time a GPU machine is lent.

    python bench/gpu_suite.py                         # on a CUDA machine: every step, about 5-10 min
    python bench/gpu_suite.py --quick                 # a smoke run: small sizes, one short epoch
    python bench/gpu_suite.py --device cpu --quick    # the same steps on the CPU: a dry run (the tests use it)

Steps, each timed; a failed step is recorded and the suite goes on:
  equivalence  tests/edgesim/test_cuda.py and the simulator's CUDA test: the device against the CPU with the
               same draws and decisions, paper, contention and serving profiles (serving: loaded worlds at
               load 0.9 complete the same requests with the same TTFT, TPOT and latency)
  throughput   bench/env_throughput.py on the device: 500 / 2,000 / 10,000 servers, B up to 65,536
  train        TopoFreeRL/train.py with its defaults on the device, then inference.py on the test split
  train_large  TopoFreeRL/train.py with `actor=per_server` on 10,000 servers (a generated dataset,
               cached in bench/.cache/) for --large-epochs epochs
  train_shortlist
               the same with `shortlist=32` (each decision scores 32 servers, not 10,000)
Writes bench/results/gpu_suite_<device>_<time>.json and .md (device name, torch version, git commit,
every figure and every step's status). Without a CUDA device (and no --device cpu) it says so and
exits 0, so CI and CPU-only machines can call it.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench import env_throughput
from schedkit.io import atomic_write_text, write_json
from schedkit.paths import REPO, git_commit

RESULTS = REPO / "bench" / "results"
STEP_TIMEOUT_S = 900  # a step that hangs must not eat the device's whole lease


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[bool, float, str]:
    """(ok, wall seconds, last lines of output) of a command run from the repository root."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=STEP_TIMEOUT_S,
                              env=os.environ | (env or {}))
        ok, out = proc.returncode == 0, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        partial = e.stdout if isinstance(e.stdout, str) else ""
        ok, out = False, f"timed out after {STEP_TIMEOUT_S} s\n{partial}"
    return ok, time.perf_counter() - t0, "\n".join(str(out).strip().splitlines()[-15:])


def equivalence(device: str) -> dict[str, Any]:
    ok, wall, tail = run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
                          "tests/edgesim/test_cuda.py",
                          "tests/edgesim/test_simulator.py::test_cuda_matches_cpu_with_common_draws"],
                         {"TOPOFREERL_EQUIV_DEVICE": device})
    return {"ok": ok, "wall_s": wall, "output": tail}


def throughput(device: str, servers: list[int], batches: list[int], repeats: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        out = env_throughput.main(["--json", "--devices", device, "--servers", *map(str, servers),
                                   "--batches", *map(str, batches), "--repeats", str(repeats),
                                   "--profile-batches", *map(str, [b for b in batches if b <= 4096] or batches[:1])])
    return {"ok": True, "wall_s": time.perf_counter() - t0, **out}


def train(device: str, out: Path, args: list[str]) -> dict[str, Any]:
    """One TopoFreeRL training run (and, for the default one, its test-split evaluation)."""
    ok, wall, tail = run([sys.executable, "TopoFreeRL/train.py", "--device", device, "--out", str(out / "run"),
                          "--no-progress", *args])
    result: dict[str, Any] = {"ok": ok, "wall_s": wall, "args": args, "output": tail}
    metrics = out / "run" / "metrics.csv"
    if ok and metrics.exists():
        m = pd.read_csv(metrics)
        result |= {"epochs": len(m), "steps_per_s_median": float(m["steps_per_s"].median())}
    return result


def evaluate(device: str, out: Path) -> dict[str, Any]:
    ok, wall, tail = run([sys.executable, "TopoFreeRL/inference.py", "--model", str(out / "run" / "checkpoints" /
                          "final.pt"), "--device", device, "--out", str(out / "eval"), "--no-progress"])
    summary = json.loads((out / "eval" / "summary.json").read_text()) if ok else {}
    return {"ok": ok, "wall_s": wall, "mean_reward": summary.get("mean_reward"),
            "mean_latency_ms": summary.get("mean_latency_ms"), "output": "" if ok else tail}


def markdown(report: dict[str, Any]) -> str:
    lines = [f"# GPU suite: {report['device_name']}", "",
             f"{report['time']}, torch {report['torch']}, commit {report['git_commit']}, "
             f"{'quick' if report['quick'] else 'full'} run, total {report['total_s']:.0f} s", "",
             "| step | status | wall s |", "|---|---|---|"]
    for name, step in report["steps"].items():
        lines.append(f"| {name} | {'ok' if step.get('ok') else 'FAILED'} | {step.get('wall_s', 0):.1f} |")
    tp = report["steps"].get("throughput", {})
    if tp.get("results"):
        lines += ["", "| servers | batch | steps/s |", "|---|---|---|"]
        lines += [f"| {r['servers']:,} | {r['batch']:,} | {r['steps_per_s']:,.0f} |" for r in tp["rows"]]
    for name in ("train", "train_large", "train_shortlist"):
        step = report["steps"].get(name, {})
        if "steps_per_s_median" in step:
            lines.append(f"\n{name}: {step['epochs']} epochs in {step['wall_s']:.1f} s, median "
                         f"{step['steps_per_s_median']:,.0f} env steps/s ({' '.join(step['args']) or 'defaults'})")
    ev = report["steps"].get("evaluate", {})
    if ev.get("ok"):
        lines.append(f"\nevaluate (test split): reward {ev['mean_reward']:.4f}, latency {ev['mean_latency_ms']:.1f} ms")
    failed = [n for n, s in report["steps"].items() if not s.get("ok")]
    for name in failed:
        lines += ["", f"## {name} failed", "```", report["steps"][name].get("output", ""), "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu for a dry run")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 500 servers, B <= 256, one epoch of 20 episodes, 1,000 servers for train_large")
    p.add_argument("--large-epochs", type=int, default=3, help="epochs of the 10,000-server run (default 3)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results folder (default bench/results/)")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: nothing to run (pass --device cpu for a dry run on the CPU)")
        return 0
    device_name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "cpu"
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device_name).strip("-").lower()
    report_path = args.out / f"gpu_suite_{slug}_{stamp}"
    servers, batches = ([500], [1, 256]) if args.quick else ([500, 2000, 10000], [1, 256, 4096, 65536])
    short = ["--epochs", "1", "--episodes", "20"] if args.quick else []
    large = ["--data", "data1", "--regions", "Server2_Trap"] if args.quick else \
        ["--data", str(env_throughput.CACHE), "--regions", env_throughput.dataset(10000).regions[0]]
    per_server = [*large, "--set", "actor=per_server", *(short or ["--epochs", str(args.large_epochs)])]
    t0 = time.perf_counter()
    steps: dict[str, dict[str, Any]] = {}
    print(f"GPU suite on {device_name} ({args.device}); results in {args.out}", flush=True)
    runs = tempfile.TemporaryDirectory(prefix="gpu_suite_")  # the training runs: only their figures are kept
    work = Path(runs.name)
    for name, step in (
            ("equivalence", lambda: equivalence(args.device)),
            ("throughput", lambda: throughput(args.device, servers, batches, 3 if args.quick else 5)),
            ("train", lambda: train(args.device, work / "train", short)),
            ("evaluate", lambda: evaluate(args.device, work / "train")),
            ("train_large", lambda: train(args.device, work / "train_large", per_server)),
            ("train_shortlist", lambda: train(args.device, work / "train_shortlist",
                                              [*per_server, "--set", "shortlist=32"]))):
        try:
            steps[name] = step()
        except Exception as e:  # one failed step must not lose the others' figures
            steps[name] = {"ok": False, "wall_s": 0.0, "output": f"{type(e).__name__}: {e}"}
        print(f"  {name}: {'ok' if steps[name]['ok'] else 'FAILED'} ({steps[name]['wall_s']:.1f} s)", flush=True)
    runs.cleanup()
    report = {"device": args.device, "device_name": device_name, "torch": torch.__version__, "git_commit": git_commit(),
              "time": stamp, "quick": args.quick, "total_s": time.perf_counter() - t0, "steps": steps}
    write_json(report_path.with_suffix(".json"), report)
    atomic_write_text(report_path.with_suffix(".md"), markdown(report))
    print(f"wrote {report_path.with_suffix('.json')} and {report_path.with_suffix('.md')}")
    return 0 if all(s["ok"] for s in steps.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
