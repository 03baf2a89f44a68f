"""Learning curves: reward (fixed evaluation weights), latency and cost per epoch, mean over training
seeds, the heuristics and the oracle as horizontal lines. With >= 2 seeds the band is a 95% bootstrap
CI over seeds (whole seeds resampled, every epoch jointly); a method with one seed gets no band (an
interval from one seed says nothing about seed-to-seed variation), and its legend entry says "1 seed".

    python total/plot_learning_curves.py [--results DIR] [--figures DIR] [--smooth 5]

Curves of the PPO methods are their training rollouts (stochastic policy, train split); STARK's
are its per-epoch validation (greedy policy, held-out train tasks). Horizontal lines are the
test-split evaluation of the heuristics (total/evaluate_all.py). Every curve gets the same
trailing moving average (--smooth epochs, documented in the title); nothing else is changed.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from schedkit.cli import epochs_arg
from schedkit.config import ConfigError, load_yaml, upgrade
from schedkit.registry import heuristics, learned, old_results_folders
from schedkit.stats import stratified_bootstrap_means
from total.common import (
    INTEGER,
    METRICS_OPTIONAL,
    color,
    eval_dir,
    figure_parser,
    figures_dir,
    inputs,
    label,
    read_summary,
    read_table,
    report_written,
    save,
    sort_algos,
    style,
    writing,
)

PANELS = [("reward", "reward (weights 0.45/0.40/0.15)"), ("latency_ms", "latency (ms)"), ("cost", "cost ($)")]
STARK_COLUMNS = {"reward": "val_reward", "latency_ms": "val_latency_ms", "cost": "val_cost"}


def metrics_by_algo(results: Path) -> dict[str, list[pd.DataFrame]]:
    """Every run's metrics.csv per algorithm; two runs of one (seed, regions, profile), by their
    config.yaml, count once: the newest metrics.csv is kept (as total/evaluate_all.py does)."""
    found = {}
    for algo in learned():
        newest: dict[tuple, Path] = {}
        for p in sorted((results / algo).glob("*/metrics.csv")):
            if p.parent.is_symlink():
                continue
            cfg_file = p.parent / "config.yaml"
            saved = load_yaml(cfg_file, "run config") if cfg_file.exists() else {}
            try:
                cfg = upgrade(saved) if saved else {}
            except ConfigError as e:  # a value this version no longer offers
                sys.exit(f"error: {cfg_file}: {e}")
            key = (cfg.get("seed", p.parent.name), str(cfg.get("regions")), cfg.get("profile"))
            if key not in newest or p.stat().st_mtime > newest[key].stat().st_mtime:
                newest[key] = p
        if newest:
            found[algo] = [read_table(p, "metrics.csv", {"epoch": INTEGER}, METRICS_OPTIONAL)
                           for p in sorted(newest.values())]
    return found


def draw(results: Path, figures: Path, regions: list[str], smooth: int = 5) -> list[Path]:
    old = old_results_folders(results)
    if old:
        sys.exit(f"error: {old[0]}")
    runs = metrics_by_algo(results)
    if not runs:
        sys.exit(f"error: missing input files: no {results}/<Algo>/<run>/metrics.csv for any of {learned()}")
    summary_path = eval_dir(results, regions) / "summary.csv"
    summary = read_summary(summary_path) if summary_path.exists() else None
    if summary is None:
        print(f"note: {summary_path} is missing, so no heuristic lines (run total/evaluate_all.py)")
    plt = style()
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.4))
    banded: set[int] = set()  # seed counts of the curves that got a band
    for ax, (metric, title) in zip(axes, PANELS):
        for algo in sort_algos(runs):
            col = STARK_COLUMNS[metric] if algo == "STARK" else metric
            frames = [r for r in runs[algo] if col in r.columns]
            if not frames:  # no run of this method logs the metric
                continue
            n = min(len(r) for r in frames)
            curves = np.stack([r[col].to_numpy()[:n] for r in frames])  # (seeds, epochs)
            curves = pd.DataFrame(curves.T).rolling(smooth, min_periods=1).mean().to_numpy().T
            x = np.arange(n)
            c = color(algo)
            name = label(algo) + (" (val)" if algo == "STARK" else "")
            seeds = f" ({len(curves)} seeds)" if len(curves) > 1 else ", 1 seed: no band"
            ax.plot(x, curves.mean(0), color=c, label=name + seeds)
            if len(curves) > 1:
                boot = stratified_bootstrap_means([curves])  # resample whole seeds (rows), every epoch jointly
                lo, hi = np.quantile(boot, [0.025, 0.975], axis=0)
                ax.fill_between(x, lo, hi, color=c, alpha=0.2, linewidth=0)
                banded.add(len(curves))
        if summary is not None:
            for _, row in summary[summary["algo"].isin(heuristics())].iterrows():
                ax.axhline(row[metric], color=color(row["algo"]), linestyle="--", linewidth=0.8,
                           label=f"{label(row['algo'])} (test)")
        ax.set_xlabel("epoch")
        ax.set_title(title)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=4, frameon=False, fontsize=7)
    seeds = "/".join(str(k) for k in sorted(banded))
    band = (f"band: 95% bootstrap CI over {seeds} seeds" if banded else "one seed per method: no band")
    fig.suptitle(f"Learning curves: mean over seeds, {band}; {smooth}-epoch moving average on every curve",
                 fontsize=8, y=1.04)
    return save(fig, figures, "learning_curves", inputs(results, regions, smooth=smooth))


def main(argv: list[str] | None = None) -> list[Path]:
    p = figure_parser(__doc__)
    p.add_argument("--smooth", type=epochs_arg, default=5, help="moving-average window in epochs, same for every curve")
    args = p.parse_args(argv)
    with writing(args):
        return report_written(draw(args.results, figures_dir(args), args.region, args.smooth))


if __name__ == "__main__":
    main()
