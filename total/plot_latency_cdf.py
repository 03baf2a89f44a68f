"""Latency CDF per scheduler (episodes pooled over seeds) with P50 / P90 / P99 markers, and a zoom on
the tail (P90 to P99.9) of the schedulers near the best.

    python total/plot_latency_cdf.py [--results DIR] [--figures DIR] [--tag contention_r8]

Every scheduler has its own line style as well as its colour (common.line_style: learned methods
solid, heuristics dashed or dotted), so curves with close colours (TopoFreeRL, greedy,
greedy_queue) or curves on top of each other stay distinguishable. The tail panel plots 1 - CDF on
a log axis for the schedulers whose P90 is within 3x of the lowest P90: the region where headline
differences (P99) live and the full CDF puts them one pixel apart.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from total.common import figure_main, inputs, label, line_style, load_eval, save, sort_algos, style

QUANTILES = {50: "o", 90: "s", 99: "^"}
TAIL_NEAR = 3.0  # the tail panel shows schedulers whose P90 is within this factor of the lowest P90


def cdf_panels(ax, tail, values: dict[str, np.ndarray], what: str) -> None:
    """Each scheduler's CDF of `values` on `ax` (P50 / P90 / P99 markers; log x when the medians span over
    10x), and on `tail` 1 - CDF from P90 to P99.9 (log) of the schedulers whose P90 is within TAIL_NEAR x of
    the lowest. `what` names the quantity, with its unit, on the x axes."""
    values = {a: np.sort(x) for a, x in values.items()}
    p90 = {a: np.percentile(x, 90) for a, x in values.items()}
    near = [a for a in values if p90[a] <= TAIL_NEAR * min(p90.values())]
    for algo, x in values.items():
        kw = line_style(algo)
        y = np.arange(1, len(x) + 1) / len(x)
        ax.step(x, y, where="post", color=kw["color"], linestyle=kw["linestyle"], label=label(algo))
        for q, marker in QUANTILES.items():
            ax.plot(np.percentile(x, q), q / 100, marker, color=kw["color"], markersize=3.5)
        if algo in near:
            survival = 1 - np.arange(len(x)) / len(x)  # P(value >= x_i)
            keep = survival <= 0.1
            tail.step(x[keep], survival[keep], where="post", color=kw["color"], linestyle=kw["linestyle"])
            tail.plot(np.percentile(x, 99), 0.01, "^", color=kw["color"], markersize=3.5)
    medians = [float(np.median(x)) for x in values.values()]
    if max(medians) > 10 * min(medians):  # e.g. load-blind schedulers under contention: seconds vs minutes
        ax.set_xscale("log")
    ax.set_xlabel(what + (", log scale" if ax.get_xscale() == "log" else ""))
    n = min(len(x) for x in values.values())
    tail.set_yscale("log")
    tail.set_ylim(max(1e-3, 1 / n), 0.1)
    ticks = [t for t in (0.1, 0.01, 0.001) if t >= max(1e-3, 1 / n)]
    tail.set_yticks(ticks, [f"P{100 * (1 - t):g}" for t in ticks])
    tail.minorticks_off()
    tail.set_xlim(min(p90[a] for a in near), max(values[a][-1] for a in near) * 1.02)
    tail.set_xlabel(what)
    tail.set_ylabel("1 - CDF (log)")


def draw(results: Path, figures: Path, regions: list[str], tag: str = "") -> list[Path]:
    episodes, _ = load_eval(results, regions, tag)
    plt = style()
    fig, (ax, tail) = plt.subplots(1, 2, figsize=(7.0, 2.6), gridspec_kw={"wspace": 0.35})
    algos = sort_algos(episodes["algo"].unique())
    cdf_panels(ax, tail, {a: episodes.loc[episodes["algo"] == a, "latency_ms"].to_numpy() for a in algos},
               "episode latency (ms)")
    ax.set_ylabel("fraction of episodes")
    ax.set_title("Latency CDF (markers: P50 o, P90 s, P99 ^)")
    tail.set_title(f"tail zoom, P90 to P99.9 (P90 within {TAIL_NEAR:g}x of the best)")
    fig.legend(*ax.get_legend_handles_labels(), frameon=False, fontsize=6, loc="center left",
               bbox_to_anchor=(0.92, 0.5), handlelength=2.8)
    return save(fig, figures, "latency_cdf" + (f"_{tag}" if tag else ""), inputs(results, regions))


if __name__ == "__main__":
    figure_main(draw, __doc__, tagged=True)
