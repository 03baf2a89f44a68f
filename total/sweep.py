"""Experiment sweeps: algorithms x seeds x regions x profiles from one YAML, on this machine or a
Ray cluster, into the usual results/ layout (so total/evaluate_all.py and the plots work unchanged).

    python total/sweep.py --config sweeps/quick.yaml                      # local process pool
    python total/sweep.py --config sweeps/paper.yaml --workers 2
    python total/sweep.py --config sweeps/paper.yaml --backend ray --address auto   # a running cluster

Each run is `<results>/<Algo>/<regions>[_<profile>]_seed<S>/`, trained (with the sweep's
`overrides`: `--set KEY=VALUE` per algorithm or for `all`), then evaluated with its inference.py
into `eval_<split>_seed<E>/` under the run's own config. The sweep is idempotent:
- a run whose final checkpoint and evaluation exist is skipped;
- an interrupted run resumes from its last checkpoint;
- a failing run is reported with its log path and the others go on.
Logs are `train.log` / `eval.log` in the run folder.
"""
from __future__ import annotations

import argparse
import itertools
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm import tqdm

from common import LEARNED, ROOT

DEFAULTS = {"data": "data1", "algorithms": list(LEARNED), "seeds": [42, 43, 44], "regions": [["Server1_Trap"]],
            "profiles": ["paper"], "budget": {"epochs": 100, "episodes": 200},
            "evaluate": {"split": "test", "episodes": None, "seed": 0},
            "resources": {"cpus": 1, "gpus": 0}, "results": "results", "device": "cpu", "overrides": {}}


@dataclass(frozen=True)
class Run:
    algo: str
    seed: int
    regions: tuple[str, ...]
    profile: str
    epochs: int
    episodes: int
    data: str
    results: str
    device: str
    eval_split: str
    eval_episodes: int | None
    eval_seed: int
    sets: tuple[str, ...] = ()  # --set KEY=VALUE for train.py, from the sweep's `overrides`
    evaluate: bool = True  # run inference.py after training (total/reproduce.py evaluates everything later)

    @property
    def dir(self) -> Path:
        profile = "" if self.profile == "paper" else f"_{self.profile}"
        return Path(self.results) / self.algo / f"{'+'.join(self.regions)}{profile}_seed{self.seed}"

    @property
    def eval_dir(self) -> Path:
        return self.dir / f"eval_{self.eval_split}_seed{self.eval_seed}"

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.dir.name}"


