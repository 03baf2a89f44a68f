"""The serving profile's pooled tables through the shell: total/evaluate_all.py --profile serving puts the
serving metrics in summary.csv (SLO attainment with its CI, the rest averaged over the evaluation seeds),
and total/make_table.py shows them, with the SLO verdict in the paired table."""
from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
from conftest import one_line_error, run_script

from schedkit.registry import heuristics

KEEP = ("least_loaded", "round_robin")  # two fast rules: a table and a pair
# a loose TTFT objective so that attainment lands inside (0, 1) on this small, slot-bound world
SETTING = ("--region", "Tiny_Trap", "--profile", "serving", "--worlds", "2", "--max-in-flight", "64", "--load", "0.6",
           "--slo-ttft-ms", "6000", "--episodes", "16", "--no-progress")
TAG = "serving_u0.6"
POINTS = ("goodput_per_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "utilisation",
          "mean_batch_size", "kv_occupancy", "mean_queue_length", "mean_queue_wait_ms")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_tables")
    run_script("data1/generate.py", "--servers", "20", "--trap-fraction", "0.1", "--seed", "5", "--train-tasks", "10",
               "--test-tasks", "6", "--steps", "3", "--out", str(root / "data" / "Tiny_Trap"))
    run_script("total/evaluate_all.py", "--data", str(root / "data"), "--results", str(root / "results"), *SETTING,
               "--eval-seeds", "0", "1", "--skip", *(h for h in heuristics() if h not in KEEP))
    return root


def summary(root) -> pd.DataFrame:
    return pd.read_csv(root / "results" / "eval" / f"Tiny_Trap_{TAG}" / "summary.csv").set_index("algo")


def test_summary_has_the_serving_columns_in_range(root):
    s, episodes = summary(root), pd.read_csv(root / "results" / "eval" / f"Tiny_Trap_{TAG}" / "episodes.csv")
    assert sorted(s.index) == sorted(KEEP) and (s["profile"] == "serving").all()
    assert ((0 <= s["slo_attainment_lo"]) & (s["slo_attainment_lo"] <= s["slo_attainment"])
            & (s["slo_attainment"] <= s["slo_attainment_hi"]) & (s["slo_attainment_hi"] <= 1)).all()
    # the SLO attainment is the share of workflows that met their SLOs, over both eval seeds
    assert s["slo_attainment"].to_dict() == pytest.approx(episodes.groupby("algo")["slo_met"].mean().to_dict())
    assert 0 < s["slo_attainment"].max() and s["slo_attainment"].min() < 1
    assert (s["slo_attainment_hi"] > s["slo_attainment_lo"]).all()  # tasks and seeds vary: a real interval
    assert (s[list(POINTS)] >= 0).all().all() and (s["goodput_per_s"] > 0).any()
    assert (s["ttft_p50_ms"] <= s["ttft_p99_ms"]).all() and (s["tpot_p50_ms"] <= s["tpot_p99_ms"]).all()
    assert ((0 < s["utilisation"]) & (s["utilisation"] <= 1.2)).all() and (s["kv_occupancy"] <= 1).all()
    assert (s["mean_batch_size"] >= 1).all()


def test_point_values_are_the_eval_seeds_summaries_averaged(root):
    """round_robin's row holds the mean of what Heuristics/inference.py reports at each evaluation seed."""
    seeds = []
    for seed in ("0", "1"):
        out = root / f"rr_seed{seed}"
        run_script("Heuristics/inference.py", "--data", str(root / "data"), *SETTING, "--policy", "round_robin",
                   "--seed", seed, "--out", str(out))
        seeds.append(json.loads((out / "summary.json").read_text()))
    row = summary(root).loc["round_robin"]
    for key in (*POINTS, "slo_attainment"):
        assert row[key] == pytest.approx((seeds[0][key] + seeds[1][key]) / 2), key
    assert seeds[0]["goodput_per_s"] != seeds[1]["goodput_per_s"]  # two seeds that differ: the mean is a mean
    assert row["slo_ttft_ms"] == seeds[0]["slo_ttft_ms"] == 6000 and row["slo_tpot_ms"] == seeds[0]["slo_tpot_ms"]
    # requests.csv holds, per scheduler and evaluation seed, the requests inference.py reports at that seed
    pooled = pd.read_csv(root / "results" / "eval" / f"Tiny_Trap_{TAG}" / "requests.csv")
    for seed in (0, 1):
        own = pd.read_csv(root / f"rr_seed{seed}" / "requests.csv")
        mine = pooled[(pooled["algo"] == "round_robin") & (pooled["eval_seed"] == seed)]
        pd.testing.assert_frame_equal(mine[list(own.columns)].reset_index(drop=True), own)


