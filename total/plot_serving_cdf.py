"""TTFT and TPOT CDFs per scheduler under `serving` (requests pooled over runs and evaluation seeds), each
with P50 / P90 / P99 markers and a zoom on the tail (P90 to P99.9) of the schedulers near the best: the
distributions behind SLO attainment, where schedulers that tie on the median part in the tail.

    python total/evaluate_all.py --profile serving --load 0.9
    python total/plot_serving_cdf.py --tag serving_u0.9 [--results DIR] [--figures DIR] [--region Server1_Trap]

Reads the evaluation's requests.csv (and summary.csv) and writes <figures>/serving_cdf_<tag>.{png,pdf}.
A vertical line marks each SLO threshold. Only completed requests have a TTFT and a TPOT: a scheduler its
bounded evaluation left unstable (summary.csv `unfinished` > 0) is labelled so, since its curves leave out
the requests its queues still held and are better than the truth.
"""
from __future__ import annotations

from pathlib import Path

from total.common import (
    NUMBER,
    TEXT,
    eval_dir,
    figure_main,
    inputs,
    label,
    missing,
    read_summary,
    read_table,
    save,
    sort_algos,
    style,
)
from total.plot_latency_cdf import TAIL_NEAR, cdf_panels

REQUIRED = {"algo": TEXT, "ttft_ms": NUMBER, "tpot_ms": NUMBER}
SLOS = ("slo_ttft_ms", "slo_tpot_ms")  # the thresholds, in every serving summary.csv row
PANELS = (("ttft_ms", "TTFT (ms)", "slo_ttft_ms"), ("tpot_ms", "TPOT (ms per output token)", "slo_tpot_ms"))


def draw(results: Path, figures: Path, regions: list[str], tag: str = "") -> list[Path]:
    folder = eval_dir(results, regions, tag)
    missing([folder / "summary.csv"])
    if not (folder / "requests.csv").is_file():
        raise SystemExit(f"error: {folder / 'requests.csv'}: missing: not a serving evaluation "
                         "(total/evaluate_all.py --profile serving writes it)")
    requests = read_table(folder / "requests.csv", "requests.csv", REQUIRED)
    summary = read_summary(folder / "summary.csv").set_index("algo")
    if not set(SLOS) <= set(summary.columns):
        raise SystemExit(f"error: {folder / 'summary.csv'}: not a serving evaluation (no slo_ttft_ms / slo_tpot_ms "
                         "columns; total/evaluate_all.py --profile serving writes them)")
    unstable = set(summary.index[summary["unfinished"] > 0]) if "unfinished" in summary else set()
    algos = sort_algos(requests["algo"].unique())
    plt = style()
    fig, axes = plt.subplots(2, 2, figsize=(7.0, 5.2), gridspec_kw={"wspace": 0.35, "hspace": 0.55})
    for (ax, tail), (col, what, slo) in zip(axes, PANELS):
        cdf_panels(ax, tail, {a: requests.loc[requests["algo"] == a, col].to_numpy(dtype=float) for a in algos}, what)
        for panel in (ax, tail):  # one threshold per evaluation: every row of summary.csv holds it
            panel.axvline(float(summary[slo].iloc[0]), color="0.3", linewidth=0.8, linestyle=":")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{what.split(' (')[0]} CDF (markers: P50 o, P90 s, P99 ^; dotted: SLO)")
        tail.set_title(f"tail zoom, P90 to P99.9 (P90 within {TAIL_NEAR:g}x of the best)")
    handles, _ = axes[0][0].get_legend_handles_labels()
    labels = [label(a) + (" (unstable)" if a in unstable else "") for a in algos]
    fig.legend(handles, labels, frameon=False, fontsize=6, loc="center left", bbox_to_anchor=(0.92, 0.5),
               handlelength=2.8)
    return save(fig, figures, "serving_cdf" + (f"_{tag}" if tag else ""), inputs(results, regions))


if __name__ == "__main__":
    figure_main(draw, __doc__, tagged=True)
