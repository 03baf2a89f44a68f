"""Latency vs cost per scheduler: the mean with its 95% confidence ellipse (a joint stratified
bootstrap over runs and episodes), to read the trade-off each scheduler lands on.

    python total/plot_pareto.py [--results DIR] [--figures DIR]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common import COLORS, figure_main, label, load_eval, save, sort_algos, style

from schedkit.stats import stratified_bootstrap_means  # noqa: E402

CHI2_95_2DOF = 5.991


def draw(results: Path, figures: Path, regions: list[str], tag: str = "") -> list[Path]:
    from matplotlib.patches import Ellipse
    episodes, _ = load_eval(results, regions, tag)
    ellipses = {}
    for algo in sort_algos(episodes["algo"].unique()):
        d = episodes[episodes["algo"] == algo]
        groups = [g[["latency_ms", "cost"]].to_numpy() for _, g in d.groupby(["train_seed", "eval_seed"], dropna=False)]
        boot = stratified_bootstrap_means(groups)
        vals, vecs = np.linalg.eigh(np.cov(boot.T))
        w, h = 2 * np.sqrt(CHI2_95_2DOF * np.maximum(vals[::-1], 0))
        ellipses[algo] = (np.mean([g.mean(0) for g in groups], 0), w, h, np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
    best = min(c[0] for c, *_ in ellipses.values())
    near = [a for a, (c, *_) in ellipses.items() if c[0] <= 1.1 * best]  # the zoomed panel: within 10% of the best
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    for ax, algos, title in ((axes[0], list(ellipses), "all schedulers"),
                             (axes[1], near, "zoom: within 10% of the best")):
        for algo in algos:
            centre, w, h, angle = ellipses[algo]
            color = COLORS.get(algo)
            ax.add_patch(Ellipse(centre, w, h, angle=angle, facecolor=color, alpha=0.15, edgecolor=color))
            ax.plot(*centre, "o", color=color, markersize=3.5, label=label(algo))
        ax.autoscale_view()
        ax.set_xlabel("mean episode latency (ms)")
        ax.set_ylabel("mean episode cost ($)")
        ax.set_title(title)
    axes[0].legend(frameon=False, ncol=2)
    fig.suptitle("Latency vs cost: means with 95% confidence ellipses", fontsize=8, y=1.02)
    return save(fig, figures, "pareto" + (f"_{tag}" if tag else ""))


if __name__ == "__main__":
    figure_main(draw, __doc__, tagged=True)
