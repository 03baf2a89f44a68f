"""Adversarial input catalogue: how the toolkit meets bad, odd and hostile inputs, measured case by case.

    python bench/adversarial.py                                # every case, one at a time (~15 min on 2 cores)
    python bench/adversarial.py --category checkpoints --category "Gym API" --workers 2
    python bench/adversarial.py --list                         # the catalogue, nothing run
    python bench/adversarial.py --json bench/results/adversarial.json

Run on demand; not part of pytest (tests/bench/test_adversarial_catalogue.py checks the catalogue itself and the
classifier on a few synthetic cases). The catalogue (`CASES`) is data: one `Case` per input, in the eight
categories of the "Hard to break" audit (configs / sweep YAML, arrival traces, paths, checkpoints, runtime,
Gym API, CLI, plots). Each case says how to run it and what a robust toolkit does with it:
  expect "error"   the input is wrong: the command must exit non-zero with one `error:` line;
  expect "accept"  the input is valid though unusual: the command must succeed (and its `check`, if any,
                   must find the output right).

How a case runs. A fresh sandbox folder `S` per case; the case's workspace is `W = S/a/b/ws` (the current
directory of every command and the results root or --out of every command: the case's allowed results
root). Named `setup` steps copy shared artefacts into W (a tiny trained run, a partial run, a STARK run,
an evaluated results root, a small dataset) or make FIFOs, sparse files and symlinks; `files` are written
into W; `before` commands (prior outputs) must succeed. Then every file in S is hashed, and the command
runs as a real child process: `python <repository script> ARGS` (paths absolute, so the script runs as a
user would from W), `python -c` for Gym / Python-API cases, with PYTHONPATH at the repository, stdin
closed, its own process group, an address-space limit (--memory-mb, so a case that would allocate without
bound fails instead of taking the machine) and a timeout (--timeout; cases marked slow get 3x). A case
may send a signal once a file appears (`interrupt`), run a second command at the same time (`concurrent`)
and run commands afterwards (`then`, e.g. `--resume`). The shared artefacts are made once per
invocation (the tiny training run is `TopoFreeRL/train.py --epochs 2 --episodes 16 --no-progress`).

Python-API cases run their snippet inside a wrapper: an exception counts as a clean user error (the
wrapper prints `error: <Type>: <message>` on one line and exits 2) only if it is a ValueError, TypeError,
LookupError (KeyError, IndexError), RuntimeError, NotImplementedError or gymnasium.error.Error with a
message, raised deliberately: the innermost traceback frame is a `raise` statement in the repository's
own code or in gymnasium's. Anything else (an exception from deep inside torch or numpy, an
AttributeError, a MemoryError, an assertion) prints its traceback and exits 1. A snippet calls
`wrong("...")` when a result is wrong (exit 3, "silently-wrong:").

Classification: exactly one outcome per case, the first that applies:
  hang            a command ran past its timeout (its whole process group is killed);
  code ran        the marker file a payload (a YAML tag, a pickle) would create exists afterwards;
  lost            a file that existed in the sandbox before the command (prior outputs, inputs) changed
                  or vanished (unless the case lists it as `mutable`); or "writes outside": a new file
                  appeared in the sandbox outside W, or in the repository's results/, data1/ or
                  total/figures/. Both are folded into this column; the row's `detail` says which;
  traceback       a "Traceback (most recent call last)" in the output of the judged commands, a command
                  killed by a signal it did not expect, or a failing command whose stderr does not hold
                  exactly one error line;
  silently wrong  expect "error" but the command exited 0, or its one error line lacks what the case
                  requires it to name (`mention`); expect "accept" but the check found the output wrong;
  one-line        a command failed with a non-zero exit, no traceback and exactly one error line (a
                  stderr line starting `error:` or `<prog>: error:`, argparse's form after its usage);
                  for an "accept" case this is a refusal of a valid input, listed among the failures;
  documented      expect "accept", every command succeeded and the check passed.
An interrupted command may exit non-zero (130 is the convention); a `concurrent` pair may have one of the two
refused with one line (a lock), then the case is judged on the other and the check.

Prints the table in the audit's format and every case whose outcome is not the expected one
(one-line for "error", documented for "accept") with its first error line. --json writes one row per case
(category, name, expected, outcome, exit code, first error line, seconds, detail) and the table.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import copy
import fnmatch
import hashlib
import os
import platform
import random
import re
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "bench" / "results"
CATEGORIES = ("configs / sweep YAML", "arrival traces", "paths", "checkpoints", "runtime", "Gym API", "CLI", "plots")
AUDIT_COUNTS = {"configs / sweep YAML": 29, "arrival traces": 15, "paths": 23, "checkpoints": 32, "runtime": 14,
                "Gym API": 51, "CLI": 21, "plots": 3}
OUTCOMES = ("one-line", "documented", "traceback", "silently wrong", "lost", "code ran", "hang")
EXPECTED = {"error": "one-line", "accept": "documented"}
GUARDED = ("results", "data1", "total/figures")  # repository folders no case may write to
IGNORED_NAMES = {".lock", "__pycache__"}
ERROR_LINE = re.compile(r"^(?:[\w.\-]+: )?error: ")
TRACEBACK = "Traceback (most recent call last)"

Text = str | bytes
FileSpec = Text | Callable[[Path], Text]
Check = Callable[[Path], "str | None"]


# ============================================================================ the case record

@dataclass(frozen=True)
class Case:
    """One adversarial input. `cmd`: a repository script and its arguments (or `-c CODE` for raw Python);
    `py`: a Python-API snippet run in the wrapper instead. Placeholders in every string: {ws} the workspace,
    {sandbox}, {root} the repository, {marker} the file a payload would create, {small} the small data root,
    {ckpt} {ws}/run/checkpoints/final.pt, {py} this interpreter."""
    category: str
    name: str
    expect: str  # "error" or "accept"
    cmd: tuple[str, ...] = ()
    py: str = ""
    setup: tuple[str, ...] = ()  # named steps, see SETUPS; "fifo:REL", "sparse:REL:BYTES", "link:REL:TARGET"
    files: Mapping[str, FileSpec] = field(default_factory=dict)  # written into the workspace after setup
    ckpt: tuple[str, Callable[[dict], Any]] | None = None  # (REL, mutate(state)): the shared final.pt, altered
    before: tuple[tuple[str, ...], ...] = ()  # prior commands, must succeed
    concurrent: tuple[str, ...] = ()  # a second command started with `cmd`
    interrupt: tuple[str, int] | None = None  # (glob under the workspace to wait for, signal to send)
    then: tuple[tuple[str, ...], ...] = ()  # commands after `cmd`, judged too
    check: Check | None = None  # accept: None when the output is right, else what is wrong
    mention: tuple[str, ...] = ()  # error: words the error line must contain (case-insensitive)
    mutable: tuple[str, ...] = ()  # globs (relative to the workspace) of prior files the case may change
    fsize: int | None = None  # RLIMIT_FSIZE in bytes: a full disk
    slow: bool = False  # 3x the timeout
    note: str = ""


# ============================================================================ building blocks of commands

def train(*extra: str, algo: str = "TopoFreeRL") -> tuple[str, ...]:
    return (f"{algo}/train.py", "--epochs", "1", "--episodes", "2", "--no-progress", "--no-tensorboard",
            "--results", "{ws}", *extra)


def infer(*extra: str, algo: str = "TopoFreeRL", model: str = "{ckpt}") -> tuple[str, ...]:
    return (f"{algo}/inference.py", "--model", model, "--episodes", "2", "--no-progress", "--out", "{ws}/ev", *extra)


def heur(*extra: str, policy: str = "greedy") -> tuple[str, ...]:
    return ("Heuristics/inference.py", "--policy", policy, "--episodes", "2", "--no-progress", "--out", "{ws}/hev",
            *extra)


def eval_all(*extra: str) -> tuple[str, ...]:
    return ("total/evaluate_all.py", "--results", "{ws}", "--episodes", "2", "--skip", "lookahead", "--no-progress",
            *extra)


def gen(*extra: str) -> tuple[str, ...]:
    return ("data1/generate.py", "--servers", "20", "--train-tasks", "10", "--test-tasks", "5", "--out", "{ws}/gen",
            *extra)


def figures(script: str, *extra: str) -> tuple[str, ...]:
    return (f"total/{script}.py", "--results", "{ws}", "--figures", "{ws}/fig", *extra)


RESUME_PARTIAL = ("TopoFreeRL/train.py", "--resume", "{ws}/partial", "--no-progress")
CONT = ("--profile", "contention", "--worlds", "2", "--arrival-rate", "8")
SWEEP = ("total/sweep.py", "--config", "{ws}/sweep.yaml")
SWEEP_BASE: dict[str, Any] = {"name": "adv", "data": "{root}/data1", "algorithms": ["TopoFreeRL"], "seeds": [42],
                              "regions": [["Server1_Trap"]], "profiles": ["paper"],
                              "budget": {"epochs": 1, "episodes": 2}, "evaluate": {"split": "test", "episodes": 2,
                                                                                   "seed": 0},
                              "results": "{ws}/sw"}


def sweep_yaml(**over: Any) -> str:
    import yaml
    cfg = {k: v for k, v in (SWEEP_BASE | over).items() if v is not DROP}
    return yaml.safe_dump(cfg, sort_keys=False)


DROP = object()


# ---------------------------------------------------------------------------- checks of accepted outputs

def exists(*rels: str) -> Check:
    def check(ws: Path) -> str | None:
        for rel in rels:
            if not list(ws.glob(rel)):
                return f"{rel} missing"
        return None
    return check


def config_value(glob: str, key: str, want: Any) -> Check:
    """A run's config.yaml (first match of `glob`) holds `key` (dotted) == want."""
    def check(ws: Path) -> str | None:
        import yaml
        found = sorted(ws.glob(glob))
        if not found:
            return f"{glob} missing"
        node: Any = yaml.safe_load(found[0].read_text())
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return None if node == want else f"{key} = {node!r}, expected {want!r}"
    return check


def metrics_rows(rel: str, rows: int) -> Check:
    """metrics.csv of a finished run: the final checkpoint and exactly `rows` epochs, 0..rows-1 once each."""
    def check(ws: Path) -> str | None:
        import pandas as pd
        run = ws / rel
        if not (run / "checkpoints" / "final.pt").exists():
            return "no final.pt after the resume"
        m = pd.read_csv(run / "metrics.csv")
        return None if list(m["epoch"]) == list(range(rows)) else f"metrics.csv epochs {list(m['epoch'])}"
    return check


def consistent_eval(rel: str) -> Check:
    """evaluate_all's three files describe one evaluation: config.yaml's eval seeds are episodes.csv's."""
    def check(ws: Path) -> str | None:
        import pandas as pd
        import yaml
        folder = ws / rel
        if not (folder / "episodes.csv").exists():
            return f"{rel}/episodes.csv missing"
        cfg = yaml.safe_load((folder / "config.yaml").read_text())
        seeds = sorted(set(pd.read_csv(folder / "episodes.csv")["eval_seed"]))
        summary = pd.read_csv(folder / "summary.csv")
        if seeds != sorted(cfg["eval_seeds"]) or (summary["eval_seeds"] != len(seeds)).any():
            return f"mixed outputs: config.yaml eval_seeds {cfg['eval_seeds']}, episodes.csv seeds {seeds}"
        return None
    return check


