"""Every user-facing script through the shell, as a user runs it."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from conftest import run_script

SCRIPTS = ["Heuristics/inference.py", "data1/generate.py", "bench/env_throughput.py", "TopoFreeRL/train.py",
           "TopoFreeRL/inference.py", "bench/compare_learned.py", "bench/oracle_agreement.py", "bench/update_cost.py",
           "bench/threads.py", "bench/hop_table.py", "bench/seed_batching.py", "bench/tune_side_by_side.py",
           "PPO_algorithm/train.py", "PPO_algorithm/inference.py", "PFAPPO/train.py", "PFAPPO/inference.py",
           "Stark_Scheduler/train.py", "Stark_Scheduler/inference.py", "total/evaluate_all.py", "total/make_table.py",
           "total/reproduce.py", "total/plot_all_comparison.py", "total/plot_learning_curves.py",
           "total/plot_latency_cdf.py", "total/plot_cost_breakdown.py", "total/plot_pareto.py", "total/plot_dwa.py",
           "total/plot_scalability.py", "total/reproduce_claims.py", "total/plot_trap_share.py",
           "total/plot_serving_load.py", "total/plot_serving_cdf.py", "total/plot_serving_timeline.py",
           "total/plot_slo_scale.py"]
SUMMARY_KEYS = {"episodes", "mean_latency_ms", "p99_latency_ms", "mean_queue_ms", "mean_cost", "mean_reward",
                "trap_hit_rate", "fallback_rate", "switches", "decision_ms"}
EPISODE_COLUMNS = {"episode", "task_id", "latency_ms", "network_ms", "compute_ms", "queue_ms", "cost", "reward",
                   "trap_hits", "switches", "fallbacks", "decision_ms"}


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_every_train_and_inference_script_takes_threads(script):
    out = run_script(script, "--help").stdout
    assert "usage:" in out and "--" in out
    assert "--threads" in out or not script.endswith(("train.py", "inference.py"))


def test_heuristics_tiny_run_writes_episodes_and_summary(tmp_path):
    out = tmp_path / "heur"
    proc = run_script("Heuristics/inference.py", "--policy", "greedy", "maxcompute", "--episodes", "30",
                      "--seed", "1", "--out", str(out), "--no-progress")
    assert "greedy" in proc.stdout and "maxcompute" in proc.stdout
    summaries = {}
    for name in ("greedy", "maxcompute"):
        df = pd.read_csv(out / name / "episodes.csv")
        summary = json.loads((out / name / "summary.json").read_text())
        assert EPISODE_COLUMNS <= set(df.columns) and len(df) == 30
        assert SUMMARY_KEYS <= set(summary) and summary["episodes"] == 30
        assert df["task_id"].tolist()[:3] == [f"task_Server1_test_0_{i}" for i in range(3)]  # file order
        assert summary["mean_latency_ms"] == pytest.approx(df["latency_ms"].mean())
        assert summary["fallback_rate"] == 0.0
        summaries[name] = summary
    assert summaries["maxcompute"]["trap_hit_rate"] == 1.0  # the fastest servers are the traps
    assert summaries["greedy"]["mean_reward"] > summaries["maxcompute"]["mean_reward"]
    assert (out / "config.yaml").exists()


def test_heuristics_same_seed_same_numbers(tmp_path):
    for run in ("a", "b"):
        run_script("Heuristics/inference.py", "--policy", "random", "--episodes", "20", "--seed", "5",
                   "--out", str(tmp_path / run), "--no-progress")
    a, b = (pd.read_csv(tmp_path / r / "episodes.csv").drop(columns="decision_ms") for r in ("a", "b"))
    pd.testing.assert_frame_equal(a, b)


def test_heuristics_bad_dataset_is_one_clear_line(tmp_path):
    proc = run_script("Heuristics/inference.py", "--data", str(tmp_path), "--region", "Missing", check=False)
    assert proc.returncode != 0 and "region folder not found" in proc.stderr and "Traceback" not in proc.stderr


def test_cuda_request_falls_back_to_cpu(tmp_path):
    proc = run_script("Heuristics/inference.py", "--policy", "maxcompute", "--episodes", "5", "--device", "cuda",
                      "--out", str(tmp_path), "--no-progress")
    summary = json.loads((tmp_path / "summary.json").read_text())
    import torch
    if not torch.cuda.is_available():
        assert summary["device"] == "cpu" and "no CUDA GPU" in proc.stderr


def test_update_cost_times_both_updates_on_one_batch():
    proc = run_script("bench/update_cost.py", "--algos", "PPO", "--loads", "idle", "--repeats", "1", "--json")
    (row,) = json.loads(proc.stdout)["rows"]
    assert row["algo"] == "PPO" and row["load"] == "idle" and row["samples"] >= 200  # 200 workflows of >= 1 step
    assert row["config_update_s"] > 0 and row["study_update_s"] > 0
    assert row["ratio"] == row["config_update_s"] / row["study_update_s"]


def test_hop_table_bench_times_both_ways_and_checks_they_agree():
    proc = run_script("bench/hop_table.py", "--loads", "idle", "--repeats", "1", "--episodes", "40", "--json")
    rows = json.loads(proc.stdout)["rows"]
    assert [r["work"] for r in rows] == ["greedy_queue eval", "TopoFreeRL eval", "TopoFreeRL rollout"]
    assert all(r["identical"] and r["direct_s"] > 0 and r["table_s"] > 0 for r in rows)


def test_the_busy_benchmark_setting_spins_one_process_per_core_and_stops_them():
    import os
    import signal
    import sys

    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "bench"))
    from bench.machine_load import machine_load

    with machine_load("idle") as spinners:
        assert spinners == []
    with machine_load("busy") as spinners:
        assert len(spinners) == (os.cpu_count() or 1)
        assert all(proc.poll() is None for proc in spinners)
    assert [proc.returncode for proc in spinners] == [-signal.SIGKILL] * len(spinners)


def test_training_cost_times_each_profile_and_compares_to_the_first(tiny_root):
    proc = run_script("bench/training_cost.py", "--servers", "0", "--data", str(tiny_root), "--region", "tiny",
                      "--profiles", "paper", "contention", "--epochs", "1", "--episodes", "4", "--json")
    out = json.loads(proc.stdout)
    paper, contention = out["rows"]
    assert (paper["profile"], contention["profile"]) == ("paper", "contention") and "x_first" not in paper
    assert all(r["wall_s"] > 0 and r["rollout_s"] > 0 and r["update_s"] > 0 and r["epochs"] == 1 for r in out["rows"])
    assert contention["x_first"] == pytest.approx(contention["wall_s"] / paper["wall_s"])
    assert out["command"].startswith("python bench/training_cost.py --servers 0")


def test_benchmark_json_tiny():
    proc = run_script("bench/env_throughput.py", "--servers", "500", "--batches", "1", "64", "--steps", "10",
                      "--repeats", "1", "--scalar-steps", "50", "--devices", "cpu", "--profile-batches", "3",
                      "--max-in-flight", "8", "--profile-warmup", "2", "--profile-steps", "2", "--json")
    out = json.loads(proc.stdout)
    plain = [r for r in out["rows"] if "profile" not in r]
    assert [(r["servers"], r["batch"], r["device"]) for r in plain] == [(500, 1, "cpu"), (500, 64, "cpu")]
    assert all(r["steps_per_s"] > 0 for r in plain) and out["scalar_steps_per_s"] > 0
    contention, serving = (r for r in out["rows"] if "profile" in r)
    assert [(r["profile"], r["batch"], r["max_in_flight"]) for r in (contention, serving)] == \
        [("contention", 3, 8), ("serving", 3, 8)]
    assert serving["x_contention"] == pytest.approx(serving["ms_per_decision"] / contention["ms_per_decision"])
    assert contention["decisions_per_s"] > 0 and "x_contention" not in contention
    assert serving["events_per_decision"] > 0 and serving["rounds_per_step"] > 0
    assert out["command"].startswith("python bench/env_throughput.py --servers 500")
    assert out["machine"]["cpu_count"] >= 1 and out["machine"]["device"] == "cpu" and out["date"].endswith("Z")


@pytest.mark.parametrize("profile", ["serving", "contention"])
def test_tune_side_by_side_times_both_ways_and_checks_each_candidate_gets_its_own_run(tiny_root, profile):
    proc = run_script("bench/tune_side_by_side.py", "--servers", "0", "--data", str(tiny_root), "--region", "tiny",
                      "--profile", profile, "--weights", "0.5", "1", "--episodes", "4", "--warmup", "2", "--load", "0.3",
                      "--max-steps", "300", "--json")
    (row,) = json.loads(proc.stdout)["rows"]
    assert row["identical"] and row["candidates"] == 4 and row["alone_s"] > 0 and row["together_s"] > 0
    assert row["ratio"] == pytest.approx(row["alone_s"] / row["together_s"])


def test_seed_batching_times_both_ways_and_checks_each_seed_gets_its_own_run(tiny_root):
    proc = run_script("bench/seed_batching.py", "--servers", "0", "--data", str(tiny_root), "--region", "tiny",
                      "--profiles", "serving", "contention",
                      "--seeds", "3", "4", "--episodes", "4", "--warmup", "2", "--load", "0.3", "--json")
    out = json.loads(proc.stdout)
    assert [r["profile"] for r in out["rows"]] == ["serving", "contention"]
    for r in out["rows"]:
        assert r["identical"] and r["seeds"] == 2 and r["apart_s"] > 0 and r["together_s"] > 0
        assert r["ratio"] == pytest.approx(r["apart_s"] / r["together_s"])
        assert r["together_steps"] <= r["apart_steps"]
