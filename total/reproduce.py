"""The one entry to every study: `--study paper` (the default), `contention`, `claims` or `serving`.
What each study trains, evaluates and draws is data in total/studies.yaml; its own flags and the
work that is its alone live in the module that file names, and what the study modules share (running
evaluations and steps, checked protocol fields, reusable prepared work, the overview table) lives here.

    python total/reproduce.py --study contention --workers 2    # total/reproduce_contention.py's study
    python total/reproduce.py --study serving --backend ray --address auto   # its trainings on a Ray cluster
    python total/reproduce.py --study serving --quick           # total/reproduce_serving.py's study, tiny
    python total/reproduce.py --study claims --help             # a study's own flags

The paper study, from nothing to every figure and table: train every learned algorithm on 3 seeds,
evaluate everything, draw everything.

    python total/reproduce.py            # the full budget (about 15 minutes on 2 CPU cores)
    python total/reproduce.py --quick    # a small budget end to end, about a minute
    python total/reproduce.py --update-committed-figures     # the full budget, refreshing total/figures/

Training goes through the sweep machinery (total/sweep.py), as child processes here or, with
`--backend ray` (every study), as Ray tasks on a cluster or a local instance, so runs land in
<results>/<Algo>/<region>_seed<S>/: a finished run is skipped, an interrupted one resumes, a run
folder trained with other settings is refused, and re-running the command only redoes what is
missing. Evaluation (logged to <results>/logs/) and figures are always redone from the saved
runs. Figures and tables go to <results>/figures/ (git-ignored) unless --figures or
--update-committed-figures says otherwise; <results>/figures/reproduce.yaml records the resolved
arguments and the git commit. --quick uses its own results root, so its small models never meet
the full run's.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import re
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import yaml

from edgesim.inputs import Range
from schedkit.cli import closed_output_is_one_line, region_name, seed_arg, workers_arg
from schedkit.config import ConfigError, load_yaml
from schedkit.io import write_json, write_yaml
from schedkit.registry import learned
from total.common import (
    add_output_flags,
    eval_dir,
    figure_main,
    figures_dir,
    inputs,
    label,
    paths,
    provenance,
    read_summary,
    sort_algos,
    write_output,
    writing,
)
from total.sweep import CHILDREN, DEFAULTS, Run, expand, load_sweep, run_on, stop_children_on_signal

STUDIES = paths.REPO / "total" / "studies.yaml"
SWEEPS = paths.REPO / "sweeps"

QUICK: dict[str, Any] = {"epochs": 3, "episodes": 32, "eval_episodes": 20}
QUICK_RESULTS = paths.RESULTS / "quick"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help=f"small budget: {QUICK}")
    p.add_argument("--data", type=Path, default=paths.DATA, help=f"data root (default: {paths.DATA})")
    p.add_argument("--region", type=region_name, default="Server1_Trap")
    p.add_argument("--seeds", type=seed_arg, nargs="+", default=[42, 43, 44])
    p.add_argument("--algos", nargs="+", default=learned(), choices=learned())
    add_run_flags(p)
    add_output_flags(p, results=None, results_help=f"default: {paths.RESULTS}; {QUICK_RESULTS} with --quick")
    args = p.parse_args(argv)
    check_backend(p, args)
    if args.results is None:
        args.results = QUICK_RESULTS if args.quick else paths.RESULTS
    return args


class Backend(NamedTuple):
    """Where a study's trainings run: child processes of this one (`local`), or Ray tasks (`ray`) on the
    cluster at `address` or, without one, on a local Ray instance. Evaluations and figures run here."""

    name: str = "local"
    address: str | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> "Backend":
        """The backend a study's --backend and --address name (`add_run_flags`)."""
        return cls(args.backend, args.address)


def add_run_flags(p: argparse.ArgumentParser) -> None:
    """Where a study's runs go and how many at once: --workers, --backend, --address."""
    p.add_argument("--workers", type=workers_arg, default=1,
                   help="trainings and evaluations at once (default 1)")
    p.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="where the trainings run: child processes here (local, the default), or Ray tasks (ray) on "
                        "the cluster at --address or a local Ray instance of --workers CPUs; evaluations and "
                        "figures run here either way (a cluster's nodes need this repository at this path and "
                        "the results folder shared)")
    p.add_argument("--address", help="with --backend ray: the Ray cluster ('auto' or ray://host:port); none starts "
                                     "a local instance")


