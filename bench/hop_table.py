"""What the hop table (edgesim.expectation.HopTable) saves, side by side with computing every hop.

    python bench/hop_table.py                          # idle and busy, 3 repeats, 2000 workflows
    python bench/hop_table.py --loads idle --repeats 5 --episodes 500

Schedulers that score every server at every decision (the greedy family, TopoFreeRL's per-server
features) compute each server's expected step latency from the hop's start: the previous server,
or the task's location at step 0. Those terms are the same decision after decision; the table
holds them per (source, server) pair. Timed, alternating table / direct --repeats
times, one torch thread, the study's validation setting (contention, 8 workflows/s, Server1_Trap
test split): the evaluation of `greedy_queue`, of TopoFreeRL with the study's config (random
weights: the same work per decision as a trained model), and one TopoFreeRL training epoch's
rollout. "direct" is the same code with the table switched off (HopTable.MAX_PAIRS = 0); the
bench also checks that both give the same episodes, number for number.
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from bench.machine_load import LOADS, machine_load
from bench.record import add_json_flag, emit, record
from bench.update_cost import study_config
from edgesim.contention import CONTENTION, Contention
from edgesim.expectation import HopTable
from Heuristics.policies import QueueGreedyPolicy
from schedkit.cli import load_or_exit
from schedkit.dwa import INITIAL_WEIGHTS
from schedkit.evaluation import eval_simulator, evaluate
from schedkit.inference import GreedyAgentPolicy
from schedkit.paths import data_root
from schedkit.rollout import collect
from schedkit.simulators import config_params, profile_simulator, start_worlds
from total.common import agent_factory


def workloads(episodes: int) -> dict[str, Callable[[], object]]:
    """Name -> a function running one timed unit of work and returning what it produced."""
    cfg = study_config("TopoFreeRL")
    ds = load_or_exit(data_root(cfg["data"]), cfg["regions"])
    params = Contention(arrival_rate=float(cfg["contention"]["arrival_rate"]))
    torch.manual_seed(cfg["seed"])
    agent = agent_factory("TopoFreeRL")(ds, cfg, torch.device("cpu"))
    weights = torch.tensor(INITIAL_WEIGHTS, dtype=torch.float64)

    def run_eval(make_policy) -> object:
        sim = eval_simulator(ds, "test", episodes, 0, "cpu", CONTENTION, params)
        df = evaluate(sim, make_policy(sim), episodes, progress=False)
        return df.drop(columns=["decision_ms"])

    def rollout() -> object:
        sim = profile_simulator(ds, CONTENTION, config_params(cfg), "train", "random", cfg["seed"], "cpu",
                                cfg["episodes"])
        continuing = start_worlds(sim, cfg, None, cfg["seed"])
        torch.manual_seed(cfg["seed"])
        batch = collect(sim, agent, weights, cfg["episodes"], cfg["seed"], cfg["ppo"]["gamma"], cfg["ppo"]["lam"],
                        continuing)
        return batch.actions

    return {"greedy_queue eval": lambda: run_eval(QueueGreedyPolicy),
            "TopoFreeRL eval": lambda: run_eval(lambda sim: GreedyAgentPolicy("TopoFreeRL", agent, weights)),
            "TopoFreeRL rollout": rollout}


def same(a: object, b: object) -> bool:
    if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
        return bool(torch.equal(a, b))
    return bool(a.equals(b))  # type: ignore[attr-defined]  # two DataFrames of episodes


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--loads", nargs="+", choices=LOADS, default=list(LOADS))
    p.add_argument("--repeats", type=int, default=3, help="timings per setting; medians are reported (default 3)")
    p.add_argument("--episodes", type=int, default=2000, help="measured workflows per evaluation (default 2000)")
    add_json_flag(p)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    limit, rows = HopTable.MAX_PAIRS, []
    work = workloads(args.episodes)
    for name, fn in work.items():
        for load in args.loads:
            times: dict[str, list[float]] = {"table": [], "direct": []}
            outputs: dict[str, object] = {}
            with machine_load(load):
                for _ in range(args.repeats):
                    for mode in times:
                        HopTable.MAX_PAIRS = limit if mode == "table" else 0
                        t0 = time.perf_counter()
                        outputs[mode] = fn()
                        times[mode].append(time.perf_counter() - t0)
            HopTable.MAX_PAIRS = limit
            table, direct = statistics.median(times["table"]), statistics.median(times["direct"])
            rows.append({"work": name, "load": load, "direct_s": direct, "table_s": table, "ratio": direct / table,
                         "identical": same(outputs["table"], outputs["direct"])})
    emit(args.json, record("bench/hop_table.py", argv, rows))
    if args.json != "-":
        print(f"every hop computed (direct) against the hop table; medians of {args.repeats}; one torch thread")
        print(f"{'work':<20} {'load':<5} {'direct s':>9} {'table s':>8} {'ratio':>6}  identical")
        for r in rows:
            print(f"{r['work']:<20} {r['load']:<5} {r['direct_s']:>9.2f} {r['table_s']:>8.2f} {r['ratio']:>6.2f}  "
                  f"{'yes' if r['identical'] else 'NO'}")
    return rows


if __name__ == "__main__":
    main()
