"""Hard to break: every bad checkpoint is one `error:` line naming the file, the field and what was
expected, through every door (inference.py, train.py --resume, total/evaluate_all.py,
tools/convert_checkpoint.py, `load_checkpoint`), and reading one never runs code from it."""
from __future__ import annotations

import copy
import math
import os
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import run_script
from test_script_inputs import TINY, Payload, one_line_error

from schedkit.runs import CheckpointError, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow  # trains through the shell


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ckpt") / "run"
    run_script("TopoFreeRL/train.py", *TINY, "--out", str(run))
    return run


@pytest.fixture(scope="module")
def stark_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("ckpt") / "stark"
    run_script("Stark_Scheduler/train.py", "--epochs", "2", "--episodes", "8", "--set", "checkpoint_every=1",
               "--no-progress", "--out", str(run))
    return run


@pytest.fixture(scope="module")
def good(tiny_run) -> dict:
    return load_checkpoint(tiny_run / "checkpoints" / "final.pt")


@pytest.fixture
def final(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "final.pt"


def forged(tmp_path: Path, state: dict, name: str = "forged.pt") -> Path:
    """`state` written as torch.save writes it (the `format` field as given, not added)."""
    path = tmp_path / name
    torch.save(state, path)
    return path


def refused(path: Path, *needles: str, algo: str | None = None) -> str:
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path, algo=algo)
    message = str(e.value)
    assert "\n" not in message and str(path) in message, message
    for needle in needles:
        assert needle in message, message
    return message


# ----------------------------------------------------------------------------- conversion never runs code

def test_converting_a_file_that_carries_code_runs_nothing(good, tmp_path):
    marker = tmp_path / "payload_ran"
    state = copy.deepcopy(good)
    state.pop("format")
    state["config"] = state["config"] | {"note": Payload(marker)}
    evil = forged(tmp_path, state, "evil.pt")
    one_line_error(run_script("tools/convert_checkpoint.py", str(evil), check=False), "refused", "mkdir",
                   str(evil))
    assert not marker.exists(), "convert_checkpoint.py executed the file's payload"
    assert not (tmp_path / "evil.pt.v1").exists()


