"""Safe to load, hard to break: hostile checkpoints, bad command lines, interrupted and concurrent
runs, and outputs that never replace what is already there. Everything through the scripts."""
from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, one_line_error, run_script, sigint_enabled

from schedkit.config import ConfigError, resolve
from schedkit.io import write_json
from schedkit.runs import RunError, RunLock, claim_run_dir, load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow  # trains through the shell

TINY = ["--epochs", "4", "--episodes", "16", "--set", "checkpoint_every=2", "--no-progress"]


class Payload:
    """Pickles as a call to os.mkdir(marker): loading it the unsafe way creates the marker folder."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("safety") / "run"
    run_script("TopoFreeRL/train.py", *TINY, "--out", str(run))
    return run


@pytest.fixture
def final(tiny_run) -> Path:
    return tiny_run / "checkpoints" / "final.pt"


# ----------------------------------------------------------------------------- hostile checkpoints

def test_a_checkpoint_that_carries_code_is_refused_and_nothing_runs(final, tmp_path):
    marker = tmp_path / "payload_ran"
    state = load_checkpoint(final)
    state["config"] = state["config"] | {"note": Payload(marker)}
    evil_run = tmp_path / "evil"
    (evil_run / "checkpoints").mkdir(parents=True)
    evil = evil_run / "checkpoints" / "epoch_0002.pt"
    torch.save(state, evil)
    shutil.copy(final.parent.parent / "config.yaml", evil_run / "config.yaml")
    results = tmp_path / "results"
    (results / "TopoFreeRL" / "shared_run" / "checkpoints").mkdir(parents=True)
    shutil.copy(evil, results / "TopoFreeRL" / "shared_run" / "checkpoints" / "final.pt")
    for cmd in (["TopoFreeRL/inference.py", "--model", str(evil), "--episodes", "2"],
                ["TopoFreeRL/train.py", "--resume", str(evil_run)],
                ["bench/oracle_agreement.py", "--model", str(evil)],
                ["total/evaluate_all.py", "--results", str(results), "--episodes", "2", "--no-progress"]):
        one_line_error(run_script(*cmd, check=False), "refused", "Python global")
        assert not marker.exists(), f"{cmd[0]} executed the checkpoint's payload"


def test_an_old_numpy_checkpoint_is_refused_with_the_way_to_convert_it(final, tmp_path):
    old = tmp_path / "old.pt"
    state = load_checkpoint(final)
    state.pop("format")
    state["prev_losses"] = np.array([0.5, 1.0, -0.0])  # what checkpoints held before the weights-only format
    torch.save(state, old)
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(old), "--episodes", "2", check=False),
                   "convert it once with: python tools/convert_checkpoint.py")
    proc = run_script("tools/convert_checkpoint.py", str(old))
    assert "converted" in proc.stdout and (tmp_path / "old.pt.v1").exists()
    converted = load_checkpoint(old)
    assert converted["prev_losses"] == [0.5, 1.0, -0.0]
    assert all(torch.equal(converted["model"][k], state["model"][k]) for k in state["model"])
    run_script("TopoFreeRL/inference.py", "--model", str(old), "--episodes", "2", "--out", str(tmp_path / "ev"),
               "--no-progress")


def test_another_algorithms_checkpoint_is_a_one_line_error(final, tiny_run, tmp_path):
    state = load_checkpoint(final)
    state["algo"] = "PFAPPO"
    forged = tmp_path / "run" / "checkpoints" / "final.pt"
    save_checkpoint(forged, state)
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(forged), check=False),
                   "a PFAPPO checkpoint, not TopoFreeRL")
    one_line_error(run_script("PFAPPO/inference.py", "--model", str(final), check=False),
                   "a TopoFreeRL checkpoint, not PFAPPO")
    crashed = tmp_path / "crashed"
    shutil.copytree(tiny_run, crashed)
    (crashed / "checkpoints" / "final.pt").unlink()
    one_line_error(run_script("PPO_algorithm/train.py", "--resume", str(crashed), check=False),
                   "a TopoFreeRL checkpoint, not PPO")


def test_weights_that_do_not_fit_the_config_are_a_one_line_error(final, tmp_path):
    state = load_checkpoint(final)
    state["config"] = state["config"] | {"actor": "per_server"}
    bad = tmp_path / "misfit.pt"
    save_checkpoint(bad, state)
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(bad), check=False),
                   "do not fit a TopoFreeRL agent")


def test_nan_weights_are_refused(final, tmp_path):
    state = load_checkpoint(final)
    name = next(iter(state["model"]))
    state["model"][name] = torch.full_like(state["model"][name], float("nan"))
    bad = tmp_path / "nan.pt"
    save_checkpoint(bad, state)
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(bad), check=False), "non-finite weights")


def test_the_papers_latest_model_path_resolves_to_the_newest_run(tiny_run, tmp_path):
    results = tmp_path / "results"
    for stamp in ("20260101-000000", "20260102-000000"):
        shutil.copytree(tiny_run, results / "TopoFreeRL" / f"Server1_Trap_seed42_{stamp}")
    newest = results / "TopoFreeRL" / "Server1_Trap_seed42_20260102-000000" / "checkpoints" / "final.pt"
    os.utime(newest, (time.time() + 10, time.time() + 10))
    paper = results / "TopoFreeRL" / "models" / "LATEST_Server1_Trap_seed42_final.pt"
    out = tmp_path / "ev"
    run_script("TopoFreeRL/inference.py", "--model", str(paper), "--episodes", "3", "--out", str(out), "--no-progress")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["model"] == str(newest.resolve())
    assert len(summary["git_commit"]) >= 7
    missing = results / "TopoFreeRL" / "models" / "LATEST_Server1_Trap_seed7_final.pt"
    one_line_error(run_script("TopoFreeRL/inference.py", "--model", str(missing), check=False),
                   "no finished run of Server1_Trap seed 7", "checkpoints/final.pt")


# ----------------------------------------------------------------------------- command lines and configs

@pytest.mark.parametrize("sets, needle", [
    (["lr=abc"], "config 'lr': expected a finite number"),
    (["lr=.inf"], "config 'lr': expected a finite number"),
    (["ppo.update_epochs=0"], "config 'ppo.update_epochs': expected an integer >= 1"),
    (["ppo.clip=-1"], "config 'ppo.clip': expected a finite number > 0"),
    (["ppo.gamma=1.5"], "config 'ppo.gamma'"),
    (["mask=maybe"], "config 'mask': expected true or false"),
    (["regions=Server1_Trap"], "config 'regions': expected a non-empty list"),
    (["seed=-1"], "config 'seed'"),
    (["seed=1.5"], "config 'seed': expected an integer"),
    (["epochs=true"], "config 'epochs': expected an integer"),
    (["actor=wide"], "config 'actor': expected one of ['dense', 'per_server']"),
    (["state=full"], "config 'state'"),
    (["entropy.decay_frac=0"], "config 'entropy.decay_frac'"),
    (["device=foo"], "device 'foo' is not a device"),
    (["profile=crowded"], "config 'profile'"),
    (["contention.arrival_rate=.inf"], "contention.arrival_rate"),
    (["keep_checkpoints=0"], "config 'keep_checkpoints'"),
])
def test_every_config_value_is_checked(sets, needle):
    with pytest.raises(ConfigError, match=None) as err:
        resolve(ROOT / "TopoFreeRL" / "config.yaml", sets=sets,
                choices={"actor": ("dense", "per_server"), "state": ("reference", "base")})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_exponent_numbers_read_as_numbers_in_set_and_yaml(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("lr: 1e-3\nppo:\n  clip: 2E-1\n")
    cfg = resolve(ROOT / "TopoFreeRL" / "config.yaml", user, ["entropy.start=5e-2"])
    assert cfg["lr"] == 0.001 and cfg["ppo"]["clip"] == 0.2 and cfg["entropy"]["start"] == 0.05
    assert isinstance(cfg["lr"], float)


@pytest.mark.parametrize("args, needle", [
    (["--device", "foo"], "--device: device 'foo' is not a device: expected cpu, cuda or cuda:N"),
    (["--set", "lr=abc"], "config 'lr'"),
    (["--set", "regions=Server1_Trap"], "config 'regions'"),
    (["--epochs", "0"], "--epochs: expected an integer >= 1"),
    (["--arrival-rate", "inf"], "--arrival-rate: expected a finite number > 0"),
    (["--regions", "NoSuchRegion"], "region folder not found"),
])
def test_bad_training_input_is_one_line_and_writes_nothing(tmp_path, args, needle):
    results = tmp_path / "results"
    one_line_error(run_script("TopoFreeRL/train.py", *args, "--results", str(results), check=False), needle)
    assert not results.exists() or not any(results.rglob("*")), list(results.rglob("*"))


@pytest.mark.parametrize("script", ["TopoFreeRL/inference.py", "Heuristics/inference.py"])
def test_zero_episodes_is_rejected(script, final):
    model = ["--model", str(final)] if "TopoFreeRL" in script else []
    one_line_error(run_script(script, *model, "--episodes", "0", check=False), "--episodes: expected an integer >= 1")


def test_an_evaluation_with_other_settings_is_never_replaced_silently(final, tmp_path):
    out = tmp_path / "ev"
    args = ["TopoFreeRL/inference.py", "--model", str(final), "--out", str(out), "--no-progress"]
    run_script(*args, "--episodes", "3")
    first = (out / "episodes.csv").read_bytes()
    one_line_error(run_script(*args, "--episodes", "4", check=False), "other settings (episodes)", "--overwrite")
    assert (out / "episodes.csv").read_bytes() == first
    run_script(*args, "--episodes", "3")  # the same settings reproduce the same episodes (timings aside)
    pd.testing.assert_frame_equal(pd.read_csv(out / "episodes.csv").drop(columns="decision_ms"),
                                  pd.read_csv(io.BytesIO(first)).drop(columns="decision_ms"))
    run_script(*args, "--episodes", "4", "--overwrite")
    assert json.loads((out / "summary.json").read_text())["episodes"] == 4


def test_resume_refuses_flags_that_would_change_the_run(tiny_run):
    one_line_error(run_script("TopoFreeRL/train.py", "--resume", str(tiny_run), "--epochs", "9", check=False),
                   "--resume continues", "--epochs cannot change it")


def test_resume_refuses_a_dataset_whose_files_changed(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "data1" / "Server1_Trap", data / "Server1_Trap")
    run = tmp_path / "run"
    run_script("TopoFreeRL/train.py", *TINY, "--data", str(data), "--out", str(run))
    (run / "checkpoints" / "final.pt").unlink()
    tasks = data / "Server1_Trap" / "tasks.csv"
    tasks.write_text(tasks.read_text().replace("train", "train", 1) + "\n")
    one_line_error(run_script("TopoFreeRL/train.py", "--resume", str(run), check=False),
                   "the dataset's files changed since this run started")


# ----------------------------------------------------------------------------- runs: concurrency, interrupts, disk

def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path):
    a, b = (claim_run_dir(tmp_path, "TopoFreeRL", ["Server1_Trap"], 42) for _ in range(2))
    assert a != b and a.is_dir() and b.is_dir()


def test_a_second_writer_is_refused(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with RunLock(run):
        with pytest.raises(RunError):
            RunLock(run).__enter__()
        one_line_error(run_script("TopoFreeRL/train.py", *TINY, "--out", str(run), check=False),
                       "another process is writing to this run")
    assert not (run / "config.yaml").exists()


def test_training_into_an_existing_run_is_refused(tiny_run):
    one_line_error(run_script("TopoFreeRL/train.py", *TINY, "--out", str(tiny_run), check=False),
                   "already holds checkpoints", "--resume")


def test_latest_is_only_touched_under_the_results_root(tmp_path):
    mine = tmp_path / "X" / "latest"
    mine.parent.mkdir()
    mine.write_text("my notes")
    run_script("TopoFreeRL/train.py", *TINY, "--out", str(tmp_path / "X" / "run"))
    assert mine.read_text() == "my notes" and not mine.is_symlink()
    results = tmp_path / "res"
    (results / "TopoFreeRL").mkdir(parents=True)
    (results / "TopoFreeRL" / "latest").mkdir()  # a user's folder named latest
    run_script("TopoFreeRL/train.py", *TINY, "--results", str(results))
    assert (results / "TopoFreeRL" / "latest").is_dir() and not (results / "TopoFreeRL" / "latest").is_symlink()


def test_keep_checkpoints_bounds_the_disk_and_still_resumes(tmp_path):
    run = tmp_path / "run"
    run_script("TopoFreeRL/train.py", "--epochs", "6", "--episodes", "8", "--set", "checkpoint_every=1",
               "--set", "keep_checkpoints=2", "--out", str(run), "--no-progress")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["epoch_0005.pt", "epoch_0006.pt", "final.pt"]
    (run / "checkpoints" / "final.pt").unlink()
    (run / "checkpoints" / "epoch_0006.pt").unlink()
    stale = run / "checkpoints" / ".final.pt.abc123.tmp"  # what a writer killed mid-write leaves
    stale.write_bytes(b"partial")
    proc = run_script("TopoFreeRL/train.py", "--resume", str(run), "--no-progress")
    assert "from epoch_0005.pt" in proc.stdout and not stale.exists()
    assert (run / "checkpoints" / "final.pt").exists()


def _start_training(run: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "TopoFreeRL/train.py", "--epochs", "100000", "--episodes", "8",
                             "--set", "checkpoint_every=1", "--out", str(run), "--no-progress", *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_enabled)


def _wait_for(ready, proc: subprocess.Popen) -> None:
    """Poll `ready()` while the trainer runs. No wall-clock bound: a slow machine only makes this wait
    longer. The condition must stay true once met (a file that later runs delete could be missed)."""
    while not ready():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_keeps_its_last_checkpoint_and_says_how_to_resume(tmp_path, sig):
    run = tmp_path / "run"
    proc = _start_training(run)
    # epoch_0002.pt itself is deleted again by keep_checkpoints a few epochs later: wait for any >= 2
    _wait_for(lambda: any(p.name >= "epoch_0002.pt" for p in (run / "checkpoints").glob("epoch_*.pt")), proc)
    proc.send_signal(sig)
    out, err = proc.communicate()
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert f"--resume {run}" in err
    assert (run / "checkpoints").is_dir() and not (run / "checkpoints" / "final.pt").exists()
    assert load_checkpoint(sorted((run / "checkpoints").glob("epoch_*.pt"))[-1])["epoch"] >= 2


def test_a_run_stopped_before_its_first_checkpoint_leaves_no_folder(tmp_path):
    run = tmp_path / "run"
    proc = _start_training(run, "--set", "checkpoint_every=100000")
    _wait_for((run / "metrics.csv").exists, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    assert proc.returncode == 130 and "nothing is kept" in err and "Traceback" not in err
    assert not run.exists()


def test_a_failed_write_is_one_line_and_leaves_no_half_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoints").write_text("a file where the checkpoint folder goes")
    one_line_error(run_script("TopoFreeRL/train.py", *TINY, "--out", str(run), check=False), "checkpoints")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints"]
    blocked = tmp_path / "file"
    blocked.write_text("")
    one_line_error(run_script("Heuristics/inference.py", "--policy", "greedy", "--episodes", "2", "--out",
                              str(blocked / "out"), check=False), str(blocked))


def test_outputs_respect_the_umask(tmp_path):
    out = tmp_path / "heur"
    subprocess.run(["bash", "-c", f"umask 027 && {sys.executable} Heuristics/inference.py --policy greedy "
                                  f"--episodes 2 --no-progress --out {out}"], cwd=ROOT, check=True,
                   capture_output=True)
    assert {oct(p.stat().st_mode & 0o777) for p in out.iterdir()} == {oct(0o640)}


def test_json_outputs_stay_valid_json(tmp_path):
    with pytest.warns(UserWarning, match="cost is inf"):
        write_json(tmp_path / "s.json", {"cost": float("inf"), "ok": 1.5})
    assert json.loads((tmp_path / "s.json").read_text()) == {"cost": None, "ok": 1.5}


def test_scripts_run_from_any_directory(tmp_path):
    run_script("Heuristics/inference.py", "--policy", "greedy", "--episodes", "2", "--no-progress", "--out", "here",
               cwd=tmp_path)
    assert (tmp_path / "here" / "summary.json").exists()  # a typed relative path is the user's directory
    run = tmp_path / "run"
    run_script("TopoFreeRL/train.py", *TINY, "--out", str(run), cwd=tmp_path)
    assert yaml.safe_load((run / "config.yaml").read_text())["data"] == "data1"  # found in the repository


def test_evaluate_all_with_nothing_to_evaluate_says_so_in_one_line(tmp_path):
    from schedkit.registry import heuristics
    one_line_error(run_script("total/evaluate_all.py", "--results", str(tmp_path / "empty"), "--skip", *heuristics(),
                              "--no-progress", check=False), "nothing to evaluate", "every heuristic was skipped")
