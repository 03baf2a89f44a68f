"""What a warm-up shared by every scheduler of a setting changes, and what it saves
(schedkit.evaluation.SharedWarmup; docs/decisions.md, 2026-12-07, evening: not adopted).

    python bench/shared_warmup.py                                   # the serving study's validation setting
    python bench/shared_warmup.py --json bench/results/shared_warmup.json

Each `--policies` rule is evaluated twice on the serving study's validation setting (total/studies.yaml,
serving.protocol: its generated region, train split, the validation load, the validation seed and the four
after it side by side, its worlds, warm-up, measured workflows, step bound and SLOs): with its own warm-up
(`own`), and after `--shared` warm-up workflows of each world scheduled by least_loaded, run once for all
rules (`shared`). Both ways measure the same workflows (common random numbers), so the paired difference
shared - own of each rule's reward and SLO attainment (t-interval over eval seeds and task clusters,
schedkit.stats) says what the shared start changes; its verdict is judged against the study's margins.
Each rule's reward verdict against greedy_queue is printed both ways, and the time of each half (one
process, one thread, one after the other; `--workers 2`: the two ways side by side, each in its own
process on its own core; run it with nothing else on the machine).
"""
from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.record import add_json_flag, emit, record  # noqa: E402
from bench.serving_validation import validation_setting  # noqa: E402
from edgesim.serving import SERVING  # noqa: E402
from schedkit.cli import episodes_arg  # noqa: E402
from schedkit.evaluation import Evaluation, SharedWarmup, evaluate_seeds, unfinished, warm_up_shared  # noqa: E402
from schedkit.registry import get  # noqa: E402
from total.compare import paired_table  # noqa: E402

REFERENCE = "greedy_queue"
RULE = "least_loaded"  # the shared stretch's rule: the one the protocol's warm-up length was chosen with
WAYS = ("own", "shared")
_HALF: Callable[[str], tuple[list[pd.DataFrame], dict[str, float]]] | None = None  # what forked workers run


def _run_half(way: str) -> tuple[list[pd.DataFrame], dict[str, float]]:
    assert _HALF is not None
    return _HALF(way)


