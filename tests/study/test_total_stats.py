"""total/: seeds as the unit of replication (evaluate_all), the paired comparison table, the load curve,
and the figure fixes, on fake runs and fake evaluations (no training)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import ROOT, one_line_error, run_script
from test_total import _fake_run, run_from

sys.path.insert(0, str(ROOT / "total"))


def test_two_runs_of_one_seed_count_once(tmp_path, default_ds):
    results = tmp_path / "results"
    for seed, name in ((42, "Server1_Trap_seed42_20260101-000000"), (42, "Server1_Trap_seed42"),
                       (43, "Server1_Trap_seed43")):
        _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, seed, name)
    old = results / "PPO" / "Server1_Trap_seed42" / "checkpoints" / "final.pt"
    os.utime(old, (1e9, 1e9))  # the undated folder is the older run here
    proc = run_from(tmp_path, "total/evaluate_all.py", "--results", "results", "--episodes", "8", "--no-progress")
    rel = "results/PPO/Server1_Trap_seed42/checkpoints/final.pt"  # as the user typed --results
    assert f"skipped {rel} (another run of PPO seed 42" in proc.stdout and "one seed counts once" in proc.stdout
    out = results / "eval" / "Server1_Trap"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert len(config["evaluated"]) == 2 and any("20260101" in p for p in config["evaluated"])
    assert len(config["skipped"]) == 1 and config["skipped"][0].startswith(rel)
    episodes = pd.read_csv(out / "episodes.csv")
    assert sorted(episodes.loc[episodes["algo"] == "PPO", "run"].unique()) == [
        "Server1_Trap_seed42_20260101-000000", "Server1_Trap_seed43"]
    summary = pd.read_csv(out / "summary.csv").set_index("algo")
    assert summary.loc["PPO", "train_seeds"] == 2 and summary.loc["PPO", "runs"] == 2
    assert summary.loc["PPO", "ci_unit"] == "runs" and summary.loc["greedy", "ci_unit"] == "eval seeds, tasks"


def test_runs_of_one_seed_trained_differently_are_refused_until_one_is_chosen(tmp_path, default_ds):
    """A 2-epoch test run of seed 42 beside the real one must not silently become "the" seed-42 run."""
    results, short = tmp_path / "results", tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump(yaml.safe_load((ROOT / "PPO_algorithm/config.yaml").read_text()) | {"epochs": 2}))
    _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, 42, "Server1_Trap_seed42")
    _fake_run(results, "PPO_algorithm", str(short), default_ds, 42, "Server1_Trap_seed42_test")
    real = results / "PPO" / "Server1_Trap_seed42"
    os.utime(real / "checkpoints" / "final.pt", (1e9, 1e9))  # the short test run is the newest
    flags = ("--results", "results", "--episodes", "8", "--no-progress", "--skip", "oracle", "lookahead")
    line = one_line_error(run_script("total/evaluate_all.py", *flags, check=False, cwd=tmp_path),
                          "2 runs of PPO seed 42", "results/PPO/Server1_Trap_seed42_test", "epochs", "--runs",
                          "--run-newest")
    assert "epochs 2 in Server1_Trap_seed42_test, 100 in Server1_Trap_seed42" in line.replace("'", "")
    assert not (results / "eval").exists()
    run_from(tmp_path, "total/evaluate_all.py", *flags, "--runs", "results/PPO/Server1_Trap_seed42")
    config = yaml.safe_load((results / "eval" / "Server1_Trap" / "config.yaml").read_text())
    (ppo,) = [p for p in config["evaluated"] if "PPO" in p]
    assert Path(ppo) == real.resolve() / "checkpoints" / "final.pt"
    run_from(tmp_path, "total/evaluate_all.py", *flags, "--run-newest", "--overwrite")
    config = yaml.safe_load((results / "eval" / "Server1_Trap" / "config.yaml").read_text())
    assert any("seed42_test" in p for p in config["evaluated"])


def test_only_runs_evaluates_the_named_runs_and_no_other(tmp_path, default_ds):
    """A candidate decision evaluates its own sweep's runs (total/decide.py), not every run under the root."""
    results = tmp_path / "results"
    for seed in (42, 43):
        _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, seed, f"Server1_Trap_seed{seed}")
    flags = ("--results", "results", "--episodes", "8", "--no-progress", "--skip", "oracle", "lookahead")
    run_from(tmp_path, "total/evaluate_all.py", *flags, "--only-runs", "results/PPO/Server1_Trap_seed43")
    out = results / "eval" / "Server1_Trap"
    config = yaml.safe_load((out / "config.yaml").read_text())
    (ppo,) = [p for p in config["evaluated"] if "PPO" in p]
    assert Path(ppo) == (results / "PPO" / "Server1_Trap_seed43").resolve() / "checkpoints" / "final.pt"
    assert config["only_runs"] == [str((results / "PPO" / "Server1_Trap_seed43").resolve())]
    assert pd.read_csv(out / "episodes.csv").query("algo == 'PPO'")["train_seed"].unique().tolist() == [43]
    # another set of runs does not silently replace that evaluation, and a folder that is no finished run is named
    one_line_error(run_script("total/evaluate_all.py", *flags, check=False, cwd=tmp_path), "--overwrite")
    one_line_error(run_script("total/evaluate_all.py", *flags, "--only-runs", "results/PPO", check=False,
                              cwd=tmp_path), "--only-runs", "results/PPO", "not a finished run")


