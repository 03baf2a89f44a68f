"""Experiment sweeps: algorithms x seeds x regions x profiles from one YAML, on this machine or a
Ray cluster, into the usual results/ layout (so total/evaluate_all.py and the plots work unchanged).

    python total/sweep.py --config sweeps/quick.yaml                      # local process pool
    python total/sweep.py --config sweeps/paper.yaml --workers 2
    python total/sweep.py --config sweeps/paper.yaml --backend ray --address auto   # a running cluster

Each run is `<results>/<Algo>/<regions>[_<profile>][_<variant>]_seed<S>/`, trained (with the sweep's
`overrides`: `--set KEY=VALUE` per algorithm or for `all`), then evaluated with its inference.py
into `eval_<split>_seed<E>[_ep<N>]/` under the run's own config. Relative `data:` and `results:`
in the YAML are relative to the repository; `--results` on the command line, to the current
directory. The sweep is idempotent, and never mixes settings:
- a run folder records the requested settings in `sweep_run.yaml` before training;
- a folder holding checkpoints of other settings (budget, overrides by the values they set, data, ...), or of unknown
  ones, is refused with the differing keys, never reused;
- a run whose final checkpoint and evaluation exist is skipped;
- an interrupted run resumes from its last checkpoint;
- a failing run is reported with its log path and the others go on.
`recipe` (optional; sweeps/contention.yaml): a profile's name, e.g. `recipe: contention`; every algorithm's
recipe for it (`<folder>/contention.yaml`, the settings the study adopted) applies to its runs, expanded into
`--set` overrides after `overrides.all` and before the algorithm's own, so `overrides` lists only what the
sweep changes on top. Without it the runs train config.yaml's defaults (train.py --no-recipe).
`variants` (optional; sweeps/ablation.yaml) maps a name to more `--set` overrides: every algorithm,
seed, region and profile then runs once per variant, in a folder named with the variant.
Every field is checked before any run starts (types, ranges, region names that are names, never
paths), and so is every run's training config, as its train.py will resolve it; `--dry-run` stops
there and lists the runs.
Logs are `train.log` / `eval.log` in the run folder. SIGINT or SIGTERM to the sweep stops every
running trainer and evaluation (each runs in its own process group), then exits 128 + the signal.
"""
from __future__ import annotations

import argparse
import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from edgesim.inputs import MAX_EPISODES, SEEDS, InputError, Range, ints, plain_name, reals, shown
from edgesim.registry import PROFILES, get_profile
from schedkit.cli import MAX_WORKERS, closed_output_is_one_line, workers_arg
from schedkit.config import (
    RANGES,
    ConfigError,
    check_device,
    load_recipe,
    load_yaml,
    parse_set,
    recipe_path,
    recipe_sets,
    resolve,
)
from schedkit.io import write_yaml
from schedkit.paths import checkpoint_dir, final_checkpoint, run_eval_dir, run_name
from schedkit.registry import current_name, get, learned
from schedkit.runs import RunError, RunLock
from total.common import RECORD, ROOT, VARIANT_NAME, paths

DEFAULTS: dict[str, Any] = {"data": "data1", "algorithms": learned(), "seeds": [42, 43, 44], "regions": [["Server1_Trap"]],
            "profiles": ["paper"], "budget": {"epochs": 100, "episodes": 200},
            "evaluate": {"split": "test", "episodes": None, "seed": 0},
            "resources": {"cpus": 1, "gpus": 0}, "results": "results", "device": "cpu", "overrides": {},
            "variants": {}, "recipe": None, "decide": None}
# `decide` (total/decide.py): the studies whose validation setting can decide a sweep's variants, and the rules
DECIDING_STUDIES = ("serving",)
DECIDE_RULES = ("reward_ci_above_zero",)
DECIDE_FIELDS = ("study", "reference", "rule")
GRACE_S = 10.0  # how long stopped children get to exit on SIGTERM before SIGKILL
FRESH_FOLDER = "set another `results:` root (or --results) or delete the folder"
RESUME_HINT = ("to resume, run the same command again: finished runs are skipped, interrupted ones resume "
               "from their last checkpoint")


