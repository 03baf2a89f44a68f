"""bench/gpu_suite.py: a no-op with a clear line where there is no CUDA device, and every step of it
run on the CPU as a dry run (what a lent GPU machine will run, at small sizes)."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import run_script


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is present")
def test_without_cuda_the_suite_says_so_and_exits_0(tmp_path):
    proc = run_script("bench/gpu_suite.py", "--out", str(tmp_path))
    assert "no CUDA device" in proc.stdout and not any(tmp_path.iterdir())


@pytest.mark.slow
def test_a_dry_run_on_the_cpu_runs_every_step_and_writes_one_report(tmp_path):
    run_script("bench/gpu_suite.py", "--device", "cpu", "--quick", "--out", str(tmp_path))
    [report] = sorted(tmp_path.glob("gpu_suite_cpu_*.json"))
    data = json.loads(report.read_text())
    assert list(data["steps"]) == ["equivalence", "throughput", "train", "evaluate", "train_large", "train_shortlist"]
    assert all(step["ok"] for step in data["steps"].values()), data["steps"]
    assert "3 passed" in data["steps"]["equivalence"]["output"]  # paper, contention and serving, CPU against CPU
    assert {r["servers"] for r in data["steps"]["throughput"]["rows"]} == {500}
    assert data["steps"]["evaluate"]["mean_reward"] < 0 and data["steps"]["train_large"]["epochs"] == 1
    assert "shortlist=32" in data["steps"]["train_shortlist"]["args"] and data["steps"]["train_shortlist"]["epochs"] == 1
    md = report.with_suffix(".md").read_text()
    assert md.startswith("# GPU suite: cpu") and "| throughput | ok |" in md
