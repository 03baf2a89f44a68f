"""Decision time and quality against the number of servers, one point per evaluated dataset.

    python total/plot_scalability.py [--results DIR] [--figures DIR]

Reads every paper-profile results/eval/<region>/summary.csv (total/evaluate_all.py on each
dataset size, e.g. Server1_Trap, Server2_Trap, Server3_Trap). Quality is the gap to the oracle's reward in percent.
With a single dataset evaluated, the figure has one point per scheduler, and the script says which
sizes are missing.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from edgesim.paper import DEFAULT
from total.common import color, figure_main, inputs, label, read_summary, save, sort_algos, style


def draw(results: Path, figures: Path, regions: list[str]) -> list[Path]:
    paths = sorted((results / "eval").glob("*/summary.csv"))
    if not paths:
        sys.exit(f"error: missing input files: no {results}/eval/<region>/summary.csv (run total/evaluate_all.py)")
    rows = []
    for p in paths:
        s = read_summary(p)
        if "profile" in s and (s["profile"] != DEFAULT).any():
            continue  # contention evaluations measure load, not size
        if "oracle" in set(s["algo"]):
            oracle = float(s.loc[s["algo"] == "oracle", "reward"].iloc[0])
            s["gap_pct"] = 100 * (oracle - s["reward"]) / abs(oracle)
        rows.append(s.assign(dataset=p.parent.name))
    data = pd.concat(rows, ignore_index=True)
    sizes = sorted(data["n_servers"].unique())
    if len(sizes) < 2:
        print(f"note: only {sizes} servers evaluated ({[p.parent.name for p in paths]}); evaluate larger datasets "
              "(data1/README.md) for a trend")
    plt = style()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(7.0, 2.4))
    for algo in sort_algos(data["algo"].unique()):
        d = data[data["algo"] == algo].sort_values("n_servers")
        ax1.plot(d["n_servers"], d["decision_ms"], "o-", color=color(algo), label=label(algo), markersize=3)
        if "gap_pct" in d:
            ax2.plot(d["n_servers"], d["gap_pct"], "o-", color=color(algo), markersize=3)
    ax1.set_yscale("log")
    ax1.set_ylabel("decision time per step (ms, batched)")
    ax2.set_ylabel("reward gap to the oracle (%)")
    for ax in (ax1, ax2):
        ax.set_xlabel("servers")
    ax1.legend(frameon=False, ncol=2, fontsize=6)
    fig.suptitle("Scalability: decision time and quality vs number of servers", fontsize=8, y=1.04)
    return save(fig, figures, "scalability", inputs(results))


if __name__ == "__main__":
    figure_main(draw, __doc__)
