"""Property-based fuzzing of every input door: config values, command-line values, Gym arguments and
checkpoint fields. Whatever the value, the outcome is success or one error line that names the input;
never a traceback, a write outside the results root, or a silent change of an existing output.

Deterministic (derandomized, no example database). `pytest --fuzz-examples N` runs N examples per test
instead of the defaults below (a few hundred in all, inside the suite's time budget).
"""
from __future__ import annotations

import hashlib
import math
import os
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from conftest import ROOT, run_script
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgesim  # noqa: F401 - registers the Gym ids
from schedkit.config import ConfigError, load_yaml, resolve
from schedkit.runs import CheckpointError, load_checkpoint

pytestmark = pytest.mark.slow  # trains and evaluates through the scripts

HANG_LIMIT_S = 300  # per example: far above any example's run time; only a real hang reaches it
ALGOS = {"TopoFreeRL": ROOT / "TopoFreeRL" / "config.yaml", "PPO": ROOT / "PPO_algorithm" / "config.yaml",
         "PFAPPO": ROOT / "PFAPPO" / "config.yaml", "STARK": ROOT / "Stark_Scheduler" / "config.yaml"}
TINY_TRAIN = ["--epochs", "2", "--episodes", "8", "--set", "checkpoint_every=1", "--no-progress"]


def fuzz_settings(default: int) -> Any:
    return settings(max_examples=int(os.environ.get("TOPOFREERL_FUZZ_EXAMPLES", default)), deadline=None,
                    derandomize=True, database=None, suppress_health_check=list(HealthCheck))


@contextmanager
def hang_guard() -> Iterator[None]:
    """Fail the example (instead of the whole suite hanging) when it runs past HANG_LIMIT_S."""
    def expire(signum: int, frame: Any) -> None:
        raise AssertionError(f"hang: the example ran past {HANG_LIMIT_S} s")
    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(HANG_LIMIT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def one_line(message: str) -> None:
    assert message.strip() and "\n" not in message.strip() and "Traceback" not in message, message


def script_outcome(proc: Any) -> None:
    """Exit 0, or a non-zero exit with exactly one `error:` line and no traceback."""
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:") or ": error:" in ln]
        assert len(errors) == 1, (proc.returncode, proc.stderr)


def tree(folder: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under `folder` (but `skip`) with its content hash."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and not p.is_symlink() and (skip is None or skip not in p.parents):
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ----------------------------------------------------------------------------- values

# any YAML value: the wrong type, the edge of a range, far out of range, not a number
ANY_VALUE = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-2**70, max_value=2**70),
    st.sampled_from([0, 1, -1, 2, 3, 7, 64, 2**31, 2**32, 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1e300, 0.5, 1.0, 1.5, 1e-3]),
    st.text(alphabet="abcdef_./-01 ", max_size=10),
    st.sampled_from(["", "../x", "/dev/zero", "cuda", "cpu", "auto", "yes", "[]", "{}", "nan"]),
    st.lists(st.one_of(st.integers(-3, 3), st.floats(-2, 2), st.text(max_size=3)), max_size=4),
    st.dictionaries(st.sampled_from(["a", "arrival_rate", "worlds", "x"]), st.integers(-2, 2), max_size=2),
)


def yaml_text(value: Any) -> str:
    """`value` as the text after `--set key=`: a YAML scalar or flow collection on one line."""
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix("...").strip()


def config_keys(path: Path) -> list[str]:
    """Every key of an algorithm's defaults, dotted (`ppo`, `ppo.clip`)."""
    cfg = resolve(path)

    def walk(node: dict, where: str) -> Iterator[str]:
        for k, v in node.items():
            yield f"{where}{k}"  # a whole block replaced by any value, too
            if isinstance(v, dict) and v:
                yield from walk(v, f"{where}{k}.")
    return sorted(walk(cfg, ""))


KEYS = [(algo, key) for algo, path in ALGOS.items() for key in config_keys(path)]


@fuzz_settings(300)
@given(case=st.sampled_from(KEYS), value=ANY_VALUE)
def test_any_config_value_is_accepted_or_refused_in_one_line_naming_its_key(case, value):
    """Through the config resolver every script uses (YAML file, --set and checkpoint configs share it)."""
    algo, key = case
    with hang_guard():
        try:
            cfg = resolve(ALGOS[algo], sets=[f"{key}={yaml_text(value)}"])
        except ConfigError as e:
            one_line(str(e))
            assert key.split(".")[0] in str(e) or key in str(e), (key, str(e))
            return
    leaf: Any = cfg
    for part in key.split("."):
        leaf = leaf[part]
    assert leaf is not None or value is None


# ----------------------------------------------------------------------------- command-line values

@pytest.fixture(scope="module")
def sandbox(tmp_path_factory, small_root) -> Path:
    """A folder holding a results root with one finished evaluation, beside nothing else."""
    box = tmp_path_factory.mktemp("fuzz_cli")
    run_script("Heuristics/inference.py", "--data", str(small_root), "--region", "Small_Trap", "--policy", "greedy",
               "--episodes", "3", "--out", str(box / "results" / "out"), "--no-progress")
    return box