def no_files(glob: str) -> Check:
    def check(ws: Path) -> str | None:
        found = list(ws.glob(glob))
        return f"partial output left: {found[0].relative_to(ws)}" if found else None
    return check


def all_of(*checks: Check) -> Check:
    def check(ws: Path) -> str | None:
        for c in checks:
            problem = c(ws)
            if problem:
                return problem
        return None
    return check


# ---------------------------------------------------------------------------- file contents

def csv_edit(rel: str, edit: Callable[[Any], Any]) -> Callable[[Path], Text]:
    """The workspace's CSV `rel` (from a setup step) read with pandas, edited, as text."""
    def make(ws: Path) -> Text:
        import pandas as pd
        return edit(pd.read_csv(ws / rel)).to_csv(index=False)
    return make


def set_col(col: str, value: Any) -> Callable[[Any], Any]:
    def edit(df: Any) -> Any:
        df[col] = value
        return df
    return edit


def text_edit(rel: str, old: str, new: str) -> Callable[[Path], Text]:
    def make(ws: Path) -> Text:
        return (ws / rel).read_text().replace(old, new)
    return make


RANDOM_BYTES = bytes(random.Random(7).getrandbits(8) for _ in range(4096))
BINARY_CSV = b"\x00\x01\x02PK\x03\x04" + RANDOM_BYTES
TRACE_OK = "Timestamp,Request tokens,Response tokens\n" + "".join(f"{i * 0.37:.2f},100,20\n" for i in range(50))
AZURE_OK = "TIMESTAMP,ContextTokens,GeneratedTokens\n" + "".join(
    f"2023-11-16 18:15:{i:02d}.{i * 7 % 100:02d}0000,100,20\n" for i in range(50))
BILLION_LAUGHS = "a: &a [x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "epochs: 1\n"
PAYLOAD_YAML = '!!python/object/apply:os.system ["touch {marker}"]\n'


def pickle_payload(marker_cmd: str = "touch {marker}") -> Callable[[Path], Text]:
    """A file a pickle loader executes: os.system(touch marker) on load (the marker path filled at run time)."""
    def make(ws: Path) -> Text:
        import pickle
        cmd = marker_cmd.replace("{marker}", str(ws.parents[2] / "CODE_RAN"))

        class Payload:
            def __reduce__(self) -> tuple:
                return (os.system, (cmd,))
        return pickle.dumps({"model": Payload(), "config": {}}, protocol=2)
    return make


# ---------------------------------------------------------------------------- checkpoint mutations

def _t() -> Any:
    import torch
    return torch


def m_set(key: str, value: Any) -> Callable[[dict], Any]:
    """state[key] = value; a dotted key walks into dicts (config.actor)."""
    def mutate(s: dict) -> Any:
        *parents, last = key.split(".")
        node = s
        for p in parents:
            node = node[p]
        node[last] = value
        return s
    return mutate


def m_del(key: str) -> Callable[[dict], Any]:
    def mutate(s: dict) -> Any:
        *parents, last = key.split(".")
        node = s
        for p in parents:
            node = node[p]
        del node[last]
        return s
    return mutate


def m_weights(fn: Callable[[Any], Any]) -> Callable[[dict], Any]:
    def mutate(s: dict) -> Any:
        s["model"] = {k: fn(v) for k, v in s["model"].items()}
        return s
    return mutate


def m_first_weight(fn: Callable[[Any], Any]) -> Callable[[dict], Any]:
    def mutate(s: dict) -> Any:
        k = next(iter(s["model"]))
        s["model"][k] = fn(s["model"][k])
        return s
    return mutate


def m_replace(value: Any) -> Callable[[dict], Any]:
    return lambda s: value


def m_drop_first_weight(s: dict) -> Any:
    s["model"].pop(next(iter(s["model"])))
    return s


def m_extra_weight(s: dict) -> Any:
    s["model"]["net.bogus.weight"] = _t().zeros(3)
    return s


def m_zero_stride(s: dict) -> Any:
    k = next(iter(s["model"]))
    s["model"][k] = _t().zeros(1).expand(1 << 20, 1 << 20)
    return s


# ============================================================================ the catalogue

C, T, P, K, R, G, L, F = CATEGORIES
SMALL_REGION = ("--data", "{ws}/d/a/b", "--regions", "../../Small")  # a real region reached through '..'
GYM = """
import numpy as np, gymnasium as gym, edgesim
from edgesim.contention import Contention
from edgesim.dataset import load_dataset
from edgesim.gym_wrappers import EdgeMoEEnv, EdgeMoEVectorEnv
SMALL = "{small}"
def mk(env_id="EdgeMoE-v0", **kw):
    kw.setdefault("data", SMALL); kw.setdefault("region", "Small_Trap")
    return gym.make(env_id, **kw)
def mkc(**kw):
    return mk("EdgeMoEContention-v0", **kw)
def mkv(n=2, env_id="EdgeMoE-v0", **kw):
    kw.setdefault("data", SMALL); kw.setdefault("region", "Small_Trap")
    return gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point", **kw)
def ds():
    return load_dataset(SMALL, "Small_Trap")
def valid(env):
    return int(np.flatnonzero(env.unwrapped.action_masks())[0])
"""


def gym_case(name: str, expect: str, body: str, **kw: Any) -> Case:
    return Case(G, name, expect, py=GYM + textwrap.dedent(body), **kw)


def api_case(category: str, name: str, expect: str, body: str, **kw: Any) -> Case:
    return Case(category, name, expect, py=textwrap.dedent(body), **kw)


def configs() -> list[Case]:
    y = "{ws}/c.yaml"
    cases = [
        Case(C, "yaml_duplicate_key", "error", train("--config", y), files={"c.yaml": "lr: 0.001\nlr: 0.002\n"},
             note="plain YAML keeps the last value"),
        Case(C, "yaml_python_tag_os_system", "error", train("--config", y), files={"c.yaml": PAYLOAD_YAML}),
        Case(C, "yaml_python_name_tag", "error", train("--config", y),
             files={"c.yaml": "lr: !!python/name:os.system\n"}),
        Case(C, "yaml_billion_laughs", "error", train("--config", y), files={"c.yaml": BILLION_LAUGHS}),
        Case(C, "yaml_top_level_list", "error", train("--config", y), files={"c.yaml": "- epochs\n- 1\n"}),
        Case(C, "yaml_top_level_scalar", "error", train("--config", y), files={"c.yaml": "42\n"}),
        Case(C, "yaml_non_utf8", "error", train("--config", y), files={"c.yaml": b"epochs: 1\nlr: \xff\xfe\x00\n"}),
        Case(C, "yaml_syntax_error", "error", train("--config", y), files={"c.yaml": "epochs: [1, 2\nlr: 0.1\n"}),
        Case(C, "yaml_deep_nesting", "error", train("--config", y), files={"c.yaml": "lr: " + "[" * 5000 + "]" * 5000}),
        Case(C, "yaml_unknown_key", "error", train("--config", y), files={"c.yaml": "epochz: 3\n"}, mention=("epochz",)),
        Case(C, "yaml_int_as_string", "error", train("--config", y), files={"c.yaml": "keep_checkpoints: two\n"}),
        Case(C, "yaml_int_as_bool", "error", train("--config", y), files={"c.yaml": "ppo: {update_epochs: true}\n"}),
        Case(C, "yaml_lr_negative", "error", train("--config", y), files={"c.yaml": "lr: -0.001\n"}),
        Case(C, "yaml_seed_huge", "error", train("--config", y), files={"c.yaml": "seed: 123456789012345678901234567890\n"}),
        Case(C, "yaml_regions_mapping", "error", train("--config", y), files={"c.yaml": "regions: {a: 1}\n"}),
        Case(C, "yaml_empty_file", "accept", train("--config", y, "--out", "{ws}/r"), files={"c.yaml": ""},
             check=exists("r/checkpoints/final.pt"), note="an empty override file overrides nothing"),
        Case(C, "yaml_valid_override", "accept", train("--config", y, "--out", "{ws}/r"),
             files={"c.yaml": "lr: 1e-3\nppo: {clip: 0.1}\n"}, check=config_value("r/config.yaml", "lr", 0.001)),
        Case(C, "config_is_folder", "error", train("--config", "{ws}")),
        Case(C, "config_missing", "error", train("--config", "{ws}/nope.yaml")),
        Case(C, "config_fifo", "error", train("--config", "{ws}/fifo"), setup=("fifo:fifo",)),
        Case(C, "config_dev_zero", "error", train("--config", "/dev/zero")),
        Case(C, "set_lr_1e300", "error", train("--set", "lr=1e300")),
        Case(C, "set_alpha0_minus_1e300", "error", train("--set", "guidance.alpha0=-1e300")),
        Case(C, "set_lr_nan", "error", train("--set", "lr=.nan")),
        Case(C, "set_clip_inf", "error", train("--set", "ppo.clip=.inf")),
        Case(C, "set_no_equals", "error", train("--set", "lr")),
        Case(C, "set_unknown_nested", "error", train("--set", "ppo.clipp=0.1"), mention=("clipp",)),
        Case(C, "set_value_then_child", "error", train("--set", "ppo=1", "--set", "ppo.clip=0.2")),
        Case(C, "set_actor_123", "error", train("--set", "actor=123")),
        Case(C, "set_actor_unknown", "error", train("--set", "actor=transformer")),
        Case(C, "set_dwa_initial_two", "error", train("--set", "dwa.initial=[0.5,0.5]")),
        Case(C, "set_minibatch_zero", "error", train("--set", "ppo.minibatch=0")),
        Case(C, "set_epochs_float", "error", train("--set", "epochs=2.5")),
        Case(C, "set_gamma_above_one", "error", train("--set", "ppo.gamma=1.5")),
        Case(C, "set_invalid_yaml_value", "error", train("--set", "lr=[1,")),
        Case(C, "set_exponent_accept", "accept", train("--set", "lr=1e-3", "--out", "{ws}/r"),
             check=config_value("r/config.yaml", "lr", 0.001), note="YAML 1.1 would read the string '1e-3'"),
        Case(C, "stark_heads_not_dividing", "error", train("--set", "model.heads=3", algo="Stark_Scheduler")),
        Case(C, "stark_d_model_zero", "error", train("--set", "model.d_model=0", algo="Stark_Scheduler")),
        Case(C, "ppo_config_tag", "error", train("--config", y, algo="PPO_algorithm"), files={"c.yaml": PAYLOAD_YAML}),
        # sweep YAML
        Case(C, "sweep_duplicate_key", "error", SWEEP, files={"sweep.yaml": sweep_yaml() + "seeds: [1]\n"}),
        Case(C, "sweep_python_tag", "error", SWEEP,
             files={"sweep.yaml": sweep_yaml(name=DROP) + "name: " + PAYLOAD_YAML}),
        Case(C, "sweep_top_level_list", "error", SWEEP, files={"sweep.yaml": "- TopoFreeRL\n- PPO\n"}),
        Case(C, "sweep_empty_file", "error", (*SWEEP, "--results", "{ws}/sw"), files={"sweep.yaml": ""},
             note="an empty sweep trains every algorithm at the full budget (into the repository without --results)"),
        Case(C, "sweep_unknown_key", "error", SWEEP, files={"sweep.yaml": sweep_yaml(seedz=[1])}),
        Case(C, "sweep_unknown_algorithm", "error", SWEEP, files={"sweep.yaml": sweep_yaml(algorithms=["Foo"])}),
        Case(C, "sweep_seeds_string", "error", SWEEP, files={"sweep.yaml": sweep_yaml(seeds="42")}),
        Case(C, "sweep_seeds_float", "error", SWEEP, files={"sweep.yaml": sweep_yaml(seeds=[4.5])}),
        Case(C, "sweep_seeds_huge", "error", SWEEP, files={"sweep.yaml": sweep_yaml(seeds=[2**64])}),
        Case(C, "sweep_budget_negative", "error", SWEEP, files={"sweep.yaml": sweep_yaml(budget={"epochs": -1,
                                                                                                "episodes": 2})}),
        Case(C, "sweep_budget_string", "error", SWEEP, files={"sweep.yaml": sweep_yaml(budget={"epochs": "x",
                                                                                              "episodes": 2})}),
        Case(C, "sweep_profiles_unknown", "error", SWEEP, files={"sweep.yaml": sweep_yaml(profiles=["bogus"])}),
        Case(C, "sweep_regions_int", "error", SWEEP, files={"sweep.yaml": sweep_yaml(regions=5)}),
        Case(C, "sweep_evaluate_split_bogus", "error", SWEEP,
             files={"sweep.yaml": sweep_yaml(evaluate={"split": "val", "episodes": 2, "seed": 0})}),
        Case(C, "sweep_overrides_unknown_key", "error", SWEEP,
             files={"sweep.yaml": sweep_yaml(overrides={"all": ["nokey=1"]})}, slow=True),
        Case(C, "sweep_overrides_not_strings", "error", SWEEP,
             files={"sweep.yaml": sweep_yaml(overrides={"all": [1, 2]})}),
        Case(C, "sweep_config_fifo", "error", ("total/sweep.py", "--config", "{ws}/fifo"), setup=("fifo:fifo",)),
        Case(C, "sweep_workers_zero", "error", (*SWEEP, "--workers", "0"), files={"sweep.yaml": sweep_yaml()}),
        Case(C, "sweep_valid_accept", "accept", SWEEP, files={"sweep.yaml": sweep_yaml()},
             check=exists("sw/TopoFreeRL/Server1_Trap_seed42/checkpoints/final.pt",
                          "sw/TopoFreeRL/Server1_Trap_seed42/eval_test_seed0_ep2/summary.json"), slow=True),
    ]
    return cases


