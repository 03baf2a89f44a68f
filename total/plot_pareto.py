"""Latency vs cost per scheduler: the mean with its 95% confidence ellipse (a joint bootstrap that
resamples training runs and the shared tasks, schedkit.stats), to read the trade-off each scheduler
lands on. Each scheduler keeps its marker from the line figures, so a tuned variant (same colour)
stays apart. The Pareto front of the means (no other scheduler has both lower mean latency and
lower mean cost) is drawn in both panels: its members ringed, joined by a grey step line. One
legend, below both panels (inside, it would hide the zoom's ellipses). Where the latencies span
more than a factor of 20 (load-blind schedulers under contention) the full panel's latency axis is
logarithmic.

    python total/plot_pareto.py [--results DIR] [--figures DIR] [--tag contention_r8]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from schedkit.stats import hierarchical_bootstrap_means, runs_array, task_clusters
from total.common import color, figure_main, inputs, label, line_style, load_eval, save, sort_algos, style

CHI2_95_2DOF = 5.991


def pareto_front(points: dict[str, np.ndarray]) -> list[str]:
    """Schedulers whose (latency, cost) mean no other scheduler beats on both, by increasing latency."""
    front, cheapest = [], np.inf
    for algo in sorted(points, key=lambda a: tuple(points[a])):
        if points[algo][1] < cheapest:
            front.append(algo)
            cheapest = points[algo][1]
    return front


def latency_scale(latencies: list[float]) -> str:
    """'log' where the mean latencies span more than a factor of 20 (under contention the load-blind
    schedulers take minutes, the queue-aware ones seconds), else 'linear'."""
    return "log" if max(latencies) > 20 * min(latencies) else "linear"


def draw(results: Path, figures: Path, regions: list[str], tag: str = "") -> list[Path]:
    from matplotlib.patches import Ellipse
    episodes, _ = load_eval(results, regions, tag)
    ellipses = {}
    for algo in sort_algos(episodes["algo"].unique()):
        d = episodes[episodes["algo"] == algo]
        x = np.stack([runs_array(d, "latency_ms"), runs_array(d, "cost")], axis=-1)  # (runs, eval seeds, tasks, 2)
        boot = hierarchical_bootstrap_means(x, clusters=task_clusters(d))
        vals, vecs = np.linalg.eigh(np.cov(boot.T))
        w, h = 2 * np.sqrt(CHI2_95_2DOF * np.maximum(vals[::-1], 0))
        ellipses[algo] = (x.mean(axis=(0, 1, 2)), w, h, np.degrees(np.arctan2(vecs[1, 1], vecs[0, 1])))
    front = pareto_front({a: e[0] for a, e in ellipses.items()})
    best = min(c[0] for c, *_ in ellipses.values())
    near = [a for a, (c, *_) in ellipses.items() if c[0] <= 1.1 * best]  # the zoomed panel: within 10% of the best
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(7.0, 2.8))
    for ax, algos, title in ((axes[0], list(ellipses), "all schedulers"),
                             (axes[1], near, "zoom: within 10% of the best")):
        for algo in algos:
            centre, w, h, angle = ellipses[algo]
            c = color(algo)
            ax.add_patch(Ellipse(centre, w, h, angle=angle, facecolor=c, alpha=0.15, edgecolor=c))
            ax.plot(*centre, line_style(algo)["marker"], color=c, markersize=4, linestyle="none", label=label(algo))
        on_front = [ellipses[a][0] for a in front if a in algos]
        if on_front:
            xs, ys = zip(*on_front)
            ax.step(xs, ys, where="post", color="0.45", linestyle="--", linewidth=0.8, zorder=0)
            ax.plot(xs, ys, "o", markerfacecolor="none", markeredgecolor="0.3", markersize=7, markeredgewidth=0.8,
                    linestyle="none", label="Pareto front (means)")
        ax.autoscale_view()
        ax.set_xscale(latency_scale([ellipses[a][0][0] for a in algos]))
        ax.set_xlabel("mean episode latency (ms)")
        ax.set_ylabel("mean episode cost ($)")
        ax.set_title(title)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=5,
               frameon=False, fontsize=6)
    fig.suptitle("Latency vs cost: means with 95% confidence ellipses", fontsize=8, y=1.02)
    return save(fig, figures, "pareto" + (f"_{tag}" if tag else ""), inputs(results, regions))


if __name__ == "__main__":
    figure_main(draw, __doc__, tagged=True)
