"""total/: the quick reproduction end to end, evaluate_all on fake runs, honest tables, and the
safety of defaults: nothing committed is overwritten, and scripts work from any directory."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, run_script

from schedkit.config import resolve
from schedkit.runs import dataset_identity, save_checkpoint

sys.path.insert(0, str(ROOT / "total"))
FIGURES = ["learning_curves", "latency_cdf", "cost_breakdown", "pareto", "dwa_weights", "scalability"]


def run_from(cwd: Path, script: str, *args: str) -> subprocess.CompletedProcess:
    """Run a project script by its absolute path from another directory, as a user outside the repo would."""
    return run_script(script, *args, cwd=cwd)


def digests(folder: Path) -> dict[str, str]:
    """Every file under `folder` with its SHA-256: equal before and after means nothing was touched."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def written(stdout: str) -> list[Path]:
    return [Path(line.split(" ", 1)[1]) for line in stdout.splitlines()
            if line.startswith("wrote ") and "{" not in line and " and " not in line]


def test_quick_reproduction_from_another_directory_leaves_committed_figures_alone(tmp_path):
    committed, repo_figures = digests(ROOT / "total" / "figures"), digests(ROOT / "results" / "figures")
    args = ["--quick", "--seeds", "42", "43", "--results", "results"]  # relative: to the current directory
    first = run_from(tmp_path, "total/reproduce.py", *args)
    assert first.stdout.count(": trained (") == 8
    figs = tmp_path / "results" / "figures"  # the default: <results>/figures
    for name in FIGURES:
        assert (figs / f"{name}.png").stat().st_size > 1000, name
    assert (figs / "results_table.csv").exists()
    assert not [p.name for p in figs.rglob("*") if p.suffix in (".pdf", ".md", ".tex")]  # only with --formats
    outputs = written(first.stdout)
    assert len(outputs) >= len(FIGURES) + 1 and all(p.is_relative_to(tmp_path) for p in outputs), outputs
    assert digests(ROOT / "total" / "figures") == committed and digests(ROOT / "results" / "figures") == repo_figures
    table = pd.read_csv(figs / "results_table.csv")
    assert set(table["Scheduler"]) == {"TopoFreeRL", "PPO", "PF-PPO", "STARK", "oracle", "greedy", "maxcompute",
                                       "random"}
    episodes = pd.read_csv(tmp_path / "results" / "eval" / "Server1_Trap" / "episodes.csv")
    assert episodes.groupby("algo")["train_seed"].nunique().drop(["oracle", "greedy", "maxcompute", "random"]).eq(2).all()
    record = yaml.safe_load((figs / "reproduce.yaml").read_text())
    assert record["quick"] and record["results"] == str((tmp_path / "results").resolve()) and record["git_commit"]
    assert record["data"] == str(ROOT / "data1") and record["budget"] == {"epochs": 3, "episodes": 32}


def test_output_flags_default_to_results_figures_and_update_committed_only_on_request(tmp_path):
    from schedkit import paths
    from total.common import figure_parser, figures_dir
    p = figure_parser("test")
    assert figures_dir(p.parse_args([])) == paths.FIGURES == paths.RESULTS / "figures"
    assert figures_dir(p.parse_args(["--results", str(tmp_path)])) == tmp_path / "figures"
    assert figures_dir(p.parse_args(["--figures", "elsewhere"])) == Path("elsewhere")
    assert figures_dir(p.parse_args(["--update-committed-figures"])) == ROOT / "total" / "figures"
    with pytest.raises(SystemExit):
        p.parse_args(["--figures", "elsewhere", "--update-committed-figures"])


def test_formats_default_to_png_and_csv_and_a_study_passes_its_choice_to_its_steps(tmp_path):
    from argparse import Namespace

    from total.common import figure_parser, wanted, writing
    p = figure_parser("test")
    assert p.parse_args([]).formats is None and p.parse_args(["--formats", "png,.PDF, md"]).formats == ("png", "pdf", "md")
    with pytest.raises(SystemExit):
        p.parse_args(["--formats", "png,svg"])  # a typo fails instead of writing nothing
    assert wanted(tmp_path / "a.png") and wanted(tmp_path / "a.csv") and not wanted(tmp_path / "a.pdf")
    with writing(Namespace(formats=("pdf", "tex"))), writing(Namespace(formats=None)):  # a step run by a study
        assert wanted(tmp_path / "a.pdf") and wanted(tmp_path / "a.tex") and not wanted(tmp_path / "a.png")
        assert wanted(tmp_path / "a.csv") and wanted(tmp_path / "reproduce.yaml")
    assert not wanted(tmp_path / "a.pdf")


def _fake_run(results, algo_folder, cfg_file, ds, seed, name):
    """A checkpoint of an untrained agent: enough for evaluate_all, in seconds."""
    from total.common import agent_factory
    cfg = resolve(ROOT / cfg_file, sets=[f"seed={seed}"])
    agent = agent_factory(cfg["algo"])(ds, cfg, torch.device("cpu"))
    save_checkpoint(results / cfg["algo"] / name / "checkpoints" / "final.pt", {
        "algo": cfg["algo"], "epoch": 1, "model": agent.state_dict(), "config": cfg, "dataset": dataset_identity(ds),
        "dwa": {"weights": [0.45, 0.40, 0.15], "moving_mean": None}})


def test_evaluate_all_on_two_fake_runs(tmp_path, default_ds, small_ds):
    results = tmp_path / "results"
    _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, 1, "a")
    _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, 2, "b")
    _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", small_ds, 3, "elsewhere")
    proc = run_from(tmp_path, "total/evaluate_all.py", "--results", "results", "--episodes", "12", "--eval-seeds", "0",
                    "1", "--no-progress")  # from another directory: --data defaults to the repository's data1
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
    config = yaml.safe_load((results / "eval" / "Server1_Trap" / "config.yaml").read_text())
    assert config["data"] == str(ROOT / "data1") and config["episodes"] == 12 and config["git_commit"]
    assert len(config["evaluated"]) == 2 and "elsewhere" in config["skipped"][0]
    run_from(tmp_path, "total/make_table.py", "--results", "results")
    assert list(pd.read_csv(results / "figures" / "results_table.csv")["Scheduler"]).count("PPO") == 1


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
