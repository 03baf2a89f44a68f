"""What every total/ script shares: the algorithm registry, colours, the result-file layout, and
the output flags.

    results/<Algo>/<run>/metrics.csv, checkpoints/final.pt     written by <folder>/train.py
    results/eval/<region>/episodes.csv, summary.csv             written by total/evaluate_all.py
    results/figures/                                            figures and tables (total/figures/ only on request)
"""
from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from edgesim.inputs import InputError, read_text
from schedkit import paths
from schedkit.cli import region_name, tag_name, user_errors
from schedkit.config import ConfigError, load_yaml
from schedkit.outputs import claim_output
from schedkit.paths import eval_dir, final_checkpoint
from schedkit.registry import SCHEDULERS, get, heuristics, learned, old_results_folders

ROOT = paths.REPO


TUNED = "_tuned"  # a greedy-family heuristic at the latency weight Heuristics/tune.py chose on the train split
ZERO_SHOT = "_zeroshot"  # a size-agnostic checkpoint trained on another dataset (evaluate_all --zero-shot)
VARIANTS = {TUNED: "tuned W", ZERO_SHOT: "zero-shot"}
# greedy_queue at the latency weight W of a checkpoint's guidance prior (`guidance.prior: greedy_queue`), the
# matched control of that prior (total/evaluate_all.py): greedy_queue_prior_w0.9, "greedy_queue (prior W=0.9)"
PRIOR = "_prior_w"
PRIOR_ROW = re.compile(re.escape(PRIOR) + r"([0-9.e+-]+)$")


def prior_row(latency_weight: float) -> str:
    """The row name of greedy_queue at a guidance prior's latency weight."""
    return f"greedy_queue{PRIOR}{latency_weight:g}"
# a run of a sweep's `variants` (e.g. TopoFreeRL@x4): evaluated and reported apart from its method's other runs
SWEEP_VARIANT = "@"
VARIANT_NAME = re.compile(r"[A-Za-z0-9-]+")  # no '_', so a run folder's name still ends in _seed<S>
RECORD = "sweep_run.yaml"  # a sweep run folder's requested settings, written before its first training
VARIANT_MARKERS = "dP*hX"


def _method_and_variant(algo: str) -> tuple[str, str]:
    """A row's name without its suffixes, split at the sweep variant: TopoFreeRL@x4_zeroshot -> (TopoFreeRL, x4)."""
    for suffix in VARIANTS:
        algo = algo.removesuffix(suffix)
    algo = PRIOR_ROW.sub("", algo)
    method, _, variant = algo.partition(SWEEP_VARIANT)
    return method, variant


def base_algo(algo: str) -> str:
    """The scheduler a row's style and order come from: greedy_queue_tuned -> greedy_queue,
    greedy_queue_prior_w0.9 -> greedy_queue, TopoFreeRL@x4 -> TopoFreeRL."""
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
        data = load_yaml(record, "sweep record")
    except ConfigError as e:
        sys.exit(f"error: {e}")
    variant = data.get("variant", "")
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
    prior = PRIOR_ROW.search(algo)
    parts = [p for p in parts if p] + ([f"prior W={prior.group(1)}"] if prior else [])
    return f"{base} ({', '.join(parts)})" if parts else base


def agent_factory(algo: str):
    """The agent class of a learned scheduler of the registry."""
    return get(algo).load()


def final_checkpoints(results: Path) -> list[Path]:
    """Every finished run's final.pt under results/<Algo>/ (all seeds; `latest` links skipped). A folder
    under a scheduler's older name (registry RENAMED) ends the script with the rename to make, so its
    runs never silently drop out of a table."""
    old = old_results_folders(results)
    if old:
        sys.exit(f"error: {old[0]}")
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


FORMATS = ("png", "pdf", "md", "tex")  # the CSV tables are always written: other scripts and report.py read them
DEFAULT_FORMATS = ("png",)  # with the CSVs, what total/figures/ commits: the rest is made on demand


def format_list(text: str) -> tuple[str, ...]:
    """--formats' value: known file types only, so a typo fails instead of silently writing nothing."""
    wanted = tuple(dict.fromkeys(f.strip().lstrip(".").lower() for f in text.split(",") if f.strip()))
    unknown = [f for f in wanted if f not in FORMATS]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(f"{text!r}: choose from {','.join(FORMATS)}")
    return wanted