def traces() -> list[Case]:
    t = "{ws}/t.csv"

    def tr(name: str, expect: str, content: FileSpec | None, *, path: str = t, **kw: Any) -> Case:
        files = {"t.csv": content} if content is not None else {}
        return Case(T, name, expect, heur(*CONT, "--policy", "greedy_queue", "--arrival-trace", path),
                    files=files, **kw)
    return [
        tr("trace_empty_file", "error", ""),
        tr("trace_header_only", "error", "Timestamp\n"),
        tr("trace_one_row", "error", "Timestamp\n1.0\n"),
        tr("trace_all_equal", "error", "Timestamp\n5\n5\n5\n5\n"),
        tr("trace_overflow_inf_gaps", "error", "Timestamp\n-1.7e308\n1.7e308\n0\n"),
        tr("trace_nan", "error", "Timestamp\n1\nnan\n3\n"),
        tr("trace_inf_value", "error", "Timestamp\n1\ninf\n3\n"),
        tr("trace_strings", "error", "Timestamp\nabc\ndef\n"),
        tr("trace_binary", "error", BINARY_CSV),
        tr("trace_no_timestamp_column", "error", "time,tokens\n1,2\n3,4\n"),
        tr("trace_fifo", "error", None, setup=("fifo:t.csv",)),
        tr("trace_dev_zero", "error", None, path="/dev/zero"),
        tr("trace_folder", "error", None, path="{ws}"),
        tr("trace_huge_sparse", "error", None, setup=("sparse:t.csv:400000000",)),
        tr("trace_missing", "error", None, path="{ws}/nope.csv"),
        tr("trace_ragged_rows", "error", "Timestamp\n1\n2,3,4,5\n"),
        tr("trace_tiny_span_denormal", "accept", "Timestamp\n0\n1e-320\n2e-320\n",
           check=exists("hev/summary.json"),
           note="gaps of 1e-320 s normalise to exactly [1, 1]: a regular pattern, rescaled to the arrival rate"),
        tr("trace_burstgpt_valid", "accept", TRACE_OK, check=exists("hev/summary.json")),
        tr("trace_azure_valid", "accept", AZURE_OK, check=exists("hev/summary.json")),
        tr("trace_decreasing_sorted", "accept", "Timestamp\n" + "".join(f"{50 - i}\n" for i in range(50)),
           check=exists("hev/summary.json"), note="timestamps are sorted (documented)"),
        tr("trace_negative_times", "error", "Timestamp\n" + "".join(f"{-100 + i * 1.5}\n" for i in range(50)),
           note="docs/simulator.md: numeric timestamps are seconds in [0, 1e12]"),
        Case(T, "trace_in_config_dev_zero", "error", train(*CONT, "--config", "{ws}/c.yaml"),
             files={"c.yaml": "contention: {arrival_trace: /dev/zero}\n"}),
        Case(T, "trace_train_overflow", "error", train(*CONT, "--arrival-trace", t),
             files={"t.csv": "Timestamp\n-1.7e308\n1.7e308\n0\n"}, note="audit: gaps inf/NaN hang training"),
        Case(T, "trace_train_nan", "error", train(*CONT, "--arrival-trace", t), files={"t.csv": "Timestamp\nnan\nnan\n"}),
        Case(T, "trace_paper_profile_ignored", "error", heur("--profile", "paper", "--arrival-trace", t),
             files={"t.csv": TRACE_OK}, note="a trace under the paper profile does nothing"),
    ]


def paths() -> list[Case]:
    return [
        Case(P, "train_regions_dotdot", "error", train(*SMALL_REGION), setup=("small",),
             note="--regions ../../x reaching a real region: the run folder lands outside the results root"),
        Case(P, "heuristics_region_dotdot", "error", heur("--data", "{ws}/d/a/b", "--region", "../../Small"),
             setup=("small",)),
        Case(P, "sweep_regions_dotdot", "error", SWEEP, setup=("small",),
             files={"sweep.yaml": sweep_yaml(data="{ws}/d/a/b", regions=[["../../Small"]], results="{ws}")}, slow=True),
        Case(P, "sweep_regions_absolute", "error", SWEEP, setup=("small", "small_outside"),
             files={"sweep.yaml": sweep_yaml(data="{ws}/d/a/b", regions=[["{sandbox}/Small"]], results="{ws}")},
             slow=True),
        Case(P, "train_regions_absolute_outside", "error", train("--data", "{ws}/d/a/b", "--regions", "{sandbox}/Small"),
             setup=("small", "small_outside")),
        Case(P, "sweep_variant_dotdot", "error", SWEEP,
             files={"sweep.yaml": sweep_yaml(variants={"../../v": ["lr=0.001"]}, results="{ws}")}),
        Case(P, "sweep_name_dotdot", "accept", SWEEP, files={"sweep.yaml": sweep_yaml(name="../../x", results="{ws}")},
             check=exists("TopoFreeRL/Server1_Trap_seed42/checkpoints/final.pt"), slow=True,
             note="the sweep's name is only printed"),
        Case(P, "train_region_absolute", "error", train("--regions", "/etc")),
        Case(P, "train_region_empty_string", "error", train("--regions", "")),
        Case(P, "train_region_slash", "error", train("--regions", "Server1_Trap/../Server1_Trap")),
        Case(P, "train_data_missing", "error", train("--data", "{ws}/nope")),
        Case(P, "train_data_is_file", "error", train("--data", "{ws}/f"), files={"f": "x"}),
        Case(P, "train_out_is_file", "error", train("--out", "{ws}/f"), files={"f": "keep me\n"}),
        Case(P, "train_out_under_file", "error", train("--out", "{ws}/f/run"), files={"f": "keep me\n"}),
        Case(P, "train_out_unwritable", "error", train("--out", "/proc/adversarial/run"), mention=("/proc/adversarial",)),
        Case(P, "train_results_is_file", "error", train("--results", "{ws}/f"), files={"f": "keep me\n"}),
        Case(P, "train_out_existing_run", "error", train("--out", "{ws}/run"), setup=("run",),
             note="--out a folder holding another run"),
        Case(P, "train_latest_symlink_outside", "accept", train(),
             setup=("outside", "link:TopoFreeRL/latest:{sandbox}/outside"),
             check=exists("TopoFreeRL/Server1_Trap_seed42_*/checkpoints/final.pt"),
             mutable=("TopoFreeRL/latest",), note="a `latest` link pointing outside is replaced, not written through"),
        Case(P, "inference_model_missing", "error", infer(model="{ws}/nope.pt")),
        Case(P, "inference_model_folder", "error", infer(model="{ws}")),
        Case(P, "inference_model_fifo", "error", infer(model="{ws}/fifo"), setup=("fifo:fifo",)),
        Case(P, "inference_model_dev_zero", "error", infer(model="/dev/zero")),
        Case(P, "inference_out_is_file", "error", infer("--out", "{ws}/f"), setup=("run",), files={"f": "keep\n"}),
        Case(P, "inference_same_out_other_settings", "error", infer("--seed", "1"), setup=("run",),
             before=(infer(),), note="refused without --overwrite (documented)"),
        Case(P, "heuristics_same_out_other_settings", "error", heur(policy="random"), before=(heur(),),
             note="audit: config.yaml silently replaced"),
        Case(P, "heuristics_same_out_same_settings", "accept", heur(), before=(heur(),), mutable=("hev/*",),
             check=exists("hev/summary.json")),
        Case(P, "heuristics_out_prefix_dotdot", "error", heur("--region", "..")),
        Case(P, "evaluate_all_split_train_keeps_test", "accept", eval_all("--split", "train"), setup=("evalres",),
             mutable=("figures/**",), note="audit: the test-split evaluation folder was replaced"),
        Case(P, "evaluate_all_results_missing", "accept", eval_all("--results", "{ws}/new"),
             check=exists("new/eval/Server1_Trap/summary.csv"), note="a new results root: the heuristics alone"),
        Case(P, "evaluate_all_tuning_missing", "error", eval_all("--tuning", "{ws}/nope.json"), setup=("evalres",)),
        Case(P, "evaluate_all_tuning_binary", "error", eval_all("--tuning", "{ws}/t.json"), setup=("evalres",),
             files={"t.json": BINARY_CSV}),
        Case(P, "evaluate_all_region_dotdot", "error", eval_all("--data", "{ws}/d/a/b", "--region", "../../Small"),
             setup=("small", "evalres")),
        Case(P, "generate_out_nonempty_no_force", "error", gen(), files={"gen/keep.txt": "mine\n"}),
        Case(P, "generate_out_is_file", "error", gen("--out", "{ws}/f"), files={"f": "keep\n"}),
        Case(P, "generate_sites_fifo", "error", gen("--sites", "{ws}/fifo"), setup=("fifo:fifo",)),
        Case(P, "generate_token_trace_dev_zero", "error", gen("--token-trace", "/dev/zero")),
        Case(P, "make_table_figures_is_file", "error", figures("make_table", "--figures", "{ws}/f"),
             setup=("evalres",), files={"f": "keep\n"}),
        Case(P, "make_table_region_dotdot", "error", figures("make_table", "--region", "../../x"), setup=("evalres",)),
        Case(P, "plot_tag_dotdot", "error", figures("plot_latency_cdf", "--tag", "../../x"), setup=("evalres",)),
        Case(P, "resume_path_is_file", "error", train("--resume", "{ws}/f"), files={"f": "x"}),
        Case(P, "resume_missing", "error", train("--resume", "{ws}/nope")),
        Case(P, "sweep_results_is_file", "error", (*SWEEP, "--results", "{ws}/f"), files={"sweep.yaml": sweep_yaml(),
                                                                                         "f": "keep\n"}),
    ]


