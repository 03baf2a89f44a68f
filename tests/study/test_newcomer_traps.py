"""What a newcomer runs into first, through the scripts: a GPU flag on a machine without one, several
trained runs of one seed, an interrupted run started again, and an inference reward with nothing beside it."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import ROOT, run_script

TINY = ["--epochs", "2", "--episodes", "8", "--set", "checkpoint_every=1", "--no-progress"]
NO_GPU = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback on a machine without CUDA")
FALLBACK = "warning: --device cuda requested but no CUDA GPU is available; running on cpu"


@NO_GPU
def test_cuda_without_a_gpu_is_one_line_and_the_run_records_cpu(tmp_path, small_root):
    run = tmp_path / "run"
    proc = run_script("TopoFreeRL/train.py", "--data", str(small_root), "--regions", "Small_Trap", *TINY,
                      "--device", "cuda", "--out", str(run))
    assert [ln for ln in proc.stderr.splitlines() if "cuda" in ln] == [FALLBACK]
    assert "Warning" not in proc.stderr
    assert yaml.safe_load((run / "config.yaml").read_text())["device"] == "cpu"


@NO_GPU
def test_evaluate_all_records_the_device_it_ran_on(tmp_path):
    proc = run_script("total/evaluate_all.py", "--results", str(tmp_path), "--episodes", "8", "--no-progress",
                      "--skip", "oracle", "lookahead", "--device", "cuda")
    assert FALLBACK in proc.stderr.splitlines()
    assert yaml.safe_load((tmp_path / "eval" / "Server1_Trap" / "config.yaml").read_text())["device"] == "cpu"


def test_an_interrupted_run_of_the_same_settings_is_named_with_its_resume_command(tmp_path, small_root):
    results, data = tmp_path / "results", ["--data", str(small_root), "--regions", "Small_Trap"]
    first = run_script("TopoFreeRL/train.py", *data, *TINY, "--results", str(results))
    assert "note:" not in first.stdout
    (run,) = [p for p in (results / "TopoFreeRL").iterdir() if not p.is_symlink()]
    (run / "checkpoints" / "final.pt").unlink()  # as if stopped after its last epoch checkpoint
    again = run_script("TopoFreeRL/train.py", *data, *TINY, "--results", str(results))
    notes = [ln for ln in again.stdout.splitlines() if ln.startswith("note:")]
    assert notes == [f"note: {run} is an interrupted run of these settings; continue it with: "
                     f"python {ROOT / 'TopoFreeRL/train.py'} --resume {run}"]
    other = run_script("TopoFreeRL/train.py", *data, *TINY, "--seed", "7", "--results", str(results))
    assert "note:" not in other.stdout  # another seed is other settings


def _trained(tmp_path, *data: str):
    run = tmp_path / "run"
    run_script("TopoFreeRL/train.py", *data, *TINY, "--out", str(run))
    return run / "checkpoints" / "final.pt"


def test_inference_without_a_table_prints_the_command_that_compares(tmp_path, small_root):
    data = ["--data", str(small_root)]
    model = _trained(tmp_path, *data, "--regions", "Small_Trap")
    proc = run_script("TopoFreeRL/inference.py", "--model", str(model), *data, "--region", "Small_Trap",
                      "--episodes", "8", "--out", str(tmp_path / "eval"), "--no-progress")
    last = proc.stdout.splitlines()[-1]
    command = (f"python Heuristics/inference.py --policy greedy oracle --data {small_root} --region Small_Trap "
               "--split test --seed 0 --episodes 8 --profile paper")
    assert last == f"to compare: {command}"
    heuristics = run_script(*command.split()[1:], "--out", str(tmp_path / "heuristics"), "--no-progress")
    assert "greedy" in heuristics.stdout and "oracle" in heuristics.stdout


def test_inference_on_the_default_setting_quotes_the_published_table(tmp_path):
    model = _trained(tmp_path)
    proc = run_script("TopoFreeRL/inference.py", "--model", str(model), "--out", str(tmp_path / "eval"),
                      "--no-progress")
    table = ROOT / "total/figures/results_table.csv"
    assert proc.stdout.splitlines()[-1] == f"on this setting: greedy -2.6632, oracle -2.6618 (from {table})"


def test_an_evaluation_with_the_same_settings_is_quoted(tmp_path):
    from argparse import Namespace

    from schedkit.reference import reference_line
    settings = {"policy": "PPO", "model": "m.pt", "split": "test", "seed": 3, "episodes": 8, "profile": "paper",
                "regions": ["R"], "dataset_fingerprint": "abc"}
    folder = tmp_path / "eval" / "R"
    folder.mkdir(parents=True)
    (folder / "summary.csv").write_text("algo,reward\ngreedy,-2.5\noracle,-2.25\nPPO,-3\n")
    record = {"region": ["R"], "split": "test", "episodes": 8, "eval_seeds": [3], "profile": "paper",
              "dataset_fingerprint": "abc", "skip": []}
    (folder / ".outputs.json").write_text(json.dumps({"summary.csv": record}))
    args = Namespace(data=str(tmp_path), episodes=8)
    assert reference_line(args, settings, tmp_path) == (
        f"on this setting: greedy -2.5000, oracle -2.2500 (from {folder / 'summary.csv'})")
    assert reference_line(args, settings | {"seed": 4}, tmp_path).startswith("to compare: ")


def test_the_figures_command_works_right_after_training(tmp_path):
    results = tmp_path / "results"
    run_script("TopoFreeRL/train.py", "--epochs", "1", "--episodes", "8", "--no-progress", "--results", str(results))
    proc = run_script("total/plot_all_comparison.py", "--results", str(results), "--figures", str(tmp_path / "fig"))
    assert "running total/evaluate_all.py first" in proc.stdout
    assert (results / "eval" / "Server1_Trap" / "summary.csv").is_file()
    written = {p.name for p in (tmp_path / "fig").iterdir()}
    assert {"learning_curves.png", "latency_cdf.png", "results_table.csv"} <= written
    assert not any(name.endswith((".pdf", ".md", ".tex")) for name in written)  # only with --formats


@pytest.mark.parametrize("study, own_flag", [("contention", "--arrival-trace"), ("claims", "--quick"),
                                             ("paper", "--algos"), ("serving", "--trace")])
def test_one_reproduce_entry_reaches_every_study(study, own_flag):
    proc = run_script("total/reproduce.py", "--study", study, "--help")
    assert own_flag in proc.stdout


def test_an_unknown_study_is_one_line():
    proc = run_script("total/reproduce.py", "--study", "no_such_study", check=False)
    assert proc.returncode == 2 and "--study: invalid choice: 'no_such_study'" in proc.stderr