FLAG_VALUES = st.one_of(
    st.sampled_from(["0", "1", "-1", "-5", "3", "2.5", "1e300", "-1e300", "nan", "inf", "", " ", "abc",
                     str(2**64), str(10**15), "../x", "/dev/zero", "0x10", "1_000"]),
    st.integers(-2**66, 2**66).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="abc01._/-", min_size=1, max_size=8),
)
HEURISTIC_FLAGS = ["--episodes", "--seed", "--split", "--region", "--latency-weight", "--profile", "--threads",
                   "--arrival-rate", "--worlds", "--max-in-flight", "--trap-loss", "--device", "--policy"]


@fuzz_settings(40)
@given(flag=st.sampled_from(HEURISTIC_FLAGS), value=FLAG_VALUES, contention=st.booleans())
def test_any_flag_value_of_an_evaluation_ends_in_success_or_one_error_line(sandbox, small_root, flag, value,
                                                                          contention):
    """Heuristics/inference.py with one flag fuzzed (the others tiny): no traceback, nothing written outside
    the results root, the existing evaluation changed only by a run of the very same settings."""
    results, out = sandbox / "results", sandbox / "results" / "out"
    before_outside, before_out = tree(sandbox, skip=results), tree(out)
    old_config = load_yaml(out / "config.yaml")
    args = {"--data": str(small_root), "--region": "Small_Trap", "--policy": "greedy", "--episodes": "3",
            "--out": str(out)}
    if contention and flag != "--profile":
        args |= {"--profile": "contention", "--worlds": "2", "--episodes": "4"}
    if flag in ("--episodes", "--worlds", "--max-in-flight") and value.lstrip("+").isdigit() and int(value) > 64:
        value = str(10**12)  # a valid-looking large budget must be refused by its bound, not run
    args[flag] = value
    with hang_guard():
        proc = run_script("Heuristics/inference.py", *[x for kv in args.items() for x in kv], "--no-progress",
                          check=False, cwd=sandbox)
    script_outcome(proc)
    assert tree(sandbox, skip=results) == before_outside, "wrote outside the results root"
    if tree(out) != before_out:
        assert proc.returncode == 0
        new_config = load_yaml(out / "config.yaml")
        ignored = ("git_commit", "no_progress", "threads")  # threads change the time taken, not the numbers
        same = {k: v for k, v in new_config.items() if k not in ignored}
        assert same == {k: v for k, v in old_config.items() if k not in ignored}, \
            "an existing evaluation was replaced by one of other settings"


# ----------------------------------------------------------------------------- Gym arguments

GYM_ARGS = {
    "split": st.one_of(st.sampled_from(["train", "test", "val", "", "TEST"]), ANY_VALUE),
    "order": st.one_of(st.sampled_from(["random", "sequential", "shuffled"]), ANY_VALUE),
    "weights": st.one_of(st.lists(st.floats(allow_nan=True, allow_infinity=True), max_size=4),
                         st.tuples(st.floats(0, 1), st.floats(0, 1), st.floats(0, 1)), ANY_VALUE),
    "normalize": ANY_VALUE,
    "horizon": st.one_of(st.integers(-3, 2000), ANY_VALUE),
    "region": st.one_of(st.sampled_from(["Small_Trap", "../Small_Trap", "Nope", "", "."]), ANY_VALUE),
}
ACTIONS = st.one_of(st.integers(-3, 100), st.sampled_from([3.7, "3", True, None, [1], np.float32(2.0),
                                                         np.int64(1), np.array(1), np.array([1, 2])]), ANY_VALUE)


@fuzz_settings(150)
@given(env_id=st.sampled_from(["EdgeMoE-v0", "EdgeMoEContention-v0", "EdgeMoEServing-v0"]),
       arg=st.sampled_from(sorted(GYM_ARGS)), data=st.data(), action=ACTIONS, seed=ANY_VALUE)
def test_any_gym_argument_or_action_is_accepted_or_refused_naming_it(small_root, env_id, arg, data, action, seed):
    """gym.make with one fuzzed keyword, reset with a fuzzed seed, step with a fuzzed action: each either
    works or raises a ValueError / TypeError (or Gymnasium's own error) of one line naming what was wrong."""
    value = data.draw(GYM_ARGS[arg])
    kwargs: dict[str, Any] = {"data": str(small_root), "region": "Small_Trap", arg: value}
    if arg == "horizon" and env_id == "EdgeMoE-v0":
        kwargs.pop("horizon")
    with hang_guard(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gymnasium's passive checker warns about what it then lets through
        for stage, call in (("make", lambda: gym.make(env_id, **kwargs)),):
            try:
                env = call()
            except (ValueError, TypeError, gym.error.Error) as e:
                one_line(str(e))
                said = str(e).lower()
                assert arg in said or repr(value)[:20].lower() in said or str(value)[:20].lower() in said, \
                    (stage, arg, str(e))
                return
        try:
            try:
                env.reset(seed=seed)
            except (ValueError, TypeError, gym.error.Error) as e:
                one_line(str(e))
                assert "seed" in str(e).lower(), str(e)
                env.close()  # Gymnasium's passive checker keeps no reset data after a refused reset
                env = gym.make(env_id, **kwargs)
                env.reset(seed=0)
            try:
                _, reward, *_ = env.step(action)
                assert isinstance(action, (int, np.integer)) and not isinstance(action, bool) or \
                    (isinstance(action, np.ndarray) and action.shape == () and action.dtype.kind in "iu"), \
                    f"step accepted {action!r}"
                assert math.isfinite(float(reward))
            except (ValueError, TypeError, gym.error.Error) as e:
                one_line(str(e))
                assert "action" in str(e).lower(), str(e)
        finally:
            env.close()


# ----------------------------------------------------------------------------- checkpoint fields

@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_root) -> Path:
    run = tmp_path_factory.mktemp("fuzz_ckpt") / "run"
    run_script("TopoFreeRL/train.py", "--data", str(small_root), "--regions", "Small_Trap", *TINY_TRAIN,
               "--out", str(run))
    return run / "checkpoints" / "final.pt"