def checkpoints() -> list[Case]:
    bad = "{ws}/bad.pt"

    def ck(name: str, mutate: Callable[[dict], Any], expect: str = "error", **kw: Any) -> Case:
        return Case(K, name, expect, infer(model=bad), ckpt=("bad.pt", mutate), **kw)

    def raw(name: str, content: FileSpec, **kw: Any) -> Case:
        return Case(K, name, "error", infer(model=bad), files={"bad.pt": content}, **kw)
    return [
        ck("format_unknown", m_set("format", 999)),
        ck("format_string", m_set("format", "2")),
        ck("format_missing", m_del("format")),
        ck("config_actor_123", m_set("config.actor", 123)),
        ck("config_actor_unknown", m_set("config.actor", "transformer")),
        ck("config_lr_string", m_set("config.lr", "fast")),
        ck("config_missing_key", m_del("config.lr")),
        ck("config_is_list", m_set("config", [1, 2])),
        ck("config_seed_huge", m_set("config.seed", 2**70)),
        ck("config_profile_unknown", m_set("config.profile", "bogus")),
        ck("weights_integer", m_weights(lambda v: v.long())),
        ck("weights_nan", m_first_weight(lambda v: v * float("nan"))),
        ck("weights_wrong_shape", m_first_weight(lambda v: v.flatten())),
        ck("weights_missing_key", m_drop_first_weight),
        ck("weights_extra_key", m_extra_weight),
        ck("weights_zero_stride_huge", m_zero_stride),
        ck("weights_not_tensors", m_weights(lambda v: v.tolist())),
        ck("weights_half_precision", m_weights(lambda v: v.half()), expect="accept", check=exists("ev/summary.json"),
           note="float16 weights load as float weights"),
        ck("epoch_negative", m_set("epoch", -1)),
        ck("epoch_absurd", m_set("epoch", 10**12)),
        ck("epoch_float", m_set("epoch", 1.5)),
        ck("epoch_bool", m_set("epoch", True)),
        ck("dwa_weights_nan", m_set("dwa.weights", [float("nan"), 0.5, 0.5])),
        ck("dwa_weights_negative", m_set("dwa.weights", [-1.0, 1.5, 0.5])),
        ck("dwa_weights_two", m_set("dwa.weights", [0.5, 0.5])),
        ck("dwa_weights_strings", m_set("dwa.weights", ["a", "b", "c"])),
        ck("algo_other", m_set("algo", "PPO")),
        ck("algo_int", m_set("algo", 7)),
        ck("dataset_fingerprint_other", m_set("dataset.fingerprint", "0000000000000000")),
        ck("dataset_server_ids_short", m_set("dataset.server_ids", ["a", "b"])),
        ck("not_a_dict", m_replace([1, 2, 3])),
        ck("empty_dict", m_replace({})),
        ck("tensor_instead_of_dict", lambda s: _t().zeros(3)),
        raw("zero_bytes", b""),
        raw("random_bytes", RANDOM_BYTES),
        raw("truncated", lambda ws: (ROOT_SHARED["run"] / "checkpoints" / "final.pt").read_bytes()[:100_000]),
        raw("pickle_os_system", pickle_payload()),
        raw("text_file", "this is not a checkpoint\n"),
        raw("numpy_npz", b"PK\x03\x04" + RANDOM_BYTES[:200]),
        Case(K, "valid_copy_accept", "accept", infer(model=bad), ckpt=("bad.pt", lambda s: s),
             check=exists("ev/summary.json")),
        Case(K, "evaluate_all_corrupt_checkpoint", "error", eval_all(), setup=("evalres",), mention=("final.pt",),
             files={"TopoFreeRL/Server1_Trap_seed42_a/checkpoints/final.pt": RANDOM_BYTES}),
        Case(K, "evaluate_all_algo_unknown", "error", eval_all(), setup=("evalres",),
             ckpt=("TopoFreeRL/Server1_Trap_seed42_a/checkpoints/final.pt", m_set("algo", "Foo"))),
        Case(K, "stark_checkpoint_heads_not_dividing", "error",
             infer(algo="Stark_Scheduler", model="{ws}/stark/checkpoints/final.pt"), setup=("stark",),
             ckpt=("stark/checkpoints/final.pt", m_set("config.model.heads", 5)), mutable=("stark/**",)),
        Case(K, "convert_zero_bytes", "error", ("tools/convert_checkpoint.py", bad), files={"bad.pt": b""}),
        Case(K, "convert_random_bytes", "error", ("tools/convert_checkpoint.py", bad), files={"bad.pt": RANDOM_BYTES}),
        Case(K, "convert_pickle_os_system", "error", ("tools/convert_checkpoint.py", bad),
             files={"bad.pt": pickle_payload()}, note="audit: the converter runs the pickle"),
        Case(K, "convert_fifo", "error", ("tools/convert_checkpoint.py", "{ws}/fifo"), setup=("fifo:fifo",)),
        Case(K, "convert_folder_without_checkpoints", "error", ("tools/convert_checkpoint.py", "{ws}/empty"),
             files={"empty/readme.txt": "x"}),
        Case(K, "convert_valid_accept", "accept", ("tools/convert_checkpoint.py", "{ckpt}"), setup=("run",),
             mutable=("run/checkpoints/final.pt",), note="already weights-only: reported, unchanged"),
        Case(K, "resume_edited_config", "error", RESUME_PARTIAL, setup=("partial",),
             files={"partial/config.yaml": text_edit("partial/config.yaml", "lr: 0.0003", "lr: 0.5")},
             mutable=("partial/**",), note="audit: --resume silently uses the checkpoint's config"),
        Case(K, "resume_optimizer_wrong_types", "error", RESUME_PARTIAL, setup=("partial",),
             ckpt=("partial/checkpoints/epoch_0002.pt", m_set("optimizer", {"state": "x", "param_groups": 5})),
             mutable=("partial/**",)),
        Case(K, "resume_epoch_negative", "error", RESUME_PARTIAL, setup=("partial",),
             ckpt=("partial/checkpoints/epoch_0002.pt", m_set("epoch", -3)), mutable=("partial/**",)),
        Case(K, "resume_prev_losses_strings", "error", RESUME_PARTIAL, setup=("partial",),
             ckpt=("partial/checkpoints/epoch_0002.pt", m_set("prev_losses", ["a", "b", "c"])),
             mutable=("partial/**",)),
        Case(K, "resume_dwa_moving_mean_wrong", "error", RESUME_PARTIAL, setup=("partial",),
             ckpt=("partial/checkpoints/epoch_0002.pt", m_set("dwa.moving_mean", "x")), mutable=("partial/**",)),
    ]


def runtime() -> list[Case]:
    long_train = ("TopoFreeRL/train.py", "--epochs", "6", "--episodes", "16", "--no-progress", "--no-tensorboard",
                  "--set", "checkpoint_every=1", "--out", "{ws}/r")
    resume = ("TopoFreeRL/train.py", "--resume", "{ws}/r", "--no-progress")
    return [
        Case(R, "sigint_train_then_resume", "accept", long_train, interrupt=("r/checkpoints/epoch_0002.pt", signal.SIGINT),
             then=(resume,), check=metrics_rows("r", 6), slow=True),
        Case(R, "sigterm_train_then_resume", "accept", long_train,
             interrupt=("r/checkpoints/epoch_0002.pt", signal.SIGTERM), then=(resume,), check=metrics_rows("r", 6),
             slow=True),
        Case(R, "sigkill_train_then_resume", "accept", long_train,
             interrupt=("r/checkpoints/epoch_0002.pt", signal.SIGKILL), then=(resume,), check=metrics_rows("r", 6),
             slow=True, note="a stale lock and temp files are left behind"),
        Case(R, "sigint_evaluation_no_partial_output", "accept",
             heur(*CONT, "--policy", "greedy_queue", "--episodes", "1000000"), interrupt=("", signal.SIGINT),
             check=no_files("hev/*.csv"), slow=True, note="Ctrl-C 4 s into a long evaluation"),
        Case(R, "sigterm_sweep_then_rerun", "accept", SWEEP, files={"sweep.yaml": sweep_yaml(budget={
            "epochs": 4, "episodes": 16})}, interrupt=("sw/TopoFreeRL/Server1_Trap_seed42/metrics.csv", signal.SIGTERM),
             then=(SWEEP,), check=exists("sw/TopoFreeRL/Server1_Trap_seed42/eval_test_seed0_ep2/summary.json"),
             slow=True),
        Case(R, "resume_finished_run", "accept", ("TopoFreeRL/train.py", "--resume", "{ws}/run", "--no-progress"),
             setup=("run",), mutable=("run/**",), check=exists("run/checkpoints/final.pt")),
        Case(R, "resume_twice_concurrently", "accept", RESUME_PARTIAL, setup=("partial",),
             concurrent=RESUME_PARTIAL, mutable=("partial/**",), check=metrics_rows("partial", 3),
             slow=True),
        Case(R, "evaluate_all_concurrent_mix", "accept", eval_all("--eval-seeds", "0", "--overwrite"),
             setup=("evalres",), concurrent=eval_all("--eval-seeds", "1", "--overwrite"), mutable=("eval/**", "figures/**"),
             check=consistent_eval("eval/Server1_Trap"), slow=True, note="audit: outputs of both mixed"),
        Case(R, "train_same_out_concurrently", "accept", train("--out", "{ws}/r"), concurrent=train("--out", "{ws}/r"),
             check=exists("r/checkpoints/final.pt"), slow=True),
        Case(R, "disk_full_checkpoint", "error", train("--out", "{ws}/r"), fsize=1_000_000,
             mention=("final.pt", "no checkpoint"),
             note="RLIMIT_FSIZE: the 5 MB checkpoint cannot be written; none exists, so there is no --resume to give"),
        Case(R, "disk_full_heuristics", "error", heur("--episodes", "200"), fsize=2_000, mention=("hev",)),
        Case(R, "episodes_1e15_train", "error", train("--episodes", str(10**15))),
        Case(R, "episodes_1e15_heuristics", "error", heur("--episodes", str(10**15))),
        Case(R, "epochs_1e15", "error", train("--epochs", str(10**15))),
        Case(R, "worlds_1e9", "error", train(*CONT, "--worlds", str(10**9))),
        Case(R, "max_in_flight_1e9", "error", heur(*CONT, "--policy", "greedy_queue", "--max-in-flight", str(10**9))),
        Case(R, "threads_zero", "error", train("--threads", "0")),
        Case(R, "threads_1e6", "error", train("--threads", str(10**6))),
        Case(R, "device_bogus", "error", train("--device", "tpu")),
        Case(R, "device_empty", "error", infer("--device", ""), setup=("run",)),
        Case(R, "device_cuda_fallback", "accept", train("--device", "cuda", "--out", "{ws}/r"),
             check=exists("r/checkpoints/final.pt"), note="no GPU: a warning, then the CPU (documented)"),
        Case(R, "stdout_closed_pipe", "error", ("-c", "import subprocess, sys; p = subprocess.Popen([sys.executable, "
                                                "'{root}/Heuristics/inference.py', '--policy', 'greedy', '--episodes', "
                                                "'2', '--no-progress', '--out', '{ws}/hev'], stdout=subprocess.PIPE); "
                                                "p.stdout.close(); sys.exit(p.wait())"),
             mention=("standard output",),
             note="`| head` closing the pipe: one line naming standard output, as Unix tools stop there"),
    ]


