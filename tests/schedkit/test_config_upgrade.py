"""Configs and checkpoints saved by older versions load through `schedkit.config.upgrade`: an absent key
reads as what those runs did, a removed option is refused in one line, and the STARK baseline's older
name `Stark` loads as STARK."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from conftest import one_line_error, run_script
from test_script_inputs import TINY

from schedkit.config import ConfigError, resolve, upgrade
from schedkit.paths import REPO
from schedkit.registry import get, old_results_folders
from schedkit.runs import CheckpointError, dataset_identity, load_checkpoint, save_checkpoint

# keys each algorithm's older configs lack, with what their runs did (schedkit/config.py OLDER_MEANINGS)
OLDER = {
    "TopoFreeRL": {"rollout": "restart", "live_load": True, "actor": "dense", "shortlist": 0, "critic": "state",
                   "se_gate": True, "telemetry_queue_ms": 1000.0, "keep_checkpoints": 3, "tensorboard": "auto",
                   "train_env": {}, "recipe": "none", "guidance.enabled": True, "guidance.prior": "telemetry",
                   "guidance.latency_weight": 0.6, "dwa.initial": [0.45, 0.40, 0.15]},
    "PPO": {"live_load": False, "load_logit": False, "rollout": "restart", "dwa.initial": [0.45, 0.40, 0.15]},
    "STARK": {"live_load": False, "val_every": 1, "val_max_steps": 0, "rollout": "restart"},
}


def _untrained(algo: str, ds, path: Path, change=None, name: str | None = None) -> Path:
    """A checkpoint of an untrained `algo` agent on `ds`, its config changed by `change`, saved as
    algorithm `name` (an older version's spelling)."""
    cls = get(algo).load()
    cfg = resolve(REPO / get(algo).folder / "config.yaml", choices=cls.config_choices)
    agent = cls(ds, cfg, torch.device("cpu"))
    saved = dict(cfg)
    if change is not None:
        change(saved)
    dwa = None if algo == "STARK" else {"weights": [0.45, 0.40, 0.15], "moving_mean": None}
    return save_checkpoint(path, {"algo": name or algo, "epoch": 0, "model": agent.state_dict(), "config": saved,
                                  "dataset": dataset_identity(ds), "dwa": dwa})


def _drop(keys):
    def change(cfg: dict) -> None:
        for key in keys:
            *blocks, leaf = key.split(".")
            node = cfg
            for block in blocks:
                node = node[block] = dict(node[block])
            del node[leaf]
        cfg.pop("contention")
        cfg.pop("profile")
    return change


def _get(cfg: dict, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


@pytest.mark.parametrize("algo", list(OLDER))
def test_an_older_checkpoint_loads_with_what_its_run_did(algo, small_ds, tmp_path):
    path = _untrained(algo, small_ds, tmp_path / "old.pt", _drop(OLDER[algo]))
    cfg = load_checkpoint(path, algo=algo)["config"]
    for key, meant in OLDER[algo].items():
        assert _get(cfg, key) == meant, key
    assert cfg["profile"] == "paper" and cfg["contention"]["arrival_rate"] == 1.0
    # the agent builds from it: every key its code reads is there
    get(algo).load()(small_ds, cfg, torch.device("cpu"))


def test_upgrade_leaves_a_current_config_as_it_is():
    cfg = resolve(REPO / "TopoFreeRL" / "config.yaml")
    assert upgrade(cfg) == cfg


@pytest.mark.parametrize(("key", "value"), [("state", "extended"), ("telemetry_latency", "link_mean")])
def test_a_removed_option_is_refused_in_one_line(key, value, small_ds, tmp_path):
    path = _untrained("TopoFreeRL", small_ds, tmp_path / "removed.pt", lambda c: c.update({key: value}))
    with pytest.raises(CheckpointError) as e:
        load_checkpoint(path)
    message = str(e.value)
    assert "\n" not in message and str(path) in message
    assert f"'{key}: {value}' is no longer offered" in message and "retrain" in message
    with pytest.raises(ConfigError, match=f"{key}: {value}"):
        upgrade({"algo": "TopoFreeRL", key: value})


def test_the_remaining_values_still_load(small_ds, tmp_path):
    path = _untrained("TopoFreeRL", small_ds, tmp_path / "kept.pt",
                      lambda c: c.update({"state": "reference", "telemetry_latency": "expected_hop"}))
    cfg = load_checkpoint(path)["config"]
    assert cfg["state"] == "reference" and "telemetry_latency" not in cfg
    base = _untrained("TopoFreeRL", small_ds, tmp_path / "base.pt", lambda c: c.update({"state": "base"}))
    assert load_checkpoint(base)["config"]["state"] == "base"


def test_a_stark_checkpoint_loads_as_STARK(small_ds, tmp_path):
    path = _untrained("STARK", small_ds, tmp_path / "stark.pt", lambda c: c.update({"algo": "Stark"}), name="Stark")
    state = load_checkpoint(path, algo="STARK")
    assert state["algo"] == "STARK" and state["config"]["algo"] == "STARK"
    assert upgrade({"algo": "Stark"})["algo"] == "STARK"


def test_results_under_the_older_name_are_reported_with_the_rename(tmp_path):
    results = tmp_path / "results"
    (results / "Stark" / "run" / "checkpoints").mkdir(parents=True)
    assert old_results_folders(results) == [
        f"{results / 'Stark'}: runs under the older name Stark; rename the folder to {results / 'STARK'}"]
    one_line_error(run_script("total/evaluate_all.py", "--results", str(results), "--episodes", "2",
                              "--no-progress", check=False), "rename the folder to", "STARK")
    (results / "Stark").rename(results / "STARK")
    assert old_results_folders(results) == []


@pytest.mark.slow
def test_resume_reads_an_older_run_folder(tmp_path):
    """--resume compares the run's config.yaml with its checkpoint's config; both saved by an older
    version (without `rollout` and `keep_checkpoints`), they still agree and the run continues."""
    run = tmp_path / "run"
    run_script("PPO_algorithm/train.py", *TINY, "--out", str(run))
    old = tmp_path / "old"
    shutil.copytree(run, old)
    for name in ("final.pt", "epoch_0004.pt"):
        (old / "checkpoints" / name).unlink()
    ckpt = old / "checkpoints" / "epoch_0002.pt"
    state = load_checkpoint(ckpt)
    del state["config"]["rollout"], state["config"]["keep_checkpoints"]
    save_checkpoint(ckpt, state)
    saved = yaml.safe_load((old / "config.yaml").read_text())
    del saved["rollout"], saved["keep_checkpoints"]
    (old / "config.yaml").write_text(yaml.safe_dump(saved))
    run_script("PPO_algorithm/train.py", "--resume", str(old), "--no-progress")
    assert load_checkpoint(old / "checkpoints" / "final.pt")["config"]["keep_checkpoints"] == 3


def test_the_rules_name_the_learned_schedulers_by_their_registry_names():
    from schedkit.config import ALL, OLDER_MEANINGS
    from schedkit.registry import learned
    assert set(ALL) == set(learned()) and all(set(algos) <= set(learned()) for algos, _, _ in OLDER_MEANINGS)
