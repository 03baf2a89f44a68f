"""total/: the quick reproduction end to end, evaluate_all on fake runs, honest tables."""
from __future__ import annotations

import sys

import pandas as pd
import pytest
import torch
import yaml

from conftest import ROOT, run_script
from schedkit.runs import dataset_identity, save_checkpoint

sys.path.insert(0, str(ROOT / "total"))
FIGURES = ["learning_curves", "latency_cdf", "cost_breakdown", "pareto", "dwa_weights", "scalability"]


def test_quick_reproduction_makes_every_figure_and_table_and_skips_finished_runs(tmp_path):
    args = ["total/reproduce.py", "--quick", "--results", str(tmp_path / "results"), "--figures", str(tmp_path / "figs")]
    first = run_script(*args)
    assert first.stdout.count(": trained (") == 12
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (tmp_path / "figs" / f"{name}.{ext}").stat().st_size > 1000, name
    for ext in ("md", "csv", "tex"):
        assert (tmp_path / "figs" / f"results_table.{ext}").exists()
    table = pd.read_csv(tmp_path / "figs" / "results_table.csv")
    assert set(table["Scheduler"]) == {"TopoFreeRL", "PPO", "PF-PPO", "STARK", "oracle", "greedy", "maxcompute",
                                       "random"}
    episodes = pd.read_csv(tmp_path / "results" / "eval" / "Server1_Trap" / "episodes.csv")
    assert episodes.groupby("algo")["train_seed"].nunique().drop(["oracle", "greedy", "maxcompute", "random"]).eq(3).all()
    second = run_script(*args)
    assert second.stdout.count("finished, skipped") == 12 and ": trained (" not in second.stdout


def _fake_run(results, algo_folder, cfg_file, ds, seed, name):
    """A checkpoint of an untrained agent: enough for evaluate_all, in seconds."""
    from total.common import agent_factory
    cfg = yaml.safe_load(open(ROOT / cfg_file)) | {"seed": seed}
    agent = agent_factory(cfg["algo"])(ds, cfg, torch.device("cpu"))
    save_checkpoint(results / cfg["algo"] / name / "checkpoints" / "final.pt", {
        "algo": cfg["algo"], "epoch": 1, "model": agent.state_dict(), "config": cfg, "dataset": dataset_identity(ds),
        "dwa": {"weights": [0.45, 0.40, 0.15], "moving_mean": None}})


def test_evaluate_all_on_two_fake_runs(tmp_path, default_ds, small_ds):
    results = tmp_path / "results"
    _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, 1, "a")
    _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, 2, "b")
    _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", small_ds, 3, "elsewhere")
    proc = run_script("total/evaluate_all.py", "--results", str(results), "--episodes", "12", "--eval-seeds", "0", "1",
                      "--no-progress")
    assert "skipped" in proc.stdout and "elsewhere" in proc.stdout
    episodes = pd.read_csv(results / "eval" / "Server1_Trap" / "episodes.csv")
    ppo = episodes[episodes["algo"] == "PPO"]
    assert sorted(ppo["train_seed"].unique()) == [1, 2] and sorted(ppo["eval_seed"].unique()) == [0, 1]
    assert len(ppo) == 2 * 2 * 12 and set(episodes["algo"]) == {"PPO", "oracle", "greedy", "maxcompute", "random"}
    summary = pd.read_csv(results / "eval" / "Server1_Trap" / "summary.csv")
    row = summary.set_index("algo").loc["PPO"]
    assert row["train_seeds"] == 2 and row["reward_lo"] <= row["reward"] <= row["reward_hi"]
    # same tasks and eval seeds for every scheduler: the oracle must not lose to random
    assert summary.set_index("algo").loc["oracle", "reward"] >= summary.set_index("algo").loc["random", "reward"]


def test_figure_without_inputs_names_the_missing_files(tmp_path):
    proc = run_script("total/plot_latency_cdf.py", "--results", str(tmp_path), "--figures", str(tmp_path / "f"),
                      check=False)
    assert proc.returncode != 0 and "missing input file" in proc.stderr and "episodes.csv" in proc.stderr


@pytest.mark.parametrize("gap,bold", [(1.0, True), (0.01, False)])
def test_table_bolds_the_best_only_when_cis_do_not_overlap(gap, bold):
    from total.make_table import build
    summary = pd.DataFrame({
        "label": ["A", "B"], "reward": [-1.0, -1.0 - gap], "reward_lo": [-1.1, -1.1 - gap],
        "reward_hi": [-0.9, -0.9 - gap], "latency_ms": [10.0, 10.0], "latency_ms_lo": [9.0, 9.0],
        "latency_ms_hi": [11.0, 11.0], "cost": [1.0, 2.0], "cost_lo": [0.9, 1.9], "cost_hi": [1.1, 2.1],
        "reward_iqm": [-1.0, -2.0], "train_seeds": [3, 3], "episodes": [10, 10]})
    markdown, _, latex = build(summary)
    assert ("**-1.0000 [-1.1000, -0.9000]**" in markdown) == bold
    assert "**1.00000 [0.90000, 1.10000]**" in markdown and "\\textbf{1.00000" in latex  # cost CIs are clear
    assert "**10.0" not in markdown  # identical latency: nothing bold