def test_sweep_variants_of_one_seed_are_rows_of_their_own(tmp_path, default_ds):
    """Two sweep variants of seed 42 are two methods, not two runs of one seed: neither is dropped,
    and each is its own row (PPO@x4), apart from the plain run."""
    results = tmp_path / "results"
    for name, variant in (("Server1_Trap_seed42", None), ("Server1_Trap_x4_seed42", "x4"),
                          ("Server1_Trap_x16_seed42", "x16")):
        _fake_run(results, "PPO_algorithm", "PPO_algorithm/config.yaml", default_ds, 42, name)
        if variant:
            (results / "PPO" / name / "sweep_run.yaml").write_text(f"algo: PPO\nseed: 42\nvariant: {variant}\n")
    proc = run_from(tmp_path, "total/evaluate_all.py", "--results", "results", "--episodes", "8", "--no-progress",
                    "--skip", "oracle", "lookahead")
    assert "another run of" not in proc.stdout
    summary = pd.read_csv(results / "eval" / "Server1_Trap" / "summary.csv").set_index("algo")
    assert {"PPO", "PPO@x4", "PPO@x16"} <= set(summary.index)
    assert summary.loc["PPO@x4", "label"] == "PPO (x4)" and summary.loc["PPO@x16", "train_seeds"] == 1
    # an untrusted record with a bad variant is a one-line error naming the file, not a crash or a silent row
    (results / "PPO" / "Server1_Trap_x4_seed42" / "sweep_run.yaml").write_text("variant: [1, 2]\n")
    proc = run_script("total/evaluate_all.py", "--results", "results", "--episodes", "8", "--no-progress",
                      check=False, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "Server1_Trap_x4_seed42/sweep_run.yaml: field 'variant' must be a name" in proc.stderr


def test_variant_labels_and_styles():
    from total.common import base_algo, label, line_style, sort_algos, sweep_variant
    assert base_algo("TopoFreeRL@x4_zeroshot") == "TopoFreeRL" and sweep_variant("TopoFreeRL@x4_zeroshot") == "x4"
    assert label("TopoFreeRL@x4_zeroshot") == "TopoFreeRL (x4, zero-shot)" and label("greedy_queue_tuned").endswith(
        "(tuned W)")
    assert line_style("PPO@x4")["color"] == line_style("PPO")["color"] and line_style("PPO@x4")["linestyle"] == "-."
    assert sort_algos(["greedy", "PPO@x4", "PPO", "TopoFreeRL@x16", "TopoFreeRL@x4", "TopoFreeRL"])[:5] == [
        "TopoFreeRL", "TopoFreeRL@x4", "TopoFreeRL@x16", "PPO", "PPO@x4"]


def test_paired_table_against_the_reference(tmp_path):
    from fake_eval import DEFAULT, fake_episodes, write_fake_eval
    schedulers = {k: DEFAULT[k] for k in ("TopoFreeRL", "greedy", "greedy_queue", "random")}
    schedulers["STARK"] = (1.03, 0.0, 0.0, 0.15)  # one seed, tied with the reference
    episodes = fake_episodes(schedulers, episodes=200)
    episodes = episodes[(episodes["algo"] != "STARK") | (episodes["train_seed"] == 42)]
    write_fake_eval(tmp_path / "eval" / "Server1_Trap_contention_r8", episodes)
    before = sorted(p.name for p in (tmp_path / "figures").glob("*")) if (tmp_path / "figures").exists() else []
    proc = run_from(tmp_path, "total/make_table.py", "--results", ".", "--tag", "contention_r8")
    assert before == [] and "results_table_contention_r8_paired.csv" in proc.stdout
    figures = tmp_path / "figures"
    table = pd.read_csv(figures / "results_table_contention_r8.csv")  # the unpaired table keeps its columns
    assert list(table.columns) == ["Scheduler", "Reward", "Latency (ms)", "P99 latency (ms)", "Cost ($)",
                                   "IQM reward", "Seeds", "Episodes"]
    assert "STARK: ONE training seed, so over tasks only" in proc.stdout  # the Markdown table is printed
    paired = pd.read_csv(figures / "results_table_contention_r8_paired.csv").set_index("algo")
    assert "greedy_queue" not in paired.index and (paired["reference"] == "greedy_queue").all()
    assert paired.loc["TopoFreeRL", "ci_unit"] == "runs" and paired.loc["STARK", "ci_unit"] == "tasks"
    assert paired.loc["random", "d_latency_ms_lo"] > 0 and paired.loc["random", "p_lower_latency"] < 0.05
    assert paired.loc["TopoFreeRL", "d_latency_ms"] < 0 and paired.loc["TopoFreeRL", "p_lower_latency"] > 0.5
    s = paired.loc["STARK"]  # tied with the reference in distribution (this draw's P(lower latency) is 0.435)
    assert s["d_latency_ms_lo"] < 0 < s["d_latency_ms_hi"] and abs(s["p_lower_latency"] - 0.5) < 0.1
    # the levels of the CI, and the verdicts against the contention study's margins (total/studies.yaml)
    assert paired.loc[["TopoFreeRL", "STARK", "greedy"], "n_train_seeds"].tolist() == [3, 1, 0]
    assert (paired["n_eval_seeds"] == 1).all() and (paired["n_tasks"] == episodes["task_id"].nunique()).all()
    ref = episodes.loc[episodes["algo"] == "greedy_queue", "latency_ms"]
    assert (paired["margin_reward"] == 0.01).all()
    assert paired["margin_p99_latency_ms"].iloc[0] == pytest.approx(0.02 * np.percentile(ref, 99))
    assert paired.loc["random", ["verdict_reward", "verdict_p99"]].tolist() == ["worse", "worse"]
    assert paired.loc["greedy", "verdict"] == "better" and s["verdict"] == "inconclusive"
    assert (paired["verdict"] == paired["verdict_reward"]).all() and "| Verdict (reward) |" in proc.stdout
    run_from(tmp_path, "total/compare.py", "--results", ".", "--tag", "contention_r8", "--reward-margin", "0.5",
             "--overwrite")
    wide = pd.read_csv(figures / "results_table_contention_r8_paired.csv").set_index("algo")
    assert wide.loc[["STARK", "greedy", "random"], "verdict"].tolist() == ["equivalent", "equivalent", "worse"]
    # the oracle is the default reference without a contention tag
    write_fake_eval(tmp_path / "eval" / "Server1_Trap", fake_episodes({**schedulers, "oracle": DEFAULT["oracle"]}))
    run_from(tmp_path, "total/compare.py", "--results", ".")
    assert (pd.read_csv(figures / "results_table_paired.csv")["reference"] == "oracle").all()


@pytest.mark.parametrize(("lo", "hi", "higher_is_better", "expected"), [
    (0.02, 0.05, True, "better"), (0.005, 0.05, True, "inconclusive"), (-0.05, -0.02, True, "worse"),
    (-0.01, 0.01, True, "equivalent"), (-0.005, 0.008, True, "equivalent"), (-0.02, 0.005, True, "inconclusive"),
    (-0.05, -0.02, False, "better"), (0.02, 0.05, False, "worse"), (-0.02, 0.02, False, "inconclusive"),
])
def test_verdict_words(lo, hi, higher_is_better, expected):
    """better / worse only when the whole CI is beyond the margin (0.01) in that direction; equivalent inside it."""
    from total.compare import verdict
    assert verdict(lo, hi, 0.01, higher_is_better) == expected


def test_paired_table_refuses_schedulers_that_met_other_tasks(tmp_path):
    from fake_eval import DEFAULT, fake_episodes

    from total.compare import paired_table
    episodes = fake_episodes({k: DEFAULT[k] for k in ("greedy", "greedy_queue")}, episodes=20)
    episodes.loc[episodes["algo"] == "greedy", "task_id"] = "other"
    try:
        paired_table(episodes, "greedy_queue", 0.01, 0.02)
    except SystemExit as e:
        assert "same tasks" in str(e)
    else:
        raise AssertionError("mismatched tasks were paired")


def _fake_metrics(results, algo, run, seed, rewards, mtime):
    folder = results / algo / run
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"seed": seed, "regions": ["Server1_Trap"], "profile": "paper"}))
    pd.DataFrame({"epoch": range(len(rewards)), "reward": rewards, "latency_ms": 1000.0, "cost": 0.1}).to_csv(
        folder / "metrics.csv", index=False)
    os.utime(folder / "metrics.csv", (mtime, mtime))


