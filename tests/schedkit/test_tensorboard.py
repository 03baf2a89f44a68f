"""TensorBoard events beside metrics.csv (schedkit/tensorboard.py): every epoch row of the shared epoch
loop as `charts/*` and `losses/*` scalars, continued on resume, off with --no-tensorboard, and one clear
line when --tensorboard is asked for without the package."""
from __future__ import annotations

import math
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import ROOT, run_script
from test_script_inputs import one_line_error

from schedkit import tensorboard as tb
from schedkit.config import ConfigError, resolve
from schedkit.runs import load_checkpoint, save_checkpoint

EventAccumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator").EventAccumulator

TINY = ["--episodes", "8", "--no-progress"]
PPO_LOSSES = {"policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"}


def logged(run: Path) -> dict[str, dict[int, float]]:
    """Every scalar in <run>/tensorboard/ as {tag: {step: value}}, as TensorBoard shows it (purged
    events of an interrupted run left out)."""
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    out = {}
    for tag in events.Tags()["scalars"]:
        steps = [e.step for e in events.Scalars(tag)]
        assert len(steps) == len(set(steps)), f"{tag}: steps {steps} shown more than once"
        out[tag] = {e.step: e.value for e in events.Scalars(tag)}
    return out


def assert_events_match_metrics(run: Path, losses: set[str]) -> None:
    """One value per epoch for every metrics.csv column (none where the column is empty), under
    losses/ for the loss terms and charts/ for the rest."""
    metrics = pd.read_csv(run / "metrics.csv")
    scalars = logged(run)
    columns = [c for c in metrics.columns if c != "epoch"]
    assert set(scalars) == {f"{'losses' if c in losses else 'charts'}/{c}" for c in columns}
    for c in columns:
        tag = f"{'losses' if c in losses else 'charts'}/{c}"
        want = {int(e): v for e, v in zip(metrics["epoch"], metrics[c]) if not math.isnan(v)}
        assert scalars[tag].keys() == want.keys(), tag
        assert all(scalars[tag][e] == pytest.approx(v, rel=1e-6, abs=1e-12) for e, v in want.items()), tag


def test_scalars_name_losses_and_charts_and_leave_out_the_epoch_and_nan():
    row = {"epoch": 3, "return": -4.5, "policy_loss": 0.1, "loss": 2.0, "val_reward": float("nan"), "env_steps": 96}
    assert tb.scalars(row) == {"charts/return": -4.5, "losses/policy_loss": 0.1, "losses/loss": 2.0,
                                        "charts/env_steps": 96.0}


def test_the_config_key_takes_auto_or_a_boolean():
    assert resolve(ROOT / "PPO_algorithm" / "config.yaml")["tensorboard"] == "auto"
    assert resolve(ROOT / "PPO_algorithm" / "config.yaml", sets=["tensorboard=false"])["tensorboard"] is False
    with pytest.raises(ConfigError, match="'tensorboard': expected auto, true or false"):
        resolve(ROOT / "PPO_algorithm" / "config.yaml", sets=["tensorboard=sometimes"])


@pytest.mark.slow
def test_ppo_epochs_become_scalars_and_a_resume_continues_them(tmp_path):
    run = tmp_path / "run"
    run_script("PPO_algorithm/train.py", *TINY, "--epochs", "4", "--set", "checkpoint_every=2", "--tensorboard",
               "--out", str(run))
    assert yaml.safe_load((run / "config.yaml").read_text())["tensorboard"] is True
    assert_events_match_metrics(run, PPO_LOSSES)
    # killed during epoch 3 or 4, and saved before the `tensorboard` key existed: resuming reads auto
    crashed = tmp_path / "crashed"
    shutil.copytree(run, crashed)
    for name in ("final.pt", "epoch_0004.pt"):
        (crashed / "checkpoints" / name).unlink()
    state = load_checkpoint(crashed / "checkpoints" / "epoch_0002.pt")
    del state["config"]["tensorboard"]
    save_checkpoint(crashed / "checkpoints" / "epoch_0002.pt", state)
    run_script("PPO_algorithm/train.py", "--resume", str(crashed), "--no-progress")
    # the interrupted run's epochs 2 and 3 are purged: each epoch shows once, with the resumed values
    assert_events_match_metrics(crashed, PPO_LOSSES)
    assert load_checkpoint(crashed / "checkpoints" / "final.pt")["config"]["tensorboard"] is True


@pytest.mark.slow
def test_stark_imitation_logs_its_loss_and_only_the_validated_epochs(tmp_path):
    run = tmp_path / "stark"
    run_script("Stark_Scheduler/train.py", *TINY, "--epochs", "2", "--set", "val_every=2", "--out", str(run))
    assert_events_match_metrics(run, {"loss"})
    assert logged(run)["charts/val_reward"].keys() == {1}


@pytest.mark.slow
def test_no_tensorboard_writes_no_events(tmp_path):
    run = tmp_path / "run"
    run_script("PPO_algorithm/train.py", *TINY, "--epochs", "1", "--no-tensorboard", "--out", str(run))
    assert (run / "metrics.csv").exists() and not (run / "tensorboard").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["tensorboard"] is False


@pytest.mark.slow
def test_without_the_package_auto_is_off_and_asking_for_it_is_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setattr(tb, "_writer_class", lambda: None)  # as if tensorboard were not installed
    asked = tmp_path / "asked"
    one_line_error(run_script("PPO_algorithm/train.py", *TINY, "--epochs", "1", "--tensorboard", "--out", str(asked),
                              check=False, in_process=True),
                   "--tensorboard", tb.INSTALL)
    assert not asked.exists()  # refused before anything is written
    run = tmp_path / "auto"
    run_script("PPO_algorithm/train.py", *TINY, "--epochs", "1", "--out", str(run), in_process=True)
    assert not (run / "tensorboard").exists()
    assert yaml.safe_load((run / "config.yaml").read_text())["tensorboard"] is False


@pytest.mark.slow
def test_a_resume_in_the_same_second_as_the_interrupted_writer_still_shows_its_own_epochs(tmp_path):
    """TensorBoard reads event files in name order: second, host, pid, counter. The interrupted run's file is
    named as if its writer had started this second on a host that sorts last, so a resumed writer that did
    not wait would sort first, and the interrupted run's epochs (read last) would replace the resumed ones:
    the timings (rollout_s, which differ from run to run) would then not be metrics.csv's."""
    run = tmp_path / "run"
    run_script("PPO_algorithm/train.py", *TINY, "--epochs", "4", "--set", "checkpoint_every=2", "--tensorboard",
               "--out", str(run))
    for name in ("final.pt", "epoch_0004.pt"):
        (run / "checkpoints" / name).unlink()
    (old,) = (run / "tensorboard").glob("events.out.tfevents.*")
    old.rename(old.with_name(f"events.out.tfevents.{int(time.time()) + 1:010d}.zzzz.99999.9"))
    run_script("PPO_algorithm/train.py", "--resume", str(run), "--no-progress")
    assert_events_match_metrics(run, PPO_LOSSES)
