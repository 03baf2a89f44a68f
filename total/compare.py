"""Paired comparison of every scheduler against a reference scheduler on the shared test tasks.

    python total/compare.py [--tag contention_r8] [--reference greedy_queue] [--results DIR] [--figures DIR]
                            [--reward-margin 0.01] [--p99-margin 0.02] [--slo-margin 0.01]

Every scheduler meets the same tasks and draws (common random numbers: same evaluation seed, same
task order, episode i is the same task for all), so differences are taken task by task and the
tasks' own difficulty cancels. Reads results/eval/<region>[_<tag>]/episodes.csv and writes
results_table[_<tag>]_paired.csv (and .md with --formats md); per scheduler:

- d_reward, d_latency_ms, d_p99_latency_ms: X minus the reference (mean reward, mean latency,
  P99 latency), with a 95% paired t-interval over training runs (a learned method's), evaluation
  seeds and task clusters, the seeds and tasks shared by both sides (schedkit.stats).
- verdict_reward, verdict_p99 (and verdict, the reward one): better / worse / equivalent /
  inconclusive, the CI against +-margin_reward (absolute) and +-margin_p99_latency_ms (the
  --p99-margin fraction of the reference's P99); docs/evaluation.md defines the words. The margins
  are the study's, declared once in total/studies.yaml (the contention study's when run by hand).
- Serving evaluations (episodes with `slo_met`) add d_slo_attainment, the difference in the share
  of workflows that met their SLOs, with the same interval, and verdict_slo against
  +-margin_slo_attainment (--slo-margin, absolute: 0.01 is one percentage point).
- p_better_reward, p_lower_latency: the probability of improvement (rliable): the probability that
  a random run's episode of X beats the reference's episode on the same task (ties one half),
  averaged over runs, with its bootstrap CI. 0.5 means no systematic difference.
- A bounded evaluation (total/evaluate_all.py --max-steps) says which episodes `finished`: a scheduler
  that left some unfinished is `unstable` at this load (column `unfinished`, every verdict "unstable",
  no differences: its censored episodes would flatter it), and an unstable reference is refused.
- runs, ci_unit: "runs" when the CI resamples >= 2 training runs (and the evaluation seeds and task
  clusters within them); with one run "eval seeds, tasks" (or "tasks" for one evaluation seed);
  n_train_seeds, n_eval_seeds, n_tasks: the units of each level of the CI.

The default reference is greedy_queue (the fair myopic baseline) for contention tags, the oracle
otherwise.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgesim.registry import PROFILES
from schedkit.cli import arg_type
from schedkit.evaluation import unfinished
from schedkit.stats import ci_unit, paired_bootstrap_ci, probability_of_improvement, runs_array, task_clusters
from total.common import (
    eval_dir,
    figure_parser,
    figures_dir,
    inputs,
    label,
    missing,
    read_episodes,
    report_written,
    sort_algos,
    write_outputs,
    write_table,
    writing,
)
from total.reproduce import MARGIN, study_margins

DIFFS = [("d_reward", "reward", None, "Δ reward", 4), ("d_latency_ms", "latency_ms", None, "Δ latency (ms)", 1),
         ("d_p99_latency_ms", "latency_ms", 99, "Δ P99 latency (ms)", 0)]
# (verdict column, difference it judges, its margin column, whether higher is better)
VERDICTS = [("verdict_reward", "d_reward", "margin_reward", True),
            ("verdict_p99", "d_p99_latency_ms", "margin_p99_latency_ms", False)]
# serving: SLO attainment, the mean of each workflow's slo_met, judged like reward (higher is better)
SLO_DIFF = ("d_slo_attainment", "slo_met", None, "Δ SLO attainment", 3)
SLO_VERDICT = ("verdict_slo", "d_slo_attainment", "margin_slo_attainment", True)
PROBS = [("p_better_reward", "reward", True, "P(higher reward)"),
         ("p_lower_latency", "latency_ms", False, "P(lower latency)")]


def default_reference(tag: str) -> str:
    """greedy_queue where servers keep queues (the oracle's plans ignore them there), else the oracle.
    An evaluation's tag starts with its profile's name (Profile.tag); the default profile has none."""
    profile = PROFILES.get(tag.split("_")[0]) if tag else None
    return "greedy_queue" if profile is not None and profile.queues else "oracle"


def check_paired(x: pd.DataFrame, y: pd.DataFrame, name: str, reference: str) -> None:
    """Episode i of every run and eval seed must be the same task for both schedulers."""
    tx, ty = runs_array(x, "task_id"), runs_array(y, "task_id")
    if tx.shape[1:] != ty.shape[1:] or not (tx == ty[:1]).all() or not (ty == ty[:1]).all():
        raise SystemExit(f"error: {name} and {reference} did not meet the same tasks in the same order; "
                         "re-run total/evaluate_all.py so that every scheduler is evaluated together")


def verdict(lo: float, hi: float, margin: float, higher_is_better: bool) -> str:
    """What a paired difference's CI [lo, hi] says against the equivalence margin (docs/evaluation.md):
    better or worse only when the whole CI lies beyond +-margin in that direction, equivalent when it lies
    inside +-margin, else inconclusive."""
    if not higher_is_better:
        lo, hi = -hi, -lo
    if lo > margin:
        return "better"
    if hi < -margin:
        return "worse"
    return "equivalent" if -margin <= lo and hi <= margin else "inconclusive"


def paired_table(episodes: pd.DataFrame, reference: str, reward_margin: float, p99_margin: float,
                 slo_margin: float | None = None) -> pd.DataFrame:
    """One row per scheduler against `reference` (see the module's docstring); reward_margin is absolute,
    p99_margin a fraction of the reference's P99 latency, slo_margin (needed where the episodes have
    `slo_met`: serving) absolute."""
    serving = "slo_met" in episodes
    if serving and slo_margin is None:
        raise ValueError("paired_table: the episodes have slo_met (serving); give slo_margin to judge SLO attainment")
    diffs, verdicts = (DIFFS + [SLO_DIFF], VERDICTS + [SLO_VERDICT]) if serving else (DIFFS, VERDICTS)
    if reference not in set(episodes["algo"]):
        raise SystemExit(f"error: the reference {reference!r} is not in the evaluation "
                         f"({', '.join(sorted(episodes['algo'].unique()))})")
    episodes = episodes.assign(task_id=pd.factorize(episodes["task_id"])[0])
    ref = episodes[episodes["algo"] == reference]
    if unfinished(ref):
        raise SystemExit(f"error: the reference {reference!r} left {unfinished(ref)} workflows unfinished when its "
                         "evaluation's --max-steps ended it: it is unstable at this load; pair against a stable "
                         "scheduler (--reference)")
    clusters, ref_p99 = task_clusters(ref), float(np.percentile(ref["latency_ms"], 99))
    rows = []
    for algo in sort_algos(episodes["algo"].unique()):
        if algo == reference:
            continue
        d = episodes[episodes["algo"] == algo]
        check_paired(d, ref, algo, reference)
        n_runs, n_eval = int(d["run"].fillna("").nunique()), int(d["eval_seed"].nunique())
        row: dict[str, Any] = {"algo": algo, "label": label(algo), "reference": reference, "runs": n_runs,
                               "ci_unit": ci_unit(n_runs, n_eval), "episodes": len(d),
                               "n_train_seeds": int(d["train_seed"].nunique()), "n_eval_seeds": n_eval,
                               "n_tasks": int(clusters.max()) + 1,
                               "margin_reward": reward_margin, "margin_p99_latency_ms": p99_margin * ref_p99}
        if serving:
            row["margin_slo_attainment"] = slo_margin
        if "finished" in episodes:
            row["unfinished"] = unfinished(d)
            if row["unfinished"]:  # unstable: nothing to compare, its censored episodes would flatter it
                rows.append(row | {f"{c}{s}": np.nan for c in [x[0] for x in diffs] + [x[0] for x in PROBS]
                                   for s in ("", "_lo", "_hi")} | {v[0]: "unstable" for v in verdicts}
                            | {"verdict": "unstable"})
                continue
        for col, metric, q, _, _ in diffs:
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = paired_bootstrap_ci(
                runs_array(d, metric), runs_array(ref, metric), q=q, n_boot=2000 if q is None else 1000,
                clusters=clusters)
        for col, metric, higher, _ in PROBS:
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = probability_of_improvement(
                runs_array(d, metric), runs_array(ref, metric), higher_is_better=higher, clusters=clusters)
        for col, diff, margin, higher in verdicts:
            row[col] = verdict(row[f"{diff}_lo"], row[f"{diff}_hi"], row[margin], higher)
        row["verdict"] = row["verdict_reward"]
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, reference: str) -> str:
    def cell(r, col, digits):
        if pd.isna(r[col]):  # an unstable scheduler: no difference
            return "—"
        text = f"{r[col]:+.{digits}f} [{r[col + '_lo']:+.{digits}f}, {r[col + '_hi']:+.{digits}f}]"
        return f"**{text}**" if r[col + "_lo"] > 0 or r[col + "_hi"] < 0 else text

    def prob(r, col):
        if pd.isna(r[col]):
            return "—"
        text = f"{r[col]:.3f} [{r[col + '_lo']:.3f}, {r[col + '_hi']:.3f}]"
        return f"**{text}**" if r[col + "_lo"] > 0.5 or r[col + "_hi"] < 0.5 else text

    judged = "verdict" in table.columns  # tables written before verdicts existed have none
    serving = SLO_DIFF[0] in table.columns
    diffs = DIFFS + [SLO_DIFF] if serving else DIFFS
    verdicts = (VERDICTS + [SLO_VERDICT] if serving else VERDICTS) if judged else []
    names = {"verdict_reward": "Verdict (reward)", "verdict_p99": "Verdict (P99)", "verdict_slo": "Verdict (SLO)"}
    head = ["Scheduler", *[d[3] for d in diffs], *[p[3] for p in PROBS], "Runs", "CI unit",
            *[names[v[0]] for v in verdicts]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        name = r["label"] + (f" (unstable: {r['unfinished']:.0f} unfinished)" if r.get("unfinished", 0) > 0 else "")
        lines.append("| " + " | ".join([name, *[cell(r, d[0], d[4]) for d in diffs],
                                        *[prob(r, p[0]) for p in PROBS], str(r["runs"]), r["ci_unit"],
                                        *[r[v[0]] for v in verdicts]]) + " |")
    if judged:
        r = table.iloc[0] if len(table) else None
        slo = f", SLO attainment ±{r['margin_slo_attainment']:g}" if r is not None and serving else ""
        margins = ("" if r is None else f" (reward ±{r['margin_reward']:g}, P99 ±{r['margin_p99_latency_ms']:.0f} ms"
                   f"{slo})")
        return ("\n".join(lines) + f"\n\nPaired against **{label(reference)}** on the same tasks: Δ = scheduler minus "
                f"{label(reference)}, 95% paired t-interval over training runs (where CI unit is `runs`), evaluation "
                "seeds and task clusters, the seeds and tasks shared by both. P(...) is the probability that the "
                "scheduler's episode beats the reference's on the same task (ties 1/2), averaged over runs. Bold: the "
                "CI excludes 0 (Δ) or 0.5 (P). Verdict: the CI against the equivalence margin" + margins + ": better "
                "or worse when it lies wholly beyond it, equivalent when wholly inside, else inconclusive"
                + ("; unstable: the scheduler left workflows unfinished when the evaluation's step bound ended it "
                   "(column `unfinished`), so nothing is compared" if "unfinished" in table else "") + ".\n")
    return ("\n".join(lines) + f"\n\nPaired against **{label(reference)}** on the same tasks: Δ = scheduler minus "
            f"{label(reference)}, 95% paired bootstrap CI (tasks resampled jointly; training runs resampled where "
            "CI unit is `runs`, tasks only where it is `episodes`). P(...) is the probability that the scheduler's "
            "episode beats the reference's on the same task (ties 1/2), averaged over runs. Bold: the CI excludes "
            "0 (Δ) or 0.5 (P).\n")


def write(results: Path, figures: Path, regions: list[str], tag: str, reference: str | None, reward_margin: float,
          p99_margin: float, slo_margin: float) -> list[Path]:
    """The paired table of one evaluation (CSV, and Markdown where --formats asks), made from its episodes.csv."""
    src = eval_dir(results, regions, tag) / "episodes.csv"
    missing([src])
    reference = reference or default_reference(tag)
    episodes = read_episodes(src)
    table = paired_table(episodes, reference, reward_margin, p99_margin, slo_margin)
    name = "results_table" + (f"_{tag}" if tag else "") + "_paired"
    text = markdown(table, reference)
    print(text)
    serving = {"slo_margin": slo_margin} if "slo_met" in episodes else {}  # recorded where it judges something
    made_from = inputs(results, regions, reference=reference, reward_margin=reward_margin, p99_margin=p99_margin,
                       **serving)
    return [write_table(figures / f"{name}.csv", table, made_from),
            *write_outputs({figures / f"{name}.md": text}, made_from)]


def add_reference_flag(p) -> None:
    p.add_argument("--reference", help="scheduler to pair against (default: greedy_queue for contention tags, "
                                       "else oracle)")


def add_margin_flags(p: argparse.ArgumentParser, study: str, slo: bool = False) -> None:
    """--reward-margin and --p99-margin (and with `slo`, for a script that judges serving evaluations,
    --slo-margin), by default the margins total/studies.yaml declares for `study`."""
    m = study_margins(study)
    p.add_argument("--reward-margin", type=arg_type(MARGIN), default=m.reward,
                   help=f"equivalence margin of Δ reward, absolute (default: the {study} study's, {m.reward:g})")
    p.add_argument("--p99-margin", type=arg_type(MARGIN), default=m.p99_latency,
                   help=f"equivalence margin of Δ P99 latency, a fraction of the reference's P99 (default: the "
                        f"{study} study's, {m.p99_latency:g})")
    if slo:
        p.add_argument("--slo-margin", type=arg_type(MARGIN), default=m.slo_attainment,
                       help=f"equivalence margin of Δ SLO attainment of serving evaluations, absolute (default: the "
                            f"{study} study's, {m.slo_attainment:g})")


def main(argv: list[str] | None = None) -> list[Path]:
    p = figure_parser(__doc__, tagged=True)
    add_reference_flag(p)
    add_margin_flags(p, "contention", slo=True)
    args = p.parse_args(argv)
    with writing(args):
        return report_written(write(args.results, figures_dir(args), args.region, args.tag, args.reference,
                                    args.reward_margin, args.p99_margin, args.slo_margin))


if __name__ == "__main__":
    main()