@dataclass(frozen=True)
class Run:
    algo: str
    seed: int
    regions: tuple[str, ...]
    profile: str
    epochs: int
    episodes: int
    data: str
    results: str
    device: str
    eval_split: str
    eval_episodes: int | None
    eval_seed: int
    sets: tuple[str, ...] = ()  # --set KEY=VALUE for train.py, from the sweep's `overrides`
    evaluate: bool = True  # run inference.py after training (total/reproduce.py evaluates everything later)
    variant: str = ""  # a name from the sweep's `variants` (its --set overrides are in `sets`), or none
    recipe: bool = False  # trained with its algorithm's recipe for the profile (whose --set overrides are in `sets`)

    @property
    def dir(self) -> Path:
        return (Path(self.results) / self.algo
                / run_name(list(self.regions), self.seed, get_profile(self.profile), self.variant))

    @property
    def eval_dir(self) -> Path:
        """One folder per evaluation setting, so a changed split, seed or episode count never reuses another's."""
        return run_eval_dir(self.dir, self.eval_split, self.eval_seed, episodes=self.eval_episodes)

    @property
    def name(self) -> str:
        return f"{self.algo}/{self.dir.name}"

    def requested(self) -> dict:
        """The settings a trained run's results depend on: its identity in `sweep_run.yaml`. The device is
        recorded beside them but not compared (the same run on another device is the same experiment)."""
        return {"algo": self.algo, "seed": self.seed, "regions": list(self.regions), "profile": self.profile,
                "epochs": self.epochs, "episodes": self.episodes, "data": self.data, "sets": list(self.sets)} | (
                    {"variant": self.variant} if self.variant else {})


def in_repo(path: str) -> str:
    """A sweep YAML's path: relative ones are relative to the repository, so the shipped sweeps work from any cwd."""
    return str((paths.REPO / path).resolve())


def load_sweep(path: str | Path, trains: bool = True) -> dict:
    """The sweep YAML over DEFAULTS, every field checked (`check_sweep`); a bad one ends the script with one
    line. `trains`: the caller will train its runs, so their configs are resolved too (a script that only
    reads a sweep's results, such as total/ablation_table.py, leaves that to the sweep)."""
    try:
        return check_sweep(load_yaml(path, "sweep file"), path, trains)
    except ConfigError as e:
        sys.exit(f"error: {e}")


SPLITS = ("train", "test")
SUBFIELDS = {"budget": ("epochs", "episodes"), "evaluate": ("split", "episodes", "seed"), "resources": ("cpus", "gpus")}
FIELD_RANGES = {"budget.epochs": RANGES["epochs"], "budget.episodes": RANGES["episodes"],
                "evaluate.seed": SEEDS, "evaluate.episodes": ints(1, MAX_EPISODES),
                "resources.cpus": reals(0, MAX_WORKERS, lo_open=True), "resources.gpus": reals(0, 64)}


def check_sweep(cfg: dict, path: str | Path, trains: bool = True) -> dict:
    """A sweep's fields over DEFAULTS, each checked for its type and range, and (`trains`) every run's
    training config resolved as its train.py will resolve it: a sweep that would fail halfway is refused
    before any run starts. Unknown keys, algorithms and profiles are errors, not silent no-ops. Raises
    ConfigError."""
    unknown = set(cfg) - set(DEFAULTS) - {"name"}
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    if not cfg:
        raise ConfigError(f"{path}: the sweep file sets nothing; expected at least algorithms, seeds and regions")
    merged = DEFAULTS | cfg | {key: _checked_mapping(cfg, key, path) for key in SUBFIELDS}
    _check_scalars(merged, path)
    for key, known in (("algorithms", learned()), ("profiles", list(PROFILES))):
        _check_list(merged, key, path, lambda v: isinstance(v, str), f"names, e.g. {known[:2]}")
        bad = [v for v in merged[key] if v not in known]
        if bad:
            renamed = "".join(f" ({v} is now {current_name(v)})" for v in bad if current_name(v) != v)
            raise ConfigError(f"{path}: unknown {key.removesuffix('s')}(s) {bad}; known: {known}{renamed}")
    _check_list(merged, "seeds", path, lambda s: _fits(SEEDS, s), f"seeds, each {SEEDS.describe()}")
    _check_list(merged, "regions", path, _is_regions,
                "region names, or lists of names trained on together (plain names, never paths)")
    _check_sets(merged, path)
    _check_recipe(merged, path)
    _check_decide(merged, path)
    if trains:
        _check_run_configs(merged, path)
    return merged


