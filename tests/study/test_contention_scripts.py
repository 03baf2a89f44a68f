"""The contention profile through the shell scripts: training, inference, heuristics, the oracle
bound, evaluate_all, zero-shot scheduling of a size-agnostic checkpoint, and bad parameters."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import ROOT, one_line_error, run_script, sigint_enabled

from edgesim.contention import Contention
from edgesim.registry import get_profile
from edgesim.serving import Serving
from Heuristics.inference import make_policy
from schedkit.evaluation import eval_simulator, run_evaluation
from schedkit.ppo import gae
from schedkit.rollout import episode_gae
from total.common import read_episodes, read_summary

pytestmark = pytest.mark.slow  # trains through the shell

CONTENTION = ["--profile", "contention", "--arrival-rate", "4", "--set", "contention.worlds=2",
              "--set", "contention.warmup=4"]


@pytest.fixture(scope="module")
def per_server_run(tmp_path_factory, small_root):
    run = tmp_path_factory.mktemp("cont") / "run"
    run_script("TopoFreeRL/train.py", "--data", str(small_root), "--regions", "Small_Trap", "--epochs", "2",
               "--episodes", "24", "--set", "actor=per_server", *CONTENTION, "--out", str(run), "--no-progress")
    return run


def test_contention_training_records_its_parameters_and_inference_uses_them(per_server_run, small_root):
    cfg = yaml.safe_load((per_server_run / "config.yaml").read_text())
    assert cfg["profile"] == "contention" and cfg["contention"]["arrival_rate"] == 4.0
    assert cfg["contention"]["worlds"] == 2 and cfg["contention"]["warmup"] == 4
    m = pd.read_csv(per_server_run / "metrics.csv")
    assert len(m) == 2 and (m["queue_ms"] >= 0).all() and m["env_steps"].min() > 0
    out = per_server_run / "ev"
    run_script("TopoFreeRL/inference.py", "--data", str(small_root), "--region", "Small_Trap", "--model",
               str(per_server_run / "checkpoints" / "final.pt"), "--episodes", "40", "--out", str(out),
               "--no-progress")
    s = json.loads((out / "summary.json").read_text())
    assert s["profile"] == "contention" and s["contention"]["arrival_rate"] == 4.0 and s["episodes"] == 40
    assert s["zero_shot"] is False
    episodes = pd.read_csv(out / "episodes.csv")
    assert episodes["episode"].tolist() == list(range(40)) and (episodes["steps"] >= 2).all()
    # a different load at evaluation time, from the command line
    run_script("TopoFreeRL/inference.py", "--data", str(small_root), "--region", "Small_Trap", "--model",
               str(per_server_run / "checkpoints" / "final.pt"), "--episodes", "40", "--arrival-rate", "1",
               "--trap-loss", "0.7", "--out", str(per_server_run / "ev_r1"), "--no-progress")
    c = json.loads((per_server_run / "ev_r1" / "summary.json").read_text())["contention"]
    assert c["arrival_rate"] == 1.0 and c["trap_loss"] == 0.7


def test_trap_surcharge_scale_sets_the_severity_of_the_common_trap_hit(tmp_path):
    """Most trap hits have no link row and pay the flat 100/200 ms; --trap-surcharge-scale 3 triples it
    (the few hits over a trap link pay its BaseLatencyMs per attempt, which --trap-loss sets)."""
    per_hit = {}
    for scale in ("1", "3"):
        out = tmp_path / scale
        run_script("Heuristics/inference.py", "--region", "Server1_Trap", "--policy", "random", "--episodes", "60",
                   "--trap-surcharge-scale", scale, "--trap-loss", "0.5", *CONTENTION[:4], "--out", str(out),
                   "--no-progress")
        episodes = pd.read_csv(out / "episodes.csv")
        per_hit[scale] = episodes["trap_ms"].sum() / episodes["trap_hits"].sum()
        c = yaml.safe_load((out / "config.yaml").read_text())["contention"]
        assert c["trap_surcharge_scale"] == float(scale) and c["trap_loss"] == 0.5
    assert 100 <= per_hit["1"] <= 200 and 300 <= per_hit["3"] <= 600  # each hit 100 or 200 ms, times the scale


def test_a_size_agnostic_checkpoint_schedules_another_topology_zero_shot(per_server_run, small_root, tmp_path):
    proc = run_script("TopoFreeRL/inference.py", "--data", str(small_root / "multi"), "--region", "Region1",
                      "--model", str(per_server_run / "checkpoints" / "final.pt"), "--episodes", "20",
                      "--profile", "paper", "--out", str(tmp_path / "zs"), "--no-progress")
    assert "zero-shot" in proc.stdout
    s = json.loads((tmp_path / "zs" / "summary.json").read_text())
    assert s["zero_shot"] is True and s["profile"] == "paper" and s["fallback_rate"] == 0.0


def test_a_dense_checkpoint_still_refuses_another_dataset(small_root, tmp_path):
    run = tmp_path / "dense"
    run_script("TopoFreeRL/train.py", "--data", str(small_root), "--regions", "Small_Trap", "--epochs", "1",
               "--episodes", "8", "--out", str(run), "--no-progress")
    proc = run_script("TopoFreeRL/inference.py", "--data", str(small_root / "multi"), "--region", "Region1",
                      "--model", str(run / "checkpoints" / "final.pt"), "--episodes", "4", check=False)
    assert proc.returncode != 0 and "does not match the dataset" in proc.stderr and "Traceback" not in proc.stderr


def test_heuristics_under_contention_and_the_oracle_bound(small_root, tmp_path):
    out = tmp_path / "h"
    run_script("Heuristics/inference.py", "--data", str(small_root), "--region", "Small_Trap", "--profile",
               "contention", "--arrival-rate", "6", "--worlds", "2", "--episodes", "60", "--out", str(out),
               "--no-progress")
    summaries = {p: json.loads((out / p / "summary.json").read_text())
                 for p in ("random", "greedy", "greedy_queue", "maxcompute", "oracle")}
    bound = summaries["oracle"]["reward_upper_bound"]
    assert all(s["profile"] == "contention" and s["episodes"] == 60 for s in summaries.values())
    assert all(s["mean_reward"] <= bound for s in summaries.values())
    # queue-aware greedy never waits longer in queues than the load-blind rule on the same arrivals
    assert summaries["greedy_queue"]["mean_queue_ms"] <= summaries["greedy"]["mean_queue_ms"]
    assert yaml.safe_load((out / "config.yaml").read_text())["contention"]["arrival_rate"] == 6.0


@pytest.mark.parametrize("flags, message", [
    (["--arrival-rate", "0"], "--arrival-rate: expected a finite number > 0"),
    (["--arrival-trace", "no/such/trace.csv"], "no/such/trace.csv: arrival trace not found"),
    (["--max-in-flight", "0"], "--max-in-flight: expected an integer >= 1"),
    (["--trap-loss", "1"], "--trap-loss: expected a probability in [0, 1)"),
    (["--trap-surcharge-scale", "-1"], "--trap-surcharge-scale: expected a finite number >= 0"),
    (["--set", "contention.warmup=-1"], "contention.warmup: expected an integer >= 0"),
    (["--set", "train_env.trap_surcharge_scale=-1"], "config 'train_env': contention.trap_surcharge_scale: expected a finite number >= 0"),
    (["--set", "train_env.trap_scale=0"], "config 'train_env': unknown contention key(s) ['trap_scale']"),
    (["--set", "train_env=0"], "config 'train_env': expected a mapping of the profile's parameters"),
])
def test_bad_contention_flags_are_one_line_errors(flags, message, small_root, tmp_path):
    for script, extra in (("Heuristics/inference.py", ["--region", "Small_Trap", "--out", str(tmp_path / "h")]),
                          ("TopoFreeRL/train.py", ["--regions", "Small_Trap", "--out", str(tmp_path / "t")])):
        if flags[0] == "--set" and script.startswith("Heuristics"):
            continue  # --set is a training flag
        proc = run_script(script, "--data", str(small_root), "--profile", "contention", *flags, *extra, check=False)
        assert proc.returncode != 0 and message in proc.stderr and "Traceback" not in proc.stderr


def test_train_env_changes_the_training_world_only(small_root, tmp_path):
    """`train_env.trap_surcharge_scale=0` trains in exactly the world of `contention.trap_surcharge_scale=0`
    (same metrics, same weights), but the run keeps the default block, so its evaluation meets the traps."""
    def train(name: str, *sets: str) -> tuple[pd.DataFrame, dict]:
        run = tmp_path / name
        run_script("TopoFreeRL/train.py", "--data", str(small_root), "--regions", "Small_Trap", "--epochs", "1",
                   "--no-recipe", "--episodes", "24", "--set", "actor=per_server", *CONTENTION, "--trap-loss", "0.6",
                   *[a for s in sets for a in ("--set", s)], "--out", str(run), "--no-progress")
        return pd.read_csv(run / "metrics.csv"), torch.load(run / "checkpoints" / "final.pt", weights_only=True)

    m_env, ck_env = train("env", "train_env.trap_surcharge_scale=0")
    m_block, ck_block = train("block", "contention.trap_surcharge_scale=0")
    m_default, _ = train("default")
    cols = ["return", "reward", "latency_ms", "queue_ms", "trap_hit_rate", "policy_loss", "value_loss"]
    pd.testing.assert_frame_equal(m_env[cols], m_block[cols])
    assert all(torch.equal(ck_env["model"][k], ck_block["model"][k]) for k in ck_env["model"])
    assert m_env["latency_ms"].iloc[0] != m_default["latency_ms"].iloc[0]
    assert ck_env["config"]["contention"]["trap_surcharge_scale"] == 1.0
    assert ck_env["config"]["train_env"] == {"trap_surcharge_scale": 0}
    assert ck_block["config"]["contention"]["trap_surcharge_scale"] == 0.0
    out = tmp_path / "env" / "ev"
    run_script("TopoFreeRL/inference.py", "--data", str(small_root), "--region", "Small_Trap", "--model",
               str(tmp_path / "env" / "checkpoints" / "final.pt"), "--episodes", "20", "--out", str(out),
               "--no-progress")
    assert json.loads((out / "summary.json").read_text())["contention"]["trap_surcharge_scale"] == 1.0


def test_train_env_needs_a_profile_with_parameters(small_root, tmp_path):
    proc = run_script("TopoFreeRL/train.py", "--data", str(small_root), "--regions", "Small_Trap", "--set",
                      "train_env.trap_surcharge_scale=0", "--out", str(tmp_path / "t"), check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "config 'train_env': the paper profile has no parameters to change in training" in proc.stderr


def test_evaluate_all_under_contention_writes_its_own_tagged_evaluation(per_server_run, small_root, tmp_path):
    results = tmp_path / "results"
    (results / "TopoFreeRL").mkdir(parents=True)
    (results / "TopoFreeRL" / "run").symlink_to(per_server_run, target_is_directory=True)
    proc = run_script("total/evaluate_all.py", "--data", str(small_root), "--region", "Small_Trap", "--results",
                      str(results), "--profile", "contention", "--arrival-rate", "6", "--worlds", "2",
                      "--episodes", "30", "--skip", "oracle", "lookahead", "greedy", "p2c", "telemetry",
                      "least_loaded", "maxcompute", "random", "--no-progress")
    # a symlinked run folder is skipped like `latest`; copy it instead
    assert "evaluated TopoFreeRL" not in proc.stdout
    (results / "TopoFreeRL" / "run").unlink()
    shutil.copytree(per_server_run, results / "TopoFreeRL" / "run")
    run_script("total/evaluate_all.py", "--data", str(small_root), "--region", "Small_Trap", "--results",
               str(results), "--profile", "contention", "--arrival-rate", "6", "--worlds", "2", "--episodes", "30",
               "--no-progress", "--overwrite")  # every heuristic now: other settings than the first evaluation
    summary = pd.read_csv(results / "eval" / "Small_Trap_contention_r6" / "summary.csv").set_index("algo")
    assert {"TopoFreeRL", "greedy", "greedy_queue", "oracle", "random", "maxcompute"} <= set(summary.index)
    assert (summary["p99_latency_ms_lo"] <= summary["p99_latency_ms"]).all()
    assert (summary["reward"] <= summary["reward_upper_bound"]).all()
    table = run_script("total/make_table.py", "--results", str(results), "--region", "Small_Trap", "--tag",
                       "contention_r6", "--figures", str(tmp_path / "fig"))
    assert "Upper bound" in table.stdout and (tmp_path / "fig" / "results_table_contention_r6.csv").exists()


def test_evaluate_all_adds_greedy_queue_at_the_checkpoints_prior_weight(per_server_run, small_root, tmp_path):
    """The recipe's guidance prior is greedy_queue's score at W = 0.9: evaluate_all evaluates greedy_queue at
    that W beside the checkpoint (its matched control), the same episodes as Heuristics/inference.py gives it."""
    assert yaml.safe_load((per_server_run / "config.yaml").read_text())["guidance"]["latency_weight"] == 0.9
    results = tmp_path / "results"
    shutil.copytree(per_server_run, results / "TopoFreeRL" / "run")
    setting = ["--data", str(small_root), "--region", "Small_Trap", "--profile", "contention", "--arrival-rate", "6",
               "--worlds", "2", "--episodes", "30", "--no-progress"]
    others = ["oracle", "lookahead", "greedy", "greedy_switch", "p2c", "telemetry", "least_loaded", "maxcompute", "random"]
    run_script("total/evaluate_all.py", *setting, "--results", str(results), "--skip", *others)
    out = results / "eval" / "Small_Trap_contention_r6"
    summary = pd.read_csv(out / "summary.csv").set_index("algo")
    assert list(summary.index) == ["TopoFreeRL", "greedy_queue", "greedy_queue_prior_w0.9"]
    assert summary.loc["greedy_queue_prior_w0.9", "label"] == "greedy_queue (prior W=0.9)"
    assert yaml.safe_load((out / "config.yaml").read_text())["prior_latency_weights"] == [0.9]
    episodes = pd.read_csv(out / "episodes.csv")
    direct = tmp_path / "direct"
    run_script("Heuristics/inference.py", *setting, "--seed", "0", "--policy", "greedy_queue", "--latency-weight",
               "0.9", "--out", str(direct))
    seed0 = episodes[episodes["eval_seed"] == 0]  # the five evaluation seeds ran side by side; seed 0 is inference.py's
    mine = seed0[seed0["algo"] == "greedy_queue_prior_w0.9"].reset_index(drop=True)
    assert mine["reward"].tolist() == pd.read_csv(direct / "episodes.csv")["reward"].tolist()
    assert mine["reward"].tolist() != seed0[seed0["algo"] == "greedy_queue"]["reward"].tolist()
    # results written before evaluate_all knew better: a prior row at greedy_queue's tuned W is read as a repeat
    config = yaml.safe_load((out / "config.yaml").read_text())
    (out / "config.yaml").write_text(yaml.safe_dump(config | {"tuned_latency_weights": {"greedy_queue": 0.9}}))
    assert list(read_summary(out / "summary.csv")["algo"]) == ["TopoFreeRL", "greedy_queue"]
    assert set(read_episodes(out / "episodes.csv")["algo"]) == {"TopoFreeRL", "greedy_queue"}
    # tuned at the prior's W, greedy_queue_tuned is the matched control: no second evaluation of it
    tuning = tmp_path / "tuning.json"
    tuning.write_text(json.dumps({"chosen_latency_weight": {"greedy_queue": 0.9}, "split": "train",
                                  "dataset_fingerprint": config["dataset_fingerprint"]}))
    run_script("total/evaluate_all.py", *setting, "--results", str(results), "--skip", *others, "--tuning",
               str(tuning), "--overwrite")
    assert list(pd.read_csv(out / "summary.csv")["algo"]) == ["TopoFreeRL", "greedy_queue", "greedy_queue_tuned"]
    assert yaml.safe_load((out / "config.yaml").read_text())["prior_latency_weights"] == [0.9]
    run_script("total/evaluate_all.py", *setting, "--results", str(results), "--skip", *others, "greedy_queue",
               "--overwrite")  # skipping greedy_queue skips its prior rows
    assert list(pd.read_csv(out / "summary.csv")["algo"]) == ["TopoFreeRL"]
    run_script("total/evaluate_all.py", *setting, "--results", str(results), "--skip", *others, "TopoFreeRL",
               "--overwrite")  # a learned scheduler's runs are left out by name, and listed as skipped
    assert list(pd.read_csv(out / "summary.csv")["algo"]) == ["greedy_queue"]
    assert any("--skip TopoFreeRL" in s for s in yaml.safe_load((out / "config.yaml").read_text())["skipped"])


def test_evaluate_all_zero_shot_adds_size_agnostic_checkpoints_of_another_dataset(per_server_run, small_root,
                                                                                 small_ds, tmp_path):
    from test_total import _fake_run
    results = tmp_path / "results"
    shutil.copytree(per_server_run, results / "TopoFreeRL" / "Small_Trap_per_server")
    _fake_run(results, "TopoFreeRL", "TopoFreeRL/config.yaml", small_ds, 7, "Small_Trap_dense")  # actor: dense
    args = ["total/evaluate_all.py", "--data", str(small_root / "multi"), "--region", "Region1", "--results",
            str(results), "--profile", "contention", "--arrival-rate", "6", "--worlds", "2", "--episodes", "12",
            "--skip", "oracle", "lookahead", "greedy", "greedy_switch", "p2c", "telemetry", "least_loaded", "maxcompute",
            "random", "--no-progress"]
    plain = run_script(*args)
    assert "evaluated" not in plain.stdout and plain.stdout.count("(trained on ['Small_Trap'])") == 2
    zero = run_script(*args, "--zero-shot", "--overwrite")  # replaces the plain evaluation of the same folder
    assert "evaluated TopoFreeRL_zeroshot seed" in zero.stdout and "Small_Trap_dense/checkpoints/final.pt (trained on " \
        "['Small_Trap'], not size-agnostic)" in zero.stdout
    summary = pd.read_csv(results / "eval" / "Region1_contention_r6" / "summary.csv").set_index("algo")
    assert summary.loc["TopoFreeRL_zeroshot", "label"] == "TopoFreeRL (zero-shot)" and "TopoFreeRL" not in summary.index
    # the oracle skipped: no bound, no error; the checkpoint's greedy_queue prior (the recipe's W = 0.9) gets its control
    assert set(summary.index) == {"TopoFreeRL_zeroshot", "greedy_queue", "greedy_queue_prior_w0.9"}
    assert "reward_upper_bound" not in summary.columns


def test_episode_gae_matches_per_row_gae_when_rows_do_not_interleave():
    g = torch.Generator().manual_seed(0)
    T, B, L = 6, 4, 3  # every row runs two 3-step episodes back to back
    rewards, values = torch.randn(T, B, generator=g), torch.randn(T, B, generator=g)
    done = torch.zeros(T, B, dtype=torch.bool)
    done[L - 1], done[T - 1] = True, True
    adv, ret = gae(rewards, values, done, torch.zeros(B), 0.99, 0.95)
    step = torch.arange(T)[:, None].expand(T, B) % L
    episode = torch.arange(B)[None].expand(T, B) + B * (torch.arange(T)[:, None] // L)
    a2, r2 = episode_gae(rewards.reshape(-1), values.reshape(-1), done.reshape(-1), episode.reshape(-1),
                         step.reshape(-1), 2 * B, L, 0.99, 0.95)
    assert torch.allclose(a2, adv.reshape(-1)) and torch.allclose(r2, ret.reshape(-1))
    # shuffled transition order (interleaved rows) gives the same values per transition
    perm = torch.randperm(T * B, generator=g)
    a3, _ = episode_gae(rewards.reshape(-1)[perm], values.reshape(-1)[perm], done.reshape(-1)[perm],
                        episode.reshape(-1)[perm], step.reshape(-1)[perm], 2 * B, L, 0.99, 0.95)
    assert torch.allclose(a3, adv.reshape(-1)[perm])


def test_training_on_two_regions_under_contention_counts_switches(small_root, tmp_path):
    run = tmp_path / "two"
    run_script("TopoFreeRL/train.py", "--data", str(small_root / "multi"), "--regions", "Region1", "Region2",
               "--epochs", "1", "--episodes", "16", "--set", "actor=per_server", *CONTENTION, "--out", str(run),
               "--no-progress")
    run_script("Heuristics/inference.py", "--data", str(small_root / "multi"), "--region", "Region1", "Region2",
               "--policy", "random", "--profile", "contention", "--worlds", "2", "--episodes", "40",
               "--out", str(tmp_path / "h"), "--no-progress")
    s = json.loads((tmp_path / "h" / "summary.json").read_text())
    assert s["regions"] == ["Region1", "Region2"] and s["switches"] > 0  # random hops between the two regions


def test_a_bounded_evaluation_reports_an_overloading_scheduler_unstable_and_compares_nothing_with_it(small_root,
                                                                                                     tmp_path):
    """At 20 workflows/s queue-blind greedy sends every request of a type to one server: its queue grows without
    end. With --max-steps the evaluation still ends; greedy's workflows are marked unfinished (the ones it never
    began named by their arrival, so every scheduler's rows pair), its summary and paired rows say unstable, and
    the rules that keep up are compared as before, with the rows an unbounded evaluation gives them."""
    setting = ["--data", str(small_root), "--region", "Small_Trap", "--profile", "contention", "--arrival-rate", "20",
               "--worlds", "2", "--max-in-flight", "4096", "--warmup", "8", "--episodes", "40", "--eval-seeds", "0", "1",
               "--no-progress"]
    others = ["oracle", "lookahead", "greedy_switch", "p2c", "telemetry", "maxcompute", "random"]
    bounded, free = tmp_path / "bounded", tmp_path / "free"
    run_script("total/evaluate_all.py", *setting, "--results", str(bounded), "--max-steps", "1500", "--skip", *others)
    run_script("total/evaluate_all.py", *setting, "--results", str(free), "--skip", *others, "greedy")
    tag = "contention_r20_slots4096_warmup8"
    folder = bounded / "eval" / f"Small_Trap_{tag}"
    episodes, summary = read_episodes(folder / "episodes.csv"), read_summary(folder / "summary.csv").set_index("algo")
    assert summary.loc["greedy", "unfinished"] == 80 and not episodes.loc[episodes["algo"] == "greedy", "finished"].any()
    assert (summary.loc[["greedy_queue", "least_loaded"], "unfinished"] == 0).all()
    assert summary.loc["greedy", "sim_steps"] == 1500 and (summary.loc[["greedy_queue", "least_loaded"], "sim_steps"] < 1500).all()
    tasks = {a: d["task_id"].tolist() for a, d in episodes.groupby("algo")}
    assert tasks["greedy"] == tasks["greedy_queue"] == tasks["least_loaded"]  # the unbegun ones named alike
    unbounded = read_episodes(free / "eval" / f"Small_Trap_{tag}" / "episodes.csv")
    stable = episodes[episodes["algo"] != "greedy"].drop(columns=["finished", "decision_ms"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(stable, unbounded.drop(columns=["decision_ms"]), check_dtype=False)
    free_summary = read_summary(free / "eval" / f"Small_Trap_{tag}" / "summary.csv").set_index("algo")
    assert (free_summary.loc[["greedy_queue", "least_loaded"], "sim_steps"]
            == summary.loc[["greedy_queue", "least_loaded"], "sim_steps"]).all()  # a stable run ends as unbounded
    figures = tmp_path / "fig"
    run_script("total/make_table.py", "--results", str(bounded), "--region", "Small_Trap", "--tag", tag,
               "--figures", str(figures))
    table = pd.read_csv(figures / f"results_table_{tag}.csv").set_index("Scheduler")
    assert table.loc["greedy", "Reward"] == "unstable" and table.loc["greedy", "Unfinished"] == 80
    assert table.loc["least_loaded", "Reward"] != "unstable"
    paired = pd.read_csv(figures / f"results_table_{tag}_paired.csv").set_index("algo")
    assert paired.loc["greedy", "verdict"] == "unstable" and pd.isna(paired.loc["greedy", "d_reward"])
    assert paired.loc["least_loaded", "verdict"] in ("better", "worse", "equivalent", "inconclusive")
    proc = run_script("total/compare.py", "--results", str(bounded), "--region", "Small_Trap", "--tag", tag,
                      "--reference", "greedy", "--figures", str(tmp_path / "other"), check=False)
    one_line_error(proc, "greedy", "unstable at this load")


@pytest.mark.parametrize("profile, params", [("contention", Contention(arrival_rate=400.0, worlds=2, max_in_flight=4,
                                                                      warmup=2)),
                                             ("serving", Serving(load=1.2, worlds=2, max_in_flight=4, warmup=2))])
def test_a_bounded_evaluation_names_the_workflows_it_never_began_as_the_full_one_does(small_ds, profile, params):
    """With few slots most measured workflows wait for one; a run ended after 30 steps has not begun them, yet
    its rows name each by the task, world and arrival that the unbounded run gives it."""
    def run(max_steps):
        sim = eval_simulator(small_ds, "test", 40, 0, "cpu", get_profile(profile), params)
        return run_evaluation(sim, make_policy("random", sim, 0, 0.6), 40, progress=False, max_steps=max_steps).episodes
    cut, full = run(30), run(None)
    assert (cut["steps"] == 0).sum() > 10 and not cut["finished"].all() and "finished" not in full
    assert np.isfinite(cut["decision_ms"]).all()  # episodes.csv holds no empty cell (total/common.py read_table)
    for col in ("episode", "task_id", "world", "arrival_index"):
        assert cut[col].tolist() == full[col].tolist(), col
    done = cut["finished"].to_numpy()
    assert cut[done]["latency_ms"].tolist() == full[done]["latency_ms"].tolist()  # what finished, as unbounded


def test_a_stopped_evaluation_resumes_where_it_stopped_with_the_same_results(per_server_run, small_root, tmp_path):
    """evaluate_all killed after some schedulers finished: the re-run takes those from finished/, evaluates the
    rest in two worker processes (--workers 2), and writes what an uninterrupted run in one process writes (but
    the wall time per decision)."""
    def args(results):
        return ["total/evaluate_all.py", "--data", str(small_root), "--region", "Small_Trap", "--results",
                str(results), "--profile", "contention", "--arrival-rate", "6", "--worlds", "2", "--episodes", "30",
                "--eval-seeds", "0", "1", "--skip", "lookahead", "telemetry", "--no-progress"]

    for name in ("fresh", "stopped"):
        shutil.copytree(per_server_run, tmp_path / name / "TopoFreeRL" / "run")
    run_script(*args(tmp_path / "fresh"))
    folder = tmp_path / "stopped" / "eval" / "Small_Trap_contention_r6"
    child = subprocess.Popen([sys.executable, *args(tmp_path / "stopped")], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, env=os.environ | {"OMP_NUM_THREADS": "1"})
    while child.poll() is None and len(list(folder.glob("finished/*/meta.json"))) < 2:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    kept = len(list(folder.glob("finished/*/meta.json")))
    assert kept >= 2 and not (folder / "summary.csv").exists()
    resumed = run_script(*args(tmp_path / "stopped"), "--workers", "2").stdout
    assert resumed.count("resumed ") == kept and "resumed TopoFreeRL seed" in resumed
    assert not (folder / "finished").exists()
    for name in ("episodes.csv", "summary.csv"):
        a, b = (pd.read_csv(root / "eval" / "Small_Trap_contention_r6" / name) for root in (tmp_path / "fresh",
                                                                                             tmp_path / "stopped"))
        cols = [c for c in a.columns if c != "decision_ms"]
        pd.testing.assert_frame_equal(a[cols], b[cols], check_exact=True)
    assert "reward_upper_bound" in pd.read_csv(folder / "summary.csv")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_a_parallel_evaluation_stops_its_workers(small_root, tmp_path, sig):
    """`kill` (or Ctrl-C sent to the driver alone) of evaluate_all --workers 2 while both workers evaluate: the
    driver ends with the interrupted line, its workers end with it (before, they went on through every queued
    scheduler, the driver waiting for them), and no table is written."""
    children = Path(f"/proc/self/task/{os.getpid()}/children")
    if not children.exists():
        pytest.skip("needs /proc/<pid>/task/<pid>/children (Linux) to see the workers")
    results = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-X", "faulthandler", "total/evaluate_all.py", "--data", str(small_root),
                             "--region", "Small_Trap", "--results", str(results), "--profile", "contention",
                             "--arrival-rate", "6", "--worlds", "2", "--episodes", "20000", "--workers", "2",
                             "--no-progress"], cwd=ROOT,
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=sigint_enabled,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    listing = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    workers: list[int] = []
    while proc.poll() is None and len(workers) < 2:
        time.sleep(0.05)
        with contextlib.suppress(OSError):
            workers = [int(w) for w in listing.read_text().split()]
    assert len(workers) == 2, proc.communicate()
    proc.send_signal(sig)
    try:  # the stop takes well under a second; a driver that waits for its workers' queue takes minutes
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        for pid in (proc.pid, *workers):  # faulthandler writes where each process was
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGABRT)
        time.sleep(2)
        for pid in (proc.pid, *workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _, err = proc.communicate()
        pytest.fail(f"the evaluation went on after the signal; where the processes were:\n{err[-8000:]}")
    assert proc.returncode == 130 and "Traceback" not in err and "interrupted:" in err, err
    for worker in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(worker, 0)
    assert not list(results.glob("eval/*/summary.csv"))


def test_a_rule_tuned_at_its_default_weight_is_its_own_evaluation_relabelled(small_root, tmp_path):
    """greedy_queue tuned at W = 0.6, its default: greedy_queue_tuned holds greedy_queue's rows (evaluated once),
    exactly what an evaluation of greedy_queue at --latency-weight 0.6 gives; p2c at another W is evaluated."""
    from edgesim.dataset import load_dataset
    from schedkit.registry import heuristics
    setting = ["--data", str(small_root), "--region", "Small_Trap", "--profile", "contention", "--arrival-rate", "6",
               "--worlds", "2", "--episodes", "20", "--eval-seeds", "0", "1", "--no-progress"]
    keep = {"greedy_queue", "p2c"}
    tuning = tmp_path / "tuning.json"
    tuning.write_text(json.dumps({"chosen_latency_weight": {"greedy_queue": 0.6, "p2c": 0.9}, "split": "train",
                                  "dataset_fingerprint": load_dataset(small_root, "Small_Trap").fingerprint}))
    proc = run_script("total/evaluate_all.py", *setting, "--results", str(tmp_path / "r"), "--tuning", str(tuning),
                      "--skip", *(h for h in heuristics() if h not in keep))
    assert "greedy_queue_tuned: tuned at its default W 0.6, so its rows are greedy_queue's" in proc.stdout
    assert "p2c_tuned: tuned" not in proc.stdout
    episodes = pd.read_csv(tmp_path / "r" / "eval" / "Small_Trap_contention_r6" / "episodes.csv")
    rows = {a: d.drop(columns=["algo", "decision_ms"]).reset_index(drop=True) for a, d in episodes.groupby("algo")}
    assert set(rows) == {"greedy_queue", "greedy_queue_tuned", "p2c", "p2c_tuned"}
    pd.testing.assert_frame_equal(rows["greedy_queue"], rows["greedy_queue_tuned"], check_exact=True)
    assert not rows["p2c"]["reward"].equals(rows["p2c_tuned"]["reward"])
    direct = tmp_path / "direct"
    run_script("Heuristics/inference.py", *setting[:-4], "--seed", "1", "--policy", "greedy_queue",
               "--latency-weight", "0.6", "--out", str(direct))
    seed1 = rows["greedy_queue_tuned"][episodes.loc[episodes["algo"] == "greedy_queue_tuned", "eval_seed"]
                                       .reset_index(drop=True) == 1]
    assert seed1["reward"].tolist() == pd.read_csv(direct / "episodes.csv")["reward"].tolist()