def test_learning_curves_band_only_over_two_or_more_seeds(tmp_path, monkeypatch):
    import plot_learning_curves as plc
    _fake_metrics(tmp_path, "PPO", "a_seed1", 1, np.linspace(-5, -3, 10), 1e9)
    _fake_metrics(tmp_path, "PPO", "a_seed1_new", 1, np.linspace(-5, -2, 10), 2e9)  # same seed: counts once
    _fake_metrics(tmp_path, "PPO", "a_seed2", 2, np.linspace(-6, -3, 10), 1e9)
    _fake_metrics(tmp_path, "TopoFreeRL", "b_seed1", 1, np.linspace(-4, -2, 10), 1e9)
    runs = plc.metrics_by_algo(tmp_path)
    assert len(runs["PPO"]) == 2 and runs["PPO"][0]["reward"].iloc[-1] == -2 and len(runs["TopoFreeRL"]) == 1
    fills, titles = [], []
    import matplotlib.axes
    import matplotlib.figure
    monkeypatch.setattr(matplotlib.axes.Axes, "fill_between", lambda self, *a, **k: fills.append(k.get("color")))
    original = matplotlib.figure.Figure.suptitle
    monkeypatch.setattr(matplotlib.figure.Figure, "suptitle",
                        lambda self, t, **k: (titles.append(t), original(self, t, **k))[1])
    written = plc.draw(tmp_path, tmp_path / "figures", ["Server1_Trap"], smooth=1)
    assert all(p.stat().st_size > 1000 for p in written)
    from total.common import color
    assert fills == [color("PPO")] * 3  # three panels, PPO only: TopoFreeRL has one seed
    assert "95% bootstrap CI over 2 seeds" in titles[0]


