"""The results table in CSV (plus Markdown and LaTeX booktabs with --formats md,tex), from
results/eval/<region>/summary.csv; the Markdown is printed either way.

    python total/make_table.py [--results DIR] [--figures DIR | --update-committed-figures] [--region Server1_Trap]

Each cell is "mean [95% CI]": a t-interval over training runs (for a learned method with >= 2 seeds),
evaluation seeds and task clusters (schedkit/stats.py; the Markdown says which rows have runs). A
column's best value is bold only where its CI does not overlap the CI of any other scheduler (higher
reward and SLO attainment, lower latency and cost are better). Evaluations of arriving workflows
(contention, serving) add how loaded the servers were: `Utilisation` and `Queue wait (ms)`; serving
evaluations add `SLO attainment` with its CI and, as point values averaged over the evaluation seeds,
`Goodput (/s)`, `TTFT p99 (ms)`, `TPOT p99 (ms)`, `Batch` (mean running batch) and `KV occupancy`.
A bounded evaluation (total/evaluate_all.py --max-steps) adds `Unfinished`: a scheduler that left
workflows unfinished is "unstable" in every metric cell (its means would be of censored workflows).

When episodes.csv is there too, it also writes the paired comparison against a reference
scheduler (unless --no-paired), results_table[_<tag>]_paired.csv (total/compare.py; --reference, and the equivalence margins
--reward-margin and --p99-margin, and for serving evaluations --slo-margin, by default the contention
study's in total/studies.yaml).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from total.common import (
    eval_dir,
    figure_parser,
    figures_dir,
    inputs,
    missing,
    read_episodes,
    read_summary,
    report_written,
    write_outputs,
    write_table,
    writing,
)
from total.compare import add_margin_flags, add_reference_flag
from total.compare import write as write_paired

COLUMNS = [("reward", "Reward", 4, max), ("latency_ms", "Latency (ms)", 1, min),
           ("p99_latency_ms", "P99 latency (ms)", 0, min), ("cost", "Cost ($)", 5, min),
           ("switches", "Region switches", 3, min),  # only in summaries of multi-region data
           ("slo_attainment", "SLO attainment", 3, max)]  # only in serving summaries
# point values of one evaluation each, averaged over its seeds (no CI), in this order where the summary has them:
# what the serving engines delivered (serving) and how loaded the servers were (contention and serving)
LOAD_COLUMNS = [("goodput_per_s", "Goodput (/s)", 3), ("ttft_p99_ms", "TTFT p99 (ms)", 1),
                ("tpot_p99_ms", "TPOT p99 (ms)", 1), ("utilisation", "Utilisation", 3),
                ("mean_batch_size", "Batch", 2), ("kv_occupancy", "KV occupancy", 3),
                ("mean_queue_wait_ms", "Queue wait (ms)", 1)]


def best_rows(summary: pd.DataFrame, metric: str, better) -> set[int]:
    """Index of the best row when its CI is clear of every other row's CI, else nothing."""
    i = summary[metric].idxmax() if better is max else summary[metric].idxmin()
    lo, hi = summary.loc[i, f"{metric}_lo"], summary.loc[i, f"{metric}_hi"]
    others = summary.drop(index=i)
    clear = (others[f"{metric}_hi"] < lo).all() if better is max else (others[f"{metric}_lo"] > hi).all()
    return {i} if clear else set()


