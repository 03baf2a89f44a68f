"""DWA weight trajectories (latency, cost, switch) per epoch, mean over seeds with min-max band,
for every algorithm that logs them.

    python total/plot_dwa.py [--results DIR] [--figures DIR]
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from total.common import color, figure_main, inputs, label, save, sort_algos, style
from total.plot_learning_curves import metrics_by_algo

WEIGHTS = [("w_latency", "latency weight"), ("w_cost", "cost weight"), ("w_switch", "switch weight")]


def draw(results: Path, figures: Path, regions: list[str]) -> list[Path]:
    runs = {a: r for a, r in metrics_by_algo(results).items() if all("w_latency" in m.columns for m in r)}
    if not runs:
        sys.exit(f"error: missing input files: no {results}/<Algo>/<run>/metrics.csv with DWA weights (w_latency)")
    plt = style()
    fig, axes = plt.subplots(1, 3, figsize=(7.0, 2.2), sharey=True)
    for ax, (col, title) in zip(axes, WEIGHTS):
        for algo in sort_algos(runs):
            n = min(len(r) for r in runs[algo])
            w = np.stack([r[col].to_numpy()[:n] for r in runs[algo]])
            ax.plot(np.arange(n), w.mean(0), color=color(algo), label=label(algo))
            ax.fill_between(np.arange(n), w.min(0), w.max(0), color=color(algo), alpha=0.2, linewidth=0)
        ax.set_title(title)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("weight")
    axes[0].legend(frameon=False)
    fig.suptitle("Dynamic Weight Adjustment: mean over seeds, band = min to max", fontsize=8, y=1.04)
    return save(fig, figures, "dwa_weights", inputs(results))


if __name__ == "__main__":
    figure_main(draw, __doc__)