def load_sweep(path: str | Path) -> dict:
    """The sweep YAML over DEFAULTS; unknown keys and algorithms are errors, not silent no-ops."""
    cfg = yaml.safe_load(Path(path).read_text()) or {}
    unknown = set(cfg) - set(DEFAULTS) - {"name"}
    if unknown:
        sys.exit(f"error: {path}: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    merged = DEFAULTS | cfg
    for key in ("budget", "evaluate", "resources"):
        merged[key] = DEFAULTS[key] | (cfg.get(key) or {})
    bad = [a for a in merged["algorithms"] if a not in LEARNED]
    if bad:
        sys.exit(f"error: {path}: unknown algorithm(s) {bad}; known: {list(LEARNED)}")
    overrides = merged["overrides"] or {}
    bad = [k for k in overrides if k != "all" and k not in LEARNED]
    if bad or not all(isinstance(v, list) for v in overrides.values()):
        sys.exit(f"error: {path}: 'overrides' maps 'all' or an algorithm to a list of KEY=VALUE strings; "
                 f"got keys {list(overrides)}")
    return merged


def expand(cfg: dict) -> list[Run]:
    ev, budget = cfg["evaluate"], cfg["budget"]
    regions = [tuple(r) if isinstance(r, list) else (r,) for r in cfg["regions"]]
    overrides = cfg["overrides"] or {}
    return [Run(algo, int(seed), reg, profile, int(budget["epochs"]), int(budget["episodes"]), str(cfg["data"]),
                str(Path(cfg["results"]).resolve()), cfg["device"], ev["split"], ev["episodes"], int(ev["seed"]),
                tuple(overrides.get("all", []) + overrides.get(algo, [])))
            for algo, seed, reg, profile in itertools.product(cfg["algorithms"], cfg["seeds"], regions, cfg["profiles"])]


def execute(run: Run) -> dict:
    """Train (skip / resume / fresh), then evaluate (skip if present). Never raises: returns a status."""
    folder = LEARNED[run.algo][0]
    final = run.dir / "checkpoints" / "final.pt"
    t0 = time.perf_counter()
    status = "skipped"

    def sh(log: str, *args: str) -> None:
        run.dir.mkdir(parents=True, exist_ok=True)
        with open(run.dir / log, "a") as f:
            subprocess.run([sys.executable, *args], cwd=ROOT, check=True, stdout=f, stderr=subprocess.STDOUT)

    try:
        if not final.exists():
            if any((run.dir / "checkpoints").glob("epoch_*.pt")):
                status = "resumed"
                sh("train.log", f"{folder}/train.py", "--resume", str(run.dir), "--no-progress")
            else:
                status = "ok"
                sh("train.log", f"{folder}/train.py", "--data", str(Path(run.data).resolve()), "--regions",
                   *run.regions, "--seed", str(run.seed), "--epochs", str(run.epochs), "--episodes",
                   str(run.episodes), "--profile", run.profile, "--device", run.device, "--out", str(run.dir),
                   "--no-progress", *(arg for s in run.sets for arg in ("--set", s)))
        if run.evaluate and not (run.eval_dir / "summary.json").exists():
            status = "ok" if status == "skipped" else status
            episodes = ["--episodes", str(run.eval_episodes)] if run.eval_episodes else []
            sh("eval.log", f"{folder}/inference.py", "--data", str(Path(run.data).resolve()), "--region",
               *run.regions, "--model", str(final), "--split", run.eval_split, "--seed", str(run.eval_seed),
               "--profile", run.profile, "--device", run.device, "--out", str(run.eval_dir), "--no-progress",
               *episodes)
    except subprocess.CalledProcessError:
        log = run.dir / ("eval.log" if final.exists() else "train.log")
        return {"run": run.name, "status": "failed", "wall_s": time.perf_counter() - t0, "log": str(log)}
    return {"run": run.name, "status": status, "wall_s": time.perf_counter() - t0, "log": str(run.dir / "train.log")}


def run_local(runs: list[Run], workers: int, report) -> None:
    """Each run is its own process; a thread per worker waits on it."""
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(execute, r) for r in runs]):
            report(future.result())


def run_ray(runs: list[Run], address: str | None, workers: int | None, resources: dict, report) -> None:
    """One Ray task per run with declared CPU/GPU resources, on a cluster or a local instance."""
    try:
        import ray
    except ImportError:
        sys.exit("error: --backend ray needs Ray: pip install -r requirements-ray.txt")
    env = {"env_vars": {"PYTHONPATH": f"{ROOT}:{ROOT / 'total'}"}}  # the repo must sit at this path on every node
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, runtime_env=env, log_to_driver=False, include_dashboard=False)
    try:
        task = ray.remote(num_cpus=resources["cpus"], num_gpus=resources["gpus"], max_retries=0)(execute)
        pending = [task.remote(r) for r in runs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            report(ray.get(done[0]))
    finally:
        ray.shutdown()


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="sweep YAML (see sweeps/)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address ('auto' or ray://host:port); none starts a local instance")
    p.add_argument("--workers", type=int, default=1, help="runs at once (local), or CPUs of a local Ray instance")
    p.add_argument("--results", help="override the sweep's results root")
    args = p.parse_args(argv)
    cfg = load_sweep(args.config)
    if args.results:
        cfg["results"] = args.results
    runs = expand(cfg)
    print(f"sweep {cfg.get('name', Path(args.config).stem)}: {len(runs)} runs, backend {args.backend}")
    bar = tqdm(total=len(runs), desc="sweep", unit="run")
    outcomes: list[dict] = []

    def report(result: dict) -> None:
        outcomes.append(result)
        tqdm.write(f"{result['status']:>8}  {result['run']}  ({result['wall_s']:.1f} s)"
                   + (f"  log: {result['log']}" if result["status"] == "failed" else ""))
        bar.update(1)

    if args.backend == "local":
        run_local(runs, max(1, args.workers), report)
    else:
        run_ray(runs, args.address, args.workers if not args.address else None, cfg["resources"], report)
    bar.close()
    print(f"\n{'run':<48} {'status':>8} {'wall s':>8}")
    for r in sorted(outcomes, key=lambda r: r["run"]):
        print(f"{r['run']:<48} {r['status']:>8} {r['wall_s']:>8.1f}")
    counts = {s: sum(r["status"] == s for r in outcomes) for s in ("ok", "resumed", "skipped", "failed")}
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    if counts["failed"]:
        sys.exit(1)
    return outcomes


if __name__ == "__main__":
    main()
