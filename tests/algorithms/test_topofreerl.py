"""TopoFreeRL through its scripts: training improves, resume is exact, checkpoints are checked."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
from conftest import run_script
from test_scripts import EPISODE_COLUMNS, SUMMARY_KEYS

from schedkit.runs import load_checkpoint, save_checkpoint

pytestmark = pytest.mark.slow  # trains through the shell

TINY = ["--epochs", "8", "--episodes", "32", "--set", "checkpoint_every=4", "--no-progress"]
TIMING = ["rollout_s", "update_s", "steps_per_s"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("tf") / "run"
    run_script("TopoFreeRL/train.py", *TINY, "--out", str(run))
    return run


def test_run_directory_layout(tiny_run):
    assert (tiny_run / "config.yaml").exists()
    names = sorted(p.name for p in (tiny_run / "checkpoints").iterdir())
    assert names == ["epoch_0004.pt", "epoch_0008.pt", "final.pt"]
    m = pd.read_csv(tiny_run / "metrics.csv")
    assert m["epoch"].tolist() == list(range(8))
    for col in ["return", "reward", "latency_ms", "cost", "w_latency", "w_cost", "w_switch", "policy_loss",
                "value_loss", "entropy", "steps_per_s"]:
        assert col in m.columns
    state = load_checkpoint(tiny_run / "checkpoints" / "final.pt")
    assert state["epoch"] == 8 and len(state["dataset"]["server_ids"]) == 500 and "optimizer" in state


def test_short_training_improves_reward_over_its_first_epoch(tmp_path):
    run = tmp_path / "learn"
    run_script("TopoFreeRL/train.py", "--epochs", "15", "--episodes", "100", "--seed", "1", "--out", str(run),
               "--no-progress")
    reward = pd.read_csv(run / "metrics.csv")["reward"]  # fixed evaluation weights: comparable across epochs
    assert reward.iloc[-3:].mean() > reward.iloc[0] + 0.2


def test_resume_ends_with_the_weights_of_an_uninterrupted_run(tiny_run, tmp_path):
    crashed = tmp_path / "crashed"
    shutil.copytree(tiny_run, crashed)
    (crashed / "checkpoints" / "final.pt").unlink()  # as if killed during epoch 5..8: later rows stay in metrics
    (crashed / "checkpoints" / "epoch_0008.pt").unlink()
    proc = run_script("TopoFreeRL/train.py", "--resume", str(crashed), "--no-progress")
    assert "from epoch_0004.pt" in proc.stdout
    a = load_checkpoint(tiny_run / "checkpoints" / "final.pt")
    b = load_checkpoint(crashed / "checkpoints" / "final.pt")
    assert a["model"].keys() == b["model"].keys()
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert a["dwa"] == b["dwa"]
    ma, mb = (pd.read_csv(r / "metrics.csv").drop(columns=TIMING) for r in (tiny_run, crashed))
    pd.testing.assert_frame_equal(ma, mb)
    again = run_script("TopoFreeRL/train.py", "--resume", str(crashed), "--no-progress")
    assert "already finished" in again.stdout


def test_checkpoint_round_trip_gives_identical_decisions(tiny_run, tmp_path):
    from edgesim.dataset import load_dataset
    from edgesim.simulator import Simulator
    from TopoFreeRL.agent import TopoFreeAgent
    state = load_checkpoint(tiny_run / "checkpoints" / "final.pt")
    save_checkpoint(tmp_path / "copy.pt", state)
    copy = load_checkpoint(tmp_path / "copy.pt")
    ds = load_dataset("data1", "Server1_Trap")
    sim = Simulator(ds, batch_size=16, split="test", order="sequential")
    outs = []
    for s in (state, copy):
        agent = TopoFreeAgent(ds, s["config"], torch.device("cpu"))
        agent.load_state_dict(s["model"])
        outs.append(agent(agent.features(sim, sim.observe(), torch.tensor(s["dwa"]["weights"]))))
    assert torch.equal(outs[0][0], outs[1][0]) and torch.equal(outs[0][1], outs[1][1])


def test_inference_writes_the_shared_files(tiny_run, tmp_path):
    out = tmp_path / "eval"
    proc = run_script("TopoFreeRL/inference.py", "--model", str(tiny_run / "checkpoints" / "final.pt"),
                      "--episodes", "40", "--out", str(out), "--no-progress")
    assert "TopoFreeRL" in proc.stdout and "batch 1" in proc.stdout
    df = pd.read_csv(out / "episodes.csv")
    summary = json.loads((out / "summary.json").read_text())
    assert EPISODE_COLUMNS <= set(df.columns) and len(df) == 40
    assert SUMMARY_KEYS <= set(summary) and summary["decision_ms_batch1"] > 0
    assert summary["fallback_rate"] == 0.0  # evaluation always masks


def test_checkpoint_from_another_dataset_is_refused_clearly(tiny_run, small_root):
    proc = run_script("TopoFreeRL/inference.py", "--model", str(tiny_run / "checkpoints" / "final.pt"),
                      "--data", str(small_root), "--region", "Small_Trap", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "does not match the dataset" in proc.stderr and "500 servers" in proc.stderr and "80 servers" in proc.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupted_checkpoint_is_a_clear_error(tiny_run, tmp_path, damage):
    bad = tmp_path / "bad.pt"
    data = (tiny_run / "checkpoints" / "final.pt").read_bytes()
    bad.write_bytes(b"not a checkpoint" if damage == "garbage" else data[: len(data) // 2])
    proc = run_script("TopoFreeRL/inference.py", "--model", str(bad), check=False)
    assert proc.returncode != 0 and "not a readable checkpoint" in proc.stderr and "Traceback" not in proc.stderr


def test_config_overrides_and_latest_pointer(tmp_path):
    user = tmp_path / "user.yaml"
    user.write_text("episodes: 16\nppo:\n  clip: 0.1\n")
    run_script("TopoFreeRL/train.py", "--config", str(user), "--epochs", "2", "--set", "lr=0.001",
               "--results", str(tmp_path / "res"), "--no-progress")
    latest = tmp_path / "res" / "TopoFreeRL" / "latest"
    import yaml
    cfg = yaml.safe_load((latest / "config.yaml").read_text())
    assert cfg["episodes"] == 16 and cfg["ppo"]["clip"] == 0.1 and cfg["lr"] == 0.001 and cfg["epochs"] == 2
    assert (latest / "checkpoints" / "final.pt").exists()
    bad = run_script("TopoFreeRL/train.py", "--set", "ppo.clipp=0.1", "--out", str(tmp_path / "x"), check=False)
    assert bad.returncode != 0 and "unknown config key 'ppo.clipp'" in bad.stderr


def test_no_mask_trains_the_reference_way(tmp_path):
    run = tmp_path / "nomask"
    run_script("TopoFreeRL/train.py", "--epochs", "1", "--episodes", "64", "--no-mask", "--out", str(run),
               "--no-progress")
    m = pd.read_csv(run / "metrics.csv")
    assert m["fallback_rate"].iloc[0] > 0.05  # unmasked sampling hits servers without the model


def test_oracle_agreement_tool_reports_a_bad_checkpoint_clearly(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    proc = run_script("bench/oracle_agreement.py", "--model", str(bad), check=False)
    assert proc.returncode != 0 and "not a readable checkpoint" in proc.stderr and "Traceback" not in proc.stderr
