"""SLO attainment against the SLO scale under `serving`: both objectives (TTFT and TPOT) multiplied by a
scale, one curve per scheduler with its CI band, as DistServe plots it. Tight objectives show which
schedulers keep their tail short; at a loose one every stable scheduler meets them all.

    python total/evaluate_all.py --profile serving --load 0.9
    python total/plot_slo_scale.py --tag serving_u0.9 [--results DIR] [--figures DIR] [--region Server1_Trap]

Reads the evaluation's episodes.csv, requests.csv and summary.csv (its objectives, slo_ttft_ms and
slo_tpot_ms, are scale 1) and writes <figures>/slo_scale_<tag>.{png,pdf} and slo_scale_<tag>.csv. At scale s
a workflow meets its SLOs when it finished and every one of its requests has TTFT <= s x slo_ttft_ms and
TPOT <= s x slo_tpot_ms: the same rule as the evaluation's `slo_met`, which is scale 1 (checked). The CI is
evaluate_all's (training runs, evaluation seeds, task clusters; schedkit.stats), cut to [0, 1]. The
requests are re-judged, not re-simulated: schedulers that read the objectives (the learned ones' reward)
acted for scale 1. A dashed line marks 90%, the attainment target DistServe sizes its systems for.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from schedkit.stats import hierarchical_bootstrap_ci, runs_array, task_clusters
from total.common import (
    NUMBER,
    NUMBER_OR_EMPTY,
    TEXT,
    TEXT_OR_EMPTY,
    eval_dir,
    figure_main,
    inputs,
    label,
    missing,
    read_episodes,
    read_summary,
    read_table,
    save,
    sort_algos,
    style,
    write_table,
)

SCALES = (0.25, 0.375, 0.5, 0.625, 0.75, 0.875, 1.0, 1.25, 1.5, 2.0)
WHO = ["algo", "train_seed", "eval_seed", "run", "episode"]
REQUESTS = {"algo": TEXT, "train_seed": NUMBER_OR_EMPTY, "eval_seed": NUMBER, "run": TEXT_OR_EMPTY,
            "episode": NUMBER, "ttft_ms": NUMBER, "tpot_ms": NUMBER}
TARGET = 0.9


def _keys(frame: pd.DataFrame) -> pd.MultiIndex:
    """Whose episode a row is: a heuristic's empty training seed and run as -1 and "" (NaN never matches)."""
    who = frame[WHO].assign(train_seed=frame["train_seed"].astype(float).fillna(-1.0),
                            run=frame["run"].astype(object).fillna("").astype(str))
    return pd.MultiIndex.from_frame(who)


def attainment(episodes: pd.DataFrame, requests: pd.DataFrame, ttft_ms: float, tpot_ms: float) -> pd.Series:
    """Whether each episode (row of `episodes`) finished with every request within (ttft_ms, tpot_ms)."""
    ok = pd.Series(((requests["ttft_ms"] <= ttft_ms) & (requests["tpot_ms"] <= tpot_ms)).to_numpy(),
                   index=_keys(requests))
    met = ok.groupby(level=list(range(len(WHO)))).all()
    finished = episodes["finished"].astype(bool).to_numpy() if "finished" in episodes else True
    return pd.Series(met.reindex(_keys(episodes), fill_value=True).to_numpy() & finished, index=episodes.index)


def table(episodes: pd.DataFrame, requests: pd.DataFrame, ttft_ms: float, tpot_ms: float,
          scales: tuple[float, ...] = SCALES) -> pd.DataFrame:
    rows = []
    for algo in sort_algos(episodes["algo"].unique()):
        d = episodes[episodes["algo"] == algo]
        r = requests[requests["algo"] == algo]
        clusters = task_clusters(d)
        for s in scales:
            met = d.assign(met=attainment(d, r, s * ttft_ms, s * tpot_ms).astype(float))
            share, lo, hi = hierarchical_bootstrap_ci(runs_array(met, "met"), clusters=clusters)
            rows.append({"algo": algo, "label": label(algo), "scale": s, "slo_ttft_ms": s * ttft_ms,
                         "slo_tpot_ms": s * tpot_ms, "slo_attainment": share, "slo_attainment_lo": max(lo, 0.0),
                         "slo_attainment_hi": min(hi, 1.0)})
    return pd.DataFrame(rows)


def draw(results: Path, figures: Path, regions: list[str], tag: str = "") -> list[Path]:
    folder = eval_dir(results, regions, tag)
    missing([folder / "summary.csv", folder / "episodes.csv"])
    if not (folder / "requests.csv").is_file():
        raise SystemExit(f"error: {folder / 'requests.csv'}: missing: not a serving evaluation "
                         "(total/evaluate_all.py --profile serving writes it)")
    summary = read_summary(folder / "summary.csv")
    if not {"slo_ttft_ms", "slo_tpot_ms"} <= set(summary.columns):
        raise SystemExit(f"error: {folder / 'summary.csv'}: not a serving evaluation (no slo_ttft_ms / slo_tpot_ms)")
    episodes = read_episodes(folder / "episodes.csv", ("slo_met",))
    requests = read_table(folder / "requests.csv", "requests.csv", REQUESTS, dtype={"run": str})
    requests = requests[requests["algo"].isin(set(episodes["algo"]))]
    ttft, tpot = float(summary["slo_ttft_ms"].iloc[0]), float(summary["slo_tpot_ms"].iloc[0])
    if not attainment(episodes, requests, ttft, tpot).equals(episodes["slo_met"].astype(bool)):
        raise SystemExit(f"error: {folder}: requests.csv does not give episodes.csv's slo_met at scale 1 "
                         "(files of different evaluations?)")
    t = table(episodes, requests, ttft, tpot)
    unstable = set(summary.loc[summary["unfinished"] > 0, "algo"]) if "unfinished" in summary else set()
    plt = style()
    fig, ax = plt.subplots(figsize=(4.6, 3.0))
    for algo, d in t.groupby("algo", sort=False):
        line, = ax.plot(d["scale"], 100 * d["slo_attainment"], marker="o", markersize=2.5,
                        label=label(str(algo)) + (" (unstable)" if algo in unstable else ""))
        ax.fill_between(d["scale"], 100 * d["slo_attainment_lo"], 100 * d["slo_attainment_hi"],
                        color=line.get_color(), alpha=0.15, linewidth=0)
    ax.axhline(100 * TARGET, color="0.4", linewidth=0.8, linestyle="--")
    ax.axvline(1.0, color="0.4", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"SLO scale (1 = TTFT {ttft:g} ms, TPOT {tpot:g} ms)")
    ax.set_ylabel("SLO attainment (% of workflows)")
    ax.set_ylim(0, 101)
    ax.set_title("SLO attainment vs SLO scale (bands: 95% CI; dashed: 90%)")
    ax.legend(frameon=False, fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    name = "slo_scale" + (f"_{tag}" if tag else "")
    made_from = inputs(results, regions)
    return save(fig, figures, name, made_from) + [write_table(figures / f"{name}.csv", t, made_from)]


if __name__ == "__main__":
    figure_main(draw, __doc__, tagged=True)
