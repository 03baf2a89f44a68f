"""SLO attainment and goodput against the offered load under `serving`: one line per scheduler, 95% CI
bands, unstable points marked, capacity (load 1) drawn. What a systems reader looks for first: where each
scheduler stops meeting its SLOs as the servers fill.

    python total/evaluate_all.py --profile serving --load 0.5 --max-steps 60000   # ... one evaluation per load
    python total/plot_serving_load.py [--loads 0.5 0.7 0.9 1] [--token-trace CSV] [--results DIR] [--figures DIR]

Reads results/eval/<region>_serving_u<load>[_tok-<trace stem>]/summary.csv for every load found (or --loads)
and writes <figures>/serving_load_<region>[_tok-<trace stem>].{png,pdf} plus the .csv of the plotted numbers.
- SLO attainment: the share of workflows whose every request met both SLOs, with the CI of summary.csv
  (t-intervals over training runs, evaluation seeds and task clusters: docs/evaluation.md).
- Goodput: SLO-meeting workflows per second of measured world time, averaged over the evaluations. Its band
  is the SLO attainment's CI scaled by the row's goodput / attainment, i.e. with the measured time held
  fixed (the time a run measures varies far less than which workflows meet their SLOs).
- Utilisation is the third panel, against the offered load (dashed), so a reader sees how loaded the servers
  were where the lines part, and which schedulers fall short of the load they were offered.
- Unstable (open marker): a bounded evaluation (--max-steps) left workflows unfinished, so the scheduler's
  queues outgrew the run; its attainment counts those workflows as misses, a value no better than the truth.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from edgesim.serving import SERVING, Serving
from schedkit.cli import config_arg
from total.common import (
    eval_dir,
    figure_parser,
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


def tag(load: float, token_trace: Path | None) -> str:
    """The evaluation tag total/evaluate_all.py gives a serving evaluation at this load."""
    return SERVING.tag(Serving(load=load, token_trace=None if token_trace is None else str(token_trace)))


def find_loads(results: Path, regions: list[str], token_trace: Path | None) -> list[float]:
    """Every load with a serving evaluation of these regions (and this token trace)."""
    base = eval_dir(results, regions)
    suffix = re.escape(tag(1.0, token_trace).removeprefix("serving_u1"))
    pattern = re.compile(re.escape(base.name) + r"_serving_u([0-9.]+)" + suffix + "$")
    return sorted(float(m.group(1)) for p in base.parent.glob(base.name + "_serving_u*")
                  if (m := pattern.match(p.name)) and (p / "summary.csv").exists())


def load_table(results: Path, regions: list[str], loads: list[float], token_trace: Path | None) -> pd.DataFrame:
    """One row per (scheduler, load): SLO attainment and goodput with their bands, utilisation, stability."""
    rows: list[dict[str, Any]] = []
    for load in loads:
        src = eval_dir(results, regions, tag(load, token_trace)) / "summary.csv"
        summary = read_summary(src)
        if "slo_attainment" not in summary or "goodput_per_s" not in summary:
            raise SystemExit(f"error: {src}: not a serving evaluation (no slo_attainment / goodput_per_s columns)")
        for _, r in summary.iterrows():
            share, lo, hi = r["slo_attainment"], r["slo_attainment_lo"], r["slo_attainment_hi"]
            per_share = r["goodput_per_s"] / share if share > 0 else 0.0
            unfinished = int(r["unfinished"]) if "unfinished" in r and pd.notna(r["unfinished"]) else 0
            rows.append({"algo": r["algo"], "load": load, "slo_attainment": share, "slo_attainment_lo": lo,
                         "slo_attainment_hi": hi, "goodput_per_s": r["goodput_per_s"],
                         "goodput_per_s_lo": lo * per_share, "goodput_per_s_hi": hi * per_share,
                         "utilisation": r.get("utilisation", float("nan")), "unfinished": unfinished,
                         "unstable": unfinished > 0})
    return pd.DataFrame(rows)


PANELS = (("slo_attainment", "SLO attainment", True), ("goodput_per_s", "goodput (workflows/s)", True),
          ("utilisation", "utilisation", False))


def draw(results: Path, figures: Path, regions: list[str], loads: list[float] | None = None,
         token_trace: Path | None = None) -> list[Path]:
    loads = loads or find_loads(results, regions, token_trace)
    if not loads:
        missing([eval_dir(results, regions, tag(1.0, token_trace).replace("u1", "u<load>", 1)) / "summary.csv"])
    missing([eval_dir(results, regions, tag(u, token_trace)) / "summary.csv" for u in loads])
    table = load_table(results, regions, loads, token_trace)
    plt = style()
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.8))
    fig.subplots_adjust(wspace=0.4, right=0.98)
    for ax, (col, title, band) in zip(axes, PANELS):
        for algo in sort_algos(table["algo"].unique()):
            d = table[table["algo"] == algo].sort_values("load")
            kw = line_style(algo)
            if band:
                ax.fill_between(d["load"], d[f"{col}_lo"], d[f"{col}_hi"], color=kw["color"], alpha=0.18, linewidth=0)
            ax.plot(d["load"], d[col], markersize=3.5, label=label(algo), **kw)
            bad = d[d["unstable"]]
            ax.plot(bad["load"], bad[col], kw["marker"], color=kw["color"], markerfacecolor="white", markersize=5,
                    linestyle="none")
        ax.axvline(1.0, color="0.5", linewidth=0.8, linestyle=":")
        ax.set_xticks(loads)
        ax.set_xlabel("offered load (share of capacity)")
        ax.set_title(title + (", 95% CI band" if band else ""))
    axes[0].set_ylim(-0.02, 1.02)
    top = max(1.05, float(table["utilisation"].max()) * 1.05)
    axes[2].plot([0, top], [0, top], color="0.5", linewidth=0.8, linestyle="--")  # utilisation = offered load
    axes[2].set_xlim(axes[0].get_xlim())
    axes[2].set_ylim(0, top)
    from matplotlib.lines import Line2D
    handles, labels = axes[0].get_legend_handles_labels()
    handles += [Line2D([], [], marker="o", color="0.3", markerfacecolor="white", linestyle="none", markersize=5),
                Line2D([], [], color="0.5", linewidth=0.8, linestyle=":"),
                Line2D([], [], color="0.5", linewidth=0.8, linestyle="--")]
    labels += ["open: unstable (unfinished at the step bound)", "capacity (load 1)", "utilisation = offered load"]
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    suffix = tag(1.0, token_trace).removeprefix("serving_u1")
    name = "serving_load_" + "+".join(regions) + suffix
    made_from = inputs(results, regions, loads=loads, token_trace=None if token_trace is None else str(token_trace))
    return save(fig, figures, name, made_from) + [write_table(figures / f"{name}.csv", table, made_from)]


def main(argv: list[str] | None = None) -> list[Path]:
    p = figure_parser(__doc__)
    p.add_argument("--loads", type=config_arg("serving.load"), nargs="+",
                   help="offered loads to plot (default: every evaluated load)")
    p.add_argument("--token-trace", type=Path, metavar="CSV",
                   help="the token trace the evaluations used (their tag carries its file stem)")
    args = p.parse_args(argv)
    with writing(args):
        return report_written(draw(args.results, figures_dir(args), args.region, args.loads, args.token_trace))


if __name__ == "__main__":
    main()
