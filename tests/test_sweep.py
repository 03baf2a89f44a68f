"""total/sweep.py: expansion, idempotence, resume, failure isolation, and the Ray backend."""
from __future__ import annotations

import importlib.util
import shutil

import pytest
import yaml

from conftest import run_script


def _sweep(tmp_path, **overrides):
    cfg = {"name": "t", "algorithms": ["PPO"], "seeds": [1], "regions": [["Server1_Trap"]],
           "budget": {"epochs": 5, "episodes": 16}, "evaluate": {"episodes": 10},
           "results": str(tmp_path / "results")} | overrides
    path = tmp_path / f"sweep_{len(list(tmp_path.glob('sweep_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_local_sweep_is_idempotent_resumes_and_isolates_failures(tmp_path):
    cfg = _sweep(tmp_path, regions=[["Server1_Trap"], ["NoSuchRegion"]])
    first = run_script("total/sweep.py", "--config", str(cfg), "--workers", "2", check=False)
    assert first.returncode == 1  # one run failed ...
    assert "1 ok, 0 resumed, 0 skipped, 1 failed" in first.stdout  # ... and the other still finished
    failed_log = tmp_path / "results" / "PPO" / "NoSuchRegion_seed1" / "train.log"
    assert f"log: {failed_log}" in first.stdout and "region folder not found" in failed_log.read_text()
    run_dir = tmp_path / "results" / "PPO" / "Server1_Trap_seed1"
    assert (run_dir / "checkpoints" / "final.pt").exists() and (run_dir / "eval_test_seed0" / "summary.json").exists()

    good = _sweep(tmp_path)
    assert "0 ok, 0 resumed, 1 skipped, 0 failed" in run_script("total/sweep.py", "--config", str(good)).stdout
    (run_dir / "checkpoints" / "final.pt").unlink()  # interrupted after its last epoch checkpoint
    shutil.rmtree(run_dir / "eval_test_seed0")
    again = run_script("total/sweep.py", "--config", str(good)).stdout
    assert "0 ok, 1 resumed, 0 skipped, 0 failed" in again
    assert (run_dir / "checkpoints" / "final.pt").exists() and (run_dir / "eval_test_seed0" / "summary.json").exists()


def test_sweep_rejects_unknown_keys_and_algorithms(tmp_path):
    bad = _sweep(tmp_path, algorithm=["PPO"])
    proc = run_script("total/sweep.py", "--config", str(bad), check=False)
    assert proc.returncode != 0 and "unknown key(s) ['algorithm']" in proc.stderr
    bad = _sweep(tmp_path, algorithms=["DQN"])
    proc = run_script("total/sweep.py", "--config", str(bad), check=False)
    assert proc.returncode != 0 and "unknown algorithm(s) ['DQN']" in proc.stderr


def test_shipped_sweeps_expand():
    import sys

    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "total"))
    from sweep import expand, load_sweep
    quick, paper = expand(load_sweep(ROOT / "sweeps/quick.yaml")), expand(load_sweep(ROOT / "sweeps/paper.yaml"))
    assert len(quick) == 4 and {r.algo for r in quick} == {"TopoFreeRL", "PPO"}
    assert len(paper) == 12 and {r.seed for r in paper} == {42, 43, 44}
    assert paper[0].epochs == 100 and paper[0].episodes == 200 and paper[0].sets == ()
    contention = expand(load_sweep(ROOT / "sweeps/contention.yaml"))
    tf = next(r for r in contention if r.algo == "TopoFreeRL")
    ppo = next(r for r in contention if r.algo == "PPO")
    assert tf.profile == "contention" and tf.sets == ("contention.arrival_rate=8", "actor=per_server")
    assert ppo.sets == ("contention.arrival_rate=8",)


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (requirements-ray.txt)")
def test_ray_backend_on_a_local_instance(tmp_path):
    cfg = _sweep(tmp_path, seeds=[1, 2], budget={"epochs": 2, "episodes": 16})
    proc = run_script("total/sweep.py", "--config", str(cfg), "--backend", "ray", "--workers", "2")
    assert "2 ok, 0 resumed, 0 skipped, 0 failed" in proc.stdout
    for seed in (1, 2):
        assert (tmp_path / "results" / "PPO" / f"Server1_Trap_seed{seed}" / "eval_test_seed0" / "summary.json").exists()