def test_the_cdf_figure_draws_every_scheduler_with_its_slo_thresholds(root, tmp_path):
    proc = run_script("total/plot_serving_cdf.py", "--results", str(root / "results"), "--region", "Tiny_Trap",
                      "--tag", TAG, "--figures", str(tmp_path))
    assert (tmp_path / f"serving_cdf_{TAG}.png").stat().st_size > 1000 and "wrote" in proc.stdout
    contention = root / "results" / "eval" / "Tiny_Trap_contention_r8"  # an evaluation without requests
    run_script("total/evaluate_all.py", "--data", str(root / "data"), "--results", str(root / "results"),
               "--region", "Tiny_Trap", "--profile", "contention", "--arrival-rate", "8", "--worlds", "2",
               "--episodes", "8", "--eval-seeds", "0", "--no-progress", "--skip", *(h for h in heuristics() if h not in KEEP))
    assert not (contention / "requests.csv").exists()
    proc = run_script("total/plot_serving_cdf.py", "--results", str(root / "results"), "--region", "Tiny_Trap",
                      "--tag", "contention_r8", "--figures", str(tmp_path / "other"), check=False)
    one_line_error(proc, "requests.csv")


def test_slo_attainment_against_the_slo_scale(root, tmp_path):
    """At scale 1 each row is summary.csv's SLO attainment with its CI; attainment never falls as the objectives
    loosen; requests.csv of another evaluation is refused in one line."""
    run_script("total/plot_slo_scale.py", "--results", str(root / "results"), "--region", "Tiny_Trap", "--tag", TAG,
               "--figures", str(tmp_path))
    t, s = pd.read_csv(tmp_path / f"slo_scale_{TAG}.csv"), summary(root)
    assert (tmp_path / f"slo_scale_{TAG}.png").stat().st_size > 1000 and sorted(t["algo"].unique()) == sorted(KEEP)
    for algo, d in t.groupby("algo"):
        one = d[d["scale"] == 1.0].iloc[0]
        for key in ("slo_attainment", "slo_attainment_lo", "slo_attainment_hi"):
            assert one[key] == pytest.approx(s.loc[algo, key]), key
        assert d["slo_attainment"].is_monotonic_increasing and d["slo_ttft_ms"].iloc[0] == 0.25 * 6000
    assert t["slo_attainment"].min() < t["slo_attainment"].max()  # the scale moves it on this world
    other = tmp_path / "other" / "eval" / f"Tiny_Trap_{TAG}"
    shutil.copytree(root / "results" / "eval" / f"Tiny_Trap_{TAG}", other)
    requests = pd.read_csv(other / "requests.csv")
    requests.loc[requests["algo"] == "least_loaded", "ttft_ms"] = 1e9
    requests.to_csv(other / "requests.csv", index=False)
    proc = run_script("total/plot_slo_scale.py", "--results", str(tmp_path / "other"), "--region", "Tiny_Trap",
                      "--tag", TAG, "--figures", str(tmp_path / "f2"), check=False)
    one_line_error(proc, "does not give episodes.csv's slo_met")