def _field_error(path: str | Path, name: str, want: str, value: Any) -> ConfigError:
    return ConfigError(f"{path}: field '{name}': expected {want}, got {shown(value, 80)}")


def _checked_mapping(cfg: dict, key: str, path: str | Path) -> dict:
    """`budget`, `evaluate` or `resources` over its defaults, each entry in range."""
    given = cfg.get(key) or {}
    if not isinstance(given, dict) or set(given) - set(SUBFIELDS[key]):
        raise _field_error(path, key, f"a mapping of {', '.join(SUBFIELDS[key])}", given)
    merged = DEFAULTS[key] | given
    for sub, value in merged.items():
        rng = FIELD_RANGES.get(f"{key}.{sub}")
        if rng is not None and not (value is None and f"{key}.{sub}" == "evaluate.episodes"):
            try:
                rng.check(value, f"{path}: field '{key}.{sub}'")
            except InputError as e:
                raise ConfigError(str(e)) from None
    if key == "evaluate" and merged["split"] not in SPLITS:
        raise _field_error(path, "evaluate.split", f"one of {list(SPLITS)}", merged["split"])
    return merged


def _check_scalars(cfg: dict, path: str | Path) -> None:
    for key in ("name", "data", "results", "device"):
        if key in cfg and (not isinstance(cfg[key], str) or not cfg[key]):
            raise _field_error(path, key, "a non-empty string", cfg[key])
    try:
        check_device(cfg["device"])
    except ConfigError as e:
        raise ConfigError(f"{path}: field 'device': {e}") from None


def _check_sets(cfg: dict, path: str | Path) -> None:
    """`overrides` and `variants`: lists of KEY=VALUE strings, by algorithm (or `all`) and by variant name."""
    overrides = cfg["overrides"] or {}
    if not isinstance(overrides, dict) or not all(
            (k == "all" or k in learned()) and _is_sets(v) for k, v in overrides.items()):
        raise ConfigError(f"{path}: 'overrides' maps 'all' or an algorithm to a list of KEY=VALUE strings; "
                          f"got {shown(overrides, 80)}")
    variants = cfg["variants"] or {}
    if not isinstance(variants, dict) or not all(_is_variant(k, v) for k, v in variants.items()):
        raise ConfigError(f"{path}: 'variants' maps a name (letters, digits, '-') to a list of KEY=VALUE strings; "
                          f"got {shown(variants, 80)}")


def _check_recipe(cfg: dict, path: str | Path) -> None:
    """`recipe`: a profile every run of the sweep trains under, for which every algorithm has a recipe."""
    name = cfg["recipe"]
    if name is None:
        return
    if not isinstance(name, str) or name not in PROFILES:
        raise _field_error(path, "recipe", f"a profile's name, one of {list(PROFILES)}", name)
    if cfg["profiles"] != [name]:
        raise ConfigError(f"{path}: 'recipe: {name}' is the recipe of profile {name}, so the sweep's profiles "
                          f"must be [{name}]; got {cfg['profiles']}")
    for algo in cfg["algorithms"]:
        file = recipe_path(_defaults_file(algo), name)
        if not file.is_file():
            raise ConfigError(f"{path}: 'recipe: {name}': {algo} has no recipe {file.relative_to(paths.REPO)}")
        _recipe(algo, name)


