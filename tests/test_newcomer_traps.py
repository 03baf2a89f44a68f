"""What a newcomer runs into first, through the scripts: a GPU flag on a machine without one, several
trained runs of one seed, an interrupted run started again, and an inference reward with nothing beside it."""
from __future__ import annotations

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
