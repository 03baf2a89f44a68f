"""Find the arrival rates at which a rule runs the servers at given utilisations (contention profile).

    python Heuristics/load_rates.py --utilisation 0.6 0.9 --max-in-flight 4096 --warmup 256 --seed 100

A study that compares schedulers where queues exist needs its loads stated as utilisation, not as an
arbitrary rate. For each target U this searches the Poisson arrival rate at which `--policy`
(default least_loaded) measures utilisation U (schedkit.evaluation.load_measures: the busy share of
the valid servers while the measured workflows run), on the *train* split only, so the rate is chosen
without looking at any reported number. The search brackets U and bisects on the log of the rate until
the measured utilisation is within `--tolerance` of U (or `--probes` evaluations were made; the closest
is kept). Utilisation stops growing once a model type's servers saturate; a target above the highest
utilisation reached is a one-line error naming it. Writes OUT/load_rates.json (every probe: rate,
utilisation, mean queue wait; and the chosen rate per target) and OUT/config.yaml.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import replace

from edgesim.inputs import ints, reals
from edgesim.scores import GREEDY_LATENCY_WEIGHT
from Heuristics.inference import make_policy, resolve_setting
from schedkit.cli import add_eval_flags, arg_type, set_threads, user_errors
from schedkit.evaluation import eval_simulator, run_evaluation
from schedkit.io import write_json, write_yaml
from schedkit.outputs import claim_output
from schedkit.paths import RESULTS, git_commit
from schedkit.registry import heuristics

TARGET = reals(0, 1, lo_open=True, hi_open=True, text="a utilisation strictly between 0 and 1")
START_RATE = 8.0  # workflows per second per world: the study's validation rate, a few per cent busy


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--utilisation", nargs="+", type=arg_type(TARGET), required=True, metavar="U",
                   help="target utilisations, each in (0, 1)")
    p.add_argument("--policy", choices=heuristics(), default="least_loaded",
                   help="the rule whose utilisation sets the load (default: least_loaded)")
    p.add_argument("--tolerance", type=arg_type(reals(0, 0.5, lo_open=True)), default=0.02,
                   help="stop when the measured utilisation is this close to the target (default 0.02)")
    p.add_argument("--probes", type=arg_type(ints(2, 40)), default=10,
                   help="at most this many evaluations per target (default 10)")
    add_eval_flags(p)
    p.set_defaults(split="train", profile="contention")
    p.add_argument("--out", default=None, help="output folder (default: results/Heuristics/load_rates/<region>_train_"
                                               "contention_seed<seed>)")
    args = p.parse_args(argv)
    if args.split != "train":
        p.error("--split test is refused: a load is chosen on the train split, then reported on test")
    if args.profile != "contention":
        p.error("--profile: only contention (the serving profile sets its load as utilisation itself: --load)")
    return args


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    set_threads(args.threads)
    with user_errors():
        return find_rates(args)


def find_rates(args: argparse.Namespace) -> dict:
    device, profile, params, ds, episodes, out, meta = resolve_setting(args, RESULTS / "Heuristics" / "load_rates")
    settings = {"policy": args.policy, "utilisation": args.utilisation, "tolerance": args.tolerance,
                "probes": args.probes, "split": args.split, "seed": args.seed, "episodes": episodes,
                "regions": args.region, "max_in_flight": params.max_in_flight, "warmup": params.warmup,
                "worlds": params.worlds, "dataset_fingerprint": ds.fingerprint}
    measured: dict[float, dict[str, float]] = {}

    def measure(rate: float) -> float:
        if rate not in measured:
            c = replace(params, arrival_rate=rate)
            sim = eval_simulator(ds, args.split, episodes, args.seed, device, profile, c)
            policy = make_policy(args.policy, sim, args.seed, GREEDY_LATENCY_WEIGHT)
            stats = run_evaluation(sim, policy, episodes, progress=False).stats
            measured[rate] = {"rate": rate, **stats}
            print(f"  {args.policy} at {rate:.4g}/s: utilisation {stats['utilisation']:.3f}, "
                  f"queue wait {stats['mean_queue_wait_ms']:.1f} ms", flush=True)
        return measured[rate]["utilisation"]

    with claim_output(out, {"load_rates.json": settings, "config.yaml": settings}, args.overwrite):
        chosen = {f"{u:g}": search(measure, u, args.tolerance, args.probes) for u in args.utilisation}
        result = {**settings, "chosen_rate": chosen, "probes": sorted(measured.values(), key=lambda m: m["rate"]),
                  "git_commit": git_commit()}
        write_json(out / "load_rates.json", result)
        write_yaml(out / "config.yaml", {**settings, "meta": meta})
    for u, rate in chosen.items():
        print(f"utilisation {u}: {rate:.4g} workflows/s per world ({args.policy}, {args.split} split)")
    print(f"wrote {out / 'load_rates.json'}")
    return result


def search(measure, target: float, tolerance: float, probes: int) -> float:
    """The rate whose measured utilisation is closest to `target`: grow the rate in proportion until the
    target is bracketed, then bisect on the log of the rate."""
    lo, hi = START_RATE, None
    u_lo = measure(lo)
    best = (abs(u_lo - target), lo)
    for _ in range(probes - 1):
        if best[0] <= tolerance:
            break
        if hi is None:
            rate = lo * min(8.0, max(1.25, target / max(u_lo, 1e-9)))  # utilisation grows about linearly at first
        else:
            rate = math.sqrt(lo * hi)
        rate = float(f"{rate:.3g}")  # a rate a person can type, and a short evaluation tag
        u = measure(rate)
        best = min(best, (abs(u - target), rate))
        if u < target:
            if hi is None and u <= u_lo + 1e-3 and rate > lo:
                raise SystemExit(f"error: --utilisation {target:g}: not reached; the utilisation stops growing at "
                                 f"{max(u, u_lo):.3f} (a model type's servers saturate)")
            lo, u_lo = rate, u
        else:
            hi = rate
    return best[1]


if __name__ == "__main__":
    main()
