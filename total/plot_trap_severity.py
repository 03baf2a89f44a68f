"""Trap severity: reward and P99 latency of every scheduler against the trap surcharge scale, with
95% CIs, at one arrival rate.

    python total/evaluate_all.py --profile contention --arrival-rate 8 --trap-surcharge-scale 4   # ... one per scale
    python total/plot_trap_severity.py [--rate 8] [--scales 0 1 4 16] [--results DIR] [--figures DIR]

Most trap hits have no link row between the two servers and pay a flat 100 or 200 ms; the scale
multiplies that delay (1 is the default, the world every model is evaluated in; the study's TopoFreeRL
trains without the delay, `train_env`, the others at 1). Scale 1 reads the plain
evaluation `<region>_contention_r<rate>`, any other `<region>_contention_r<rate>_surcharge<X>`.
The learned schedulers meet the other scales unseen (TopoFreeRL's greedy_queue prior reads the true
delay; the other networks' trap features do not change), while the model-based heuristics (greedy
family, lookahead, the oracle) plan with the true delay: the figure shows which schedulers' decisions
hold up as traps get worse.
Schedulers whose mean latency is over 10x the best at scale 1 (collapsed: load-blind rules) are
left out of the panels and kept in the CSV. Writes <figures>/trap_severity_<region>_r<rate>.{png,pdf,csv}.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from edgesim.contention import contention_tag
from schedkit.cli import arrival_rate_arg, region_name, surcharge_scale_arg
from total.common import (
    add_output_flags,
    eval_dir,
    figures_dir,
    inputs,
    label,
    line_style,
    missing,
    read_summary,
    report_written,
    save,
    sort_algos,
    style,
    write_table,
    writing,
)

FAR_FACTOR = 10.0


def load_table(results: Path, regions: list[str], rate: float, scales: list[float]) -> pd.DataFrame:
    """One row per (scheduler, scale) of the summaries, with `shown` (not collapsed at scale 1)."""
    files = [eval_dir(results, regions, contention_tag(rate, surcharge=None if s == 1 else s)) / "summary.csv"
             for s in scales]
    missing(files)
    table = pd.concat([read_summary(f).assign(scale=s) for f, s in zip(files, scales)], ignore_index=True)
    base = table[table["scale"] == (1 if 1 in scales else scales[0])].set_index("algo")["latency_ms"]
    table["shown"] = table["algo"].map(base <= FAR_FACTOR * base.min()).fillna(False).astype(bool)
    return table


def draw(results: Path, figures: Path, regions: list[str], rate: float, scales: list[float]) -> list[Path]:
    table = load_table(results, regions, rate, scales)
    plt = style()
    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.7), gridspec_kw={"wspace": 0.3})
    x = {s: i for i, s in enumerate(scales)}
    shown = table[table["shown"]]
    algos = sort_algos(shown["algo"].unique())
    for ax, (col, name) in zip(axes, (("reward", "evaluation reward (higher is better)"),
                                      ("p99_latency_ms", "P99 latency (ms)"))):
        for i, algo in enumerate(algos):
            d = shown[shown["algo"] == algo].sort_values("scale")
            kw = line_style(algo)
            pos = d["scale"].map(x) + (i - (len(algos) - 1) / 2) * 0.025  # side by side, CIs stay visible
            ax.errorbar(pos, d[col], yerr=[d[col] - d[f"{col}_lo"], d[f"{col}_hi"] - d[col]], color=kw["color"],
                        linestyle=kw["linestyle"], marker=kw["marker"], markersize=3.5, capsize=1.5, elinewidth=0.7,
                        label=label(algo))
        ax.set_xticks(range(len(scales)), [f"{s:g}x" + (" (default)" if s == 1 else "") for s in scales])
        ax.set_xlabel("trap delay scale (1x: 100 or 200 ms a hit)")
        ax.set_ylabel(name)
        ax.set_title(f"{name.split(' (')[0]}, 95% CI, {rate:g} workflows/s")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    name = f"trap_severity_{'+'.join(regions)}_r{rate:g}"
    keep = ["algo", "scale", "runs", "ci_unit", "reward", "reward_lo", "reward_hi", "latency_ms", "latency_ms_lo",
            "latency_ms_hi", "p99_latency_ms", "p99_latency_ms_lo", "p99_latency_ms_hi", "cost", "shown"]
    keep = [c for c in keep if c in table.columns]  # an older summary.csv has no runs, ci_unit or P99 CI
    made_from = inputs(results, regions, rate=rate, scales=scales)
    return save(fig, figures, name, made_from) + [write_table(figures / f"{name}.csv", table[keep], made_from)]


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_flags(p)
    p.add_argument("--region", nargs="+", type=region_name, default=["Server1_Trap"])
    p.add_argument("--rate", type=arrival_rate_arg, default=8.0, help="arrival rate of the evaluations (default: 8)")
    p.add_argument("--scales", type=surcharge_scale_arg, nargs="+", default=[0, 1, 4, 16],
                   help="trap surcharge scales to plot, each an evaluation (default: 0 1 4 16)")
    args = p.parse_args(argv)
    with writing(args):
        return report_written(draw(args.results, figures_dir(args), args.region, args.rate, sorted(args.scales)))


if __name__ == "__main__":
    main()
