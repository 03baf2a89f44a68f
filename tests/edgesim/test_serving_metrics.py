"""Serving metrics of the evaluation protocol (docs/evaluation.md, "Serving metrics"), through
`Heuristics/inference.py --profile serving` on the hand-written tiny region."""
from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest
from conftest import run_script
from tiny import write_tiny

SERVING_KEYS = {"slo_attainment", "request_slo_attainment", "goodput_per_s", "ttft_p50_ms", "ttft_p99_ms",
                "tpot_p50_ms", "tpot_p99_ms", "utilisation", "busy_share", "mean_batch_size", "kv_occupancy",
                "mean_queue_length", "mean_queue_wait_ms", "mean_reward", "mean_latency_ms", "p99_latency_ms",
                "slo_ttft_ms", "slo_tpot_ms"}
SMALL = ("--profile", "serving", "--region", "tiny", "--episodes", "24", "--worlds", "2", "--max-in-flight", "6",
         "--load", "0.6", "--no-progress")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_metrics")
    write_tiny(root / "tiny")
    return root


def run(root, out, policy: str = "greedy_queue", *extra: str) -> tuple[dict, pd.DataFrame, pd.DataFrame, str]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        proc = run_script("Heuristics/inference.py", "--data", str(root), *SMALL, "--policy", policy, *extra,
                          "--out", str(out), cwd=root)
    summary = json.loads((out / "summary.json").read_text())
    return summary, pd.read_csv(out / "episodes.csv"), pd.read_csv(out / "requests.csv"), proc.stdout


def test_summary_has_every_serving_key_in_range_and_consistent_with_requests(root, tmp_path):
    s, episodes, requests, stdout = run(root, tmp_path / "out")
    assert SERVING_KEYS <= set(s)
    assert 0 <= s["slo_attainment"] <= 1 and 0 <= s["request_slo_attainment"] <= 1
    assert s["ttft_p50_ms"] <= s["ttft_p99_ms"] and s["tpot_p50_ms"] <= s["tpot_p99_ms"]
    assert s["utilisation"] > 0 and 0 < s["busy_share"] <= 1 and 0 <= s["kv_occupancy"] <= 1
    assert s["mean_batch_size"] >= 1 and s["mean_queue_length"] >= 0 and s["mean_queue_wait_ms"] >= 0
    assert (s["slo_ttft_ms"], s["slo_tpot_ms"]) == (2500.0, 150.0)
    # one row per measured request; every workflow's steps are there
    assert len(requests) == episodes["steps"].sum() and set(requests["episode"]) == set(range(24))
    met = (requests["ttft_ms"] <= s["slo_ttft_ms"]) & (requests["tpot_ms"] <= s["slo_tpot_ms"])
    assert (met == requests["slo_met"]).all()
    per_workflow = met.groupby(requests["episode"]).all()
    assert (per_workflow.to_numpy() == episodes["slo_met"].to_numpy()).all()
    assert s["slo_attainment"] == pytest.approx(per_workflow.mean())
    assert s["request_slo_attainment"] == pytest.approx(met.mean())
    # goodput: SLO-met workflows per world-second, each world from its first measured arrival to its last completion
    spans = requests.groupby("world").agg(first=("arrival_ms", "min"), last=("end_ms", "max"))
    world_s = float((spans["last"] - spans["first"]).sum()) / 1000.0
    assert world_s > 0 and s["measured_world_s"] == pytest.approx(world_s)
    assert s["goodput_per_s"] == pytest.approx(per_workflow.sum() / world_s)
    # per workflow, the request rows add up to the episode's latency
    assert requests.groupby("episode")["latency_ms"].sum().to_numpy() == pytest.approx(episodes["latency_ms"].to_numpy())
    assert s["mean_latency_ms"] == pytest.approx(episodes["latency_ms"].mean())
    header = stdout.splitlines()[-3]
    assert all(col in header for col in ("SLO att", "goodput/s", "TTFT p99", "TPOT p99", "util"))


def test_slo_thresholds_decide_attainment(root, tmp_path):
    loose, *_ = run(root, tmp_path / "loose", "greedy_queue", "--slo-ttft-ms", "86400000", "--slo-tpot-ms", "86400000")
    assert loose["slo_attainment"] == 1.0 and loose["request_slo_attainment"] == 1.0
    assert loose["goodput_per_s"] == pytest.approx(24 / loose["measured_world_s"])
    tight, episodes, requests, _ = run(root, tmp_path / "tight", "greedy_queue", "--slo-ttft-ms", "1e-6")
    assert tight["slo_attainment"] == 0.0 and tight["goodput_per_s"] == 0.0 and not requests["slo_met"].any()
    assert tight["slo_ttft_ms"] == 1e-6 and tight["serving"]["slo_ttft_ms"] == 1e-6
    # the objectives change the verdicts only, not the run
    assert tight["mean_latency_ms"] == loose["mean_latency_ms"] and tight["utilisation"] == loose["utilisation"]


def test_paper_profile_writes_no_requests_and_replaces_a_serving_evaluation_whole(root, tmp_path):
    run(root, tmp_path / "paper", "greedy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run_script("Heuristics/inference.py", "--data", str(root), "--region", "tiny", "--policy", "greedy",
                   "--no-progress", "--overwrite", "--out", str(tmp_path / "paper"), cwd=root)
    summary = json.loads((tmp_path / "paper" / "summary.json").read_text())
    assert not (tmp_path / "paper" / "requests.csv").exists()
    assert not {"slo_attainment", "goodput_per_s", "utilisation"} & set(summary)
    assert "slo_met" not in pd.read_csv(tmp_path / "paper" / "episodes.csv").columns
