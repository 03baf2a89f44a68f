"""Where latency and cost come from, per scheduler: stacked network / compute / queue latency
per episode, and the compute cost beside it.

    python total/plot_cost_breakdown.py [--results DIR] [--figures DIR]

The paper profile charges only compute (per-token) cost; network transfer has latency but no
price, so the cost panel has a single component. The latency components are neutral greys with
hatches, never a scheduler's colour; the cost bars carry the scheduler colours.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from total.common import color, figure_main, inputs, label, load_eval, save, sort_algos, style

# Neutral greys with hatches, so no latency component shares a colour with a scheduler (COLORS)
PARTS = [("network_ms", "network", "#FFFFFF", "////"), ("compute_ms", "compute", "#E3E3E3", ""),
         ("queue_ms", "queue", "#3A3A3A", "....")]


def draw(results: Path, figures: Path, regions: list[str], tag: str = "") -> list[Path]:
    episodes, _ = load_eval(results, regions, tag, need=tuple(p for p, *_ in PARTS))
    algos = sort_algos(episodes["algo"].unique())
    means = episodes.groupby("algo")[[p for p, *_ in PARTS] + ["cost"]].mean().loc[algos]
    plt = style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.0, 2.6), gridspec_kw={"width_ratios": [3, 2]})
    x = np.arange(len(algos))
    bottom = np.zeros(len(algos))
    for col, name, shade, hatch in PARTS:
        ax1.bar(x, means[col], bottom=bottom, color=shade, hatch=hatch, edgecolor="#252525", linewidth=0.5,
                label=name, width=0.7)
        bottom += means[col].to_numpy()
    ax1.set_ylabel("mean latency per episode (ms)")
    ax1.set_title("Latency breakdown")
    ax1.legend(frameon=False, title="latency component", title_fontsize=7)
    ax2.bar(x, means["cost"], color=[color(a) for a in algos], width=0.7)
    ax2.set_ylabel("mean compute cost per episode ($)")
    ax2.set_title("Cost (compute only in this profile)")
    for ax in (ax1, ax2):
        ax.set_xticks(x, [label(a) for a in algos], rotation=45, ha="right")
    return save(fig, figures, "cost_breakdown" + (f"_{tag}" if tag else ""), inputs(results, regions))


if __name__ == "__main__":
    figure_main(draw, __doc__, tagged=True)