def build(summary: pd.DataFrame) -> tuple[str, pd.DataFrame, str]:
    cells, bold = {}, {}
    columns = [c for c in COLUMNS if c[0] in summary.columns]
    # a scheduler a bounded evaluation ended with workflows unfinished: its means are of censored episodes
    unstable = summary["unfinished"] > 0 if "unfinished" in summary.columns else pd.Series(False, summary.index)
    stable = summary[~unstable]
    for metric, name, digits, better in columns:
        bold[metric] = best_rows(stable, metric, better) if len(stable) else set()
        cells[name] = ["unstable" if u else
                       f"{r[metric]:.{digits}f} [{r[metric + '_lo']:.{digits}f}, {r[metric + '_hi']:.{digits}f}]"
                       for u, (_, r) in zip(unstable, summary.iterrows())]
    load = {name: summary[key].round(digits) for key, name, digits in LOAD_COLUMNS if key in summary.columns}
    extra = {"Unfinished": summary["unfinished"]} if "unfinished" in summary.columns else {}
    table = pd.DataFrame({"Scheduler": summary["label"], **cells,
                          "IQM reward": summary["reward_iqm"].round(4).astype(object).where(~unstable, "unstable"),
                          **load, **extra, "Seeds": summary["train_seeds"], "Episodes": summary["episodes"]})
    md_rows, tex_rows = [], []
    for i, row in table.iterrows():
        md, tex = [], []
        for col in table.columns:
            col_metric = next((m for m, n, _, _ in columns if n == col), None)
            text = str(row[col])
            strong = col_metric is not None and summary.index[i] in bold[col_metric]
            md.append(f"**{text}**" if strong else text)
            tex.append(f"\\textbf{{{text}}}" if strong else text)
        md_rows.append("| " + " | ".join(md) + " |")
        tex_rows.append(" & ".join(tex).replace("$", "\\$").replace("%", "\\%") + r" \\")
    header = "| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns)
    markdown = header + "\n" + "\n".join(md_rows) + "\n"
    if "ci_unit" in summary.columns:  # which rows' CIs reflect seed-to-seed variation
        runs = summary.loc[summary["ci_unit"] == "runs", "label"].tolist()
        one_seed = summary.loc[(summary["ci_unit"] != "runs") & (summary["train_seeds"] > 0), "label"].tolist()
        seeds = "evaluation seeds and tasks" if summary.get("eval_seeds", pd.Series([1])).max() > 1 else "tasks"
        parts = ([f"{', '.join(runs)}: over training seeds, {seeds}"] if runs else []) + (
            [f"{', '.join(one_seed)}: ONE training seed, so over {seeds} only (no training-seed variation)"]
            if one_seed else []) + (["heuristics: over " + seeds] if (summary["train_seeds"] == 0).any() else [])
        markdown += "\nCIs: " + "; ".join(parts) + ".\n"
    if unstable.any():
        markdown += ("\nunstable: the scheduler left workflows unfinished (`Unfinished`) when the evaluation's step "
                     "bound (total/evaluate_all.py --max-steps) ended it: its queues grow at this load, and the means "
                     "of its censored workflows are not reported.\n")
    if "reward_upper_bound" in summary.columns:  # contention: the oracle's plan value bounds every scheduler
        markdown += (f"\nUpper bound on any scheduler's expected reward (queue-free oracle plans): "
                     f"{summary['reward_upper_bound'].iloc[0]:.4f}\n")
    latex = ("\\begin{tabular}{l" + "r" * (len(table.columns) - 1) + "}\n\\toprule\n"
             + " & ".join(c.replace("$", "\\$") for c in table.columns) + r" \\" + "\n\\midrule\n"
             + "\n".join(tex_rows) + "\n\\bottomrule\n\\end{tabular}\n")
    return markdown, table, latex


def main(argv: list[str] | None = None) -> Path:
    p = figure_parser(__doc__, tagged=True)
    add_reference_flag(p)
    add_margin_flags(p, "contention", slo=True)
    p.add_argument("--no-paired", action="store_true",
                   help="the results table only, even where episodes.csv is there (e.g. a setting whose reference "
                        "is unstable, where a paired comparison is refused)")
    args = p.parse_args(argv)
    with writing(args):
        return write_tables(args)


def write_tables(args) -> Path:
    """The results table (and the paired comparison when episodes.csv is there) of one evaluation."""
    src = eval_dir(args.results, args.region, args.tag) / "summary.csv"
    missing([src])
    episodes = src.parent / "episodes.csv"
    if episodes.exists():
        read_episodes(episodes)  # a broken one stops the script before anything is written
    markdown, table, latex = build(read_summary(src))
    out = figures_dir(args)
    name = "results_table" + (f"_{args.tag}" if args.tag else "")
    made_from = inputs(args.results, args.region)
    print(markdown)
    report_written([write_table(out / f"{name}.csv", table, made_from),
                    *write_outputs({out / f"{name}.md": markdown, out / f"{name}.tex": latex}, made_from)])
    if episodes.exists() and not args.no_paired:
        for path in write_paired(args.results, out, args.region, args.tag, args.reference,
                                     args.reward_margin, args.p99_margin, args.slo_margin):
            print(f"wrote {path}")
    return out


if __name__ == "__main__":
    main()