def gym() -> list[Case]:
    g = gym_case
    return [
        g("step_float_3_7", "error", "e = mk(); e.reset(seed=0); e.step(3.7)"),
        g("step_string_3", "error", "e = mk(); e.reset(seed=0); e.step('3')"),
        g("step_none", "error", "e = mk(); e.reset(seed=0); e.step(None)"),
        g("step_negative", "error", "e = mk(); e.reset(seed=0); e.step(-1)"),
        g("step_out_of_range", "error", "e = mk(); e.reset(seed=0); e.step(10**6)"),
        g("step_bool", "error", "e = mk(); e.reset(seed=0); e.step(True)"),
        g("step_list", "error", "e = mk(); e.reset(seed=0); e.step([3])"),
        g("step_nan", "error", "e = mk(); e.reset(seed=0); e.step(float('nan'))"),
        g("step_numpy_float", "error", "e = mk(); e.reset(seed=0); e.step(np.float64(3.0))"),
        g("step_huge_int", "error", "e = mk(); e.reset(seed=0); e.step(2**70)"),
        g("step_numpy_int64_accept", "accept", "e = mk(); e.reset(seed=0); o, r, *_ = e.step(np.int64(valid(e)))\n"
          "if not np.isfinite(r): wrong(r)"),
        g("step_0d_array_accept", "accept", "e = mk(); e.reset(seed=0); e.step(np.array(valid(e)))"),
        g("step_before_reset", "error", "e = mk(); e.step(0)"),
        g("step_before_reset_unwrapped", "error", "e = mk().unwrapped; e.step(0)"),
        g("step_after_episode_end", "error", """
            e = mk().unwrapped; e.reset(seed=0)
            for _ in range(20):
                *_, term, trunc, info = e.step(valid(e))
                if term: break
            e.step(valid(e))"""),
        g("action_masks_before_reset", "error", "mk().unwrapped.action_masks()"),
        g("reset_seed_negative", "error", "mk().reset(seed=-1)"),
        g("reset_seed_float", "error", "mk().reset(seed=1.5)"),
        g("reset_seed_string", "error", "mk().reset(seed='0')"),
        g("reset_seed_huge", "error", "mk().reset(seed=2**70)",
          note="docs/safety.md: seeds are integers in [0, 2**32 - 1] at every door"),
        g("reset_options_unknown_accept", "accept", "mk().reset(seed=0, options={'foo': 1})"),
        g("reward_weights_nan", "error", "mk(weights=(float('nan'), 0.4, 0.15))"),
        g("reward_weights_negative", "error", "mk(weights=(-1.0, 0.4, 0.15))"),
        g("reward_weights_wrong_length", "error", "mk(weights=(0.5, 0.5))"),
        g("reward_weights_string", "error", "mk(weights='abc')"),
        g("reward_weights_inf", "error", "mk(weights=(float('inf'), 0.4, 0.15))"),
        g("reward_weights_custom_accept", "accept", """
            e = mk(weights=(1.0, 0.0, 0.0)); e.reset(seed=0); _, r, *_, info = e.step(valid(e))
            if abs(r - info['reward_vector'][0]) > 1e-9: wrong((r, info['reward_vector']))"""),
        g("split_bogus", "error", "mk(split='val')"),
        g("split_none", "error", "mk(split=None)"),
        g("order_bogus", "error", "mk(order='shuffled')"),
        g("normalize_string", "error", "mk(normalize='no')"),
        g("horizon_on_paper", "error", "mk(horizon=10)"),
        g("horizon_zero", "error", "mkc(horizon=0)"),
        g("horizon_float", "error", "mkc(horizon=2.5)"),
        g("horizon_string", "error", "mkc(horizon='10')"),
        g("profile_unknown", "error", "mk(profile='bogus')"),
        g("params_on_paper", "error", "mk(params=Contention(arrival_rate=4.0))"),
        g("params_wrong_type", "error", "mkc(params=[1, 2, 3])"),
        g("params_dict", "error", "mkc(params={'arrival_rate': 'fast'})"),
        g("contention_rate_nan", "error", "mkc(params=Contention(arrival_rate=float('nan'))).reset(seed=0)"),
        g("contention_rate_negative", "error", "mkc(params=Contention(arrival_rate=-1.0)).reset(seed=0)"),
        g("contention_rate_string", "error", "mkc(params=Contention(arrival_rate='8')).reset(seed=0)"),
        g("contention_worlds_zero", "error", "mkc(params=Contention(worlds=0)).reset(seed=0)"),
        g("contention_worlds_float", "error", "mkc(params=Contention(worlds=2.5)).reset(seed=0)"),
        g("contention_max_in_flight_zero", "error", "mkc(params=Contention(max_in_flight=0)).reset(seed=0)"),
        g("contention_trap_loss_one", "error", "mkc(params=Contention(trap_loss=1.0)).reset(seed=0)"),
        g("contention_trap_loss_string", "error", "mkc(params=Contention(trap_loss='high')).reset(seed=0)"),
        g("contention_warmup_negative", "error", "mkc(params=Contention(warmup=-5)).reset(seed=0)"),
        g("contention_max_attempts_zero", "error", "mkc(params=Contention(trap_max_attempts=0)).reset(seed=0)"),
        g("contention_surcharge_inf", "error", "mkc(params=Contention(trap_surcharge_scale=float('inf'))).reset(seed=0)"),
        g("contention_trace_fifo", "error", "import os; os.mkfifo('fifo'); mkc(params=Contention(arrival_trace='fifo'))",
          note="audit: a FIFO as trace hangs"),
        g("contention_trace_dev_zero", "error", "mkc(params=Contention(arrival_trace='/dev/zero'))"),
        g("contention_from_dict_unknown", "error", "Contention.from_dict({'rate': 4})"),
        g("contention_valid_accept", "accept", """
            e = mkc(params=Contention(arrival_rate=4.0, worlds=1), horizon=5); e.reset(seed=0)
            for _ in range(5): o, r, term, trunc, info = e.step(valid(e))
            if not trunc: wrong('no truncation at the horizon')"""),
        g("data_missing", "error", "mk(data='{ws}/nope')"),
        g("data_int", "error", "mk(data=5)"),
        g("region_dotdot", "error", "mk(region='../Small_Trap')"),
        g("region_list_empty", "error", "mk(region=[])"),
        g("direct_env_dataset_string", "error", "EdgeMoEEnv('data1')"),
        g("vector_num_envs_zero", "error", "mkv(0)"),
        g("vector_num_envs_negative", "error", "mkv(-2)"),
        g("vector_num_envs_float", "error", "EdgeMoEVectorEnv(ds(), 2.5)"),
        g("vector_num_envs_huge", "error", "mkv(10**9)"),
        g("vector_step_before_reset", "error", "v = mkv(2); v.step(np.zeros(2, dtype=np.int64))"),
        g("vector_float_actions", "error", "v = mkv(2); v.reset(seed=0); v.step(np.array([0.5, 1.7]))"),
        g("vector_wrong_length", "error", "v = mkv(2); v.reset(seed=0); v.step(np.zeros(3, dtype=np.int64))"),
        g("vector_string_actions", "error", "v = mkv(2); v.reset(seed=0); v.step(np.array(['1', '2']))"),
        g("vector_out_of_range", "error", "v = mkv(2); v.reset(seed=0); v.step(np.array([0, 10**6]))"),
        g("vector_negative_action", "error", "v = mkv(2); v.reset(seed=0); v.step(np.array([0, -1]))"),
        g("vector_reset_mask_int", "error",
          "v = mkv(2); v.reset(seed=0); v.reset(options={'reset_mask': np.array([1, 0])})"),
        g("vector_seed_list_short", "error", "v = mkv(2); v.reset(seed=[1])"),
        g("vector_seed_negative", "error", "v = mkv(2); v.reset(seed=-1)"),
        g("vector_autoreset_bogus", "error", "mkv(2, autoreset_mode='sometimes')"),
        g("vector_next_step", "error", "mkv(2, autoreset_mode='NextStep')"),
        g("vector_device_bogus", "error", "mkv(2, device='tpu')"),
        g("vector_weights_wrong_length", "error", "mkv(2, weights=(1.0,))"),
        g("vector_valid_accept", "accept", """
            v = mkv(3); o, _ = v.reset(seed=0)
            a = np.array([int(np.flatnonzero(m)[0]) for m in v.action_masks()])
            o, r, term, trunc, info = v.step(a)
            if r.shape != (3,) or not np.isfinite(r).all(): wrong(r)"""),
        g("render_after_reset", "accept", "e = mk(); e.reset(seed=0); e.render()",
          note="Gymnasium's convention: render_mode None renders nothing, with a warning (docs/gym.md)"),
        g("render_mode_human", "error", "mk(render_mode='human')"),
        g("obs_in_space_accept", "accept", """
            e = mk(); o, _ = e.reset(seed=0)
            if not e.observation_space.contains(o): wrong('reset observation outside the space')
            o, *_ = e.step(valid(e))
            if not e.observation_space.contains(o): wrong('step observation outside the space')"""),
        g("evaluate_policy_float_actions", "error", """
            from schedkit.gym_eval import evaluate_policy
            evaluate_policy(lambda obs, mask: np.full(len(mask), 0.5), data=SMALL, region='Small_Trap', episodes=4,
                            out='{ws}/gev')"""),
        g("evaluate_policy_wrong_shape", "error", """
            from schedkit.gym_eval import evaluate_policy
            evaluate_policy(lambda obs, mask: np.zeros(1, dtype=np.int64), data=SMALL, region='Small_Trap', episodes=4,
                            out='{ws}/gev')"""),
        g("evaluate_policy_accept", "accept", """
            from schedkit.gym_eval import evaluate_policy
            evaluate_policy(lambda obs, mask: mask.argmax(1), data=SMALL, region='Small_Trap', episodes=4,
                            out='{ws}/gev')""", check=exists("gev/summary.json")),
        g("evaluate_heuristic_unknown", "error", """
            from schedkit.gym_eval import evaluate_heuristic
            evaluate_heuristic('bogus', data=SMALL, region='Small_Trap', episodes=2, progress=False)"""),
    ]