def _check_decide(cfg: dict, path: str | Path) -> None:
    """`decide`: the study whose validation setting decides, the variant the others are paired against (every
    other variant is a candidate) and the adoption rule; written before the runs, read by total/decide.py."""
    block = cfg["decide"]
    if block is None:
        return
    if not isinstance(block, dict) or set(block) != set(DECIDE_FIELDS):
        raise _field_error(path, "decide", f"a mapping of {', '.join(DECIDE_FIELDS)}", block)
    if block["study"] not in DECIDING_STUDIES:
        raise _field_error(path, "decide.study", f"one of {list(DECIDING_STUDIES)}", block["study"])
    if block["rule"] not in DECIDE_RULES:
        raise _field_error(path, "decide.rule", f"one of {list(DECIDE_RULES)}", block["rule"])
    variants = list(cfg["variants"] or {})
    if block["reference"] not in variants or len(variants) < 2:
        raise _field_error(path, "decide.reference", f"one of the sweep's variants {variants}, with at least one "
                           "other to decide", block["reference"])
    if cfg["profiles"] != [block["study"]] or len(cfg["regions"]) != 1:
        raise ConfigError(f"{path}: 'decide' judges on study {block['study']}'s validation setting: the sweep's "
                          f"profiles must be [{block['study']}] and its regions one entry; got {cfg['profiles']} "
                          f"and {cfg['regions']}")


def _defaults_file(algo: str) -> Path:
    return paths.REPO / get(algo).folder / "config.yaml"


def _recipe(algo: str, name: str | None) -> list[str]:
    """An algorithm's recipe for profile `name` as --set overrides ([] for none)."""
    if name is None:
        return []
    return recipe_sets(load_recipe(_defaults_file(algo), name, getattr(get(algo).load(), "config_choices", None)))


def _fits(rng: Range, value: Any) -> bool:
    try:
        rng.check(value)
    except InputError:
        return False
    return True


def _check_list(cfg: dict, key: str, path: str | Path, ok: Callable[[Any], bool], want: str) -> None:
    """A non-empty list without repeats whose every item is `ok`."""
    value = cfg[key]
    if not isinstance(value, list) or not value or not all(ok(v) for v in value):
        raise _field_error(path, key, f"a non-empty list of {want}", value)
    if len({repr(v) for v in value}) < len(value):
        raise ConfigError(f"{path}: field '{key}': an item is listed twice (its runs would share folders): {value}")


def _is_regions(item: Any) -> bool:
    names = item if isinstance(item, list) else [item]
    try:
        return bool(names) and all(plain_name(n, "region") for n in names)
    except InputError:
        return False


def _is_sets(sets: object) -> bool:
    return isinstance(sets, list) and all(isinstance(s, str) for s in sets)


def _is_variant(name: object, sets: object) -> bool:
    return isinstance(name, str) and bool(VARIANT_NAME.fullmatch(name)) and _is_sets(sets)


def _check_run_configs(cfg: dict, path: str | Path) -> None:
    """Resolve the training config of every (algorithm, profile, variant) of the sweep as train.py will, so
    an override out of range, unknown or of another profile is refused before any run starts."""
    checked = set()
    for run in expand(cfg):
        if (run.algo, run.profile, run.variant) in checked:
            continue
        checked.add((run.algo, run.profile, run.variant))
        try:
            training_config(run)
        except ConfigError as e:
            runs = f"{run.algo} under profile {run.profile}" + (f", variant {run.variant}" if run.variant else "")
            raise ConfigError(f"{path}: the runs of {runs}: {e}") from None


def training_config(run: Run) -> dict:
    """The config the run's train.py resolves from the arguments `execute` gives it. Raises ConfigError."""
    flags = {"data": run.data, "regions": list(run.regions), "seed": run.seed, "epochs": run.epochs,
             "episodes": run.episodes, "profile": run.profile, "device": run.device}
    return resolve(_defaults_file(run.algo), None, list(run.sets), flags,
                   getattr(get(run.algo).load(), "config_choices", None), recipe=run.recipe)


def _as_tuple(regions: str | list[str]) -> tuple[str, ...]:
    return tuple(regions) if isinstance(regions, list) else (regions,)