def test_make_table_shows_the_serving_columns_and_the_slo_verdict(root):
    figures = root / "figures"
    proc = run_script("total/make_table.py", "--results", str(root / "results"), "--region", "Tiny_Trap", "--tag", TAG,
                      "--figures", str(figures), "--reference", "least_loaded", "--slo-margin", "0.05",
                      "--formats", "md")
    table = pd.read_csv(figures / f"results_table_{TAG}.csv").set_index("Scheduler")
    shown = ["SLO attainment", "Goodput (/s)", "TTFT p99 (ms)", "TPOT p99 (ms)", "Utilisation", "Batch", "KV occupancy"]
    assert set(shown) <= set(table.columns)
    header = (figures / f"results_table_{TAG}.md").read_text().splitlines()[0]
    assert all(f"| {name} |" in header for name in shown)
    s = summary(root)
    for algo in KEEP:
        lo, hi = (f"{s.loc[algo, 'slo_attainment' + k]:.3f}" for k in ("_lo", "_hi"))
        assert table.loc[algo, "SLO attainment"] == f"{s.loc[algo, 'slo_attainment']:.3f} [{lo}, {hi}]"
        assert table.loc[algo, "TPOT p99 (ms)"] == pytest.approx(s.loc[algo, "tpot_p99_ms"], abs=0.05)
        assert table.loc[algo, "Batch"] == pytest.approx(s.loc[algo, "mean_batch_size"], abs=0.005)
    paired = pd.read_csv(figures / f"results_table_{TAG}_paired.csv").set_index("algo").loc["round_robin"]
    assert paired["margin_slo_attainment"] == 0.05
    assert paired["d_slo_attainment"] == pytest.approx(s.loc["round_robin", "slo_attainment"]
                                                       - s.loc["least_loaded", "slo_attainment"])
    assert paired["d_slo_attainment_lo"] <= paired["d_slo_attainment"] <= paired["d_slo_attainment_hi"]
    assert paired["verdict_slo"] in ("better", "worse", "equivalent", "inconclusive")
    assert "Verdict (SLO)" in proc.stdout and "SLO attainment ±0.05" in proc.stdout
    run_script("total/verdicts.py", "--figures", str(figures), "--name", "serving",
               "--tables", f"results_table_{TAG}_paired.csv")
    verdicts = pd.read_csv(figures / "verdicts_serving.csv").set_index("algo")
    cell = verdicts.iloc[:, -1]["round_robin"]
    assert cell.endswith(f" / SLO {paired['verdict_slo']}")


