"""The ablation table: what each part of a learned scheduler buys, from a sweep with `variants`.

    python total/sweep.py --config sweeps/ablation.yaml --workers 2      # train and evaluate every variant
    python total/ablation_table.py [--sweep sweeps/ablation.yaml] [--figures DIR | --update-committed-figures]
    python total/ablation_table.py --sweep sweeps/update_budget.yaml --algo PPO   # a sweep of several algorithms

Reads every run's own evaluation (`<run>/eval_<split>_seed<E>/episodes.csv`, written by the sweep)
and writes `<name>_<profile>_r<rate>.csv` (e.g. ablation_contention_r8; `<name>_<algo>_...` for
one --algo of a sweep of several) and the paired
comparison `..._paired.csv` against the `full` variant, and `..._paired.png` (the paired
differences with their CIs, one row per variant; --formats md,tex,pdf adds those files). The tables hold:
- absolute mean and P99 latency, cost and reward per variant, each with a 95% t-interval over the
  variant's training seeds, the evaluation seeds and the shared task clusters (schedkit.stats);
- the difference to `full` on the same tasks and draws (every run is evaluated with the same seed
  and task order: common random numbers), with its paired 95% CI, the probability of improvement and
  the verdict against the equivalence margins (--reward-margin, --p99-margin; by default the claims
  study's in total/studies.yaml).
A variant with fewer finished runs than the sweep lists is reported with the runs it has, and the
missing ones are named; a variant with none is left out. `--heuristics EVAL_DIR` adds the rows of a
total/evaluate_all.py output made on the same data, split and evaluation seed (the oracle, greedy, ...)
as references; the paired comparison checks that they met the same tasks in the same order.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
from matplotlib.ticker import FuncFormatter

from schedkit.config import ConfigError, load_yaml, upgrade
from schedkit.simulators import config_profile
from total.common import (
    add_output_flags,
    figures_dir,
    inputs,
    missing,
    paths,
    read_episodes,
    read_run_episodes,
    report_written,
    save,
    sort_algos,
    style,
    write_outputs,
    write_table,
    writing,
)
from total.compare import add_margin_flags, paired_table
from total.compare import markdown as paired_markdown
from total.evaluate_all import summarize_runs
from total.make_table import build
from total.sweep import expand, load_sweep

SWEEP = paths.REPO / "sweeps" / "ablation.yaml"
REFERENCE = "full"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sweep", type=Path, default=SWEEP, help=f"the ablation sweep (default: {SWEEP})")
    add_output_flags(p, results=None, results_help="default: the sweep's `results:` root")
    p.add_argument("--algo", help="the algorithm to tabulate, for a sweep of several (its variants are compared "
                                  "with each other, never across algorithms)")
    p.add_argument("--reference", default=REFERENCE, help=f"variant to pair against (default: {REFERENCE})")
    p.add_argument("--heuristics", type=Path, metavar="EVAL_DIR",
                   help="also list the schedulers of this total/evaluate_all.py output (its episodes.csv), "
                        "evaluated on the same data, split and seed")
    add_margin_flags(p, "claims")
    return p.parse_args(argv)


def load_episodes(runs) -> tuple[pd.DataFrame, list[str]]:
    """Every finished run's evaluation as one tidy frame (algo = variant, run = folder), and the missing ones."""
    frames, absent = [], []
    for run in runs:
        path = run.eval_dir / "episodes.csv"
        if not path.exists():
            absent.append(str(path))
            continue
        frames.append(read_run_episodes(path).assign(algo=run.variant, train_seed=run.seed, eval_seed=run.eval_seed,
                                               run=run.dir.name))
    if not frames:
        sys.exit("error: no finished run of the sweep has an evaluation; missing:\n  " + "\n  ".join(absent))
    return pd.concat(frames, ignore_index=True), absent


def _tick(v: float) -> str:
    """A short tick label: 0.01, -100, 1e3 (not 1e+03)."""
    return f"{v:.0e}".replace("e+0", "e").replace("e-0", "e-") if abs(v) >= 1e3 else f"{v:.3g}"