def expand(cfg: dict) -> list[Run]:
    """Every run of a checked sweep. A run's `sets`: `overrides.all`, its algorithm's recipe, its
    `overrides`, its variant's, in that order (a later one wins); folders recorded before the sweep named
    its recipe hold the same settings (see `claim`)."""
    ev, budget = cfg["evaluate"], cfg["budget"]
    regions = [_as_tuple(r) for r in cfg["regions"]]
    overrides, recipe = cfg["overrides"] or {}, cfg["recipe"]
    variants = cfg["variants"] or {"": []}  # none: one run per combination, no name in the folder
    eval_episodes = None if ev["episodes"] is None else int(ev["episodes"])
    recipes = {algo: _recipe(algo, recipe) for algo in cfg["algorithms"]}
    return [Run(algo, int(seed), reg, profile, int(budget["epochs"]), int(budget["episodes"]), in_repo(cfg["data"]),
                in_repo(cfg["results"]), cfg["device"], ev["split"], eval_episodes, int(ev["seed"]),
                tuple(overrides.get("all", []) + recipes[algo] + overrides.get(algo, []) + variants[variant]),
                variant=variant, recipe=recipe is not None)
            for algo, seed, reg, profile, variant in itertools.product(cfg["algorithms"], cfg["seeds"], regions,
                                                                       cfg["profiles"], variants)]