def cli() -> list[Case]:
    return [
        Case(L, "train_seed_2_64", "error", train("--seed", str(2**64))),
        Case(L, "train_seed_negative", "error", train("--seed", "-5")),
        Case(L, "train_seed_string", "error", train("--seed", "abc")),
        Case(L, "heuristics_seed_negative", "error", heur("--seed", "-5"), note="audit: train.py refuses it"),
        Case(L, "heuristics_seed_2_64", "error", heur("--seed", str(2**64))),
        Case(L, "inference_seed_2_64", "error", infer("--seed", str(2**64)), setup=("run",)),
        Case(L, "train_episodes_zero", "error", train("--episodes", "0")),
        Case(L, "train_episodes_negative", "error", train("--episodes", "-3")),
        Case(L, "train_epochs_zero", "error", train("--epochs", "0")),
        Case(L, "train_epochs_float", "error", train("--epochs", "1.5")),
        Case(L, "heuristics_episodes_zero", "error", heur("--episodes", "0")),
        Case(L, "paper_with_arrival_rate", "error", heur("--profile", "paper", "--arrival-rate", "8"),
             note="audit: the rate is silently ignored"),
        Case(L, "paper_with_worlds", "error", train("--profile", "paper", "--worlds", "4")),
        Case(L, "arrival_rate_nan", "error", heur(*CONT, "--policy", "greedy_queue", "--arrival-rate", "nan")),
        Case(L, "arrival_rate_zero", "error", heur(*CONT, "--policy", "greedy_queue", "--arrival-rate", "0")),
        Case(L, "arrival_rate_inf", "error", heur(*CONT, "--policy", "greedy_queue", "--arrival-rate", "inf")),
        Case(L, "arrival_rate_1e300", "error", heur(*CONT, "--policy", "greedy_queue", "--arrival-rate", "1e300")),
        Case(L, "trap_loss_1_5", "error", heur(*CONT, "--policy", "greedy_queue", "--trap-loss", "1.5")),
        Case(L, "trap_surcharge_negative", "error", heur(*CONT, "--policy", "greedy_queue",
                                                         "--trap-surcharge-scale", "-1")),
        Case(L, "worlds_zero", "error", heur(*CONT, "--policy", "greedy_queue", "--worlds", "0")),
        Case(L, "heuristics_policy_unknown", "error", heur(policy="bogus")),
        Case(L, "heuristics_latency_weight_nan", "error", heur("--latency-weight", "nan")),
        Case(L, "heuristics_latency_weight_2", "error", heur("--latency-weight", "2")),
        Case(L, "inference_split_bogus", "error", infer("--split", "val"), setup=("run",)),
        Case(L, "tune_weights_nan", "error", ("Heuristics/tune.py", "--policy", "greedy", "--weights", "nan", "0.5",
                                              "--episodes", "2", "--no-progress", "--out", "{ws}/tune")),
        Case(L, "tune_weights_out_of_range", "error", ("Heuristics/tune.py", "--policy", "greedy", "--weights", "-1",
                                                       "3", "--episodes", "2", "--no-progress", "--out", "{ws}/tune")),
        Case(L, "evaluate_all_eval_seeds_negative", "error", eval_all("--eval-seeds", "-1"), setup=("evalres",)),
        Case(L, "evaluate_all_eval_seeds_huge", "error", eval_all("--eval-seeds", str(2**64)), setup=("evalres",)),
        Case(L, "evaluate_all_skip_unknown", "error", eval_all("--skip", "bogus"), setup=("evalres",)),
        Case(L, "generate_servers_1e12", "error", gen("--servers", str(10**12))),
        Case(L, "generate_servers_one", "error", gen("--servers", "1")),
        Case(L, "generate_regions_1e9", "error", gen("--regions", str(10**9))),
        Case(L, "generate_train_tasks_1e12", "error", gen("--train-tasks", str(10**12))),
        Case(L, "generate_steps_one", "error", gen("--steps", "1")),
        Case(L, "generate_steps_1e9", "error", gen("--steps", str(10**9))),
        Case(L, "generate_trap_fraction_one", "error", gen("--trap-fraction", "1")),
        Case(L, "generate_trap_fraction_nan", "error", gen("--trap-fraction", "nan")),
        Case(L, "generate_seed_negative", "error", gen("--seed", "-1")),
        Case(L, "generate_sites_binary", "error", gen("--sites", "{ws}/s.csv"), files={"s.csv": BINARY_CSV}),
        Case(L, "generate_sites_too_few", "error", gen("--sites", "{ws}/s.csv"), files={"s.csv": "lon,lat\n8,47\n"}),
        Case(L, "generate_sites_nan", "error", gen("--sites", "{ws}/s.csv"),
             files={"s.csv": "lon,lat\n" + "nan,47\n" * 30}),
        Case(L, "generate_token_trace_binary", "error", gen("--token-trace", "{ws}/t.csv"), files={"t.csv": BINARY_CSV}),
        Case(L, "generate_valid_accept", "accept", gen(), check=exists("gen/servers.csv", "gen/tasks.csv")),
        Case(L, "make_table_no_results", "error", figures("make_table")),
        Case(L, "sweep_config_missing", "error", ("total/sweep.py", "--config", "{ws}/nope.yaml")),
        Case(L, "plot_learning_curves_smooth_zero", "error", figures("plot_learning_curves", "--smooth", "0"),
             setup=("evalres",)),
        Case(L, "plot_load_curve_rates_nan", "error", figures("plot_load_curve", "--rates", "nan"), setup=("evalres",)),
    ]


def plots() -> list[Case]:
    ep = "eval/Server1_Trap/episodes.csv"
    sm = "eval/Server1_Trap/summary.csv"
    return [
        Case(F, "latency_cdf_nan_latency", "error", figures("plot_latency_cdf"), setup=("evalres",),
             files={ep: csv_edit(ep, set_col("latency_ms", float("nan")))}),
        Case(F, "latency_cdf_missing_column", "error", figures("plot_latency_cdf"), setup=("evalres",),
             files={ep: csv_edit(ep, lambda df: df.drop(columns=["latency_ms"]))}),
        Case(F, "latency_cdf_binary", "error", figures("plot_latency_cdf"), setup=("evalres",), files={ep: BINARY_CSV}),
        Case(F, "latency_cdf_header_only", "error", figures("plot_latency_cdf"), setup=("evalres",),
             files={ep: csv_edit(ep, lambda df: df.iloc[:0])}),
        Case(F, "cost_breakdown_string_values", "error", figures("plot_cost_breakdown"), setup=("evalres",),
             files={ep: csv_edit(ep, set_col("network_ms", "fast"))}),
        Case(F, "pareto_nan_cost", "error", figures("plot_pareto"), setup=("evalres",),
             files={ep: csv_edit(ep, set_col("cost", float("nan"))), sm: csv_edit(sm, set_col("cost", float("nan")))}),
        Case(F, "make_table_summary_missing_column", "error", figures("make_table"), setup=("evalres",),
             files={sm: csv_edit(sm, lambda df: df.drop(columns=["reward"]))}),
        Case(F, "make_table_summary_binary", "error", figures("make_table"), setup=("evalres",), files={sm: BINARY_CSV}),
        Case(F, "learning_curves_metrics_garbage", "error", figures("plot_learning_curves"), setup=("evalres",),
             files={"TopoFreeRL/Server1_Trap_seed42_a/metrics.csv": "epoch,return\nx,y\n"}),
        Case(F, "dwa_metrics_missing_columns", "error", figures("plot_dwa"), setup=("evalres",),
             files={"TopoFreeRL/Server1_Trap_seed42_a/metrics.csv": "epoch\n0\n1\n"}),
        Case(F, "scalability_summary_nan", "error", figures("plot_scalability"), setup=("evalres",),
             files={sm: csv_edit(sm, set_col("decision_ms", float("nan")))}),
        Case(F, "latency_cdf_valid_accept", "accept", figures("plot_latency_cdf"), setup=("evalres",),
             check=exists("fig/*.png")),
        Case(F, "make_table_valid_accept", "accept", figures("make_table"), setup=("evalres",),
             check=exists("fig/*.csv")),  # the table's file (Markdown only with --formats md)
    ]


def catalogue() -> list[Case]:
    return configs() + traces() + paths() + checkpoints() + runtime() + gym() + cli() + plots()


# ============================================================================ shared artefacts

ROOT_SHARED: dict[str, Path] = {}  # name -> path, filled by Shared.ensure (the runner process's own copy)


class Shared:
    """Artefacts several cases copy, made once per invocation under `base`."""

    NEEDS = {"run": (), "partial": (), "stark": (), "evalres": ("run",), "small": (), "small_outside": ("small",)}

    def __init__(self, base: Path, timeout: float, memory_mb: int):
        self.base, self.timeout, self.memory_mb = base, timeout, memory_mb
        self._state: dict | None = None

    def ensure(self, names: set[str]) -> None:
        for name in ("small", "run", "partial", "stark", "evalres"):
            if name in names or any(name in self.NEEDS[n] for n in names):
                if name not in ROOT_SHARED:
                    ROOT_SHARED[name] = getattr(self, "_make_" + name)()

    def _run(self, *argv: str, cwd: Path | None = None) -> None:
        cmd = [sys.executable, str(ROOT / argv[0]), *argv[1:]]
        proc = subprocess.run(cmd, cwd=cwd or self.base, env=child_env(), capture_output=True, text=True,
                              timeout=self.timeout * 6)
        if proc.returncode != 0:
            raise RuntimeError(f"shared set-up failed: {' '.join(argv)}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")

    def _make_small(self) -> Path:
        self._run("data1/generate.py", "--servers", "20", "--train-tasks", "20", "--test-tasks", "10", "--seed", "1",
                  "--out", str(self.base / "small" / "Small_Trap"))
        return self.base / "small"

    def _make_run(self) -> Path:
        self._run("TopoFreeRL/train.py", "--epochs", "2", "--episodes", "16", "--no-progress", "--out",
                  str(self.base / "run"))
        return self.base / "run"

    def _make_partial(self) -> Path:
        """A run of 3 epochs stopped after 2: epoch_0002.pt is its newest checkpoint, no final.pt."""
        run = self.base / "partial"
        self._run("TopoFreeRL/train.py", "--epochs", "3", "--episodes", "8", "--no-progress", "--no-tensorboard",
                  "--set", "checkpoint_every=1", "--out", str(run))
        for name in ("final.pt", "epoch_0003.pt"):
            (run / "checkpoints" / name).unlink(missing_ok=True)
        metrics = (run / "metrics.csv").read_text().splitlines(keepends=True)
        (run / "metrics.csv").write_text("".join(metrics[:3]))  # header + epochs 0, 1
        return run

    def _make_stark(self) -> Path:
        self._run("Stark_Scheduler/train.py", "--epochs", "1", "--episodes", "4", "--no-progress", "--no-tensorboard",
                  "--out", str(self.base / "stark"))
        return self.base / "stark"

    def _make_evalres(self) -> Path:
        """A results root: the tiny run as TopoFreeRL/Server1_Trap_seed42_a, evaluated by evaluate_all."""
        res = self.base / "evalres"
        shutil.copytree(ROOT_SHARED["run"], res / "TopoFreeRL" / "Server1_Trap_seed42_a", ignore=_ignore)
        self._run("total/evaluate_all.py", "--results", str(res), "--episodes", "4", "--skip", "lookahead",
                  "--no-progress")
        return res

    def state(self) -> dict:
        if self._state is None:
            self._state = _t().load(ROOT_SHARED["run"] / "checkpoints" / "final.pt", weights_only=True)
        return copy.deepcopy(self._state)


