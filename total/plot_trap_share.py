"""Trap share: how far each scheduler falls behind the oracle as more of the servers are traps.

    python total/evaluate_all.py --data results/claims/data/trap_share --region Share20 \\
        --results results/claims/trap_share                       # ... one per share
    python total/plot_trap_share.py [--regions Share0 Share10 Share20 Share30] [--results DIR] [--figures DIR]

Each region is one dataset of the same size whose only difference is the share of trap servers
(data1/generate.py --trap-fraction; total/reproduce_claims.py makes them), with its own models
trained on it. Per share and scheduler: the reward minus the oracle's on the same test tasks and
draws (paired 95% CI over training seeds and tasks, total/compare.py) and the trap hits per
workflow. Writes <figures>/trap_share.{png,pdf,csv,md}.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd

from schedkit.cli import region_name
from total.common import (
    add_output_flags,
    figures_dir,
    inputs,
    label,
    line_style,
    load_eval,
    report_written,
    save,
    sort_algos,
    style,
    write_outputs,
    write_table,
    writing,
)
from total.compare import paired_table
from total.reproduce import study_margins

REGIONS = ("Share0", "Share10", "Share20", "Share30")
REFERENCE = "oracle"


def share_region(share: float) -> str:
    """0.2 -> Share20: the region name of a trap share (total/reproduce_claims.py makes them)."""
    return f"Share{round(100 * share)}"


def share_of(region: str) -> float:
    """Share20 -> 0.2: the trap share a region's name states (total/reproduce_claims.py's naming)."""
    m = re.fullmatch(r"Share(\d+)", region)
    if m is None:
        raise SystemExit(f"error: region {region!r}: expected a name Share<percent>, e.g. Share20")
    return int(m.group(1)) / 100


def load_table(results: Path, regions: list[str]) -> pd.DataFrame:
    """One row per (share, scheduler): its paired reward difference to the oracle and its trap hits."""
    rows = []
    margins = study_margins("claims")  # the verdicts are not drawn; paired_table computes them anyway
    for region in regions:
        episodes, summary = load_eval(results, [region], need=("trap_hits",))
        paired = paired_table(episodes, REFERENCE, margins.reward, margins.p99_latency).set_index("algo")
        hits = episodes.groupby("algo")["trap_hits"].mean()
        oracle_reward = abs(float(summary.loc[summary["algo"] == REFERENCE, "reward"].iloc[0]))
        for _, s in summary.iterrows():
            algo = s["algo"]
            diff = {k: 0.0 if algo == REFERENCE else float(paired.loc[algo, k])
                    for k in ("d_reward", "d_reward_lo", "d_reward_hi")}
            rows.append({"region": region, "trap_share": share_of(region), "algo": algo, "runs": s["runs"],
                         "reward": s["reward"], "reward_lo": s["reward_lo"], "reward_hi": s["reward_hi"], **diff,
                         "gap_pct": -100 * diff["d_reward"] / oracle_reward,
                         "latency_ms": s["latency_ms"], "cost": s["cost"], "trap_hits": float(hits[algo])})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """Reward minus the oracle's [paired 95% CI] and trap hits per workflow, a column per share."""
    shares = sorted(table["trap_share"].unique())
    head = "| scheduler | " + " | ".join(f"{100 * s:g}% traps" for s in shares) + " |\n|---|" + "---|" * len(shares)
    lines = [head]
    for algo in sort_algos(table["algo"].unique()):
        cells = []
        for s in shares:
            r = table[(table["algo"] == algo) & (table["trap_share"] == s)]
            if r.empty:
                cells.append("")
                continue
            r = r.iloc[0]
            diff = "0 (reference)" if algo == REFERENCE else (
                f"{r['d_reward']:+.4f} [{r['d_reward_lo']:+.4f}, {r['d_reward_hi']:+.4f}]")
            cells.append(f"{diff}; {r['trap_hits']:.2f} hits")
        lines.append(f"| {label(algo)} | " + " | ".join(cells) + " |")
    return ("Reward minus the oracle's on the same test tasks [paired 95% CI over training seeds and tasks]; "
            "trap hits per workflow.\n\n" + "\n".join(lines) + "\n")


def draw(results: Path, figures: Path, regions: list[str]) -> list[Path]:
    table = load_table(results, regions)
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.7), gridspec_kw={"wspace": 0.3})
    algos = sort_algos(table["algo"].unique())
    for i, algo in enumerate(algos):
        d = table[table["algo"] == algo].sort_values("trap_share")
        kw = line_style(algo)
        x = 100 * d["trap_share"] + (i - (len(algos) - 1) / 2) * 0.3  # side by side, CIs stay visible
        axes[0].errorbar(x, d["d_reward"], yerr=[d["d_reward"] - d["d_reward_lo"], d["d_reward_hi"] - d["d_reward"]],
                         color=kw["color"], linestyle=kw["linestyle"], marker=kw["marker"], markersize=3.5,
                         capsize=1.5, elinewidth=0.7, label=label(algo))
        axes[1].plot(x, d["trap_hits"], color=kw["color"], linestyle=kw["linestyle"], marker=kw["marker"],
                     markersize=3.5, label=label(algo))
    axes[0].set_yscale("symlog", linthresh=0.01)
    axes[0].set_ylabel("reward minus the oracle's (symlog)")
    axes[0].set_title("reward gap to the oracle, paired 95% CI")
    axes[1].set_ylabel("trap hits per workflow")
    axes[1].set_title("trap hits")
    for ax in axes:
        ax.set_xlabel("share of trap servers (%)")
        ax.set_xticks([100 * s for s in sorted(table["trap_share"].unique())])
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    made_from = inputs(results, regions)
    return [*save(fig, figures, "trap_share", made_from), write_table(figures / "trap_share.csv", table, made_from),
            *write_outputs({figures / "trap_share.md": markdown(table)}, made_from)]


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_flags(p)
    p.add_argument("--regions", nargs="+", type=region_name, default=list(REGIONS),
                   help=f"one evaluated region per trap share, named Share<percent> (default: {' '.join(REGIONS)})")
    args = p.parse_args(argv)
    with writing(args):
        return report_written(draw(args.results, figures_dir(args), args.regions))


if __name__ == "__main__":
    main()