def test_load_curve_marks_a_growing_queue_saturated(tmp_path):
    from fake_eval import DEFAULT, fake_episodes, write_fake_eval
    for rate in (2, 8):
        schedulers = {"TopoFreeRL": DEFAULT["TopoFreeRL"], "greedy_queue": DEFAULT["greedy_queue"],
                      "greedy": (1.05, 30.0 * rate, 0.0, 0.12)}  # greedy's queue grows with arrival order
        write_fake_eval(tmp_path / "eval" / f"Server1_Trap_contention_r{rate}",
                        fake_episodes(schedulers, episodes=150, seeds=2, rate=rate, seed=rate))
    write_fake_eval(tmp_path / "eval" / "Server1_Trap", fake_episodes({"greedy": DEFAULT["greedy"]}, episodes=20))
    proc = run_from(tmp_path, "total/plot_load_curve.py", "--results", ".", "--figures", "f", "--formats", "png,pdf")
    for ext in ("png", "pdf"):
        assert (tmp_path / "f" / f"load_curve_Server1_Trap.{ext}").stat().st_size > 1000
    assert "load_curve_Server1_Trap.png" in proc.stdout
    table = pd.read_csv(tmp_path / "f" / "load_curve_Server1_Trap.csv").set_index(["algo", "rate"])
    assert sorted(table.index.get_level_values("rate").unique()) == [2.0, 8.0]
    assert table.loc[("greedy", 8.0), "saturated"] and "queue grows" in table.loc[("greedy", 8.0), "reason"]
    assert not table.loc[("TopoFreeRL", 8.0), "saturated"] and not table.loc[("greedy_queue", 2.0), "saturated"]
    assert (table["mean_lo"] <= table["mean_ms"]).all() and (table["mean_ms"] <= table["mean_hi"]).all()
    run_from(tmp_path, "total/plot_load_curve.py", "--results", ".", "--figures", "g", "--rates", "8")
    assert set(pd.read_csv(tmp_path / "g" / "load_curve_Server1_Trap.csv")["rate"]) == {8.0}


