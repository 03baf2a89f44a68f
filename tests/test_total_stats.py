"""total/: seeds as the unit of replication (evaluate_all), the paired comparison table, the load curve,
and the figure fixes, on fake runs and fake evaluations (no training)."""
from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import yaml

from conftest import ROOT
from test_total import _fake_run, run_from

sys.path.insert(0, str(ROOT / "total"))


def test_two_runs_of_one_seed_count_once(tmp_path, default_ds):
    results = tmp_path / "results"
    for seed, name in ((42, "Server1_Trap_seed42_20260101-000000"), (42, "Server1_Trap_seed42"),
                       (43, "Server1_Trap_seed43")):
        _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, seed, name)
    old = results / "PPO" / "Server1_Trap_seed42" / "checkpoints" / "final.pt"
    os.utime(old, (1e9, 1e9))  # the undated folder is the older run here
    proc = run_from(tmp_path, "total/evaluate_all.py", "--results", "results", "--episodes", "8", "--no-progress")
    rel = "results/PPO/Server1_Trap_seed42/checkpoints/final.pt"  # as the user typed --results
    assert f"skipped {rel} (another run of PPO seed 42" in proc.stdout and "one seed counts once" in proc.stdout
    out = results / "eval" / "Server1_Trap"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert len(config["evaluated"]) == 2 and any("20260101" in p for p in config["evaluated"])
    assert len(config["skipped"]) == 1 and config["skipped"][0].startswith(rel)
    episodes = pd.read_csv(out / "episodes.csv")
    assert sorted(episodes.loc[episodes["algo"] == "PPO", "run"].unique()) == [
        "Server1_Trap_seed42_20260101-000000", "Server1_Trap_seed43"]
    summary = pd.read_csv(out / "summary.csv").set_index("algo")
    assert summary.loc["PPO", "train_seeds"] == 2 and summary.loc["PPO", "runs"] == 2
    assert summary.loc["PPO", "ci_unit"] == "runs" and summary.loc["greedy", "ci_unit"] == "episodes"