def episodes_of(policy: str, runs: list[tuple[int, Evaluation]]) -> pd.DataFrame:
    """evaluate_all's tidy episode rows of one rule's evaluation seeds."""
    return pd.concat([r.episodes.assign(algo=policy, train_seed=float("nan"), eval_seed=seed, run="")
                      for seed, r in runs], ignore_index=True)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policies", nargs="+", default=["least_loaded", "greedy_queue", "round_robin", "random"])
    p.add_argument("--workers", type=int, choices=[1, 2], default=1,
                   help="2: the two ways side by side, each in its own process (default 1: one after the other)")
    p.add_argument("--shared", type=episodes_arg, default=800, help="shared warm-up workflows a world (default 800)")
    add_json_flag(p)
    args = p.parse_args(argv)
    if REFERENCE not in args.policies:
        p.error(f"--policies must include {REFERENCE}, the reference of the verdicts")
    torch.set_num_threads(1)
    setting = validation_setting()
    protocol, margins, ds, params, seeds = (setting.protocol, setting.margins, setting.ds, setting.params,
                                            setting.seeds)
    if args.shared > protocol.warmup:
        p.error(f"--shared: expected at most the protocol's {protocol.warmup} warm-up workflows, got {args.shared}")
    rule = get(RULE).load()
    shared = SharedWarmup(lambda sim: rule(sim, seed=sim.seed), args.shared)

    def evaluate(policy: str, warm: SharedWarmup | None) -> pd.DataFrame:
        runs = evaluate_seeds(ds, "train", protocol.episodes, seeds, "cpu", SERVING, params,
                              lambda sim, es: get(policy).load()(sim, seed=es),
                              progress=False, max_steps=protocol.max_steps, shared=warm)
        stats = [r.stats for _, r in runs]
        return episodes_of(policy, runs).assign(
            utilisation=sum(s["utilisation"] for s in stats) / len(stats),
            queue_wait_ms=sum(s["mean_queue_wait_ms"] for s in stats) / len(stats))

    def half(way: str) -> tuple[list[pd.DataFrame], dict[str, float]]:
        """One way's evaluations of every policy, one after the other, and their times (s)."""
        torch.set_num_threads(1)
        warm, frames, seconds = shared if way == "shared" else None, [], {}
        t0 = time.perf_counter()
        if warm is not None:
            warm_up_shared(warm, ds, "train", protocol.episodes, seeds, "cpu", SERVING, params, protocol.max_steps,
                           False)
            seconds["stretch"] = time.perf_counter() - t0
        for policy in args.policies:
            t = time.perf_counter()
            frames.append(evaluate(policy, warm))
            seconds[policy] = time.perf_counter() - t
            print(f"{way} warm-up: {policy} done in {seconds[policy]:.0f} s", file=sys.stderr)
        seconds["total"] = time.perf_counter() - t0
        return frames, seconds

    global _HALF
    _HALF = half
    if args.workers == 2:  # each way in its own forked process, side by side
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork")) as pool:
            halves = dict(zip(WAYS, pool.map(_run_half, WAYS)))
    else:
        halves = {way: half(way) for way in WAYS}
    frames = {way: f for way, (f, _) in halves.items()}
    seconds = {way: t for way, (_, t) in halves.items()}

    rows = []
    by_way = {way: pd.concat(f, ignore_index=True) for way, f in frames.items()}
    against = {way: paired_table(e.drop(columns=["utilisation", "queue_wait_ms"]), REFERENCE, margins.reward,
                                 margins.p99_latency, margins.slo_attainment).set_index("algo")
               for way, e in by_way.items()}
    for policy in args.policies:
        own, mine = (by_way[w][by_way[w]["algo"] == policy] for w in ("own", "shared"))
        both = pd.concat([own.assign(algo="own"), mine.assign(algo="shared")], ignore_index=True)
        pair = paired_table(both.drop(columns=["utilisation", "queue_wait_ms"]), "own", margins.reward,
                            margins.p99_latency, margins.slo_attainment).set_index("algo").loc["shared"]
        row = {"policy": policy}
        for way, e in (("own", own), ("shared", mine)):
            row |= {f"{way}_reward": float(e["reward"].mean()), f"{way}_slo": float(e["slo_met"].mean()),
                    f"{way}_utilisation": float(e["utilisation"].iloc[0]),
                    f"{way}_queue_wait_ms": float(e["queue_wait_ms"].iloc[0]),
                    f"{way}_unfinished": unfinished(e),
                    f"{way}_vs_{REFERENCE}": "reference" if policy == REFERENCE
                    else str(against[way].loc[policy, "verdict_reward"])}
        row |= {"d_reward": float(pair["d_reward"]), "d_reward_lo": float(pair["d_reward_lo"]),
                "d_reward_hi": float(pair["d_reward_hi"]), "verdict_reward": str(pair["verdict_reward"]),
                "d_slo": float(pair["d_slo_attainment"]), "d_slo_lo": float(pair["d_slo_attainment_lo"]),
                "d_slo_hi": float(pair["d_slo_attainment_hi"]), "verdict_slo": str(pair["verdict_slo"])}
        rows.append(row)
    rec = record("bench/shared_warmup.py", argv, rows, shared_workflows=args.shared, seconds=seconds,
                 protocol=setting.record() | {"margins": asdict(margins)})
    emit(args.json, rec)
    if args.json != "-":
        print(f"validation setting, load {protocol.validation_load:g}, seeds {seeds[0]}-{seeds[-1]}; own warm-up "
              f"{protocol.warmup} workflows a world vs {args.shared} shared (least_loaded) + "
              f"{protocol.warmup - args.shared} own")
        print(f"{'policy':<14}{'reward own':>11}{'shared':>9}  {'d reward [95% CI]':<28}{'verdict':<13}"
              f"{'SLO own':>8}{'shared':>8}  {'verdict':<13}{'util own':>9}{'shared':>8}  vs {REFERENCE} own / shared")
        for r in rows:
            print(f"{r['policy']:<14}{r['own_reward']:>11.4f}{r['shared_reward']:>9.4f}  "
                  f"{r['d_reward']:+.4f} [{r['d_reward_lo']:+.4f}, {r['d_reward_hi']:+.4f}]  "
                  f"{r['verdict_reward']:<13}{r['own_slo']:>8.3f}{r['shared_slo']:>8.3f}  {r['verdict_slo']:<13}"
                  f"{r['own_utilisation']:>9.3f}{r['shared_utilisation']:>8.3f}  "
                  f"{r[f'own_vs_{REFERENCE}']} / {r[f'shared_vs_{REFERENCE}']}")
        own, mine = seconds["own"], seconds["shared"]
        print(f"time (s): own warm-ups {own['total']:.0f}; shared stretch {mine['stretch']:.0f}, with the evaluations "
              f"after it {mine['total']:.0f} ({mine['total'] / own['total']:.2f}x); per policy, own / shared: "
              + ", ".join(f"{q} {own[q]:.0f} / {mine[q]:.0f}" for q in args.policies))
    return rec


if __name__ == "__main__":
    main()