def test_load_curve_without_evaluations_names_what_is_missing(tmp_path):
    from conftest import run_script
    proc = run_script("total/plot_load_curve.py", "--results", str(tmp_path), "--figures", str(tmp_path / "f"),
                      check=False)
    assert proc.returncode != 0 and "contention_r<rate>" in proc.stderr


def test_figures_keep_schedulers_distinguishable(tmp_path):
    from fake_eval import fake_episodes, write_fake_eval

    from schedkit.registry import SCHEDULERS
    from total import plot_cost_breakdown, plot_latency_cdf, plot_pareto
    from total.common import line_style
    styles = [(line_style(a)["color"], line_style(a)["linestyle"], line_style(a)["marker"]) for a in SCHEDULERS]
    assert len({s[1:] for s in styles}) == len(SCHEDULERS)  # unique without colour
    assert line_style("TopoFreeRL")["linestyle"] != line_style("greedy_queue")["linestyle"] != line_style("greedy")[
        "linestyle"]
    assert not {c.upper() for _, _, c, _ in plot_cost_breakdown.PARTS} & {s.color.upper() for s in SCHEDULERS.values()}
    assert plot_pareto.pareto_front({"a": np.array([1.0, 3.0]), "b": np.array([2.0, 1.0]),
                                     "c": np.array([3.0, 2.0]), "d": np.array([0.5, 4.0])}) == ["d", "a", "b"]
    assert plot_pareto.latency_scale([4000.0, 5000.0, 300000.0]) == "log"  # contention: load-blind rules in minutes
    assert plot_pareto.latency_scale([3800.0, 4200.0, 6500.0]) == "linear"
    write_fake_eval(tmp_path / "eval" / "Server1_Trap_contention_r8", fake_episodes(episodes=100))
    for module in (plot_latency_cdf, plot_cost_breakdown, plot_pareto):
        for path in module.draw(tmp_path, tmp_path / "f", ["Server1_Trap"], tag="contention_r8"):
            assert path.stat().st_size > 1000