def _numpy1_names(path: Path, out: Path) -> Path:
    """The same checkpoint as numpy 1 pickles it (numpy.core instead of numpy._core)."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for info in src.infolist():
            data = src.read(info.filename)
            dst.writestr(info.filename, data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
                         if info.filename.endswith("data.pkl") else data)
    return out


def test_a_genuine_old_checkpoint_still_converts(good, tmp_path):
    state = copy.deepcopy(good)
    state.pop("format")
    state["prev_losses"] = np.array([0.5, 1.0, -0.25])
    state["dwa"] = {"weights": [np.float64(w) for w in state["dwa"]["weights"]], "moving_mean": None}
    state["epoch"] = np.int64(state["epoch"])
    old = forged(tmp_path, state, "old.pt")
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(old), check=False),
                   "older version", "convert it once with: python tools/convert_checkpoint.py")
    for path in (old, _numpy1_names(old, tmp_path / "old_numpy1.pt")):
        proc = run_script("tools/convert_checkpoint.py", str(path))
        assert "converted" in proc.stdout and path.with_name(path.name + ".v1").exists()
        converted = load_checkpoint(path)
        assert converted["prev_losses"] == [0.5, 1.0, -0.25] and type(converted["epoch"]) is int
        assert converted["dwa"]["weights"] == [float(w) for w in good["dwa"]["weights"]]
        assert all(torch.equal(converted["model"][k], good["model"][k]) for k in good["model"])
        assert "already in the current format" in run_script("tools/convert_checkpoint.py", str(path)).stdout


def test_numpy_values_other_than_numbers_are_refused(good, tmp_path):
    state = copy.deepcopy(good)
    state.pop("format")
    state["config"]["note"] = np.array(["text", None], dtype=object)
    path = forged(tmp_path, state)
    one_line_error(run_script("tools/convert_checkpoint.py", str(path), check=False), "refused", "not a numeric type")


# ----------------------------------------------------------------------------- files that are no checkpoint

def _bad_file(kind: str, tmp_path: Path, final: Path) -> tuple[Path, str]:
    path = tmp_path / f"{kind}.pt"
    data = final.read_bytes()
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "random":
        path.write_bytes(os.urandom(4096))
    elif kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "folder":
        path.mkdir()
        return path, "is a folder"
    elif kind == "fifo":
        os.mkfifo(path)
        return path, "not a regular file"
    elif kind == "dev_zero":
        path.symlink_to("/dev/zero")
        return path, "not a regular file"
    elif kind == "missing":
        return path, "not found"
    elif kind == "compressed":
        with zipfile.ZipFile(final) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
            for info in src.infolist():
                dst.writestr(info.filename, src.read(info.filename))
        return path, "compressed records"
    elif kind == "legacy":
        torch.save(load_checkpoint(final), path, _use_new_zipfile_serialization=False)
    return path, "expected the zip archive torch.save writes"


BAD_FILES = ["empty", "random", "truncated", "folder", "fifo", "dev_zero", "missing", "compressed", "legacy"]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_file_that_is_no_checkpoint_is_one_line(kind, final, tmp_path):
    path, needle = _bad_file(kind, tmp_path, final)
    refused(path, needle)
    one_line_error(run_script("tools/convert_checkpoint.py", str(path), check=False), str(path),
                   "no checkpoint found" if kind == "folder" else needle)  # a folder is taken for a run


@pytest.mark.parametrize("kind", ["empty", "fifo", "dev_zero", "folder"])
def test_inference_refuses_a_model_that_is_no_checkpoint(kind, final, tmp_path):
    path, needle = _bad_file(kind, tmp_path, final)
    one_line_error(run_script("PPO_algorithm/inference.py", "--model", str(path), check=False), str(path), needle)


def test_convert_a_folder_without_checkpoints_is_one_line(tmp_path):
    one_line_error(run_script("tools/convert_checkpoint.py", str(tmp_path), check=False), "no checkpoint found")


# ----------------------------------------------------------------------------- fields

def _set(*keys, value):
    def change(state):
        node = state
        for k in keys[:-1]:
            node = node[k]
        node[keys[-1]] = value
    return change


def _first_weight(value):
    def change(state):
        state["model"][next(iter(state["model"]))] = value
    return change


def _nested(depth: int) -> list:
    value: list = [1]
    for _ in range(depth):
        value = [value]
    return value


def _cycle() -> list:
    value: list = []
    value.append(value)
    return value


FIELD_CASES = {
    "format_unknown": (_set("format", value=99), "format 99, which this version does not read"),
    "format_text": (_set("format", value="2"), "field 'format': expected the integer 2, got '2'"),
    "format_missing": (lambda s: s.pop("format"), "older version of this toolkit"),
    "unknown_field": (_set("extra", value=1), "unknown field 'extra'"),
    "algo_unknown": (_set("algo", value="Nope"), "field 'algo': expected a learned scheduler"),
    "config_actor": (_set("config", "actor", value=123), "config 'actor': expected a non-empty string, got 123"),
    "config_lr": (_set("config", "lr", value=-1), "config 'lr': expected a finite number > 0"),
    "config_unknown_key": (_set("config", "bogus", value=1), "unknown config key 'bogus'"),
    "config_missing_key": (lambda s: s["config"]["ppo"].pop("clip"), "config lacks 'ppo.clip'"),
    "config_algo": (_set("config", "algo", value="PPO"), "config 'algo' is 'PPO'"),
    "config_seed_text": (_set("config", "seed", value="42"), "config 'seed': expected an integer"),
    "config_choice": (_set("config", "state", value="psychic"), "config 'state': expected one of"),
    "config_region_path": (_set("config", "regions", value=["../../etc"]), "config 'regions': expected a plain name"),
    "config_not_mapping": (_set("config", value=[1, 2]), "field 'config': expected a mapping"),
    "int_weights": (_first_weight(torch.ones(3, dtype=torch.int64)), "expected floating-point weights"),
    "nan_weights": (_first_weight(torch.full((2,), math.nan)), "non-finite weights"),
    "memory_bomb": (_first_weight(torch.zeros(1).expand(10**6, 10**6)), "repeats its 4 stored bytes"),
    "sparse": (_first_weight(torch.sparse_coo_tensor(torch.zeros(2, 0, dtype=torch.long), torch.zeros(0),
                                                     (10**6, 10**6), check_invariants=True)), "expected a dense tensor"),
    "weights_not_tensors": (_set("model", "x", value="abc"), "field 'model': expected a mapping of names to tensors"),
    "epoch_negative": (_set("epoch", value=-1), "field 'epoch'"),
    "epoch_absurd": (_set("epoch", value=10**12), "expected an integer >= 0 and <= 4"),
    "epoch_past_config": (_set("epoch", value=5), "expected an integer >= 0 and <= 4"),
    "epoch_text": (_set("epoch", value="4"), "field 'epoch'"),
    "dwa_negative": (_set("dwa", "weights", value=[-0.5, 1.0, 0.5]), "non-negative weights"),
    "dwa_nan": (_set("dwa", "weights", value=[math.nan, 0.5, 0.5]), "dwa['weights']: expected a finite number"),
    "dwa_sum": (_set("dwa", "weights", value=[0.5, 0.5, 0.5]), "sum to 1"),
    "dwa_missing": (_set("dwa", value=None), "field 'dwa' is empty, but its config trains with DWA"),
    "prev_losses": (_set("prev_losses", value=[1.0]), "field 'prev_losses': expected a list of 3 finite numbers"),
    "dataset_region_path": (_set("dataset", "regions", value=["../etc"]), "expected a plain name"),
    "dataset_fingerprint": (_set("dataset", "fingerprint", value=5), "dataset['fingerprint']: expected 16 hex"),
    "dataset_huge": (_set("dataset", "server_ids", value=["s"] * 1_100_000), "more than 1,000,000 values"),
    "long_text": (_set("config", "data", value="x" * 100_000), "a text of 100,000 characters"),
    "deep": (_set("config", "note", value=_nested(20)), "nests deeper"),
    "cycle": (_set("config", "note", value=_cycle()), "nests deeper"),
    "long_key": (_set("model", "w" * 10_000, value=torch.zeros(1)), "has a key that is not a name or an index (str of"),
    "other_object": (_set("epoch", value=1 + 2j), "field 'epoch' is a complex"),
    "not_a_mapping": (lambda s: [1, 2], "not a checkpoint of this toolkit"),
    "optimizer": (_set("optimizer", value={"state": {}}), "field 'optimizer': expected an optimizer's state_dict"),
}


@pytest.mark.parametrize("case", FIELD_CASES)
def test_every_field_is_checked(case, good, tmp_path):
    change, needle = FIELD_CASES[case]
    state = copy.deepcopy(good)
    state = change(state) if case == "not_a_mapping" else (change(state), state)[1]
    refused(forged(tmp_path, state), needle)


@pytest.mark.parametrize("case", ["config_actor", "epoch_absurd", "memory_bomb", "dwa_nan", "format_unknown"])
def test_inference_and_evaluate_all_refuse_a_bad_field_in_one_line(case, good, tmp_path):
    change, needle = FIELD_CASES[case]
    state = copy.deepcopy(good)
    change(state)
    results = tmp_path / "results"
    path = results / "TopoFreeRL" / "shared" / "checkpoints" / "final.pt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(path), check=False), str(path), needle)
    one_line_error(run_script("total/evaluate_all.py", "--results", str(results), "--episodes", "2",
                              "--no-progress", check=False), needle)


def test_a_final_pt_that_is_a_device_is_refused_by_evaluate_all(tmp_path):
    path = tmp_path / "results" / "PFAPPO" / "shared" / "checkpoints" / "final.pt"
    path.parent.mkdir(parents=True)
    path.symlink_to("/dev/zero")
    one_line_error(run_script("total/evaluate_all.py", "--results", str(tmp_path / "results"), "--episodes", "2",
                              "--no-progress", check=False), "not a regular file")


def test_stark_best_epoch_is_checked(stark_run, tmp_path):
    state = load_checkpoint(stark_run / "checkpoints" / "final.pt", algo="STARK")
    assert state["dwa"] is None and state["best"]["model"] is not None
    for change, needle in (
            (_set("best", "epoch", value=7), "best['epoch']"),
            (_set("best", "reward", value=math.nan), "best['reward']: expected a finite number"),
            (_set("best", "model", value={"w": torch.zeros(2)}), "best['model'] does not have the names and shapes"),
            (_set("best", "unfinished", value=-3), "best['unfinished'] (workflows): expected an integer"),
            (_set("best", value={"reward": 1.0}), "field 'best': expected {reward, epoch, model[, unfinished]}")):
        bad = copy.deepcopy(state)
        change(bad)
        refused(forged(tmp_path, bad), needle)


def _untrained(algo: str, ds, path: Path) -> Path:
    """A checkpoint of an untrained agent of `algo` on `ds` (as total/evaluate_all.py's tests make them)."""
    from schedkit.config import resolve
    from schedkit.paths import REPO
    from schedkit.registry import get
    from schedkit.runs import dataset_identity
    cls = get(algo).load()
    cfg = resolve(REPO / get(algo).folder / "config.yaml", choices=cls.config_choices)
    agent = cls(ds, cfg, torch.device("cpu"))
    return save_checkpoint(path, {"algo": algo, "epoch": 0, "model": agent.state_dict(), "config": cfg,
                                  "dataset": dataset_identity(ds),
                                  "dwa": {"weights": [0.45, 0.40, 0.15], "moving_mean": None}})


def test_integer_state_is_allowed_only_where_the_agent_keeps_integers(default_ds, tmp_path):
    path = _untrained("PFAPPO", default_ds, tmp_path / "pfappo.pt")
    state = load_checkpoint(path, algo="PFAPPO")
    assert state["model"]["recent"].dtype == torch.long  # the fairness window: server indices
    bad = copy.deepcopy(state)
    bad["model"][next(k for k, v in bad["model"].items() if v.is_floating_point())] = torch.zeros(1, dtype=torch.long)
    refused(forged(tmp_path, bad, "int.pt"), "expected floating-point weights")
    out_of_range = copy.deepcopy(state)
    out_of_range["model"]["recent"][0] = 10**6
    one_line_error(run_script("PFAPPO/inference.py", "--model", str(forged(tmp_path, out_of_range, "window.pt")),
                              "--episodes", "2", check=False), "fairness window 'recent' holds entries outside")


# ----------------------------------------------------------------------------- resume

def _resumable(tiny_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "resumable"
    shutil.copytree(tiny_run, run)
    (run / "checkpoints" / "final.pt").unlink()
    (run / "checkpoints" / "epoch_0004.pt").unlink()
    return run


def test_resume_refuses_an_edited_config_yaml(tiny_run, tmp_path):
    run = _resumable(tiny_run, tmp_path)
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    (run / "config.yaml").write_text(yaml.safe_dump(cfg | {"lr": 0.5, "episodes": 99}))
    one_line_error(run_script("TopoFreeRL/train.py", "--resume", str(run), check=False),
                   "config.yaml differs from the checkpoint's config in", "lr (config.yaml 0.5, checkpoint 0.0003)",
                   "episodes (config.yaml 99, checkpoint 16)", "restore config.yaml")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0002.pt"]


def _rewrite(path: Path, change) -> None:
    state = load_checkpoint(path)
    change(state)
    torch.save(state, path)


@pytest.mark.parametrize("change, needle", [
    (_set("config", "ppo", "clip", value="wide"), "config 'ppo.clip': expected a finite number"),
    (_first_weight(torch.zeros(2, 2)), "its weights do not fit a TopoFreeRL agent built from its own config"),
    (lambda s: s["optimizer"]["state"][0].__setitem__("exp_avg", torch.zeros(7)),
     "its optimizer state 'exp_avg' of parameter 0 has shape (7,)"),
    (lambda s: s["optimizer"]["param_groups"][0].__setitem__("eps", -1.0), "its optimizer setting 'eps' is -1.0"),
    (lambda s: s.pop("optimizer"), "no optimizer state"),
])
def test_resume_refuses_a_checkpoint_that_does_not_fit_in_one_line(change, needle, tiny_run, tmp_path):
    run = _resumable(tiny_run, tmp_path)
    ckpt = run / "checkpoints" / "epoch_0002.pt"
    _rewrite(ckpt, change)
    if needle.startswith("config"):  # keep config.yaml in step, so the checkpoint itself is what is refused
        cfg = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump(cfg | {"ppo": cfg["ppo"] | {"clip": "wide"}}))
    one_line_error(run_script("TopoFreeRL/train.py", "--resume", str(run), check=False), str(ckpt), needle)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0002.pt"]


def test_resume_refuses_a_final_pt_that_is_a_device(tiny_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "checkpoints" / "final.pt").unlink()
    (run / "checkpoints" / "final.pt").symlink_to("/dev/zero")
    one_line_error(run_script("TopoFreeRL/train.py", "--resume", str(run), check=False), "not a regular file")


@pytest.mark.parametrize("key, value, needle", [("slot_task", 10**6, "slot_task holds task indices outside"),
                                                ("slot_prev", -5, "slot_prev holds servers outside"),
                                                ("busy", math.nan, "busy holds NaN or inf")])
def test_resume_refuses_worlds_no_simulator_holds(key, value, needle, small_root, tmp_path):
    run = tmp_path / "run"
    run_script("PPO_algorithm/train.py", "--data", str(small_root), "--regions", "Small_Trap", "--epochs", "2",
               "--episodes", "8", "--profile", "contention", "--arrival-rate", "6", "--set", "contention.worlds=2",
               "--set", "contention.warmup=2", "--set", "contention.max_in_flight=4", "--set", "checkpoint_every=1",
               "--out", str(run), "--no-progress")
    (run / "checkpoints" / "final.pt").unlink()
    (run / "checkpoints" / "epoch_0002.pt").unlink()
    ckpt = run / "checkpoints" / "epoch_0001.pt"
    _rewrite(ckpt, lambda s: s["worlds"][key].view(-1).__setitem__(0, value))
    one_line_error(run_script("PPO_algorithm/train.py", "--resume", str(run), check=False), str(ckpt), needle)


def test_stark_resume_without_its_best_epoch_is_one_line(stark_run, tmp_path):
    run = tmp_path / "stark"
    shutil.copytree(stark_run, run)
    (run / "checkpoints" / "final.pt").unlink()
    (run / "checkpoints" / "epoch_0002.pt").unlink()
    ckpt = run / "checkpoints" / "epoch_0001.pt"
    _rewrite(ckpt, lambda s: s.pop("best"))
    one_line_error(run_script("Stark_Scheduler/train.py", "--resume", str(run), check=False), str(ckpt),
                   "no field 'best'")


def test_a_valid_checkpoint_still_saves_and_loads(good, tmp_path):
    path = save_checkpoint(tmp_path / "copy.pt", {k: v for k, v in good.items() if k != "format"})
    assert load_checkpoint(path, algo="TopoFreeRL")["epoch"] == good["epoch"]
