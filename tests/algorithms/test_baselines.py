"""The baselines: a short train + inference of each through the shell, the PF bonus by hand,
STARK's permutation equivariance and exact resume."""
from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest
import torch
from conftest import run_script
from test_scripts import EPISODE_COLUMNS, SUMMARY_KEYS

from schedkit.runs import load_checkpoint

pytestmark = pytest.mark.slow  # trains through the shell

SHORT = {
    "PPO_algorithm": ["--epochs", "3", "--episodes", "32"],
    "PFAPPO": ["--epochs", "3", "--episodes", "32"],
    "Stark_Scheduler": ["--epochs", "3", "--episodes", "32", "--set", "checkpoint_every=2"],
}


@pytest.mark.parametrize("folder", list(SHORT))
def test_short_train_and_inference_through_the_shell(folder, tmp_path):
    run = tmp_path / "run"
    run_script(f"{folder}/train.py", *SHORT[folder], "--out", str(run), "--no-progress")
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1, 2]
    run_script(f"{folder}/inference.py", "--model", str(run / "checkpoints" / "final.pt"), "--episodes", "20",
               "--out", str(tmp_path / "eval"), "--no-progress")
    df = pd.read_csv(tmp_path / "eval" / "episodes.csv")
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert EPISODE_COLUMNS <= set(df.columns) and SUMMARY_KEYS <= set(summary)
    assert summary["episodes"] == 20 and summary["fallback_rate"] == 0.0


def test_pf_bonus_by_hand(small_ds):
    import yaml

    from PFAPPO.agent import PFPPOAgent
    cfg = yaml.safe_load(open("PFAPPO/config.yaml"))
    cfg["fairness"] = {"weight": 1.0, "eps": 0.5, "window": 4}
    agent = PFPPOAgent(small_ds, cfg, torch.device("cpu"))
    agent.recent[:] = torch.tensor([0, 0, 1, -1])  # three decisions so far: server 0 twice, server 1 once
    agent.cursor.fill_(3)
    # shares x = (0.5, 0.25, 0); gain = log(0.5 + x + 0.25) - log(0.5 + x); normaliser log(1 + 1/(0.5*4))
    expect = [math.log(1.25 / 1.0), math.log(1.0 / 0.75), math.log(0.75 / 0.5)]
    bonus = agent.reward_bonus(torch.tensor([0, 1, 2]))
    assert bonus.tolist() == pytest.approx([e / math.log(1.5) for e in expect])
    assert bonus[2] == pytest.approx(1.0)  # an idle server earns the full weight
    assert agent.recent.tolist() == [1, 2, 1, 0] and int(agent.cursor) == 2  # ring buffer moved by 3


def test_stark_scores_are_permutation_equivariant():
    from Stark_Scheduler.model import StarkNet
    torch.manual_seed(0)
    net = StarkNet(task_dim=7).eval()
    task, servers = torch.randn(3, 7), torch.randn(3, 10, 7)
    pad = torch.zeros(3, 10, dtype=torch.bool)
    pad[:, 8:] = True
    perm = torch.randperm(10)
    with torch.no_grad():
        a = net(task, servers, pad)
        b = net(task, servers[:, perm], pad[:, perm])
    assert torch.allclose(a[:, perm], b, atol=1e-5)


def test_stark_resume_is_exact_and_selects_on_held_out_train_tasks(tmp_path):
    run = tmp_path / "stark"
    run_script("Stark_Scheduler/train.py", "--epochs", "4", "--episodes", "24", "--set", "checkpoint_every=2",
               "--out", str(run), "--no-progress")
    crashed = tmp_path / "crashed"
    shutil.copytree(run, crashed)
    for name in ("final.pt", "epoch_0004.pt"):
        (crashed / "checkpoints" / name).unlink()
    run_script("Stark_Scheduler/train.py", "--resume", str(crashed), "--no-progress")
    a, b = (load_checkpoint(r / "checkpoints" / "final.pt") for r in (run, crashed))
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    m = pd.read_csv(run / "metrics.csv")
    assert a["best"]["epoch"] == int(m["val_reward"].idxmax())  # final.pt is the best validation epoch
    assert {"loss", "accuracy", "val_accuracy", "val_latency_ms", "coverage"} <= set(m.columns)
