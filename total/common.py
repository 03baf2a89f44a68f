"""What every total/ script shares: the algorithm registry, colours, and the result-file layout.

    results/<Algo>/<run>/metrics.csv, checkpoints/final.pt     written by <folder>/train.py
    results/eval/<region>/episodes.csv, summary.csv             written by total/evaluate_all.py
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# algo name in checkpoints/results -> (folder, module:class of its agent)
LEARNED = {
    "TopoFreeRL": ("TopoFreeRL", "TopoFreeRL.agent:TopoFreeAgent"),
    "PPO": ("PPO_algorithm", "PPO_algorithm.agent:PPOAgent"),
    "PFAPPO": ("PFAPPO", "PFAPPO.agent:PFPPOAgent"),
    "Stark": ("Stark_Scheduler", "Stark_Scheduler.model:StarkAgent"),
}
HEURISTICS = ("oracle", "greedy", "greedy_queue", "maxcompute", "random")
ORDER = [*LEARNED, *HEURISTICS]
# Okabe-Ito colour-blind-safe palette, one fixed colour per scheduler across every figure
COLORS = {"TopoFreeRL": "#D55E00", "PPO": "#0072B2", "PFAPPO": "#009E73", "Stark": "#CC79A7",
          "oracle": "#000000", "greedy": "#E69F00", "greedy_queue": "#F0E442", "maxcompute": "#56B4E9",
          "random": "#999999"}
LABELS = {"PFAPPO": "PF-PPO", "Stark": "STARK"}


def label(algo: str) -> str:
    return LABELS.get(algo, algo)


def agent_factory(algo: str):
    module, cls = LEARNED[algo][1].split(":")
    return getattr(importlib.import_module(module), cls)


def final_checkpoints(results: Path) -> list[Path]:
    """Every finished run's final.pt under results/<Algo>/ (all seeds; `latest` links skipped)."""
    found = []
    for algo in LEARNED:
        base = results / algo
        if base.is_dir():
            found += [p / "checkpoints" / "final.pt" for p in sorted(base.iterdir())
                      if p.is_dir() and not p.is_symlink() and (p / "checkpoints" / "final.pt").exists()]
    return found


def eval_dir(results: Path, regions: list[str], tag: str = "") -> Path:
    """results/eval/<regions>[_<tag>]: the tag names a non-default evaluation, e.g. contention_r16."""
    return results / "eval" / ("+".join(regions) + (f"_{tag}" if tag else ""))


def sort_algos(names) -> list[str]:
    return sorted(names, key=lambda a: ORDER.index(a) if a in ORDER else len(ORDER))


def missing(paths: list[Path]) -> None:
    """A figure or table without its inputs says which files are missing and stops."""
    absent = [str(p) for p in paths if not Path(p).exists()]
    if absent:
        sys.exit("error: missing input file(s):\n  " + "\n  ".join(absent) +
                 "\nrun total/evaluate_all.py (and the training scripts) first")


def figure_main(draw, description: str, argv: list[str] | None = None, tagged: bool = False) -> list[Path]:
    """Shared CLI of the figure scripts: --results, --figures, --region (and --tag for figures of
    one evaluation), then draw."""
    import argparse
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--figures", default="total/figures", help="output folder (default: total/figures)")
    p.add_argument("--region", nargs="+", default=["Server1_Trap"])
    if tagged:
        p.add_argument("--tag", default="", help="evaluation tag of total/evaluate_all.py, e.g. contention_r16 "
                                                  "(the figure's file name gets the same suffix)")
    args = p.parse_args(argv)
    extra = {"tag": args.tag} if tagged else {}
    written = draw(Path(args.results), Path(args.figures), args.region, **extra)
    for path in written:
        print(f"wrote {path}")
    return written


def style():
    """Paper-size defaults: small fonts, thin lines, no top/right spines."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
                         "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2,
                         "axes.spines.top": False, "axes.spines.right": False, "savefig.bbox": "tight",
                         "figure.dpi": 100})
    return plt


def save(fig, figures: Path, name: str) -> list[Path]:
    """PNG (200 dpi) and PDF, each written atomically."""
    import io

    from schedkit.io import atomic_write_bytes
    out = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=200)
        out.append(atomic_write_bytes(figures / f"{name}.{ext}", buf.getvalue()))
    import matplotlib.pyplot as plt
    plt.close(fig)
    return out


def load_eval(results: Path, regions: list[str], tag: str = ""):
    """(episodes, summary) DataFrames of total/evaluate_all.py's output."""
    import pandas as pd
    d = eval_dir(results, regions, tag)
    missing([d / "episodes.csv", d / "summary.csv"])
    return pd.read_csv(d / "episodes.csv", dtype={"run": str}), pd.read_csv(d / "summary.csv")