def add_output_flags(p: argparse.ArgumentParser, results: Path | None = paths.RESULTS,
                     results_help: str = f"default: {paths.RESULTS}, whatever the current directory") -> None:
    """--results and where figures go. The default never touches the committed total/figures/: a quick
    run must not replace them, so refreshing them takes --update-committed-figures."""
    p.add_argument("--results", type=Path, default=results, help=f"results root ({results_help})")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--figures", type=Path, help="output folder for figures and tables (default: <results>/figures)")
    out.add_argument("--update-committed-figures", action="store_true",
                     help=f"write into the committed {paths.COMMITTED_FIGURES} (replaces its files)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace figures and tables in the output folder that were made from other inputs "
                        "(default: refuse)")
    p.add_argument("--formats", type=format_list, metavar="LIST",
                   help=f"comma-separated file types to write besides the CSV tables, of {','.join(FORMATS)} "
                        f"(default: {','.join(DEFAULT_FORMATS)}; e.g. png,pdf,md,tex adds PDF figures and "
                        "Markdown/LaTeX tables for a paper)")


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
    with writing(args):
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


def inputs(results: Path, regions: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    """What a figure or table is made from: the settings recorded beside it (schedkit/outputs.py), so
    another script run with other inputs cannot replace it silently."""
    return {"results": str(Path(results).resolve()), **({"regions": list(regions)} if regions is not None else {}),
            **extra}


_overwrite = False  # --overwrite of the script that is running (writing() sets it)
_formats: tuple[str, ...] = DEFAULT_FORMATS  # --formats of the script that is running (writing() sets it)


def wanted(path: Path) -> bool:
    """Whether --formats asks for this figure or table file; records (.yaml) are always written."""
    ext = path.suffix.lstrip(".")
    return ext not in FORMATS or ext in _formats


@contextlib.contextmanager
def writing(args: argparse.Namespace) -> Iterator[None]:
    """Run a script's body: its --overwrite applies to every figure and table it writes, and every error a
    user can cause (a bad input file, an output folder in use or made with other inputs) is one line."""
    global _overwrite, _formats
    previous, previous_formats = _overwrite, _formats
    _overwrite = previous or bool(getattr(args, "overwrite", False))  # a study's --overwrite reaches its steps
    _formats = getattr(args, "formats", None) or previous_formats  # ... and so does its --formats
    try:
        with user_errors():
            yield
    finally:
        _overwrite, _formats = previous, previous_formats


def write_output(path: Path, data: bytes | str, made_from: Mapping[str, Any]) -> Path:
    """Write one figure or table file atomically, with its folder locked while it is written; a file of
    the same name made from other inputs is replaced only with --overwrite."""
    with claim_output(path.parent, overwrite=_overwrite, hint="--figures") as claim:
        return claim.write_bytes(path.name, data.encode() if isinstance(data, str) else data, made_from)


def write_outputs(files: Mapping[Path, bytes | str], made_from: Mapping[str, Any]) -> list[Path]:
    """Those of `files` that --formats asks for, each through write_output; the paths written."""
    return [write_output(path, data, made_from) for path, data in files.items() if wanted(path)]


def write_table(path: Path, df: pd.DataFrame, made_from: Mapping[str, Any]) -> Path:
    """A table as CSV through write_output, whatever --formats says: the CSVs are the data that
    total/report.py and the other scripts read."""
    return write_output(path, df.to_csv(index=False), made_from)


def save(fig, figures: Path, name: str, made_from: Mapping[str, Any]) -> list[Path]:
    """PNG (200 dpi) and PDF, those that --formats asks for, each written through write_output."""
    import io
    out = []
    for ext in (e for e in ("png", "pdf") if wanted(figures / f"{name}.{e}")):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=200)
        out.append(write_output(figures / f"{name}.{ext}", buf.getvalue(), made_from))
    import matplotlib.pyplot as plt
    plt.close(fig)
    return out


