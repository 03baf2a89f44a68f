"""Size-agnostic TopoFreeRL (`actor: per_server`): one checkpoint, several topology sizes.

    python bench/zero_shot.py                       # train on 500 / 1000 / 2000 servers, cross-evaluate
    python bench/zero_shot.py --sizes Server1_Trap Server2_Trap --seeds 42

For each dataset it trains a per_server model (paper profile, full default budget) into
results/zero_shot/<region>_seed<S>/ (skipped when final.pt exists, resumed when interrupted),
then evaluates the model trained on the first dataset *zero-shot* on every dataset, and each
dataset's own model on it, next to the oracle (test split, eval seed 0). It prints reward, gap to
the oracle and decision time at batch 1; `--json PATH` writes the rows.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from edgesim.inputs import read_text
from schedkit import paths
from schedkit.io import atomic_write_text
from schedkit.paths import checkpoint_dir, final_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def sh(*args: str) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def train(data: str, region: str, seed: int, results: Path) -> Path:
    run = results / f"{region}_seed{seed}"
    if final_checkpoint(run).exists():
        return run
    if any(checkpoint_dir(run).glob("epoch_*.pt")):
        sh("TopoFreeRL/train.py", "--resume", str(run), "--no-progress")
    else:
        sh("TopoFreeRL/train.py", "--data", data, "--regions", region, "--seed", str(seed), "--set", "actor=per_server",
           "--out", str(run), "--no-progress")
    return run


def evaluate(model: Path, data: str, region: str, out: Path) -> dict:
    if not (out / "summary.json").exists():
        sh("TopoFreeRL/inference.py", "--model", str(model), "--data", data, "--region", region, "--profile", "paper",
           "--out", str(out), "--no-progress")
    return json.loads((out / "summary.json").read_text())


def oracle(data: str, region: str, results: Path) -> dict:
    out = results / f"oracle_{region}"
    if not (out / "summary.json").exists():
        sh("Heuristics/inference.py", "--data", data, "--region", region, "--policy", "oracle", "--out", str(out),
           "--no-progress")
    return json.loads((out / "summary.json").read_text())


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=paths.DATA, help=f"data root (default: {paths.DATA})")
    p.add_argument("--sizes", nargs="+", default=["Server1_Trap", "Server2_Trap", "Server3_Trap"],
                   help="regions, smallest first; the first one's model is evaluated zero-shot on the rest")
    p.add_argument("--seeds", type=int, nargs="+", default=[42])
    p.add_argument("--results", type=Path, default=paths.RESULTS / "zero_shot",
                   help=f"runs and evaluations (default: {paths.RESULTS / 'zero_shot'})")
    p.add_argument("--json", help="write the rows here")
    args = p.parse_args(argv)
    data, results = str(args.data.resolve()), args.results.resolve()
    rows = []
    for seed in args.seeds:
        runs = {region: train(data, region, seed, results) for region in args.sizes}
        source = runs[args.sizes[0]]
        for region in args.sizes:
            best = oracle(data, region, results)["mean_reward"]
            models = {"zero-shot from " + args.sizes[0]: source, "trained at this size": runs[region]}
            for kind, run in models.items():
                if kind.startswith("zero") and region == args.sizes[0]:
                    continue
                s = evaluate(final_checkpoint(run), data, region, run / f"eval_on_{region}")
                rows.append({"seed": seed, "region": region, "model": kind, "reward": s["mean_reward"],
                             "oracle_reward": best,
                             "gap_pct": 100 * (best - s["mean_reward"]) / abs(best),
                             "latency_ms": s["mean_latency_ms"], "decision_ms_batch1": s["decision_ms_batch1"]})
    sizes = {r: len(read_text(Path(data) / r / "servers.csv", "servers.csv").splitlines()) - 1 for r in args.sizes}
    print(f"{'region':14} {'servers':>7}  {'model':28} {'seed':>4} {'reward':>8} {'oracle':>8} {'gap':>7} "
          f"{'batch-1 ms':>10}")
    for r in rows:
        r["servers"] = sizes[r["region"]]
        print(f"{r['region']:14} {r['servers']:7d}  {r['model']:28} {r['seed']:4d} {r['reward']:8.4f} "
              f"{r['oracle_reward']:8.4f} {r['gap_pct']:6.2f}% {r['decision_ms_batch1']:10.3f}")
    if args.json:
        atomic_write_text(args.json, json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
