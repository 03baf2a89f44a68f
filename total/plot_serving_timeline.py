"""Running batch, KV occupancy and queued requests over time under `serving`, one line per evaluation: how a
scheduler fills its engines (a batch that stays small while requests queue, KV that a rule leaves idle).

    python Heuristics/inference.py --profile serving --load 0.9 --policy least_loaded --timeline --out results/tl/ll
    python TopoFreeRL/inference.py --model results/TopoFreeRL/<run>/checkpoints/final.pt --load 0.9 --timeline \\
        --out results/tl/topofreerl
    python total/plot_serving_timeline.py --evals results/tl/ll results/tl/topofreerl [--world 0] [--figures DIR]

Reads each evaluation folder's timeline.csv (written with --timeline) and summary.json, and writes
<figures>/serving_timeline.{png,pdf} plus serving_timeline.csv (the plotted rows). The engines are sampled at
the world's decisions (an event-driven clock), so a line is a step function of the decision instants; the
values are means over the valid servers (the queue: their sum), KV occupancy as reserved tokens / capacity.
The first evaluation's load and SLOs are in the title; evaluations made at other settings are refused.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from edgesim.inputs import ints
from schedkit.cli import arg_type
from schedkit.evaluation import TIMELINE_COLUMNS
from total.common import (
    NUMBER,
    add_output_flags,
    figures_dir,
    label,
    line_style,
    read_table,
    report_written,
    save,
    style,
    write_table,
    writing,
)

PANELS = (("running_batch", "mean running batch"), ("kv_occupancy", "KV occupancy (reserved / capacity)"),
          ("queued", "requests queued"))
SAME = ("profile", "serving", "split", "seed", "episodes", "regions", "dataset_fingerprint")  # what must match


def read_evaluation(folder: Path) -> tuple[pd.DataFrame, dict]:
    """(timeline, summary) of one evaluation folder, checked."""
    if not (folder / "timeline.csv").is_file():
        raise SystemExit(f"error: {folder / 'timeline.csv'}: missing: evaluate with --timeline under --profile serving")
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError) as e:
        raise SystemExit(f"error: {folder / 'summary.json'}: unreadable ({' '.join(str(e).split())[:120]})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("policy"), str):
        raise SystemExit(f"error: {folder / 'summary.json'}: expected an evaluation summary with its policy")
    return read_table(folder / "timeline.csv", "timeline.csv", dict.fromkeys(TIMELINE_COLUMNS, NUMBER)), summary


def draw(folders: list[Path], figures: Path, world: int) -> list[Path]:
    evaluations = [read_evaluation(folder) for folder in folders]
    rows, first = [], evaluations[0][1]
    for folder, (timeline, summary) in zip(folders, evaluations):
        differ = [k for k in SAME if summary.get(k) != first.get(k)]
        if differ:
            raise SystemExit(f"error: {folder / 'summary.json'}: {differ[0]} differs from {folders[0]}'s: "
                             "the timelines would not be of one setting")
        mine = timeline[timeline["world"] == world]
        if mine.empty:
            raise SystemExit(f"error: {folder / 'timeline.csv'}: no rows of world {world}")
        rows.append(mine.assign(algo=summary["policy"], folder=str(folder)))
    table = pd.concat(rows, ignore_index=True)
    plt = style()
    fig, axes = plt.subplots(1, 3, figsize=(9.0, 2.6))
    fig.subplots_adjust(wspace=0.35, right=0.98)
    for ax, (col, title) in zip(axes, PANELS):
        for (algo, _), d in table.groupby(["algo", "folder"], sort=False):
            kw = line_style(algo)
            ax.step(d["now_ms"] / 1000.0, d[col], where="post", color=kw["color"], linestyle=kw["linestyle"],
                    linewidth=0.8, label=label(algo))
        ax.set_xlabel(f"world {world} time (s)")
        ax.set_title(title)
    serving = first.get("serving", {}) if isinstance(first.get("serving"), dict) else {}
    setting = ", ".join(f"{k} {serving[k]}" for k in ("load", "arrival_rate") if serving.get(k) is not None)
    fig.suptitle(f"Engines over time ({setting or 'serving'}; sampled at decisions)", fontsize=8, y=1.03)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=7)
    made_from = {"evals": [str(f.resolve()) for f in folders], "world": world}
    return save(fig, figures, "serving_timeline", made_from) + [
        write_table(figures / "serving_timeline.csv", table, made_from)]


def main(argv: list[str] | None = None) -> list[Path]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--evals", type=Path, nargs="+", required=True, metavar="DIR",
                   help="evaluation folders written with --timeline (Heuristics/inference.py, <Algo>/inference.py)")
    p.add_argument("--world", type=arg_type(ints(0, 1 << 20)), default=0, help="the world to plot (default: 0)")
    add_output_flags(p)
    args = p.parse_args(argv)
    with writing(args):
        return report_written(draw(args.evals, figures_dir(args), args.world))


if __name__ == "__main__":
    main()
