"""What every total/ script shares: the algorithm registry, colours, the result-file layout, and
the output flags.

    results/<Algo>/<run>/metrics.csv, checkpoints/final.pt     written by <folder>/train.py
    results/eval/<region>/episodes.csv, summary.csv             written by total/evaluate_all.py
    results/figures/                                            figures and tables (total/figures/ only on request)
"""
from __future__ import annotations

import argparse
import re
import sys
import zlib
from pathlib import Path
from typing import Any

import yaml

from schedkit import paths
from schedkit.cli import region_name, tag_name
from schedkit.paths import eval_dir, final_checkpoint
from schedkit.registry import SCHEDULERS, get, heuristics, learned

ROOT = paths.REPO


TUNED = "_tuned"  # a greedy-family heuristic at the latency weight Heuristics/tune.py chose on the train split
ZERO_SHOT = "_zeroshot"  # a size-agnostic checkpoint trained on another dataset (evaluate_all --zero-shot)
VARIANTS = {TUNED: "tuned W", ZERO_SHOT: "zero-shot"}
# a run of a sweep's `variants` (e.g. TopoFreeRL@x4): evaluated and reported apart from its method's other runs
SWEEP_VARIANT = "@"
VARIANT_NAME = re.compile(r"[A-Za-z0-9-]+")  # no '_', so a run folder's name still ends in _seed<S>
RECORD = "sweep_run.yaml"  # a sweep run folder's requested settings, written before its first training
VARIANT_MARKERS = "dP*hX"


def _method_and_variant(algo: str) -> tuple[str, str]:
    """A row's name without its suffixes, split at the sweep variant: TopoFreeRL@x4_zeroshot -> (TopoFreeRL, x4)."""
    for suffix in VARIANTS:
        algo = algo.removesuffix(suffix)
    method, _, variant = algo.partition(SWEEP_VARIANT)
    return method, variant


def base_algo(algo: str) -> str:
    """The scheduler a row's style and order come from: greedy_queue_tuned -> greedy_queue,
    TopoFreeRL@x4 -> TopoFreeRL."""
    return _method_and_variant(algo)[0]


def sweep_variant(algo: str) -> str:
    """The sweep variant a row's runs were trained as ('' for none): TopoFreeRL@x4_zeroshot -> x4."""
    return _method_and_variant(algo)[1]


def run_variant(run_dir: Path) -> str:
    """The sweep variant a run folder was trained as (its sweep_run.yaml's `variant`), '' for a run
    trained outside a sweep or without variants. The file is read as data (safe YAML); one that is
    not a sweep record is a one-line error naming it."""
    record = Path(run_dir) / RECORD
    if not record.exists():
        return ""
    try:
        data = yaml.safe_load(record.read_text())
    except (OSError, yaml.YAMLError) as e:
        sys.exit(f"error: {record}: not a readable sweep record ({type(e).__name__})")
    variant = data.get("variant", "") if isinstance(data, dict) else None
    if not isinstance(variant, str) or (variant and not VARIANT_NAME.fullmatch(variant)):
        sys.exit(f"error: {record}: field 'variant' must be a name of letters, digits and '-', got {variant!r}")
    return variant


def color(algo: str) -> str | None:
    s = SCHEDULERS.get(base_algo(algo))
    return s.color if s else None


def label(algo: str) -> str:
    s = SCHEDULERS.get(base_algo(algo))
    base = s.display if s else base_algo(algo)
    parts = [sweep_variant(algo)] + [name for s, name in VARIANTS.items() if algo.endswith(s)]
    parts = [p for p in parts if p]
    return f"{base} ({', '.join(parts)})" if parts else base


def agent_factory(algo: str):
    """The agent class of a learned scheduler of the registry."""
    return get(algo).load()


def final_checkpoints(results: Path) -> list[Path]:
    """Every finished run's final.pt under results/<Algo>/ (all seeds; `latest` links skipped)."""
    found = []
    for algo in learned():
        base = results / algo
        if base.is_dir():
            found += [final_checkpoint(p) for p in sorted(base.iterdir())
                      if p.is_dir() and not p.is_symlink() and final_checkpoint(p).exists()]
    return found


