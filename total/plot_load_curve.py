"""Load curve: mean and P99 episode latency against the arrival rate, one line per scheduler, with
95% bootstrap CI bands, and where each scheduler saturates.

    python total/evaluate_all.py --profile contention --arrival-rate 2    # ... one evaluation per rate
    python total/plot_load_curve.py [--rates 2 4 8 12 16] [--results DIR] [--figures DIR] [--region Server1_Trap]

Reads results/eval/<region>_contention_r<rate>/episodes.csv for every rate found (or --rates) and
writes <figures>/load_curve_<region>.{png,pdf} plus load_curve_<region>.csv (the plotted numbers and
each point's saturation test). CIs are those of summary.csv (schedkit.stats: training runs and the
shared tasks resampled; tasks only for a heuristic or a single seed). The y axes are logarithmic
when the plotted values span more than 20x.

Saturation (open marker, and "sat" in the CSV): the queues grow without bound. Measured from
episodes.csv, whose `episode` index is the arrival order of the measured workflows, a scheduler is
saturated at a rate when either
- its queue grows: in at least half of its (run, eval seed) evaluations, the mean queue wait
  (`queue_ms`) of the last third of episodes exceeds the first third's by more than 50% AND by
  more than 1 s (a stable queue keeps both thirds alike; an unbounded one grows with arrival
  order; the 1 s floor ignores relative growth of negligible queues), or
- its mean latency exceeds 10x the lowest scheduler's mean at that rate (what a queue that grew
  during the warm-up already looks like: it can be flat within the measured window yet huge).
The first rule needs no other scheduler; the second needs no episode order.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgesim.contention import contention_tag
from schedkit.cli import arrival_rate_arg
from schedkit.stats import hierarchical_bootstrap_ci, hierarchical_bootstrap_percentile_ci, runs_array, task_clusters
from total.common import (
    eval_dir,
    figure_parser,
    figures_dir,
    inputs,
    label,
    line_style,
    missing,
    read_episodes,
    report_written,
    save,
    sort_algos,
    style,
    write_table,
    writing,
)

GROWTH_RATIO, GROWTH_MS, FAR_FACTOR = 1.5, 1000.0, 10.0


def find_rates(results: Path, regions: list[str]) -> list[float]:
    """Every rate with a tagged contention evaluation of these regions."""
    base = eval_dir(results, regions)
    pattern = re.compile(re.escape(base.name) + r"_contention_r([0-9.]+)$")
    rates = [float(m.group(1)) for p in base.parent.glob(base.name + "_contention_r*")
             if (m := pattern.match(p.name)) and (p / "episodes.csv").exists()]
    return sorted(rates)


def queue_growth(d: pd.DataFrame) -> tuple[float, float, float]:
    """(first-third mean queue, last-third mean queue, share of evaluations whose queue grows)."""
    firsts, lasts, growing = [], [], []
    for _, g in d.groupby([d["run"].fillna(""), "eval_seed"]):
        q = g.sort_values("episode")["queue_ms"].to_numpy(dtype=float)
        third = max(len(q) // 3, 1)
        first, last = q[:third].mean(), q[-third:].mean()
        firsts.append(first)
        lasts.append(last)
        growing.append(last > GROWTH_RATIO * first and last - first > GROWTH_MS)
    return float(np.mean(firsts)), float(np.mean(lasts)), float(np.mean(growing))


def load_table(results: Path, regions: list[str], rates: list[float]) -> pd.DataFrame:
    """One row per (scheduler, rate): mean and P99 latency with CIs, the queue thirds and saturation."""
    rows = []
    for rate in rates:
        src = eval_dir(results, regions, contention_tag(rate)) / "episodes.csv"
        episodes = read_episodes(src, need=("queue_ms",))
        at_rate = []
        for algo in sort_algos(episodes["algo"].unique()):
            d = episodes[episodes["algo"] == algo]
            lat, clusters = runs_array(d, "latency_ms"), task_clusters(d)
            row: dict[str, Any] = {"algo": algo, "rate": rate, "runs": len(lat), "episodes": len(d)}
            row["mean_ms"], row["mean_lo"], row["mean_hi"] = hierarchical_bootstrap_ci(lat, clusters=clusters)
            row["p99_ms"], row["p99_lo"], row["p99_hi"] = hierarchical_bootstrap_percentile_ci(lat, 99, n_boot=500,
                                                                                           clusters=clusters)
            row["queue_first_ms"], row["queue_last_ms"], row["growing_share"] = queue_growth(d)
            at_rate.append(row)
        lowest = min(r["mean_ms"] for r in at_rate)
        for r in at_rate:
            grows, far = r["growing_share"] >= 0.5, r["mean_ms"] > FAR_FACTOR * lowest
            r["saturated"] = grows or far
            r["reason"] = "; ".join(([f"queue grows ({r['queue_first_ms']:.0f} -> {r['queue_last_ms']:.0f} ms)"]
                                     if grows else []) + ([f"mean > {FAR_FACTOR:g}x the lowest"] if far else []))
        rows += at_rate
    return pd.DataFrame(rows)


CLOSE = 1.25  # the zoom row shows schedulers whose mean stays within 1.25x of the best at every rate


def competitive(table: pd.DataFrame) -> list[str]:
    """Schedulers whose mean latency stays within CLOSE x the best at every rate (the zoom row), or
    none when that is every scheduler (no zoom needed)."""
    best = table.groupby("rate")["mean_ms"].transform("min")
    ok = (table["mean_ms"] <= CLOSE * best).groupby(table["algo"]).all()
    close = sort_algos([a for a, good in ok.items() if good])
    return close if len(close) < table["algo"].nunique() else []


def panel(ax, table: pd.DataFrame, col: str, title: str, rates: list[float], algos: list[str]) -> None:
    """One latency statistic against the rate: a line and CI band per scheduler, open markers where
    it saturates; log y when the values span more than 20x."""
    shown = table[table["algo"].isin(algos)]
    for algo in algos:
        d = shown[shown["algo"] == algo].sort_values("rate")
        kw = line_style(algo)
        ax.fill_between(d["rate"], d[f"{col}_lo"], d[f"{col}_hi"], color=kw["color"], alpha=0.18, linewidth=0)
        ax.plot(d["rate"], d[f"{col}_ms"], markersize=3.5, label=label(algo), **kw)
        sat = d[d["saturated"].astype(bool)]
        ax.plot(sat["rate"], sat[f"{col}_ms"], kw["marker"], color=kw["color"], markerfacecolor="white",
                markersize=5, linestyle="none")
    values = shown[[f"{col}_lo", f"{col}_ms", f"{col}_hi"]].to_numpy()
    if values.min() > 0 and values.max() > 20 * values.min():
        from matplotlib.ticker import FuncFormatter, LogLocator
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(LogLocator(subs=(2.0, 5.0)))
        for axis_set in (ax.yaxis.set_major_formatter, ax.yaxis.set_minor_formatter):
            axis_set(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_xticks(rates)
    ax.set_xlabel("arrival rate (workflows/s per world)")
    ax.set_ylabel(f"{title.split(',')[0]} (ms)" + (", log scale" if ax.get_yscale() == "log" else ""))
    ax.set_title(title + ("" if "zoom" in title else ", 95% CI band"))


def draw(results: Path, figures: Path, regions: list[str], rates: list[float] | None = None) -> list[Path]:
    rates = rates or find_rates(results, regions)
    if not rates:
        missing([eval_dir(results, regions, "contention_r<rate>") / "episodes.csv"])
    missing([eval_dir(results, regions, contention_tag(r)) / "episodes.csv" for r in rates])
    table = load_table(results, regions, rates)
    plt = style()
    close = competitive(table)
    fig, axes = plt.subplots(2 if close else 1, 2, figsize=(7.0, 5.6 if close else 2.8), squeeze=False)
    fig.subplots_adjust(wspace=0.45, hspace=0.55)
    for ax, (col, title) in zip(axes[0], (("mean", "mean latency"), ("p99", "P99 latency"))):
        panel(ax, table, col, title, rates, sort_algos(table["algo"].unique()))
        if close:
            zoom = axes[1][list(axes[0]).index(ax)]
            panel(zoom, table, col, f"{title}, zoom: within {CLOSE:g}x of the best", rates, close)
    from matplotlib.lines import Line2D
    handles, labels = axes[0][0].get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", color="0.3", markerfacecolor="0.3", linestyle="none", markersize=3.5),
                Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none", markersize=5)]
    labels += ["filled: stable", "open: saturated"]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    fig.suptitle("Load curve. Saturated: queue wait grows >50% and >1 s from the first to the last third "
                 "of episodes, or mean > 10x the best", fontsize=7, y=1.03)
    name = "load_curve_" + "+".join(regions)
    made_from = inputs(results, regions, rates=rates)
    return save(fig, figures, name, made_from) + [write_table(figures / f"{name}.csv", table, made_from)]


def main(argv: list[str] | None = None) -> list[Path]:
    p = figure_parser(__doc__)
    p.add_argument("--rates", type=arrival_rate_arg, nargs="+", help="arrival rates to plot (default: every evaluated rate)")
    args = p.parse_args(argv)
    with writing(args):
        return report_written(draw(args.results, figures_dir(args), args.region, args.rates))


if __name__ == "__main__":
    main()