def test_a_broken_slo_met_cell_is_a_one_line_error(root, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(root / "results", results)
    path = results / "eval" / f"Tiny_Trap_{TAG}" / "episodes.csv"
    episodes = pd.read_csv(path)
    episodes["slo_met"] = episodes["slo_met"].astype(object)
    episodes.loc[3, "slo_met"] = "maybe"
    episodes.to_csv(path, index=False)
    proc = run_script("total/make_table.py", "--results", str(results), "--region", "Tiny_Trap", "--tag", TAG,
                      "--figures", str(tmp_path / "figures"), "--reference", "least_loaded", check=False)
    one_line_error(proc, "episodes.csv line 5", "'slo_met'", "True or False", "'maybe'")
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").iterdir())


def test_the_load_figure_plots_every_evaluated_load_with_its_summary_values(root, tmp_path):
    """total/plot_serving_load.py finds both loads, plots the summaries' SLO attainment and goodput with bands
    that hold them, and marks a row unstable exactly when its bounded evaluation left workflows unfinished."""
    heavy = ("--load", "1.2", "--max-steps", "400")
    run_script("total/evaluate_all.py", "--data", str(root / "data"), "--results", str(root / "results"),
               *SETTING, *heavy, "--eval-seeds", "0", "1", "--skip", *(h for h in heuristics() if h not in KEEP))
    figures = tmp_path / "fig"
    run_script("total/plot_serving_load.py", "--results", str(root / "results"), "--region", "Tiny_Trap",
               "--figures", str(figures))
    table = pd.read_csv(figures / "serving_load_Tiny_Trap.csv")
    assert sorted(table["load"].unique()) == [0.6, 1.2] and set(table["algo"]) == set(KEEP)
    for load, tag in ((0.6, TAG), (1.2, "serving_u1.2")):
        s = pd.read_csv(root / "results" / "eval" / f"Tiny_Trap_{tag}" / "summary.csv").set_index("algo")
        rows = table[table["load"] == load].set_index("algo")
        for col in ("slo_attainment", "goodput_per_s", "utilisation"):
            assert rows[col].to_dict() == pytest.approx(s.loc[rows.index, col].to_dict())
        assert rows["unstable"].to_dict() == (s.loc[rows.index, "unfinished"] > 0 if "unfinished" in s
                                              else pd.Series(False, rows.index)).to_dict()
    assert table["unstable"].any() and not table["unstable"].all()  # both kinds of point are drawn
    assert ((table["goodput_per_s_lo"] <= table["goodput_per_s"] + 1e-12)
            & (table["goodput_per_s"] <= table["goodput_per_s_hi"] + 1e-12)).all()
    assert (figures / "serving_load_Tiny_Trap.png").stat().st_size > 1000
    proc = run_script("total/plot_serving_load.py", "--results", str(root / "results"), "--region", "Tiny_Trap",
                      "--loads", "0", "--figures", str(tmp_path / "other"), check=False)
    one_line_error(proc, "--loads", "> 0")


def test_a_timeline_samples_the_engines_without_changing_the_run_and_is_drawn(root, tmp_path):
    """--timeline writes each world's engines at its decisions (within their limits, clocks in order) and leaves
    the episodes as they are; total/plot_serving_timeline.py draws the timelines of one setting, refuses two
    settings and a profile without engines is refused before anything is written."""
    data = ("--data", str(root / "data"))
    for policy in KEEP:
        run_script("Heuristics/inference.py", *data, *SETTING, "--policy", policy, "--timeline",
                   "--out", str(tmp_path / policy))
    run_script("Heuristics/inference.py", *data, *SETTING, "--policy", "round_robin", "--out", str(tmp_path / "plain"))
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "plain" / "episodes.csv").drop(columns="decision_ms"),
                                  pd.read_csv(tmp_path / "round_robin" / "episodes.csv").drop(columns="decision_ms"))
    assert not (tmp_path / "plain" / "timeline.csv").exists()
    timeline = pd.read_csv(tmp_path / "round_robin" / "timeline.csv")
    assert list(timeline.columns) == ["step", "world", "now_ms", "running_batch", "kv_occupancy", "queued"]
    assert sorted(timeline["world"].unique()) == [0, 1] and (timeline.groupby("step").size() == 2).all()
    assert ((timeline["running_batch"] >= 0) & (timeline["kv_occupancy"] >= 0) & (timeline["kv_occupancy"] <= 1)
            & (timeline["queued"] >= 0)).all() and timeline["running_batch"].max() > 0
    assert all(g["now_ms"].is_monotonic_increasing for _, g in timeline.groupby("world"))
    figures = tmp_path / "fig"
    run_script("total/plot_serving_timeline.py", "--evals", str(tmp_path / "least_loaded"),
               str(tmp_path / "round_robin"), "--figures", str(figures))
    drawn = pd.read_csv(figures / "serving_timeline.csv")
    assert set(drawn["algo"]) == set(KEEP) and (drawn["world"] == 0).all()
    for policy in KEEP:  # every decision of world 0, as timeline.csv holds it
        own = pd.read_csv(tmp_path / policy / "timeline.csv")
        mine = drawn[drawn["algo"] == policy].reset_index(drop=True)
        pd.testing.assert_frame_equal(mine[list(own.columns)], own[own["world"] == 0].reset_index(drop=True))
    assert (figures / "serving_timeline.png").stat().st_size > 1000
    other = [a if a != "0.6" else "0.9" for a in SETTING]
    run_script("Heuristics/inference.py", *data, *other, "--policy", "jsq", "--timeline", "--out", str(tmp_path / "jsq"))
    proc = run_script("total/plot_serving_timeline.py", "--evals", str(tmp_path / "least_loaded"), str(tmp_path / "jsq"),
                      "--figures", str(tmp_path / "fig2"), check=False)
    one_line_error(proc, "serving", "differs")
    proc = run_script("Heuristics/inference.py", *data, "--region", "Tiny_Trap", "--profile", "contention",
                      "--policy", "least_loaded", "--timeline", "--out", str(tmp_path / "contention"), check=False)
    one_line_error(proc, "--timeline", "only --profile serving")
    assert not (tmp_path / "contention").exists()