def sort_algos(names) -> list[str]:
    """Learned methods, then heuristics, in registry order; a tuned variant right after its scheduler, sweep
    variants after their method in natural order."""
    order = [*learned(), *heuristics()]

    def key(a: str) -> tuple:
        b = base_algo(a)
        # variants in natural order: TopoFreeRL@x4 before TopoFreeRL@x16
        natural = tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", a) if t)
        return (order.index(b) if b in order else len(order), a != b, natural)
    return sorted(names, key=key)


def missing(files: list[Path]) -> None:
    """A figure or table without its inputs says which files are missing and stops."""
    absent = [str(p) for p in files if not Path(p).exists()]
    if absent:
        sys.exit("error: missing input file(s):\n  " + "\n  ".join(absent) +
                 "\nrun total/evaluate_all.py (and the training scripts) first")


def add_output_flags(p: argparse.ArgumentParser, results: Path | None = paths.RESULTS,
                     results_help: str = f"default: {paths.RESULTS}, whatever the current directory") -> None:
    """--results and where figures go. The default never touches the committed total/figures/: a quick
    run must not replace them, so refreshing them takes --update-committed-figures."""
    p.add_argument("--results", type=Path, default=results, help=f"results root ({results_help})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--figures", type=Path, help="output folder for figures and tables (default: <results>/figures)")
    out.add_argument("--update-committed-figures", action="store_true",
                     help=f"write into the committed {paths.COMMITTED_FIGURES} (replaces its files)")


def figures_dir(args: argparse.Namespace) -> Path:
    """The output folder chosen by add_output_flags' flags."""
    if args.update_committed_figures:
        return paths.COMMITTED_FIGURES
    return args.figures if args.figures is not None else args.results / "figures"


def figure_parser(description: str, tagged: bool = False) -> argparse.ArgumentParser:
    """Shared flags of the figure and table scripts: output flags, --region (and --tag for figures of
    one evaluation)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_flags(p)
    p.add_argument("--region", nargs="+", type=region_name, default=["Server1_Trap"])
    if tagged:
        p.add_argument("--tag", type=tag_name, default="",
                       help="evaluation tag of total/evaluate_all.py, e.g. contention_r16 (the output file name gets "
                            "the same suffix)")
    return p


def figure_main(draw, description: str, argv: list[str] | None = None, tagged: bool = False) -> list[Path]:
    """Shared CLI of the figure scripts: parse figure_parser's flags, then draw."""
    args = figure_parser(description, tagged).parse_args(argv)
    extra = {"tag": args.tag} if tagged else {}
    return report_written(draw(args.results, figures_dir(args), args.region, **extra))


def report_written(written: list[Path]) -> list[Path]:
    """One `wrote PATH` line per output file, so a user sees where everything went."""
    for path in written:
        print(f"wrote {path}")
    return written


def provenance(args: argparse.Namespace, **extra: Any) -> dict[str, Any]:
    """A script's resolved arguments plus the code version, for the config.yaml beside its outputs."""
    def plain(v: Any) -> Any:
        return str(v.resolve()) if isinstance(v, Path) else [plain(x) for x in v] if isinstance(v, list) else v
    return {k: plain(v) for k, v in (vars(args) | extra).items()} | {"git_commit": paths.git_commit()}


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


def line_style(algo: str) -> dict[str, Any]:
    """Matplotlib keyword arguments (colour, linestyle, marker) of a scheduler's line."""
    if algo.endswith(TUNED):  # the tuned variant: its scheduler's colour, solid, its own marker (open = saturated)
        return {"color": color(algo), "linestyle": "-", "marker": ">"}
    if algo.endswith(ZERO_SHOT):  # a checkpoint from another dataset: its method's colour, dashed
        return {"color": color(algo), "linestyle": (0, (5, 2)), "marker": "x"}
    variant = sweep_variant(algo)
    if variant:  # a sweep variant: its method's colour, dash-dotted, a marker fixed by its name
        marker = VARIANT_MARKERS[zlib.crc32(variant.encode()) % len(VARIANT_MARKERS)]
        return {"color": color(algo), "linestyle": "-.", "marker": marker}
    s = SCHEDULERS.get(algo)
    return {"color": color(algo), "linestyle": s.linestyle if s else "-", "marker": s.marker if s else "o"}
