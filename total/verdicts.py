"""Every setting's verdicts side by side: which schedulers are better, worse, equivalent or inconclusive
against the reference, at each test setting and at the confirmation setting.

    python total/verdicts.py --figures DIR --tables results_table_contention_r8_paired.csv ... --name contention

Reads the paired tables (total/compare.py, written by total/make_table.py) named by --tables, relative to
--figures (e.g. confirmation/results_table_contention_r8_paired.csv), and writes <figures>/verdicts_<name>.csv
(and .md with --formats md): one row per scheduler, one column per table, each cell the reward verdict
with its difference, then the P99 verdict, e.g. "equivalent (+0.0012) / better", then the SLO-attainment
verdict where the table has one (serving), e.g. ".. / better / SLO worse". A reader sees at once
where a scheduler's verdict holds and where it changes; the counts and margins are in each paired table.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from total.common import (
    add_output_flags,
    figures_dir,
    inputs,
    report_written,
    sort_algos,
    write_outputs,
    write_table,
    writing,
)
from total.report import markdown_table


def setting_name(table: str) -> str:
    """results_table_contention_r8_paired.csv -> r8; confirmation/... -> confirmation r8."""
    path = Path(table)
    tag = path.name.removeprefix("results_table").removesuffix("_paired.csv").removeprefix("_")
    tag = tag.removeprefix("contention_") or "default"
    return f"{path.parent.as_posix()} {tag}" if path.parent != Path(".") else tag


def verdict_table(figures: Path, tables: list[str]) -> pd.DataFrame:
    """(scheduler x setting) reward and P99 verdicts of the paired tables; '' where a table lacks the scheduler."""
    columns: dict[str, pd.Series] = {}
    labels: dict[str, str] = {}
    references = set()
    for table in tables:
        df = pd.read_csv(figures / table)
        if "verdict" not in df.columns:
            raise SystemExit(f"error: {figures / table}: no verdict columns; re-run total/make_table.py")
        references |= set(df["reference"])
        labels |= dict(zip(df["algo"], df["label"]))
        slo = [f" / SLO {v}" for v in df["verdict_slo"]] if "verdict_slo" in df.columns else [""] * len(df)
        columns[setting_name(table)] = pd.Series(
            [f"unstable ({r.unfinished:.0f} unfinished)" if r.verdict_reward == "unstable" else
             f"{r.verdict_reward} ({r.d_reward:+.4f}) / {r.verdict_p99}{s}" for r, s in zip(df.itertuples(), slo)],
            index=df["algo"])
    if len(references) != 1:
        raise SystemExit(f"error: the tables pair against different references ({', '.join(sorted(references))})")
    frame = pd.DataFrame(columns).fillna("")
    order = sort_algos(frame.index)
    frame = frame.loc[order]
    frame.insert(0, "label", [labels[a] for a in order])
    frame.insert(1, "reference", references.pop())
    return frame.rename_axis("algo").reset_index()


def markdown(frame: pd.DataFrame) -> str:
    settings = [c for c in frame.columns if c not in ("algo", "label", "reference")]
    slo = frame[settings].apply(lambda c: c.str.contains(" / SLO ")).to_numpy().any()
    rows = [[r["label"], *[r[c] for c in settings]] for _, r in frame.iterrows()]
    return (markdown_table(["Scheduler", *settings], rows)
            + f"\nEach cell: the reward verdict against **{frame['reference'].iloc[0]}** "
            "(Δ reward), then the P99 latency verdict" + (", then the SLO-attainment verdict" if slo else "")
            + ", against the study's margins (docs/evaluation.md).\n")


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_flags(p)
    p.add_argument("--tables", nargs="+", required=True, metavar="CSV",
                   help="paired tables, relative to the figures folder")
    p.add_argument("--name", required=True, help="the output's name: verdicts_<name>.csv")
    args = p.parse_args(argv)
    with writing(args):
        figures = figures_dir(args)
        missing = [t for t in args.tables if not (figures / t).is_file()]
        if missing:
            raise SystemExit(f"error: missing paired table(s) under {figures}: {', '.join(missing)}; "
                             "run total/make_table.py first")
        frame = verdict_table(figures, args.tables)
        text = markdown(frame)
        print(text)
        made_from = inputs(args.results, tables=args.tables)
        return report_written([write_table(figures / f"verdicts_{args.name}.csv", frame, made_from),
                               *write_outputs({figures / f"verdicts_{args.name}.md": text}, made_from)])


if __name__ == "__main__":
    main()
