"""What one contention epoch's PPO update costs with the algorithm's own update and the study's, side by side.

    python bench/update_cost.py                                   # TopoFreeRL, PPO, PF-PPO; idle and busy
    python bench/update_cost.py --algos TopoFreeRL --loads idle

Each learned scheduler collects one epoch of the study's contention training (its first run in
sweeps/contention.yaml: data, profile, overrides, budget, seed 42; the same batch for both
settings), then the clipped PPO update of that batch is timed from the same starting weights with
the `ppo` block of the algorithm's config.yaml ("config": 10 passes, minibatch 1024) and with the
study's, which overrides it (4 passes, minibatch 512), alternating between the two --repeats
times; medians are printed with their ratio. The rollout is timed once for scale. "busy" starts
one spinning process per core beside it.
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

from bench.machine_load import LOADS, machine_load
from bench.record import add_json_flag, emit, record
from schedkit.cli import load_or_exit
from schedkit.config import resolve
from schedkit.dwa import INITIAL_WEIGHTS
from schedkit.paths import data_root
from schedkit.ppo import PPOConfig, ppo_update
from schedkit.registry import get
from schedkit.rollout import collect, update_evaluator
from schedkit.simulators import config_params, config_profile, profile_simulator, start_worlds
from schedkit.trainer import entropy_coef
from total.common import agent_factory
from total.sweep import expand, load_sweep

ROOT = Path(__file__).resolve().parents[1]

STUDY = ROOT / "sweeps" / "contention.yaml"


def study_config(algo: str, own_update: bool = False) -> dict:
    """The algorithm's resolved config as the study's first run of it trains; `own_update`: without
    the study's `ppo.*` overrides, so with the update of the algorithm's config.yaml."""
    run = next(r for r in expand(load_sweep(STUDY)) if r.algo == algo)
    sets = [s for s in run.sets if not (own_update and s.startswith("ppo."))]
    return resolve(ROOT / get(algo).folder / "config.yaml", None, sets,
                   {"data": run.data, "regions": list(run.regions), "profile": run.profile, "seed": run.seed,
                    "epochs": run.epochs, "episodes": run.episodes}, agent_factory(algo).config_choices)


def one_batch(algo: str):
    """(agent, its config, one epoch's rollout, rollout seconds) of the study's contention trainer."""
    factory = agent_factory(algo)
    cfg = study_config(algo)
    seed = cfg["seed"]
    ds = load_or_exit(data_root(cfg["data"]), cfg["regions"])
    device = torch.device("cpu")
    torch.manual_seed(seed)
    agent = factory(ds, cfg, device)
    sim = profile_simulator(ds, config_profile(cfg), config_params(cfg), "train", "random",
                            seed, device,
                            cfg["episodes"])
    continuing = start_worlds(sim, cfg, None, seed)
    weights = torch.tensor(INITIAL_WEIGHTS, dtype=sim.dtype)  # DWA's weights in the first epochs
    t0 = time.perf_counter()
    batch = collect(sim, agent, weights, cfg["episodes"], seed, cfg["ppo"]["gamma"], cfg["ppo"]["lam"], continuing)
    return agent, cfg, batch, time.perf_counter() - t0


def update_seconds(agent, cfg: dict, batch, ppo: PPOConfig) -> float:
    """One PPO update of `batch` from the agent's current weights (a copy: every timing starts alike)."""
    agent = copy.deepcopy(agent)
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg["lr"])

    t0 = time.perf_counter()
    ppo_update(update_evaluator(agent, batch.actions, batch.features), batch.logp, batch.advantages, batch.returns,
               optimizer, agent.networks(), ppo, entropy_coef(cfg, 0, cfg["epochs"]), torch.Generator().manual_seed(0),
               agent.prior_kl_coef)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--algos", nargs="+", choices=["TopoFreeRL", "PPO", "PFAPPO"], default=["TopoFreeRL", "PPO", "PFAPPO"])
    p.add_argument("--loads", nargs="+", choices=LOADS, default=list(LOADS))
    p.add_argument("--repeats", type=int, default=3, help="timings per setting; medians are reported (default 3)")
    add_json_flag(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = []
    for algo in args.algos:
        agent, cfg, batch, rollout_s = one_batch(algo)
        settings = {"config": PPOConfig(**study_config(algo, own_update=True)["ppo"]), "study": PPOConfig(**cfg["ppo"])}
        for load in args.loads:
            times: dict[str, list[float]] = {name: [] for name in settings}
            with machine_load(load):
                for _ in range(args.repeats):
                    for name, ppo in settings.items():
                        times[name].append(update_seconds(agent, cfg, batch, ppo))
            own, study = statistics.median(times["config"]), statistics.median(times["study"])
            rows.append({"algo": algo, "load": load, "samples": int(batch.logp.shape[0]), "rollout_s": rollout_s,
                         "config_update_s": own, "study_update_s": study, "ratio": own / study})
    emit(args.json, record("bench/update_cost.py", argv, rows))
    if args.json != "-":
        print(f"config.yaml's update against the study's; medians of {args.repeats}; one torch thread")
        print(f"{'algo':<11} {'load':<5} {'samples':>7} {'rollout s':>9} {'config update s':>15} "
              f"{'study update s':>14} {'ratio':>6}")
        for r in rows:
            print(f"{r['algo']:<11} {r['load']:<5} {r['samples']:>7} {r['rollout_s']:>9.2f} {r['config_update_s']:>15.2f} "
                  f"{r['study_update_s']:>14.2f} {r['ratio']:>6.2f}")
    return rows


if __name__ == "__main__":
    main()