def check_backend(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """--address without --backend ray is refused, not ignored."""
    if args.address is not None and args.backend != "ray":
        p.error("--address names a Ray cluster: it needs --backend ray")


def train(sweep: dict, workers: int, evaluate: bool = False, backend: Backend = Backend()) -> None:
    """Every run of a sweep config (DEFAULTS plus `sweep`) through the sweep machinery, by default
    without the per-run evaluation (total/evaluate_all.py evaluates everything; runs of `variants`,
    which it would pool, need theirs), on `backend`; stops the script if any failed."""
    cfg = DEFAULTS | sweep
    runs: list[Run] = [replace(r, evaluate=evaluate) for r in expand(cfg)]
    failed = []

    def report(result: dict) -> None:
        word = {"ok": "trained", "resumed": "resumed and trained", "skipped": "finished, skipped"}.get(result["status"])
        print(f"{result['run']}: {word or 'FAILED, ' + (result['reason'] or 'log: ' + result['log'])} "
              f"({result['wall_s']:.1f} s)", flush=True)
        if result["status"] == "failed":
            failed.append(result)

    run_on(backend.name, runs, max(1, workers), backend.address, cfg["resources"], report)
    if failed:
        sys.exit(f"error: {len(failed)} run(s) failed; see the lines above")


ENTRY_KEYS = {"script": True, "args": True, "for": False, "when": False, "log": False}
STUDY_KEYS = ("code", "sweeps", "evaluations", "steps", "margins")
OPTIONAL_STUDY_KEYS = ("protocol",)
VALUE = re.compile(r"\{([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\}")


@dataclass(frozen=True)
class Entry:
    """One evaluation or step of a study: a script and its argument templates (see total/studies.yaml)."""
    script: str
    args: tuple[str, ...]
    each: tuple[str, str] | None = None  # (bound name, name of the list it runs over)
    when: str | None = None
    log: str = ""


MARGIN = Range(0, 1, lo_open=True, hi_open=True)  # every margin: a positive number below 1


@dataclass(frozen=True)
class Margins:
    """A study's equivalence margins, declared once in total/studies.yaml: a paired difference whose CI
    lies inside +-margin is "equivalent", one wholly beyond it "better" or "worse" (docs/evaluation.md)."""
    reward: float  # absolute, in reward units
    p99_latency: float  # relative: a fraction of the reference scheduler's P99 latency
    slo_attainment: float  # absolute, a fraction of requests (0.01 = one percentage point)


@dataclass(frozen=True)
class Study:
    """A study as total/studies.yaml gives it."""
    name: str
    code: str
    sweeps: tuple[Path, ...]
    evaluations: tuple[Entry, ...]
    steps: tuple[Entry, ...]
    margins: Margins
    protocol: dict = field(default_factory=dict)  # the study's own settings, checked by its code


def load_studies(path: Path = STUDIES) -> dict[str, Study]:
    """Every study of `path`, each field checked; a bad one is a one-line ConfigError naming the file and field."""
    raw = load_yaml(path, "studies file")
    if not raw:
        raise ConfigError(f"{path}: expected a mapping of study names to studies, got nothing")
    return {name: check_study(path, str(name), spec) for name, spec in raw.items()}


def check_study(path: Path, name: str, spec: Any) -> Study:
    def bad(field: str, expected: str, got: Any) -> ConfigError:
        return ConfigError(f"{path}: {name}.{field}: expected {expected}, got {got!r}")

    if not isinstance(spec, dict):
        raise bad("", "a mapping with " + ", ".join(STUDY_KEYS), spec)
    for key in (set(spec) - set(OPTIONAL_STUDY_KEYS)) ^ set(STUDY_KEYS):
        raise bad(str(key), "every one of " + ", ".join(STUDY_KEYS) + " and optionally " + ", ".join(OPTIONAL_STUDY_KEYS),
                  "an unknown key" if key in spec else "nothing")
    protocol = spec.get("protocol", {})
    if not isinstance(protocol, dict):
        raise bad("protocol", "a mapping of the study's settings", protocol)
    code = spec["code"]
    if not isinstance(code, str) or not re.fullmatch(r"total\.\w+:\w+", code):
        raise bad("code", '"total.<module>:<function>"', code)
    module, function = code.split(":")
    if not (paths.REPO / (module.replace(".", "/") + ".py")).is_file():
        raise bad("code", "a module of total/", code)
    sweeps = spec["sweeps"]
    if not isinstance(sweeps, list) or not all(isinstance(s, str) and (SWEEPS / f"{s}.yaml").is_file() for s in sweeps):
        raise bad("sweeps", f"a list of names of {SWEEPS}/<name>.yaml files", sweeps)

    def entry(field: str, e: Any, log_needed: bool) -> Entry:
        if not isinstance(e, dict):
            raise bad(field, "a mapping with script and args", e)
        for key in e:
            if key not in ENTRY_KEYS or (key == "log" and not log_needed):
                raise bad(f"{field}.{key}", "one of " + ", ".join(k for k in ENTRY_KEYS if k != "log" or log_needed),
                          "an unknown key")
        for key, needed in ENTRY_KEYS.items():
            if key not in e and (needed or (key == "log" and log_needed)):
                raise bad(f"{field}.{key}", "a value", "nothing")
        script = e["script"]
        if not isinstance(script, str) or not re.fullmatch(r"total/\w+\.py", script) or not (paths.REPO / script).is_file():
            raise bad(f"{field}.script", "an existing script total/<name>.py", script)
        if not isinstance(e["args"], list) or not all(isinstance(a, str) for a in e["args"]):
            raise bad(f"{field}.args", "a list of strings (quote numbers)", e["args"])
        each = e.get("for")
        if each is not None and not (isinstance(each, dict) and len(each) == 1
                                     and all(isinstance(k, str) and isinstance(v, str) for k, v in each.items())):
            raise bad(f"{field}.for", "one `name: list` pair", each)
        when = e.get("when")
        if when is not None and not isinstance(when, str):
            raise bad(f"{field}.when", "the name of a value", when)
        log = e.get("log", "")
        if not isinstance(log, str):
            raise bad(f"{field}.log", "a file name template", log)
        return Entry(script, tuple(e["args"]), next(iter(each.items())) if each else None, when, log)

    margins = spec["margins"]
    fields = list(Margins.__dataclass_fields__)
    if not isinstance(margins, dict) or set(margins) != set(fields):
        raise bad("margins", "a mapping of " + ", ".join(fields), margins)
    for key in fields:
        value = margins[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise bad(f"margins.{key}", MARGIN.describe(), value)
    entries = {}
    for part in ("evaluations", "steps"):
        if not isinstance(spec[part], list):
            raise bad(part, "a list", spec[part])
        entries[part] = tuple(entry(f"{part}[{i}]", e, part == "evaluations") for i, e in enumerate(spec[part]))
    return Study(name, code, tuple(SWEEPS / f"{s}.yaml" for s in sweeps), entries["evaluations"], entries["steps"],
                 Margins(**{k: float(margins[k]) for k in fields}), protocol)


def lookup(values: dict[str, Any], name: str, where: str) -> Any:
    value: Any = values
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            sys.exit(f"error: {STUDIES}: {where}: the study provides no value {{{name}}}")
        value = value[part]
    return value


def expand_entry(entry: Entry, values: dict[str, Any], where: str) -> Iterator[tuple[list[str], str]]:
    """(arguments, log name) of each call `entry` makes with the study's `values`."""
    if entry.when is not None and not lookup(values, entry.when, f"{where}.when"):
        return
    bound = ([values | {entry.each[0]: item} for item in lookup(values, entry.each[1], f"{where}.for")]
             if entry.each else [values])

    def fill(text: str, scope: dict[str, Any]) -> str:
        return VALUE.sub(lambda m: str(lookup(scope, m.group(1), where)), text)

    for scope in bound:
        argv: list[str] = []
        for arg in entry.args:
            whole = VALUE.fullmatch(arg)
            value = lookup(scope, whole.group(1), where) if whole else None
            argv += [str(v) for v in value] if isinstance(value, list | tuple) else [fill(arg, scope)]
        yield argv, fill(entry.log, scope)


def child(args: list[str], log: Path, name: str) -> None:
    """One script as a child process (stopped with the driver on a signal); a failure ends the study."""
    log.parent.mkdir(parents=True, exist_ok=True)
    if CHILDREN.call([sys.executable, *args], log, name) != 0:
        sys.exit(f"error: {name} failed; see {log}")


def run_evaluations(study: Study, values: dict[str, Any], workers: int, logs: Path, done: Path | None = None) -> None:
    """Every evaluation of the study, `workers` child processes at a time, in the order given. With `done` (a
    JSON record), an evaluation that already finished with the same arguments while the same finished runs
    were under the study's results is not run again, so a long study that was stopped goes on where it was."""
    calls = [(e.script, argv, log) for i, e in enumerate(study.evaluations)
             for argv, log in expand_entry(e, values, f"{study.name}.evaluations[{i}]")]
    record: dict[str, str] = {}
    runs: list[str] = []
    if done is not None:  # the study's finished runs, each as its path and modification time
        record = read_record(done)
        runs = [f"{p} {p.stat().st_mtime_ns}" for p in sorted(Path(values["results"]).glob("*/*/checkpoints/final.pt"))]
    lock = threading.Lock()

    def call(script: str, argv: list[str], log: str) -> None:
        key = json.dumps([script, argv, runs])
        if record.get(log) == key:
            print(f"{log}: finished before with the same arguments and runs, not run again", flush=True)
            return
        child([script, *argv], logs / f"{log}.log", log)
        if done is not None:
            with lock:
                record[log] = key
                write_json(done, record)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for future in [pool.submit(call, script, argv, log) for script, argv, log in calls]:
            future.result()


def read_record(path: Path) -> dict[str, str]:
    """run_evaluations' record of finished evaluations; none (or an unreadable one) means nothing finished."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) and all(isinstance(v, str) for v in record.values()) else {}


def protocol_field(raw: dict, where: str, path: str, check: Callable[[Any], bool], expected: str) -> Any:
    """The protocol's field at dotted `path`, checked; missing or bad, the study ends with one line naming it."""
    value: Any = raw
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            sys.exit(f"error: {where}.{path}: expected {expected}, got nothing")
        value = value[part]
    if not check(value):
        sys.exit(f"error: {where}.{path}: expected {expected}, got {value!r}")
    return value


@dataclass(frozen=True)
class Prepared:
    """Work of the study that needs no checkpoint: `argv` makes `output`, with the settings `want` recorded in
    `record` (None: the script's own config.yaml beside `output`; else the study writes `record` itself)."""

    what: str
    output: Path
    want: dict
    argv: list[str]
    record: Path | None = None


def region_command(out: Path, seed: int, servers: int) -> list[str]:
    """data1/generate.py's arguments (from the repository root) for a study's generated region: `servers` servers,
    a tenth of them traps, generator `seed`, written to `out` (replacing an older one there)."""
    return ["data1/generate.py", "--servers", str(servers), "--trap-fraction", "0.1", "--seed", str(seed),
            "--out", str(out), "--force"]


def prepare(job: Prepared, logs: Path) -> None:
    """Run the job unless its output is already there, made with the same settings."""
    folder = job.output.parent
    if tuning_done(folder, job.want, job.record, job.output):
        print(f"{job.what}: reusing {folder} (made with the same settings)")
        return
    child(job.argv, logs / f"{folder.name}.log", job.what)
    if job.record is not None:
        write_yaml(job.record, job.want)



def tuning_done(folder: Path, want: dict, record: Path | None = None, output: Path | None = None) -> bool:
    """Whether `folder` already holds a tuning (or another prepared `output`) made with exactly these settings
    (Heuristics/tune.py and load_rates.py record them in its config.yaml, the default `record`), so that a
    re-run of the study reuses it instead of redoing it."""
    try:
        have = load_yaml(record or folder / "config.yaml", "tuning config")
    except ConfigError:
        return False
    return isinstance(have, dict) and all(have.get(k) == v for k, v in want.items()) and (
        output or folder / "tuning.json").exists()


def overview_cell(row: pd.Series | None, metric: str, digits: int) -> str:
    """A scheduler's `metric` in one setting: mean [95% CI], a point value where summary.csv has no CI,
    "unstable" where its bounded evaluation left workflows unfinished, empty where it was not evaluated."""
    if row is None or metric not in row.index:
        return ""
    if row.get("unfinished", 0) > 0:
        return "unstable"
    if f"{metric}_lo" not in row.index:
        return f"{row[metric]:,.{digits}f}"
    return f"{row[metric]:,.{digits}f} [{row[metric + '_lo']:,.{digits}f}, {row[metric + '_hi']:,.{digits}f}]"


def overview(results: Path, region: str, tags: list[str], metrics: tuple[tuple[str, str, int], ...], prefix: str) -> str:
    """One Markdown table per (metric, name, digits) of `metrics`, a column per setting (its tag without
    `prefix`): every scheduler's mean [95% CI] (a point value where summary.csv has no CI), or "unstable"
    where a bounded evaluation left its workflows unfinished (the per-setting tables and paired comparisons
    hold the rest)."""
    summaries = {t: read_summary(eval_dir(results, [region], t) / "summary.csv").set_index("algo") for t in tags}
    algos = sort_algos({a for s in summaries.values() for a in s.index})
    parts = []
    for metric, name, digits in metrics:
        rows = [f"| {name} | " + " | ".join(t.removeprefix(prefix) for t in tags) + " |",
                "|---|" + "---|" * len(tags)]
        for a in algos:
            cells = [overview_cell(summaries[t].loc[a] if a in summaries[t].index else None, metric, digits)
                     for t in tags]
            rows.append(f"| {label(a)} | " + " | ".join(cells) + " |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"


def run_steps(study: Study, values: dict[str, Any]) -> None:
    """Every table and figure of the study, in order, in this process (so the study's --overwrite and
    --formats reach them). A figure script without a `main` is called through figure_main. Besides the
    study code's values, the templates see the study's margins as {margins.<name>}."""
    values = values | {"margins": asdict(study.margins)}
    for i, e in enumerate(study.steps):
        module = importlib.import_module("total." + Path(e.script).stem)
        for argv, _ in expand_entry(e, values, f"{study.name}.steps[{i}]"):
            if hasattr(module, "main"):
                module.main(argv)
            else:
                figure_main(module.draw, module.__doc__ or "", argv,
                            tagged="tag" in inspect.signature(module.draw).parameters)


def study_margins(name: str) -> Margins:
    """The margins total/studies.yaml declares for study `name`: the defaults of the table scripts run by hand."""
    return studies_or_exit()[name].margins


def study_main(study: Study) -> Callable[[list[str] | None, Study], int]:
    module, function = study.code.split(":")
    return getattr(importlib.import_module(module), function)


def studies_or_exit() -> dict[str, Study]:
    """total/studies.yaml's studies; a bad field ends the script with its one-line message."""
    try:
        return load_studies()
    except ConfigError as e:
        sys.exit(f"error: {e}")


def main(argv: list[str] | None = None) -> int:
    """`--study NAME` picks the study of total/studies.yaml; every other argument is that study's."""
    argv = list(sys.argv[1:] if argv is None else argv)
    studies = studies_or_exit()
    picker = argparse.ArgumentParser(add_help=False)
    picker.add_argument("--study", choices=list(studies), default="paper")
    known, rest = picker.parse_known_args(argv)
    study = studies[known.study]
    return study_main(study)(rest, study)


def paper_main(argv: list[str] | None, study: Study) -> int:
    args = parse_args(argv)
    with writing(args):
        return reproduce(args, study)


def reproduce(args: argparse.Namespace, study: Study) -> int:
    results, figures = args.results.resolve(), figures_dir(args).resolve()
    budget = {k: QUICK[k] for k in ("epochs", "episodes")} if args.quick else DEFAULTS["budget"]
    data = str(args.data.resolve())
    with stop_children_on_signal():
        for sweep in study.sweeps:  # its data, algorithms, seeds, region and budget are the flags'
            train(load_sweep(sweep, trains=False) | {"data": data, "algorithms": args.algos, "seeds": args.seeds,
                                       "regions": [[args.region]], "budget": budget, "results": str(results)},
                  args.workers, backend=Backend.of(args))
        values = {"data": data, "region": args.region, "results": str(results), "figures": str(figures),
                  "episodes": ["--episodes", str(QUICK["eval_episodes"])] if args.quick else [],
                  "overwrite": ["--overwrite"] if args.overwrite else []}
        run_evaluations(study, values, 1, results / "logs")
    run_steps(study, values)
    record = write_output(figures / "reproduce.yaml", yaml.safe_dump(provenance(
        args, figures=figures, budget=budget, eval_episodes=QUICK["eval_episodes"] if args.quick else "every task"),
        sort_keys=False), inputs(results, [args.region]))
    print(f"wrote {record}\ndone: figures and tables in {figures}")
    return 0


if __name__ == "__main__":
    with closed_output_is_one_line():
        sys.exit(main())