class Children:
    """The trainers and evaluations running now. Each starts in its own session, so a Ctrl-C in the
    terminal reaches only the driver, and the driver stops them all: none keeps training unseen."""

    def __init__(self) -> None:
        self._running: dict[subprocess.Popen, str] = {}
        self._lock = threading.Lock()
        self.stopping = threading.Event()
        self.stopped: list[str] = []

    def call(self, args: list[str], log: Path, name: str) -> int:
        """Run one child to its end, output appended to `log`; its exit status (negative: killed by
        that signal). Once stopping, nothing new starts."""
        with open(log, "a") as f:
            with self._lock:
                if self.stopping.is_set():
                    return -signal.SIGTERM
                proc = subprocess.Popen(args, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
                self._running[proc] = name
            try:
                return proc.wait()
            finally:
                with self._lock:
                    del self._running[proc]

    def stop(self, grace_s: float = GRACE_S) -> list[str]:
        """SIGTERM every running child's process group, SIGKILL those still alive after `grace_s`;
        the names of the runs stopped."""
        self.stopping.set()
        with self._lock:
            running = dict(self._running)
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for proc in running:
            try:
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
        self.stopped += sorted(running.values())
        return self.stopped


def _signal_group(proc: subprocess.Popen, sig: int) -> None:
    if proc.returncode is None:
        try:
            os.killpg(proc.pid, sig)  # the child's whole group: whatever it started goes too
        except ProcessLookupError:
            pass


CHILDREN = Children()


class Interrupted(Exception):
    """SIGINT or SIGTERM reached the driver."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_SIGNALLED: list[int] = []  # signals noted by _note


def _interrupt(signum: int, frame: object) -> None:
    if not CHILDREN.stopping.is_set():  # a second Ctrl-C while stopping changes nothing
        raise Interrupted(signum)


def _note(signum: int, frame: object) -> None:
    """For code that swallows exceptions raised by handlers (ray.wait): a loop calls raise_if_signalled."""
    _SIGNALLED.append(signum)


def catch_signals(handler: Callable[[int, object], None] = _interrupt) -> dict:
    """Send SIGINT and SIGTERM to `handler`; the handlers they had before."""
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}


def raise_if_signalled() -> None:
    if _SIGNALLED:
        raise Interrupted(_SIGNALLED[0])


@contextmanager
def stop_children_on_signal() -> Iterator[None]:
    """On SIGINT or SIGTERM: stop every running child (SIGTERM, SIGKILL after GRACE_S), say how to
    resume, and exit 128 + the signal number (130 for Ctrl-C), never leaving a trainer behind."""
    previous = catch_signals()
    try:
        yield
    except Interrupted as e:
        stopped = CHILDREN.stop()
        print(f"\ninterrupted by {e}" + (f": stopped {len(stopped)} running run(s) ({', '.join(stopped)})"
                                         if stopped else "") + f"\n{RESUME_HINT}", file=sys.stderr, flush=True)
        sys.exit(128 + e.signum)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def claim(run: Run) -> str | None:
    """Record the settings in a folder without checkpoints, or check a trained folder's record against
    them. Returns why the run is refused, or None: reusing a run trained with other settings would put
    it silently into every table."""
    record, wanted = run.dir / RECORD, run.requested()
    if not any(checkpoint_dir(run.dir).glob("*.pt")):  # nothing trained yet: the folder binds nothing
        write_yaml(record, wanted | {"device": run.device, "git_commit": paths.git_commit()})
        return None
    if not record.exists():
        return f"refused: {run.dir} has no {RECORD}, so its settings are unknown; {FRESH_FOLDER}"
    try:
        saved = load_yaml(record, "sweep record")
    except ConfigError:
        saved = {}
    if isinstance(saved.get("algo"), str):
        saved["algo"] = current_name(saved["algo"])  # a record of an older version names it so
    differ = [k for k in wanted if not _same(k, saved.get(k), wanted[k])]
    if not differ:
        return None
    changes = "; ".join(f"{k} {saved.get(k)!r} there, {wanted[k]!r} here" for k in differ)
    return f"refused: {run.dir} holds a run with other settings ({changes}); {FRESH_FOLDER}"


def _same(key: str, saved: Any, wanted: Any) -> bool:
    """Whether a recorded setting is the requested one. `sets` compare by the values they set (the
    effective overrides: `dwa.initial=[0.75, 0.10, 0.15]` recorded by hand is the recipe's
    `dwa.initial=[0.75, 0.1, 0.15]`), so a sweep that names its recipe keeps its folders."""
    if key != "sets" or saved == wanted:
        return saved == wanted
    try:
        return _is_sets(saved) and parse_set(saved) == parse_set(wanted)
    except ConfigError:
        return False


def execute(run: Run) -> dict:
    """Train (skip / resume / fresh), then evaluate (skip if present). Never raises: returns a status."""
    folder = get(run.algo).folder
    final = final_checkpoint(run.dir)
    t0 = time.perf_counter()

    def outcome(status: str, log: str = "train.log", reason: str = "") -> dict:
        return {"run": run.name, "status": status, "wall_s": time.perf_counter() - t0, "log": str(run.dir / log),
                "reason": reason}

    try:
        run.dir.mkdir(parents=True, exist_ok=True)
        with RunLock(run.dir):  # another sweep training or claiming this run: refused, never both
            refusal = claim(run)
    except (RunError, OSError) as e:
        refusal = f"refused: {e}"
    if refusal:
        return outcome("failed", reason=refusal)
    status = "skipped"
    if not final.exists():
        if any(checkpoint_dir(run.dir).glob("epoch_*.pt")):
            status = "resumed"
            args = [f"{folder}/train.py", "--resume", str(run.dir), "--no-progress"]
        else:
            status = "ok"
            args = [f"{folder}/train.py", "--data", run.data, "--regions", *run.regions, "--seed", str(run.seed),
                    "--epochs", str(run.epochs), "--episodes", str(run.episodes), "--profile", run.profile,
                    "--device", run.device, "--out", str(run.dir), "--no-progress",
                    *([] if run.recipe else ["--no-recipe"]), *(arg for s in run.sets for arg in ("--set", s))]
        if CHILDREN.call([sys.executable, *args], run.dir / "train.log", run.name) != 0:
            return outcome("failed")
    if run.evaluate and not (run.eval_dir / "summary.json").exists():
        status = "ok" if status == "skipped" else status
        episodes = ["--episodes", str(run.eval_episodes)] if run.eval_episodes else []
        args = [f"{folder}/inference.py", "--data", run.data, "--region", *run.regions, "--model", str(final),
                "--split", run.eval_split, "--seed", str(run.eval_seed), "--profile", run.profile,
                "--device", run.device, "--out", str(run.eval_dir), "--no-progress", *episodes]
        if CHILDREN.call([sys.executable, *args], run.dir / "eval.log", run.name) != 0:
            return outcome("failed", "eval.log")
    return outcome(status)


def run_local(runs: list[Run], workers: int, report: Callable[[dict], None]) -> None:
    """Each run is its own process; a thread per worker waits on it. Leaving early (a signal, an error)
    stops the running children first, so the pool's shutdown never waits for a whole training."""
    pool = ThreadPoolExecutor(max_workers=workers)
    try:
        for future in as_completed([pool.submit(execute, r) for r in runs]):
            report(future.result())
    except BaseException:
        CHILDREN.stop()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def run_ray(runs: list[Run], address: str | None, workers: int | None, resources: dict,
            report: Callable[[dict], None]) -> None:
    """One Ray task per run with declared CPU/GPU resources, on a cluster or a local instance."""
    try:
        import ray
    except ImportError:
        sys.exit("error: --backend ray needs Ray: pip install -r requirements-ray.txt")
    # workers import the project from the repository (installed or not): it must sit at this path on every node
    env = {"env_vars": {"PYTHONPATH": str(ROOT)}}
    if address:
        ray.init(address=address, runtime_env=env, log_to_driver=False)
    else:
        ray.init(num_cpus=workers, runtime_env=env, log_to_driver=False, include_dashboard=False)
    # ray.init installed a SIGTERM handler that exits at once, and ray.wait swallows exceptions raised by
    # handlers: note signals instead, and look after each wait; the caller's handlers come back after
    previous = catch_signals(_note)
    # this module under its importable name: Ray ships `sweep.execute` by reference, not by value with the
    # driver's globals (CHILDREN holds locks, which cannot be pickled)
    from total import sweep
    try:
        task = ray.remote(num_cpus=resources["cpus"], num_gpus=resources["gpus"], max_retries=0)(sweep.execute)
        pending = [task.remote(r) for r in runs]
        while pending:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            raise_if_signalled()
            for ref in done:
                report(ray.get(ref))
    finally:
        ray.shutdown()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_on(backend: str, runs: list[Run], workers: int, address: str | None, resources: dict,
           report: Callable[[dict], None]) -> None:
    """The runs on `backend`: `local` child processes, `workers` at a time, or Ray tasks on the cluster at
    `address` (none: a local Ray instance of `workers` CPUs)."""
    if backend == "local":
        run_local(runs, max(1, workers), report)
    else:
        run_ray(runs, address, None if address else workers, resources, report)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="sweep YAML (see sweeps/)")
    p.add_argument("--backend", choices=["local", "ray"], default="local")
    p.add_argument("--address", help="Ray cluster address ('auto' or ray://host:port); none starts a local instance")
    p.add_argument("--workers", type=workers_arg, default=1,
                   help="runs at once (local), or CPUs of a local Ray instance")
    p.add_argument("--results", help="override the sweep's results root (relative to the current directory)")
    p.add_argument("--dry-run", action="store_true",
                   help="check the sweep file and every run's config, list the runs and their folders, run nothing")
    args = p.parse_args(argv)
    cfg = load_sweep(args.config)
    if args.results:
        cfg["results"] = str(Path(args.results).resolve())
    if Path(cfg["results"]).exists() and not Path(cfg["results"]).is_dir():
        sys.exit(f"error: {cfg['results']}: the sweep's results root exists and is not a folder")
    runs = expand(cfg)
    print(f"sweep {cfg.get('name', Path(args.config).stem)}: {len(runs)} runs, backend {args.backend}")
    if args.dry_run:
        for run in runs:
            print(f"  {run.dir}" + "".join(f" --set {s}" for s in run.sets))
        return []
    outcomes: list[dict] = []
    with stop_children_on_signal(), tqdm(total=len(runs), desc="sweep", unit="run") as bar:
        def report(result: dict) -> None:
            outcomes.append(result)
            detail = result["reason"] or f"log: {result['log']}"
            tqdm.write(f"{result['status']:>8}  {result['run']}  ({result['wall_s']:.1f} s)"
                       + (f"  {detail}" if result["status"] == "failed" else ""))
            bar.update(1)

        run_on(args.backend, runs, args.workers, args.address, cfg["resources"], report)
    failed = print_table(outcomes)["failed"]
    if failed:
        sys.exit(f"error: {failed} of {len(outcomes)} runs failed; the log of each is named above")
    return outcomes


def print_table(outcomes: list[dict]) -> dict[str, int]:
    """The closing table, one line per run, then the count per status."""
    print(f"\n{'run':<48} {'status':>8} {'wall s':>8}")
    for r in sorted(outcomes, key=lambda r: r["run"]):
        print(f"{r['run']:<48} {r['status']:>8} {r['wall_s']:>8.1f}")
    counts = {s: sum(r["status"] == s for r in outcomes) for s in ("ok", "resumed", "skipped", "failed")}
    print(", ".join(f"{v} {k}" for k, v in counts.items()))
    return counts


if __name__ == "__main__":
    with closed_output_is_one_line():
        main()