def _ignore(folder: str, names: list[str]) -> set[str]:
    return {n for n in names if n in IGNORED_NAMES}


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=str(ROOT), MPLBACKEND="Agg", OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1",
               PYTHONUNBUFFERED="1")
    env.pop("TOPOFREERL_RESULTS", None)
    return env


# ============================================================================ running one case

API_WRAPPER = r'''
import linecache, os, sys, traceback
_ROOT = {root!r}
def wrong(msg):
    print("silently-wrong: " + str(msg), file=sys.stderr)
    sys.exit(3)
def _deliberate(e):
    kinds = (ValueError, TypeError, LookupError, RuntimeError, NotImplementedError)
    try:
        import gymnasium.error
        kinds += (gymnasium.error.Error,)
    except ImportError:
        pass
    if not isinstance(e, kinds) or not str(e).strip():
        return False
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is None:
        return False
    f = os.path.abspath(tb.tb_frame.f_code.co_filename)
    ours = f.startswith(_ROOT + os.sep) and "site-packages" not in f
    theirs = (os.sep + "gymnasium" + os.sep) in f
    return (ours or theirs) and linecache.getline(f, tb.tb_lineno).strip().startswith("raise")
try:
    exec(compile({body!r}, "<case>", "exec"), {{"wrong": wrong, "__name__": "__case__"}})
except SystemExit:
    raise
except BaseException as e:
    if _deliberate(e):
        print("\nerror: " + type(e).__name__ + ": " + " ".join(str(e).split()), file=sys.stderr)  # past a bar
        sys.exit(2)
    traceback.print_exc()
    sys.exit(1)
'''


@dataclass
class Proc:
    argv: list[str]
    rc: int | None = None
    out: str = ""
    err: str = ""
    timed_out: bool = False
    signalled: bool = False  # the bench sent it a signal on purpose
    tag: str = ""  # the case's ADV_CASE tag


def fill(text: str, ctx: Mapping[str, str]) -> str:
    for k, v in ctx.items():
        text = text.replace("{" + k + "}", v)
    return text


def argv_of(cmd: tuple[str, ...], ctx: Mapping[str, str]) -> list[str]:
    args = [fill(a, ctx) for a in cmd]
    if args[0] in ("-c", "-m"):
        return [sys.executable, *args]
    return [sys.executable, str(ROOT / args[0]), *args[1:]]


def _limits(memory_mb: int, fsize: int | None) -> Callable[[], None]:
    def apply() -> None:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # a background job may inherit SIGINT ignored
        if memory_mb > 0:
            resource.setrlimit(resource.RLIMIT_AS, (memory_mb << 20, memory_mb << 20))
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def start(argv: list[str], ws: Path, memory_mb: int, fsize: int | None) -> tuple[subprocess.Popen, Any, Any]:
    """Start one command of a case; its environment carries the case's tag (ADV_CASE), so processes it starts
    in sessions of their own (a sweep's trainers) are found and stopped with it (`kill_tagged`)."""
    out = tempfile.TemporaryFile(mode="w+b")
    err = tempfile.TemporaryFile(mode="w+b")
    popen = subprocess.Popen(argv, cwd=ws, env=child_env() | {"ADV_CASE": ws.parents[2].name},
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True,
                             preexec_fn=_limits(memory_mb, fsize))
    return popen, out, err


def kill_tagged(tag: str) -> None:
    """SIGKILL every process whose environment holds ADV_CASE=tag (Linux /proc; elsewhere nothing)."""
    needle = f"ADV_CASE={tag}".encode()
    try:
        pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    except OSError:
        return
    for pid in pids:
        if pid == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def finish(popen: subprocess.Popen, out: Any, err: Any, deadline: float, proc: Proc) -> Proc:
    try:
        proc.rc = popen.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.timed_out = True
        _kill_group(popen)
        kill_tagged(proc.tag)
        proc.rc = popen.wait()
    _kill_group(popen)  # anything it left running in its group
    for f, attr in ((out, "out"), (err, "err")):
        f.seek(0)
        setattr(proc, attr, f.read(2_000_000).decode("utf-8", "replace"))
        f.close()
    return proc


