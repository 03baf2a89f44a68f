"""Latency CDF per scheduler (episodes pooled over seeds) with P50 / P90 / P99 markers.

    python total/plot_latency_cdf.py [--results DIR] [--figures DIR]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import COLORS, figure_main, label, load_eval, save, sort_algos, style

QUANTILES = {50: "o", 90: "s", 99: "^"}


def draw(results: Path, figures: Path, regions: list[str], tag: str = "") -> list[Path]:
    episodes, _ = load_eval(results, regions, tag)
    plt = style()
    fig, ax = plt.subplots(figsize=(3.5, 2.6))
    for algo in sort_algos(episodes["algo"].unique()):
        x = np.sort(episodes.loc[episodes["algo"] == algo, "latency_ms"].to_numpy())
        y = np.arange(1, len(x) + 1) / len(x)
        ax.step(x, y, where="post", color=COLORS.get(algo), label=label(algo))
        for q, marker in QUANTILES.items():
            v = np.percentile(x, q)
            ax.plot(v, q / 100, marker, color=COLORS.get(algo), markersize=3.5)
    medians = episodes.groupby("algo")["latency_ms"].median()
    if medians.max() > 10 * medians.min():  # e.g. load-blind schedulers under contention: seconds vs minutes
        ax.set_xscale("log")
    ax.set_xlabel("episode latency (ms)" + (", log scale" if ax.get_xscale() == "log" else ""))
    ax.set_ylabel("fraction of episodes")
    ax.set_title("Latency CDF (markers: P50 o, P90 s, P99 ^)")
    ax.legend(frameon=False, fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return save(fig, figures, "latency_cdf" + (f"_{tag}" if tag else ""))


if __name__ == "__main__":
    figure_main(draw, __doc__, tagged=True)
