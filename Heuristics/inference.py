"""Evaluate the reference schedulers (random, greedy, maxcompute, oracle) on a dataset split.

    python Heuristics/inference.py --data data1 --region Server1_Trap --policy greedy oracle --out results/heuristics

Writes OUT/episodes.csv and OUT/summary.json for one policy, OUT/<policy>/... for several, plus
OUT/config.yaml (the resolved arguments), and prints a comparison table.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from Heuristics.policies import POLICIES  # noqa: E402
from schedkit.cli import add_eval_flags, load_or_exit, resolve_device  # noqa: E402
from schedkit.evaluation import eval_simulator, evaluate, format_table, write_evaluation  # noqa: E402
from schedkit.io import write_yaml  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--policy", nargs="+", choices=[*POLICIES, "all"], default=["all"],
                   help="scheduler(s) to evaluate (default: all four)")
    add_eval_flags(p)
    p.add_argument("--out", default=None,
                   help="output folder (default: results/Heuristics/<region>_<split>_seed<seed>)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    names = list(POLICIES) if "all" in args.policy else list(dict.fromkeys(args.policy))
    device = resolve_device(args.device)
    ds = load_or_exit(args.data, args.region)
    episodes = args.episodes or len(ds.tasks[args.split])
    if episodes < 1:
        sys.exit(f"error: --episodes must be >= 1, got {episodes}")
    out = Path(args.out or f"results/Heuristics/{'+'.join(args.region)}_{args.split}_seed{args.seed}")
    write_yaml(out / "config.yaml", vars(args) | {"policies": names, "episodes": episodes, "device": str(device),
                                                   "dataset_fingerprint": ds.fingerprint})
    print(ds.summary())
    summaries = {}
    for name in names:
        sim = eval_simulator(ds, args.split, episodes, args.seed, device, args.profile)
        policy = POLICIES[name](sim, seed=args.seed)
        df = evaluate(sim, policy, episodes, progress=not args.no_progress)
        target = out if len(names) == 1 else out / name
        summaries[name] = write_evaluation(target, df, {
            "policy": name, "split": args.split, "seed": args.seed, "profile": args.profile, "device": str(device),
            "regions": args.region, "dataset_fingerprint": ds.fingerprint})
    print(format_table(summaries))
    print(f"wrote {out}")
    return summaries


if __name__ == "__main__":
    main()
