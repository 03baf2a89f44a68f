"""`inference.py --compile` / GreedyAgentPolicy(compile=True): the decision through torch.compile.

Compiled and eager decisions are compared step by step on the same simulator, for the shortlisted
per-server TopoFreeRL under contention and the dense PPO in the paper profile; the script's
episodes equal the eager script's; a missing C++ compiler is one line of error."""
from __future__ import annotations

import shutil

import pandas as pd
import pytest
import torch
from conftest import ROOT, run_script

from edgesim.contention import Contention
from edgesim.registry import make_simulator
from schedkit.config import resolve
from schedkit.inference import GreedyAgentPolicy
from schedkit.registry import get

pytestmark = [pytest.mark.slow,  # each compile takes 10-30 s on 2 cores
              pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                 reason="torch.compile on the CPU needs a C++ compiler")]
WEIGHTS = torch.tensor([0.45, 0.40, 0.15])


@pytest.mark.parametrize("algo, sets, profile", [
    ("TopoFreeRL", ["actor=per_server", "shortlist=8"], "contention"),
    ("PPO", [], "paper"),
])
def test_compiled_decisions_equal_eager_ones_step_by_step(default_ds, algo, sets, profile):
    spec = get(algo)
    cfg = resolve(ROOT / spec.folder / "config.yaml", sets=[f"profile={profile}", *sets])
    torch.manual_seed(0)
    agent = spec.load()(default_ds, cfg, torch.device("cpu"))
    eager = GreedyAgentPolicy(algo, agent, WEIGHTS)
    compiled = GreedyAgentPolicy(algo, agent, WEIGHTS, compile=True)
    params = Contention(arrival_rate=8, worlds=6) if profile == "contention" else None
    sim = make_simulator(default_ds, 6, "test", "sequential", 0, "cpu", profile, params)
    obs = sim.reset(0)
    for _ in range(25):
        a = eager.act(sim, obs)
        assert torch.equal(compiled.act(sim, obs), a)
        obs, *_ = sim.step(a)


@pytest.fixture(scope="module")
def shortlisted_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("compile") / "run"
    run_script("TopoFreeRL/train.py", "--set", "actor=per_server", "--set", "shortlist=8", "--epochs", "2",
               "--episodes", "32", "--no-progress", "--out", str(run))
    return run


def test_the_script_evaluates_the_same_episodes_compiled(shortlisted_run, tmp_path):
    model = str(shortlisted_run / "checkpoints" / "final.pt")
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        run_script("TopoFreeRL/inference.py", "--model", model, "--episodes", "40", "--no-progress", *extra,
                   "--out", str(tmp_path / name))
    eager, compiled = (pd.read_csv(tmp_path / n / "episodes.csv") for n in ("eager", "compiled"))
    same = [c for c in eager.columns if "decision" not in c]
    pd.testing.assert_frame_equal(eager[same], compiled[same])
    assert '"compiled": true' in (tmp_path / "compiled" / "summary.json").read_text()


def test_a_missing_compiler_is_one_line_and_writes_nothing(shortlisted_run, tmp_path, monkeypatch):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")
    proc = run_script("TopoFreeRL/inference.py", "--model", str(shortlisted_run / "checkpoints" / "final.pt"),
                      "--episodes", "10", "--no-progress", "--compile", "--out", str(tmp_path / "out"),
                      check=False, in_process=False)
    assert proc.returncode != 0
    assert "--compile: torch.compile failed" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()