def checkpoint_fields(state: dict) -> list[str]:
    fields = ["format", "algo", "epoch", "config", "dataset", "dwa", "model", "optimizer"]
    fields += [f"config.{k}" for k in state["config"]] + [f"dataset.{k}" for k in state["dataset"]]
    fields += [f"model.{k}" for k in state["model"]] + (["dwa.weights"] if state.get("dwa") else [])
    return fields


TENSORS = st.one_of(
    st.sampled_from(["int", "bool", "nan", "big", "scalar", "bomb", "float16", "wrong_shape"]))


def make_tensor(kind: str, like: torch.Tensor) -> torch.Tensor:
    return {"int": lambda: like.to(torch.int64), "bool": lambda: like > 0, "nan": lambda: like * math.nan,
            "big": lambda: torch.zeros(1 << 16), "scalar": lambda: torch.tensor(1.0),
            "bomb": lambda: torch.zeros(1).expand(1 << 20, 1 << 20), "float16": lambda: like.half(),
            "wrong_shape": lambda: torch.zeros(*(s + 1 for s in like.shape))}[kind]()


@fuzz_settings(80)
@given(data=st.data())
def test_any_checkpoint_field_is_loaded_or_refused_in_one_line(trained, tmp_path_factory, small_root, data):
    """One field of a real checkpoint replaced: load_checkpoint refuses it with one line naming the file,
    or the checkpoint evaluates through inference.py (success or one error line, never a traceback)."""
    state = torch.load(trained, weights_only=True)
    field = data.draw(st.sampled_from(checkpoint_fields(state)))
    head, _, leaf = field.partition(".")
    if head == "model" and leaf:
        state["model"][leaf] = make_tensor(data.draw(TENSORS), state["model"][leaf])
    elif leaf:
        state[head][leaf] = data.draw(ANY_VALUE)
    else:
        state[head] = data.draw(ANY_VALUE)
    folder = tmp_path_factory.mktemp("ckpt")
    path = folder / "final.pt"
    torch.save(state, path)
    with hang_guard():
        try:
            load_checkpoint(path, algo="TopoFreeRL")
        except CheckpointError as e:
            one_line(str(e))
            assert str(path) in str(e)
            return
        proc = run_script("TopoFreeRL/inference.py", "--model", str(path), "--data", str(small_root), "--region",
                          "Small_Trap", "--episodes", "2", "--out", str(folder / "eval"), "--no-progress",
                          check=False)
    script_outcome(proc)


# ----------------------------------------------------------------------------- a training config file

CONFIG_FILES = st.one_of(
    st.dictionaries(st.sampled_from(["seed", "lr", "mask", "regions", "profile", "device", "actor", "ppo",
                                     "entropy", "dwa", "guidance", "contention", "train_env", "model", "nope"]),
                    ANY_VALUE, max_size=3).map(lambda d: yaml.safe_dump(d, default_flow_style=False)),
    st.text(alphabet="ab: -[]{}\n#!&*1.e", max_size=40),
    st.sampled_from(["lr: 1\nlr: 2\n", "!!python/object/apply:os.system ['true']\n", "a: &x [*x]\n", "- 1\n- 2\n",
                     "\x00\x01\x02", "seed: 1\n" * 2]),
)


@fuzz_settings(25)
@given(text=CONFIG_FILES)
def test_any_training_config_file_trains_or_is_refused_in_one_line(tmp_path_factory, small_root, text):
    """TopoFreeRL/train.py --config FILE with fuzzed content (budget flags keep a run tiny): a run, or one
    error line naming the file or key, and nothing written outside the results root."""
    box = tmp_path_factory.mktemp("fuzz_cfg")
    config = box / "user.yaml"
    config.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    before = tree(box)
    with hang_guard():
        proc = run_script("TopoFreeRL/train.py", "--config", str(config), "--data", str(small_root), "--regions",
                          "Small_Trap", "--epochs", "1", "--episodes", "4", "--no-progress",
                          "--results", str(box / "results"), check=False, cwd=box)
    script_outcome(proc)
    assert tree(box, skip=box / "results") == before, "wrote outside the results root"
