"""Recipes: an algorithm's `<folder>/<profile>.yaml`, the settings a study adopted, applied by train.py
under that profile unless --no-recipe, recorded in the run's config, and checked like any config."""
from __future__ import annotations

import shutil

import pytest
import yaml
from conftest import ROOT, run_script

from PPO_algorithm.agent import PPOAgent
from schedkit.config import ConfigError, load_recipe, resolve
from schedkit.trainer import RUN_FLAGS, parse_train_args, train_config

TOPOFREE = ROOT / "TopoFreeRL" / "config.yaml"


def _config(*argv: str) -> dict:
    return train_config(TOPOFREE, parse_train_args("", list(argv)))


def test_the_contention_profile_trains_the_recipe_unless_no_recipe():
    study = _config("--profile", "contention")
    assert study["recipe"] == "contention" and study["actor"] == "per_server"
    assert study["guidance"]["prior"] == "greedy_queue" and study["train_env"] == {"trap_surcharge_scale": 0}
    plain = _config("--profile", "contention", "--no-recipe")
    assert plain["recipe"] == "none" and plain["actor"] == "dense" and plain["guidance"]["prior"] == "telemetry"
    assert _config()["recipe"] == "none"  # the paper profile has no recipe
    # flags and --set still win over the recipe
    assert _config("--profile", "contention", "--set", "guidance.alpha0=1")["guidance"]["alpha0"] == 1.0
    assert "no_recipe" in RUN_FLAGS  # --resume keeps the saved config: --no-recipe is refused there


def test_the_recipe_key_is_recorded_not_set():
    with pytest.raises(ConfigError, match="config 'recipe' records the recipe"):
        _config("--profile", "contention", "--set", "recipe=paper")
    assert _config("--profile", "contention", "--set", "recipe=contention")["recipe"] == "contention"


@pytest.mark.parametrize("text, want", [("ppo: {clipp: 0.1}\n", "unknown config key 'ppo.clipp'"),
                                        ("ppo: {minibatch: 0}\n", "config 'ppo.minibatch'"),
                                        ("recipe: contention\n", "'recipe' is recorded"),
                                        ("ppo: [\n", "not valid YAML")])
def test_a_bad_recipe_file_is_one_line_naming_it(tmp_path, text, want):
    shutil.copy(ROOT / "PPO_algorithm" / "config.yaml", tmp_path / "config.yaml")
    (tmp_path / "contention.yaml").write_text(text)
    for load in (lambda: load_recipe(tmp_path / "config.yaml", "contention"),
                 lambda: resolve(tmp_path / "config.yaml", flags={"profile": "contention"}, recipe=True,
                                 choices=PPOAgent.config_choices)):
        with pytest.raises(ConfigError) as e:
            load()
        assert str(e.value).startswith(str(tmp_path / "contention.yaml")) and want in str(e.value)
        assert "\n" not in str(e.value)


def test_every_scheduler_of_the_study_has_a_valid_contention_recipe():
    from schedkit.registry import get
    for algo in yaml.safe_load((ROOT / "sweeps" / "contention.yaml").read_text())["algorithms"]:
        assert load_recipe(ROOT / get(algo).folder / "config.yaml", "contention"), algo


@pytest.mark.slow
def test_a_shell_run_says_and_records_its_recipe(small_root, tmp_path):
    run = tmp_path / "run"
    proc = run_script("Stark_Scheduler/train.py", "--data", str(small_root), "--regions", "Small_Trap", "--profile",
                      "contention", "--epochs", "1", "--episodes", "4", "--set", "contention.worlds=2",
                      "--set", "contention.warmup=2", "--out", str(run), "--no-progress", "--no-tensorboard")
    assert f"the contention recipe {ROOT / 'Stark_Scheduler' / 'contention.yaml'} applies" in proc.stdout
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    assert cfg["recipe"] == "contention" and cfg["val_every"] == 5
    proc = run_script("Stark_Scheduler/train.py", "--resume", str(run), "--no-recipe", check=False)
    assert proc.returncode != 0 and "--no-recipe cannot change it" in proc.stderr