def load_eval(results: Path, regions: list[str], tag: str = "",
              need: tuple[str, ...] = ()) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(episodes, summary) DataFrames of total/evaluate_all.py's output, checked (read_episodes with the
    optional columns in `need`, read_summary)."""
    d = eval_dir(results, regions, tag)
    missing([d / "episodes.csv", d / "summary.csv"])
    return read_episodes(d / "episodes.csv", need), read_summary(d / "summary.csv")


# What a column of a results table must hold. An empty cell is allowed only where the writer leaves
# one on purpose (a heuristic has no training seed and no run folder); NaN is never a value.
TEXT, TEXT_OR_EMPTY, NUMBER, NUMBER_OR_EMPTY, INTEGER = "text", "text or empty", "number", "number or empty", "integer"
BOOLEAN = "boolean"  # True or False, as pandas writes a bool column
EPISODE_COLUMNS = {"algo": TEXT, "train_seed": NUMBER_OR_EMPTY, "eval_seed": INTEGER, "run": TEXT_OR_EMPTY,
                   "episode": INTEGER, "task_id": TEXT, "latency_ms": NUMBER, "cost": NUMBER, "reward": NUMBER,
                   "decision_ms": NUMBER}
EPISODE_OPTIONAL = {c: NUMBER for c in ("network_ms", "compute_ms", "queue_ms", "trap_ms", "link_ms", "trap_hits",
                                        "switches", "fallbacks", "steps")} | {"slo_met": BOOLEAN, "finished": BOOLEAN}
SUMMARY_COLUMNS = {"algo": TEXT, "label": TEXT, "train_seeds": INTEGER, "episodes": INTEGER, "n_servers": INTEGER,
                   "reward_iqm": NUMBER, "decision_ms": NUMBER,
                   **{f"{m}{s}": NUMBER for m in ("reward", "latency_ms", "cost") for s in ("", "_lo", "_hi")}}
SUMMARY_OPTIONAL = {"eval_seeds": INTEGER, "runs": INTEGER, "ci_unit": TEXT, "profile": TEXT, "unfinished": INTEGER,
                    "reward_upper_bound": NUMBER,
                    **{f"{m}{s}": NUMBER for m in ("p99_latency_ms", "switches", "slo_attainment")
                       for s in ("", "_lo", "_hi")},
                    **{c: NUMBER for c in ("goodput_per_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms",
                                           "mean_batch_size", "kv_occupancy", "mean_queue_length", "utilisation",
                                           "mean_queue_wait_ms", "sim_steps", "slo_ttft_ms",
                                           "slo_tpot_ms")}}
METRICS_OPTIONAL = {c: NUMBER_OR_EMPTY for c in ("reward", "latency_ms", "cost", "val_reward", "val_latency_ms",
                                                  "val_cost", "w_latency", "w_cost", "w_switch")}


def read_table(path: Path, what: str, required: Mapping[str, str], optional: Mapping[str, str] | None = None,
               dtype: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A CSV a script reads, checked before any number is used: a regular UTF-8 file of bounded size,
    with rows, every `required` column, and every cell of the `required` and present `optional` columns
    of its kind. Anything else is an InputError naming the file, the line and the column."""
    text = read_text(path, what)
    try:
        cells = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
        table = pd.read_csv(io.StringIO(text), dtype=dict(dtype or {}))
    except Exception as e:  # noqa: BLE001 - pandas raises many types for a broken CSV
        raise InputError(f"{path}: {what} cannot be parsed as CSV ({' '.join(str(e).split())[:200]})") from None
    absent = [c for c in required if c not in cells.columns]
    if absent:
        raise InputError(f"{path}: {what} lacks column(s) {', '.join(absent)}")
    if cells.empty:
        raise InputError(f"{path}: {what} has no rows")
    for col, kind in {**(optional or {}), **required}.items():
        if col in cells.columns:
            _check_column(path, what, col, kind, cells[col])
    return table


def _check_column(path: Path, what: str, col: str, kind: str, cells: pd.Series) -> None:
    empty = (cells.str.strip() == "").to_numpy()
    if kind in (TEXT, TEXT_OR_EMPTY):
        bad = empty if kind == TEXT else np.zeros(len(cells), bool)
    elif kind == BOOLEAN:
        bad = ~cells.isin(["True", "False"]).to_numpy()
    else:
        values = pd.to_numeric(cells.where(~empty), errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values) & (~empty if kind == NUMBER_OR_EMPTY else True)
        if kind == INTEGER:
            bad |= np.isfinite(values) & (values != np.round(values))
    if bad.any():
        i = int(np.argmax(bad))
        shown = "an empty cell" if empty[i] else repr(cells.iloc[i][:40])
        raise InputError(f"{path}: {what} line {i + 2}, column '{col}': expected {kind_words(kind)}, got {shown}")