def _kill_group(popen: subprocess.Popen) -> None:
    try:
        os.killpg(popen.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def snapshot(base: Path) -> dict[str, str]:
    """sha256 (or the link target / 'fifo') of every entry under `base`, by relative path."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(base):
        dirnames[:] = [d for d in dirnames if d not in IGNORED_NAMES]
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            if name in IGNORED_NAMES:
                continue
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, base)
            try:
                st = os.lstat(p)
                if stat.S_ISLNK(st.st_mode):
                    out[rel] = "link:" + os.readlink(p)
                elif stat.S_ISREG(st.st_mode):
                    h = hashlib.sha256()
                    with open(p, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                    out[rel] = h.hexdigest() if st.st_size < 100 << 20 else f"big:{st.st_size}:{st.st_mtime_ns}"
                else:
                    out[rel] = "special"
            except OSError:
                out[rel] = "unreadable"
    return out


def repo_guard() -> dict[str, tuple[int, int]]:
    """(size, mtime) of every file in the guarded repository folders, and the repository's top-level names."""
    out = {str(p): (0, 0) for p in ROOT.iterdir()}
    for folder in GUARDED:
        for dirpath, _, filenames in os.walk(ROOT / folder):
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                    out[p] = (st.st_size, st.st_mtime_ns)
                except OSError:
                    pass
    return out


def _matches(rel: str, globs: tuple[str, ...]) -> bool:
    """fnmatch: `*` matches across folders too, so `run/**` is everything under run/."""
    return any(fnmatch.fnmatchcase(rel, g) for g in globs)


def lines_of(text: str) -> list[str]:
    """Output lines, a progress bar's carriage-return segments apart (an error printed after a bar counts)."""
    return [seg.replace("\x1b[A", "") for seg in re.split(r"[\r\n]+", text)]


def error_lines(text: str) -> list[str]:
    return [line for line in lines_of(text) if ERROR_LINE.match(line)]


def first_error(procs: list[Proc]) -> str:
    for p in procs:
        lines = error_lines(p.err) or [ln for ln in lines_of(p.err) if ln.startswith("silently-wrong:")]
        if lines:
            return lines[0][:300]
    for p in procs:
        if TRACEBACK in p.err:
            tail = [ln for ln in p.err.splitlines() if ln.strip() and not ln.startswith(" ")]
            if tail:
                return tail[-1][:300]
    for p in procs:
        rest = [ln for ln in lines_of(p.err) + lines_of(p.out) if ln.strip()]
        if p.rc not in (0, None) and not p.timed_out and rest:
            return rest[-1][:300]
    return ""


def classify(case: Case, procs: list[Proc], *, code_ran: bool = False, lost: str = "",
             check_problem: str | None = None) -> tuple[str, str]:
    """(outcome, detail) of a finished case; `procs` are the judged commands (main, concurrent, then)."""
    hung = [p for p in procs if p.timed_out]
    if hung:
        shown = "python -c <snippet>" if hung[0].argv[1] == "-c" else " ".join(hung[0].argv[1:])
        return "hang", f"no exit within the timeout: {shown[:200]}"
    if code_ran:
        return "code ran", "the payload's marker file exists"
    if lost:
        return "lost", lost
    for p in procs:
        if TRACEBACK in p.err or TRACEBACK in p.out:
            return "traceback", "a traceback"
        if p.rc is not None and p.rc < 0 and not p.signalled:
            return "traceback", f"killed by signal {-p.rc}"
    for p in procs:
        wrong = [ln for ln in lines_of(p.err) if ln.startswith("silently-wrong:")]
        if p.rc == 3 and wrong:
            return "silently wrong", wrong[0]
    main = procs[0]
    if case.expect == "error":
        if main.rc == 0:
            return "silently wrong", "exit 0 on a bad input"
        n = len(error_lines(main.err))
        if n != 1:
            return "traceback", f"exit {main.rc} with {n} error lines"
        line = error_lines(main.err)[0].lower()
        missing = [w for w in case.mention if w.lower() not in line]
        if missing:
            return "silently wrong", f"the error line does not name {missing}"
        return "one-line", ""
    # accept: every command succeeded (an interrupted main, or one of a concurrent pair refused with one line, aside)
    refused = 0
    for i, p in enumerate(procs):
        if p.rc == 0 or (i == 0 and case.interrupt is not None):
            continue
        one = len(error_lines(p.err)) == 1
        if case.concurrent and i < 2 and one and refused == 0:
            refused += 1
            continue
        return ("one-line", "a valid input refused") if one else ("traceback", f"exit {p.rc} with no single error line")
    if check_problem:
        return "silently wrong", check_problem
    return "documented", ""


def _copy(shared: str, dest: str = "") -> Callable[[Path, Path], Any]:
    """A setup step: copy a shared artefact into the workspace (at `dest`; "" merges it into the workspace)."""
    def step(ws: Path, sandbox: Path) -> Any:
        return shutil.copytree(ROOT_SHARED[shared], ws / dest, ignore=_ignore, dirs_exist_ok=True)
    return step


def _small(ws: Path, sandbox: Path) -> None:
    """The small region at W/d/Small and an empty data root W/d/a/b, from which `../../Small` reaches it."""
    shutil.copytree(ROOT_SHARED["small"] / "Small_Trap", ws / "d" / "Small")
    (ws / "d" / "a" / "b").mkdir(parents=True)


def _small_outside(ws: Path, sandbox: Path) -> None:
    shutil.copytree(ROOT_SHARED["small"] / "Small_Trap", sandbox / "Small")


def _outside(ws: Path, sandbox: Path) -> None:
    (sandbox / "outside").mkdir()
    (sandbox / "outside" / "keep.txt").write_text("outside\n")


SETUPS: dict[str, Callable[[Path, Path], Any]] = {
    "run": _copy("run", "run"), "partial": _copy("partial", "partial"), "stark": _copy("stark", "stark"),
    "evalres": _copy("evalres"), "small": _small, "small_outside": _small_outside, "outside": _outside}


def _setup(step: str, ws: Path, sandbox: Path, ctx: Mapping[str, str]) -> None:
    kind, _, arg = step.partition(":")
    if kind in SETUPS:
        SETUPS[kind](ws, sandbox)
    elif kind == "fifo":
        (ws / arg).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(ws / arg)
    elif kind == "sparse":
        rel, size = arg.rsplit(":", 1)
        with open(ws / rel, "wb") as f:
            f.truncate(int(size))
    elif kind == "link":
        rel, target = arg.split(":", 1)
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(fill(target, ctx), ws / rel)
    else:
        raise ValueError(f"unknown setup step {step!r}")


def needs(case: Case) -> set[str]:
    names = {s for s in case.setup if s in Shared.NEEDS}
    text = " ".join([*case.cmd, case.py, *(a for c in case.before + case.then for a in c), *case.concurrent])
    if "{ckpt}" in text or case.ckpt is not None or any(callable(v) for v in case.files.values()):
        names.add("run")
    if "{small}" in text:
        names.add("small")
    return names


def run_case(case: Case, shared: Shared, timeout: float, memory_mb: int, keep: bool = False) -> dict[str, Any]:
    t0 = time.monotonic()
    sandbox = Path(tempfile.mkdtemp(prefix="adv-"))
    ws = sandbox / "a" / "b" / "ws"
    ws.mkdir(parents=True)
    ctx = {"ws": str(ws), "sandbox": str(sandbox), "root": str(ROOT), "marker": str(sandbox / "CODE_RAN"),
           "ckpt": str(ws / "run" / "checkpoints" / "final.pt"), "py": sys.executable,
           "small": str(ROOT_SHARED.get("small", sandbox / "no-small"))}
    limit = timeout * (3 if case.slow else 1)
    procs: list[Proc] = []
    row: dict[str, Any] = {"category": case.category, "name": case.name, "expected": case.expect}
    try:
        try:
            for step in case.setup:
                _setup(step, ws, sandbox, ctx)
            if case.ckpt is not None:
                rel, mutate = case.ckpt
                target = ws / fill(rel, ctx)
                state = mutate(shared.state() if not target.exists() else _t().load(target, weights_only=True))
                target.parent.mkdir(parents=True, exist_ok=True)
                _t().save(state, target)
            for rel, spec in case.files.items():
                content = spec(ws) if callable(spec) else spec
                if isinstance(content, str):
                    content = fill(content, ctx).encode()
                target = ws / fill(rel, ctx)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(content)
            for cmd in case.before:
                p = finish(*start(argv_of(cmd, ctx), ws, memory_mb, None), time.monotonic() + limit * 3,
                           Proc(argv_of(cmd, ctx), tag=sandbox.name))
                if p.rc != 0:
                    raise RuntimeError(f"prior command failed ({p.rc}): {' '.join(cmd)}: {first_error([p])}")
        except Exception as e:  # noqa: BLE001 - a broken case is reported, the others go on
            return row | {"outcome": "setup failed", "exit_code": None, "first_error_line": f"{type(e).__name__}: {e}",
                          "seconds": round(time.monotonic() - t0, 2), "detail": "the case could not be set up"}
        before, guard = snapshot(sandbox), repo_guard()
        if case.py:
            main_argv = [sys.executable, "-c", API_WRAPPER.format(root=str(ROOT), body=fill(case.py, ctx))]
        else:
            main_argv = argv_of(case.cmd, ctx)
        deadline = time.monotonic() + limit
        main = Proc(main_argv, tag=sandbox.name)
        running = [(start(main_argv, ws, memory_mb, case.fsize), main)]
        if case.concurrent:
            other = Proc(argv_of(case.concurrent, ctx), tag=sandbox.name)
            running.append((start(other.argv, ws, memory_mb, case.fsize), other))
        if case.interrupt is not None:
            pattern, sig = case.interrupt
            popen = running[0][0][0]
            while time.monotonic() < deadline and popen.poll() is None:
                if not pattern or list(ws.glob(pattern)):
                    time.sleep(0.2 if pattern else 8.0)
                    if popen.poll() is None:
                        os.killpg(popen.pid, sig) if sig == signal.SIGKILL else popen.send_signal(sig)
                        main.signalled = True
                    break
                time.sleep(0.05)
        for (popen, out, err), proc in running:
            procs.append(finish(popen, out, err, deadline, proc))
        for cmd in case.then:
            if any(p.timed_out for p in procs):
                break
            p = Proc(argv_of(cmd, ctx), tag=sandbox.name)
            procs.append(finish(*start(p.argv, ws, memory_mb, case.fsize), time.monotonic() + limit, p))
        after = snapshot(sandbox)
        lost = _losses(case, before, after, guard)
        code_ran = (sandbox / "CODE_RAN").exists()
        problem = None
        if case.expect == "accept" and case.check is not None and not any(p.timed_out for p in procs):
            try:
                problem = case.check(ws)
            except Exception as e:  # noqa: BLE001 - an unreadable output is a wrong output
                problem = f"output unreadable: {type(e).__name__}: {e}"
        outcome, detail = classify(case, procs, code_ran=code_ran, lost=lost, check_problem=problem)
        return row | {"outcome": outcome, "exit_code": procs[0].rc, "first_error_line": first_error(procs),
                      "seconds": round(time.monotonic() - t0, 2), "detail": detail}
    finally:
        kill_tagged(sandbox.name)
        if keep:
            print(f"kept {sandbox}", file=sys.stderr)
        else:
            _remove(sandbox)


def _losses(case: Case, before: dict[str, str], after: dict[str, str], guard: dict[str, tuple[int, int]]) -> str:
    ws_prefix = os.path.join("a", "b", "ws") + os.sep
    for rel, digest in before.items():
        inside = rel[len(ws_prefix):] if rel.startswith(ws_prefix) else None
        if inside is not None and _matches(inside, case.mutable):
            continue
        if after.get(rel) != digest:
            return f"{'changed' if rel in after else 'removed'} a prior file: {inside or rel}"
    for rel in after:
        if rel not in before and not rel.startswith(ws_prefix) and rel != "CODE_RAN":
            return f"wrote outside the results root: {rel}"
    now = repo_guard()
    for p, sig in now.items():
        if guard.get(p) != sig and not p.endswith(".pyc"):
            return f"wrote into the repository: {os.path.relpath(p, ROOT)}"
    return ""


def _remove(path: Path) -> None:
    def onerror(func: Callable, p: str, exc: Any) -> None:
        try:
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass
    shutil.rmtree(path, onerror=onerror)


# ============================================================================ the table and the command line

def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| category | cases | " + " | ".join(OUTCOMES) + " |", "|---|---:|" + "---:|" * len(OUTCOMES)]
    total = {o: 0 for o in OUTCOMES}
    for cat in CATEGORIES:
        mine = [r for r in rows if r["category"] == cat]
        if not mine:
            continue
        counts = {o: sum(r["outcome"] == o for r in mine) for o in OUTCOMES}
        for o in OUTCOMES:
            total[o] += counts[o]
        lines.append(f"| {cat} | {len(mine)} | " + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
    lines.append(f"| **total** | {len(rows)} | " + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
    failed = [r for r in rows if r["outcome"] not in OUTCOMES]
    if failed:
        lines.append(f"\n{len(failed)} case(s) could not be set up: " + ", ".join(r["name"] for r in failed))
    return "\n".join(lines)


def not_handled(rows: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in rows:
        if r["outcome"] != EXPECTED[r["expected"]]:
            msg = r["first_error_line"] or r["detail"]
            out.append(f"- [{r['category']}] {r['name']} ({r['expected']}): {r['outcome']}: {msg}"
                       + (f" ({r['detail']})" if r["detail"] and r["detail"] != msg else ""))
    return out


def select(cases: list[Case], categories: list[str] | None, names: list[str] | None) -> list[Case]:
    if categories:
        wanted = {c.lower() for c in categories}  # a category's name or any part of it ("gym", "traces")
        unknown = [w for w in wanted if not any(w in cat.lower() for cat in CATEGORIES)]
        if unknown:
            sys.exit(f"error: unknown category {sorted(unknown)}; known: {list(CATEGORIES)}")
        cases = [c for c in cases if any(w in c.category.lower() for w in wanted)]
    if names:
        cases = [c for c in cases if any(re.search(n, c.name) for n in names)]
    return cases


def run_all(cases: list[Case], timeout: float, memory_mb: int, workers: int, progress: bool = True,
            keep: bool = False, shared_dir: Path | None = None) -> list[dict[str, Any]]:
    from tqdm import tqdm
    base = Path(shared_dir or tempfile.mkdtemp(prefix="adv-shared-"))
    base.mkdir(parents=True, exist_ok=True)
    shared = Shared(base, timeout, memory_mb)
    try:
        wanted = set().union(*(needs(c) for c in cases)) if cases else set()
        if wanted:
            print(f"shared artefacts: {', '.join(sorted(wanted))} (in {base})", file=sys.stderr, flush=True)
        shared.ensure(wanted)
        rows: list[dict[str, Any]] = [{}] * len(cases)
        with tqdm(total=len(cases), desc="adversarial", unit="case", disable=not progress) as bar, \
                concurrent.futures.ThreadPoolExecutor(max(1, workers)) as pool:
            futures = {pool.submit(run_case, c, shared, timeout, memory_mb, keep): i for i, c in enumerate(cases)}
            for fut in concurrent.futures.as_completed(futures):
                i = futures[fut]
                rows[i] = fut.result()
                bar.set_postfix_str(f"{cases[i].name}: {rows[i]['outcome']}"[:60])
                bar.update(1)
        return rows
    finally:
        if shared_dir is None:
            _remove(base)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--category", action="append", metavar="NAME",
                   help=f"run only this category (repeatable; a part of its name is enough): {', '.join(CATEGORIES)}")
    p.add_argument("--name", action="append", metavar="REGEX", help="run only cases whose name matches (repeatable)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write the per-case rows and the table as JSON")
    p.add_argument("--workers", type=int, default=1, help="cases at once (default 1)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per command (slow cases 3x; default 60)")
    p.add_argument("--memory-mb", type=int, default=4096,
                   help="address-space limit of every command in MiB (0: none; default 4096)")
    p.add_argument("--list", action="store_true", help="print the catalogue and exit")
    p.add_argument("--keep", action="store_true", help="keep each case's sandbox (printed) for inspection")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.workers < 1 or args.timeout <= 0:
        sys.exit("error: --workers must be >= 1 and --timeout > 0")
    cases = select(catalogue(), args.category, args.name)
    if args.list:
        for c in cases:
            print(f"{c.category:<22} {c.name:<42} {c.expect}")
        counts = {cat: sum(c.category == cat for c in cases) for cat in CATEGORIES}
        print(f"{len(cases)} cases: " + ", ".join(f"{k} {v}" for k, v in counts.items() if v))
        return []
    if not cases:
        sys.exit("error: no case selected")
    t0 = time.monotonic()
    rows = run_all(cases, args.timeout, args.memory_mb, args.workers, not args.no_progress, args.keep)
    wall = time.monotonic() - t0
    print()
    print(table(rows))
    bad = not_handled(rows)
    print(f"\n{len(bad)} of {len(rows)} cases not handled as expected ({wall / 60:.1f} min):")
    print("\n".join(bad))
    if args.json:
        from schedkit.io import write_json
        from schedkit.paths import git_commit
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.json, {
            "commit": git_commit(), "date": time.strftime("%Y-%m-%d %H:%M:%S"), "python": platform.python_version(),
            "timeout_s": args.timeout, "memory_mb": args.memory_mb, "workers": args.workers,
            "wall_s": round(wall, 1), "cases": len(rows), "outcomes": list(OUTCOMES), "table": table(rows),
            "rows": rows})
        print(f"wrote {args.json}")
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