def plot_paired(paired: pd.DataFrame, reference: str, figures: Path, name: str, split: str,
                made_from: dict) -> list[Path]:
    """Dot and 95% CI of each variant's paired difference to the reference: reward (higher is better),
    mean and P99 latency (lower is better); a zero line; CIs clear of zero in colour. Where a variant
    lies beyond 20 median CI widths, the axis is symmetric-log, linear within the median CI width, so
    a collapsed variant does not flatten the rest; otherwise linear."""
    plt = style()
    panels = [("d_reward", "Δ reward"), ("d_latency_ms", "Δ mean latency (ms)"),
              ("d_p99_latency_ms", "Δ P99 latency (ms)")]
    fig, axes = plt.subplots(1, len(panels), figsize=(7.0, 0.45 * len(paired) + 1.2), sharey=True,
                             layout="constrained")
    y = range(len(paired))
    for ax, (col, title) in zip(axes, panels):
        mid, lo, hi = paired[col], paired[f"{col}_lo"], paired[f"{col}_hi"]
        clear = (lo > 0) | (hi < 0)
        for i, c in zip(y, clear):
            # (clipped at 0: a bootstrap CI of a percentile may not contain the point estimate's rounding)
            xerr = [[max(0.0, mid.iloc[i] - lo.iloc[i])], [max(0.0, hi.iloc[i] - mid.iloc[i])]]
            ax.errorbar(mid.iloc[i], i, xerr=xerr, fmt="o",
                        color="#D55E00" if c else "#999999", capsize=2, ms=4)
        ax.axvline(0, color="black", lw=0.6)
        width = max(float((hi - lo).median()), 1e-9)
        if max(float(lo.abs().max()), float(hi.abs().max())) > 20 * width:  # a collapsed variant
            ax.set_xscale("symlog", linthresh=width)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))  # symlog's default: 5.69127 x 10^-3
            ax.tick_params(axis="x", labelrotation=45)  # many decades: upright labels would overlap
            title += ", symlog"
        ax.set_title(title)
    axes[0].set_yticks(list(y), paired["algo"])
    axes[0].invert_yaxis()
    fig.suptitle(f"Each variant minus {reference} on the same {split} tasks (95% paired CI; orange: clear of 0)",
                 fontsize=8)
    return save(fig, figures, f"{name}_paired", made_from)


def setting_name(sweep: dict, run, algo: str | None) -> str:
    """<sweep name>[_<algo>]_<profile>[_r<rate>] from a finished run's resolved config (e.g. ablation_contention_r8)."""
    saved = load_yaml(run.dir / "config.yaml", "run config")
    try:
        cfg = upgrade(saved)
    except ConfigError as e:  # a value this version no longer offers
        sys.exit(f"error: {run.dir / 'config.yaml'}: {e}")
    base = f"{sweep.get('name', 'ablation')}{f'_{algo}' if algo else ''}"
    profile = config_profile(cfg)
    return f"{base}_{profile.tag(profile.parse(cfg.get(cfg['profile']))) or cfg['profile']}"


def main(argv: list[str] | None = None) -> list[Path]:
    args = parse_args(argv)
    with writing(args):
        return write_tables(args)


def write_tables(args: argparse.Namespace) -> list[Path]:
    """The ablation tables and figure of one sweep (see the module's docstring)."""
    sweep = load_sweep(args.sweep, trains=False)  # reads its results only
    if args.results is not None:
        sweep["results"] = str(args.results.resolve())
    args.results = Path(sweep["results"])
    runs = [r for r in expand(sweep) if r.variant]
    if not runs:
        sys.exit(f"error: {args.sweep}: the sweep has no `variants` to compare")
    algos = list(dict.fromkeys(r.algo for r in runs))
    if args.algo is None and len(algos) > 1:
        sys.exit(f"error: {args.sweep} trains {', '.join(algos)}: choose one with --algo")
    if args.algo is not None and args.algo not in algos:
        sys.exit(f"error: --algo {args.algo}: the sweep trains {', '.join(algos)}")
    runs = [r for r in runs if args.algo is None or r.algo == args.algo]
    episodes, absent = load_episodes(runs)
    if args.heuristics is not None:
        missing([args.heuristics / "episodes.csv"])
        references = read_episodes(args.heuristics / "episodes.csv")
        # the heuristics at the runs' own evaluation seed (evaluate_all evaluates several)
        same_seed = references["train_seed"].isna() & references["eval_seed"].isin(set(episodes["eval_seed"]))
        episodes = pd.concat([episodes, references[same_seed]], ignore_index=True)
    if args.reference not in set(episodes["algo"]):
        sys.exit(f"error: the reference variant {args.reference!r} has no finished run")
    order = list(dict.fromkeys(r.variant for r in runs if r.variant in set(episodes["algo"])))
    order += sort_algos(set(episodes["algo"]) - set(order))  # the references, after the variants
    summary = summarize_runs(episodes, n_servers=0).set_index("algo").loc[order].reset_index()  # (not in the table)
    md, table, tex = build(summary)
    paired = paired_table(episodes, args.reference, args.reward_margin, args.p99_margin).set_index("algo")
    paired = paired.loc[[v for v in order if v != args.reference]].reset_index()
    evaluated = set(episodes["run"])
    name = setting_name(sweep, next(r for r in runs if r.dir.name in evaluated), args.algo if len(algos) > 1 else None)
    note = "" if not absent else "\nMissing evaluations (runs not finished):\n" + "".join(f"- {a}\n" for a in absent)
    out = figures_dir(args)
    text = paired_markdown(paired, args.reference)
    print(md + note + "\n" + text)
    made_from = inputs(args.results, sweep=str(args.sweep.resolve()), algo=args.algo, reference=args.reference,
                       heuristics=None if args.heuristics is None else str(args.heuristics.resolve()),
                       reward_margin=args.reward_margin, p99_margin=args.p99_margin)
    return report_written([write_table(out / f"{name}.csv", table, made_from),
                           write_table(out / f"{name}_paired.csv", paired, made_from),
                           *write_outputs({out / f"{name}.md": md + note, out / f"{name}.tex": tex,
                                           out / f"{name}_paired.md": text}, made_from),
                           *plot_paired(paired, args.reference, out, name, runs[0].eval_split, made_from)])


if __name__ == "__main__":
    main()