def test_a_trace_or_trap_evaluation_gets_its_own_folder_beside_the_default_one():
    from edgesim.contention import Contention
    from edgesim.registry import get_profile
    evaluation_tag = get_profile("contention").tag
    assert evaluation_tag(Contention(arrival_rate=8.0)) == "contention_r8"
    assert evaluation_tag(Contention(arrival_rate=8.0, trap_loss=0.3)) == "contention_r8"  # the default
    assert evaluation_tag(Contention(arrival_rate=8.0, arrival_trace="traces/AzureLLMInferenceTrace_conv.csv")) == \
        "contention_r8_AzureLLMInferenceTrace_conv"
    assert evaluation_tag(Contention(arrival_rate=8.0, trap_loss=0.6)) == "contention_r8_loss0.6"
    assert evaluation_tag(Contention(arrival_rate=8.0, trap_surcharge_scale=4.0)) == "contention_r8_surcharge4"


def _fake_ablation(tmp_path, shift_ms: float) -> tuple:
    """A 2-variant x 2-seed ablation sweep whose runs hold only what the sweep writes: config.yaml and
    the evaluation's episodes.csv. noSE is full plus `shift_ms` on every task; seed 2 of noSE never finished."""
    sweep = {"name": "ablation", "algorithms": ["TopoFreeRL"], "seeds": [1, 2], "regions": [["Server1_Trap"]],
             "profiles": ["contention"], "variants": {"full": [], "noSE": ["se_gate=false"]},
             "evaluate": {"split": "test", "episodes": None, "seed": 0}, "results": str(tmp_path / "res")}
    path = tmp_path / "ablation.yaml"
    path.write_text(yaml.safe_dump(sweep))
    rng = np.random.default_rng(0)
    base = rng.uniform(3000, 6000, 40)
    for variant, seeds in (("full", (1, 2)), ("noSE", (1,))):
        for seed in seeds:
            run = tmp_path / "res" / "TopoFreeRL" / f"Server1_Trap_contention_{variant}_seed{seed}"
            (run / "eval_test_seed0").mkdir(parents=True)
            (run / "config.yaml").write_text(yaml.safe_dump({"profile": "contention",
                                                             "contention": {"arrival_rate": 8.0}}))
            latency = base + 10.0 * seed + (shift_ms if variant == "noSE" else 0.0)
            pd.DataFrame({"episode": range(40), "task_id": [f"t{i % 20}" for i in range(40)],
                          "latency_ms": latency, "cost": 0.15, "reward": -latency / 1000,
                          "decision_ms": 0.5}).to_csv(run / "eval_test_seed0" / "episodes.csv", index=False)
    return path, base


def test_ablation_table_pairs_each_variant_with_the_full_method(tmp_path):
    from schedkit.stats import t_quantile
    path, base = _fake_ablation(tmp_path, shift_ms=250.0)
    proc = run_from(tmp_path, "total/ablation_table.py", "--sweep", str(path), "--figures", "out", "--formats", "png,md,tex")
    out = tmp_path / "out"
    table = pd.read_csv(out / "ablation_contention_r8.csv").set_index("Scheduler")
    assert list(table.index) == ["full", "noSE"] and list(table["Seeds"]) == [2, 1]
    paired = pd.read_csv(out / "ablation_contention_r8_paired.csv").set_index("algo")
    # noSE seed 1 = full seed 1 + 250 ms on every task, so tasks cancel; full's two seeds are 10 ms apart: a
    # t-interval with 1 degree of freedom, +-t(0.975, 1) * 5 ms
    d = paired.loc["noSE"]
    assert d["d_latency_ms"] == pytest.approx(245)
    assert d["d_latency_ms_hi"] - d["d_latency_ms"] == pytest.approx(t_quantile(0.975, 1) * 5, rel=1e-6)
    assert paired.loc["noSE", "d_reward"] < 0 and paired.loc["noSE", "p_lower_latency"] == 0.0
    text = (out / "ablation_contention_r8.md").read_text()
    assert "Server1_Trap_contention_noSE_seed2" in text and "Missing evaluations" in text
    assert "noSE" in proc.stdout and (out / "ablation_contention_r8.tex").exists()
    assert (out / "ablation_contention_r8_paired.png").stat().st_size > 1000
    assert not (out / "ablation_contention_r8_paired.pdf").exists()  # not asked for


