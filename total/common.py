"""What every total/ script shares: the algorithm registry, colours, the result-file layout, and
the output flags.

    results/<Algo>/<run>/metrics.csv, checkpoints/final.pt     written by <folder>/train.py
    results/eval/<region>/episodes.csv, summary.csv             written by total/evaluate_all.py
    results/figures/                                            figures and tables (total/figures/ only on request)
"""
from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from schedkit import paths  # noqa: E402

# algo name in checkpoints/results -> (folder, module:class of its agent)
LEARNED = {
    "TopoFreeRL": ("TopoFreeRL", "TopoFreeRL.agent:TopoFreeAgent"),
    "PPO": ("PPO_algorithm", "PPO_algorithm.agent:PPOAgent"),
    "PFAPPO": ("PFAPPO", "PFAPPO.agent:PFPPOAgent"),
    "Stark": ("Stark_Scheduler", "Stark_Scheduler.model:StarkAgent"),
}
HEURISTICS = ("oracle", "lookahead", "greedy", "greedy_queue", "least_loaded", "p2c", "telemetry", "maxcompute",
              "random")
# queue-aware heuristics, evaluated by total/ under the contention profile only: without queues
# greedy_queue and least_loaded are greedy and lookahead is the oracle; p2c and telemetry are
# contention baselines
CONTENTION_HEURISTICS = ("greedy_queue", "least_loaded", "p2c", "lookahead", "telemetry")
ORDER = [*LEARNED, *HEURISTICS]
# Okabe-Ito colour-blind-safe palette, one fixed colour per scheduler across every figure; its 8
# colours are taken, so the newer heuristics use Paul Tol's (muted scheme)
COLORS = {"TopoFreeRL": "#D55E00", "PPO": "#0072B2", "PFAPPO": "#009E73", "Stark": "#CC79A7",
          "oracle": "#000000", "greedy": "#E69F00", "greedy_queue": "#F0E442", "maxcompute": "#56B4E9",
          "random": "#999999", "least_loaded": "#332288", "p2c": "#882255", "lookahead": "#117733",
          "telemetry": "#AA4499"}
LABELS = {"PFAPPO": "PF-PPO", "Stark": "STARK"}


TUNED = "_tuned"  # a greedy-family heuristic at the latency weight Heuristics/tune.py chose on the train split
ZERO_SHOT = "_zeroshot"  # a size-agnostic checkpoint trained on another dataset (evaluate_all --zero-shot)
VARIANTS = {TUNED: "tuned W", ZERO_SHOT: "zero-shot"}


def base_algo(algo: str) -> str:
    """The scheduler a row's style and order come from: greedy_queue_tuned -> greedy_queue."""
    for suffix in VARIANTS:
        algo = algo.removesuffix(suffix)
    return algo


def color(algo: str) -> str | None:
    return COLORS.get(base_algo(algo))


def label(algo: str) -> str:
    base = LABELS.get(base_algo(algo), base_algo(algo))
    suffix = next((name for s, name in VARIANTS.items() if algo.endswith(s)), None)
    return f"{base} ({suffix})" if suffix else base


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


def contention_tag(rate: float, trace: str | None = None, trap_loss: float | None = None,
                   surcharge: float | None = None) -> str:
    """The evaluation tag of a contention setting: contention_r<rate>, plus _<trace file stem> for
    trace arrivals, _loss<P> and _surcharge<X> for a trap loss or surcharge scale given (None: the
    default), so such an evaluation never lands in (or replaces) the default one."""
    return (f"contention_r{rate:g}" + (f"_{Path(trace).stem}" if trace else "")
            + (f"_loss{trap_loss:g}" if trap_loss is not None else "")
            + (f"_surcharge{surcharge:g}" if surcharge is not None else ""))


def eval_dir(results: Path, regions: list[str], tag: str = "") -> Path:
    """results/eval/<regions>[_<tag>]: the tag names a non-default evaluation, e.g. contention_r16."""
    return results / "eval" / ("+".join(regions) + (f"_{tag}" if tag else ""))


def sort_algos(names) -> list[str]:
    """Learned methods, then heuristics, in ORDER; a tuned variant right after its scheduler."""
    def key(a: str) -> tuple[int, bool]:
        b = base_algo(a)
        return (ORDER.index(b) if b in ORDER else len(ORDER), a != b)
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
    p.add_argument("--region", nargs="+", default=["Server1_Trap"])
    if tagged:
        p.add_argument("--tag", default="", help="evaluation tag of total/evaluate_all.py, e.g. contention_r16 "
                                                  "(the output file name gets the same suffix)")
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


# Line style and marker per scheduler, so curves stay distinguishable where colours are close
# (TopoFreeRL, greedy and greedy_queue are three oranges/yellows) or curves overlap: learned methods
# solid, heuristics dashed or dotted, every scheduler its own marker.
LINESTYLES = {"TopoFreeRL": ("-", "o"), "PPO": ("-", "s"), "PFAPPO": ("-", "^"), "Stark": ("-", "D"),
              "oracle": (":", "*"), "greedy": ("--", "v"), "greedy_queue": ("-.", "P"), "maxcompute": ("--", "<"),
              "random": (":", "X"), "least_loaded": ("-.", "h"), "p2c": (":", "d"), "lookahead": ("--", "p"),
              "telemetry": ("-.", "8")}


def line_style(algo: str) -> dict[str, Any]:
    """Matplotlib keyword arguments (colour, linestyle, marker) of a scheduler's line."""
    if algo.endswith(TUNED):  # the tuned variant: its scheduler's colour, solid, its own marker (open = saturated)
        return {"color": color(algo), "linestyle": "-", "marker": ">"}
    if algo.endswith(ZERO_SHOT):  # a checkpoint from another dataset: its method's colour, dashed
        return {"color": color(algo), "linestyle": (0, (5, 2)), "marker": "x"}
    ls, marker = LINESTYLES.get(algo, ("-", "o"))
    return {"color": COLORS.get(algo), "linestyle": ls, "marker": marker}