def kind_words(kind: str) -> str:
    return {TEXT: "text", TEXT_OR_EMPTY: "text", NUMBER: "a finite number", NUMBER_OR_EMPTY: "a finite number",
            INTEGER: "an integer", BOOLEAN: "True or False"}[kind]


RUN_EPISODE_COLUMNS = {k: v for k, v in EPISODE_COLUMNS.items() if k not in ("algo", "train_seed", "eval_seed", "run")}


def read_run_episodes(path: Path) -> pd.DataFrame:
    """One inference script's episodes.csv (schedkit/evaluation.py), checked by read_table."""
    return read_table(path, "episodes.csv", RUN_EPISODE_COLUMNS, EPISODE_OPTIONAL)


def read_episodes(path: Path, need: tuple[str, ...] = ()) -> pd.DataFrame:
    """total/evaluate_all.py's episodes.csv, checked by read_table, without repeated controls
    (`repeated_controls`); `need`: the optional columns (EPISODE_OPTIONAL) the caller uses."""
    table = read_table(path, "episodes.csv", EPISODE_COLUMNS | {c: EPISODE_OPTIONAL[c] for c in need},
                       EPISODE_OPTIONAL, {"run": str})
    return table[~table["algo"].isin(repeated_controls(path.parent))].reset_index(drop=True)


def read_summary(path: Path) -> pd.DataFrame:
    """total/evaluate_all.py's summary.csv, checked by read_table, without repeated controls."""
    table = read_table(path, "summary.csv", SUMMARY_COLUMNS, SUMMARY_OPTIONAL)
    return table[~table["algo"].isin(repeated_controls(path.parent))].reset_index(drop=True)


def repeated_controls(folder: Path) -> set[str]:
    """The prior-control rows of an evaluation that repeat its greedy_queue_tuned row: greedy_queue at a
    guidance prior's W is the same evaluation as greedy_queue at its tuned W when the two W are equal, and
    then the tuned row is the matched control. total/evaluate_all.py does not evaluate such a row; this
    reads evaluations that hold one, from the two weights their config.yaml records."""
    path = folder / "config.yaml"
    if not path.is_file():
        return set()
    config = load_yaml(path, "evaluation config")
    tuned, priors = config.get("tuned_latency_weights"), config.get("prior_latency_weights")
    if not isinstance(tuned, dict) or not isinstance(priors, list) or "greedy_queue" not in tuned:
        return set()
    return {prior_row(w) for w in priors if isinstance(w, (int, float)) and w == tuned["greedy_queue"]}


def line_style(algo: str) -> dict[str, Any]:
    """Matplotlib keyword arguments (colour, linestyle, marker) of a scheduler's line."""
    if algo.endswith(TUNED):  # the tuned variant: its scheduler's colour, solid, its own marker (open = saturated)
        return {"color": color(algo), "linestyle": "-", "marker": ">"}
    if PRIOR_ROW.search(algo):  # greedy_queue at a guidance prior's W: its colour, densely dotted, squares
        return {"color": color(algo), "linestyle": (0, (1, 1)), "marker": "s"}
    if algo.endswith(ZERO_SHOT):  # a checkpoint from another dataset: its method's colour, dashed
        return {"color": color(algo), "linestyle": (0, (5, 2)), "marker": "x"}
    variant = sweep_variant(algo)
    if variant:  # a sweep variant: its method's colour, dash-dotted, a marker fixed by its name
        marker = VARIANT_MARKERS[zlib.crc32(variant.encode()) % len(VARIANT_MARKERS)]
        return {"color": color(algo), "linestyle": "-.", "marker": marker}
    s = SCHEDULERS.get(algo)
    return {"color": color(algo), "linestyle": s.linestyle if s else "-", "marker": s.marker if s else "o"}