def test_ablation_table_of_a_sweep_of_two_algorithms_keeps_them_apart(tmp_path):
    path, _ = _fake_ablation(tmp_path, shift_ms=250.0)
    sweep = yaml.safe_load(path.read_text()) | {"algorithms": ["TopoFreeRL", "PPO"]}
    path.write_text(yaml.safe_dump(sweep))
    for run in (tmp_path / "res" / "TopoFreeRL").iterdir():  # PPO: the same runs, 1 s slower everywhere
        ppo = tmp_path / "res" / "PPO" / run.name
        (ppo / "eval_test_seed0").mkdir(parents=True)
        (ppo / "config.yaml").write_text((run / "config.yaml").read_text())
        episodes = pd.read_csv(run / "eval_test_seed0" / "episodes.csv")
        episodes.assign(latency_ms=episodes["latency_ms"] + 1000.0).to_csv(ppo / "eval_test_seed0" / "episodes.csv",
                                                                          index=False)
    proc = run_script("total/ablation_table.py", "--sweep", str(path), check=False)
    assert proc.returncode != 0 and "TopoFreeRL, PPO: choose one with --algo" in proc.stderr
    run_script("total/ablation_table.py", "--sweep", str(path), "--algo", "PPO", "--figures", str(tmp_path / "out"))
    table = pd.read_csv(tmp_path / "out" / "ablation_PPO_contention_r8.csv").set_index("Scheduler")
    assert list(table["Seeds"]) == [2, 1]  # PPO's runs only, not pooled with TopoFreeRL's
    paired = pd.read_csv(tmp_path / "out" / "ablation_PPO_contention_r8_paired.csv").set_index("algo")
    assert 240 <= paired.loc["noSE", "d_latency_ms"] <= 250  # PPO's noSE against PPO's full, not TopoFreeRL's
    proc = run_script("total/ablation_table.py", "--sweep", str(path), "--algo", "STARK", check=False)
    assert proc.returncode != 0 and "--algo STARK: the sweep trains TopoFreeRL, PPO" in proc.stderr


def test_ablation_table_without_the_reference_is_a_one_line_error(tmp_path):
    path, _ = _fake_ablation(tmp_path, shift_ms=0.0)
    proc = run_script("total/ablation_table.py", "--sweep", str(path), "--reference", "noDWA", check=False)
    assert proc.returncode != 0 and "reference variant 'noDWA' has no finished run" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_tables_treat_the_passes_over_a_task_as_one_cluster():
    """summarize_runs and paired_table give 5 passes over 200 tasks the CI of one pass (the passes repeat the
    same tasks), not one sqrt(5) times narrower as if the 1000 episodes were independent."""
    from total.compare import paired_table
    from total.evaluate_all import summarize_runs
    rng = np.random.default_rng(0)
    task_effect, task_gain = rng.normal(0, 1, 200), rng.normal(0.5, 1, 200)

    def evaluation(passes: int) -> pd.DataFrame:
        tasks = np.tile(np.arange(200), passes)
        frames = [pd.DataFrame({"algo": algo, "train_seed": np.nan, "eval_seed": 0, "run": "",
                                "episode": np.arange(len(tasks)), "task_id": [f"t{t}" for t in tasks],
                                "reward": task_effect[tasks] + gain * task_gain[tasks] + rng.normal(0, 0.01, len(tasks)),
                                "latency_ms": 1000 + 100 * task_effect[tasks] - 50 * gain * task_gain[tasks],
                                "cost": 0.1, "decision_ms": 0.1})
                  for algo, gain in (("greedy", 1.0), ("greedy_queue", 0.0))]
        return pd.concat(frames, ignore_index=True)

    def widths(passes: int) -> tuple[float, float]:
        episodes = evaluation(passes)
        row = summarize_runs(episodes, 0).set_index("algo").loc["greedy"]
        paired = paired_table(episodes, "greedy_queue", 0.01, 0.02).set_index("algo").loc["greedy"]
        return row["reward_hi"] - row["reward_lo"], paired["d_reward_hi"] - paired["d_reward_lo"]

    for one, five in zip(widths(1), widths(5), strict=True):
        assert five == pytest.approx(one, rel=0.15)
