"""Paired comparison of every scheduler against a reference scheduler on the shared test tasks.

    python total/compare.py [--tag contention_r8] [--reference greedy_queue] [--results DIR] [--figures DIR]

Every scheduler meets the same tasks and draws (common random numbers: same evaluation seed, same
task order, episode i is the same task for all), so differences are taken task by task and the
tasks' own difficulty cancels. Reads results/eval/<region>[_<tag>]/episodes.csv and writes
results_table[_<tag>]_paired.csv (and .md with --formats md); per scheduler:

- d_reward, d_latency_ms, d_p99_latency_ms: X minus the reference (mean reward, mean latency,
  P99 latency), with a 95% paired bootstrap CI: each replicate resamples the tasks (the same
  indices for both) and, for a learned method, its training runs (schedkit.stats).
- p_better_reward, p_lower_latency: the probability of improvement (rliable): the probability that
  a random run's episode of X beats the reference's episode on the same task (ties one half),
  averaged over runs, with its bootstrap CI. 0.5 means no systematic difference.
- runs, ci_unit: "runs" when the CI resamples >= 2 training runs, "episodes" when there is one run.

The default reference is greedy_queue (the fair myopic baseline) for contention tags, the oracle
otherwise.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from edgesim.registry import PROFILES
from schedkit.stats import ci_unit, paired_bootstrap_ci, probability_of_improvement, runs_array
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

DIFFS = [("d_reward", "reward", None, "Δ reward", 4), ("d_latency_ms", "latency_ms", None, "Δ latency (ms)", 1),
         ("d_p99_latency_ms", "latency_ms", 99, "Δ P99 latency (ms)", 0)]
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


def paired_table(episodes: pd.DataFrame, reference: str) -> pd.DataFrame:
    if reference not in set(episodes["algo"]):
        raise SystemExit(f"error: the reference {reference!r} is not in the evaluation "
                         f"({', '.join(sorted(episodes['algo'].unique()))})")
    episodes = episodes.assign(task_id=pd.factorize(episodes["task_id"])[0])
    ref = episodes[episodes["algo"] == reference]
    rows = []
    for algo in sort_algos(episodes["algo"].unique()):
        if algo == reference:
            continue
        d = episodes[episodes["algo"] == algo]
        check_paired(d, ref, algo, reference)
        n_runs = int(d["run"].fillna("").nunique())
        row = {"algo": algo, "label": label(algo), "reference": reference, "runs": n_runs,
               "ci_unit": ci_unit(n_runs), "episodes": len(d)}
        for col, metric, q, _, _ in DIFFS:
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = paired_bootstrap_ci(
                runs_array(d, metric), runs_array(ref, metric), q=q, n_boot=2000 if q is None else 1000)
        for col, metric, higher, _ in PROBS:
            row[col], row[f"{col}_lo"], row[f"{col}_hi"] = probability_of_improvement(
                runs_array(d, metric), runs_array(ref, metric), higher_is_better=higher)
        rows.append(row)
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame, reference: str) -> str:
    def cell(r, col, digits):
        text = f"{r[col]:+.{digits}f} [{r[col + '_lo']:+.{digits}f}, {r[col + '_hi']:+.{digits}f}]"
        return f"**{text}**" if r[col + "_lo"] > 0 or r[col + "_hi"] < 0 else text

    def prob(r, col):
        text = f"{r[col]:.3f} [{r[col + '_lo']:.3f}, {r[col + '_hi']:.3f}]"
        return f"**{text}**" if r[col + "_lo"] > 0.5 or r[col + "_hi"] < 0.5 else text

    head = ["Scheduler", *[d[3] for d in DIFFS], *[p[3] for p in PROBS], "Runs", "CI unit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        lines.append("| " + " | ".join([r["label"], *[cell(r, d[0], d[4]) for d in DIFFS],
                                        *[prob(r, p[0]) for p in PROBS], str(r["runs"]), r["ci_unit"]]) + " |")
    return ("\n".join(lines) + f"\n\nPaired against **{label(reference)}** on the same tasks: Δ = scheduler minus "
            f"{label(reference)}, 95% paired bootstrap CI (tasks resampled jointly; training runs resampled where "
            "CI unit is `runs`, tasks only where it is `episodes`). P(...) is the probability that the scheduler's "
            "episode beats the reference's on the same task (ties 1/2), averaged over runs. Bold: the CI excludes "
            "0 (Δ) or 0.5 (P).\n")


def write(results: Path, figures: Path, regions: list[str], tag: str = "", reference: str | None = None) -> list[Path]:
    src = eval_dir(results, regions, tag) / "episodes.csv"
    missing([src])
    reference = reference or default_reference(tag)
    table = paired_table(read_episodes(src), reference)
    name = "results_table" + (f"_{tag}" if tag else "") + "_paired"
    text = markdown(table, reference)
    print(text)
    made_from = inputs(results, regions, reference=reference)
    return [write_table(figures / f"{name}.csv", table, made_from),
            *write_outputs({figures / f"{name}.md": text}, made_from)]


def add_reference_flag(p) -> None:
    p.add_argument("--reference", help="scheduler to pair against (default: greedy_queue for contention tags, "
                                       "else oracle)")


def main(argv: list[str] | None = None) -> list[Path]:
    p = figure_parser(__doc__, tagged=True)
    add_reference_flag(p)
    args = p.parse_args(argv)
    with writing(args):
        return report_written(write(args.results, figures_dir(args), args.region, args.tag, args.reference))


if __name__ == "__main__":
    main()
