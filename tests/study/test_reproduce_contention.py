"""total/reproduce_contention.py end to end on a small generated region: training through the
sweep, W tuned on the train split, one evaluation per setting (lookahead only at the validation
rate), tables with paired differences, the load curve, the Pareto plot and its provenance."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml
from conftest import run_script

pytestmark = pytest.mark.slow


def test_the_study_trains_tunes_on_train_and_evaluates_every_setting(small_root, tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "tiny", "data": str(small_root), "algorithms": ["PPO"], "seeds": [1, 2],
        "regions": [["Small_Trap"]], "profiles": ["contention"], "budget": {"epochs": 2, "episodes": 8},
        "overrides": {"all": ["contention.arrival_rate=6", "contention.worlds=2", "contention.warmup=2"]}}))
    results = tmp_path / "results"
    proc = run_script("total/reproduce_contention.py", "--quick", "--sweep", str(sweep), "--rates", "3", "6",
                      "--tune-rate", "6", "--trap-surcharge-scales", "3", "--results", str(results), "--workers", "2")
    assert proc.stdout.count(": trained (") == 2
    tuning = json.loads((results / "contention_study" / "tuning" / "tuning.json").read_text())
    assert tuning["split"] == "train" and tuning["contention"]["arrival_rate"] == 6.0
    assert tuning["seed"] == 100  # the validation setting's own evaluation seed, not a test seed
    assert set(tuning["chosen_latency_weight"]) == {"greedy_queue", "least_loaded", "p2c"}
    lookahead_tuning = json.loads((results / "contention_study" / "tuning_lookahead" / "tuning.json").read_text())
    assert set(lookahead_tuning["chosen_latency_weight"]) == {"lookahead"} and lookahead_tuning["split"] == "train"
    rates = json.loads((results / "contention_study" / "load_rates" / "load_rates.json").read_text())
    assert rates["split"] == "train" and set(rates["chosen_rate"]) == {"0.6", "0.9"}
    for rate, lookahead in (("3", False), ("6", True)):
        summary = pd.read_csv(results / "eval" / f"Small_Trap_contention_r{rate}" / "summary.csv")
        algos = set(summary["algo"])
        assert {"PPO", "greedy_queue", "greedy_queue_tuned", "least_loaded_tuned", "p2c_tuned"} <= algos
        assert "greedy_switch" not in algos  # greedy_queue on one region
        assert ("lookahead" in algos) == ("lookahead_tuned" in algos) == lookahead  # the slow planner at 6/s only
        row = summary.set_index("algo").loc["PPO"]
        assert row["train_seeds"] == 2 and row["eval_seeds"] == 2 and 0 < row["utilisation"] < 1
        assert (pd.read_csv(results / "eval" / f"Small_Trap_contention_r{rate}" / "episodes.csv")["eval_seed"]
                .unique().tolist() == [0, 1])
        figures = results / "figures"
        paired = pd.read_csv(figures / f"results_table_contention_r{rate}_paired.csv")
        assert len(paired) == len(algos) - 1 and set(paired["reference"]) == {"greedy_queue_tuned"}
    assert (figures / "load_curve_Small_Trap.png").stat().st_size > 1000
    assert (figures / "pareto_contention_r6.png").stat().st_size > 1000  # latency-cost at the validation rate
    record = yaml.safe_load((figures / "reproduce_contention.yaml").read_text())
    # the setting with the lookahead planner runs first, the rest in their order
    loaded = [f"Small_Trap contention_r{r:g}_warmup4" for r in dict.fromkeys(rates["chosen_rate"].values())]
    assert record["settings"] == ["Small_Trap contention_r6", "Small_Trap contention_r3",
                                  "Small_Trap contention_r6_surcharge3", *loaded, "Confirm_Trap contention_r6"]
    assert record["seeds"] == [1, 2] and record["protocol"]["validation_seed"] == 100
    for setting in loaded:  # every scheduler but the slow planner, each bounded by the protocol's max_steps
        folder = results / "eval" / setting.replace(" ", "_")
        assert yaml.safe_load((folder / "config.yaml").read_text())["max_steps"] == 2000
        assert {"PPO", "greedy", "random", "oracle", "maxcompute", "greedy_queue_tuned"} <= set(
            pd.read_csv(folder / "summary.csv")["algo"]) and "lookahead" not in set(pd.read_csv(folder / "summary.csv")["algo"])
    confirmation = pd.read_csv(results / "eval" / "Confirm_Trap_contention_r6" / "summary.csv")
    assert "greedy_queue_tuned" in set(confirmation["algo"]) and "PPO" not in set(confirmation["algo"])  # fixed-size actor
    assert set(pd.read_csv(results / "eval" / "Confirm_Trap_contention_r6" / "episodes.csv")["eval_seed"]) == {1000, 1001}
    assert (figures / "confirmation" / "results_table_contention_r6_paired.csv").is_file()
    verdicts = pd.read_csv(figures / "verdicts_contention.csv").set_index("algo")
    assert list(verdicts.columns[2:]) == ["r3", "r6", "r6_surcharge3", *(t.split(" contention_")[1] for t in loaded),
                                          "confirmation r6"]
    assert verdicts.loc["PPO", "r3"].split(" ")[0] in {"better", "worse", "equivalent", "inconclusive"}
    severe = results / "eval" / "Small_Trap_contention_r6_surcharge3"
    assert yaml.safe_load((severe / "config.yaml").read_text())["contention"]["trap_surcharge_scale"] == 3.0
    severity = pd.read_csv(figures / "trap_severity_Small_Trap_r6.csv")
    assert sorted(severity["scale"].unique()) == [1.0, 3.0] and "PPO" in set(severity["algo"])
    assert (figures / "trap_severity_Small_Trap_r6.png").stat().st_size > 1000
    assert set(record["wall_s"]) == {"train_s", "train_and_tune_s", "evaluate_s", "figures_s", "total_s"}
    overview = proc.stdout  # contention_overview.md only with --formats md
    assert not (figures / "contention_overview.md").exists()
    assert "| Reward | r3 | r6 | r6_surcharge3 |" in overview and "| PPO |" in overview and "| greedy_queue (tuned W) |" in overview


def test_a_rerun_reuses_a_tuning_only_when_its_settings_match(tmp_path):
    import sys

    from conftest import ROOT
    sys.path.insert(0, str(ROOT / "total"))
    from total.reproduce import tuning_done
    want = {"policy": ["greedy_queue"], "weights": [0.5, 0.9], "region": ["R"], "split": "train", "episodes": 40,
            "seed": 0, "profile": "contention", "arrival_rate": 8.0, "arrival_trace": None, "dataset_fingerprint": "f"}
    assert not tuning_done(tmp_path, want)  # nothing there
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(want | {"threads": 1, "out": "anywhere"}))
    assert not tuning_done(tmp_path, want)  # settings but no result
    (tmp_path / "tuning.json").write_text("{}")
    assert tuning_done(tmp_path, want)
    for key, other in (("weights", [0.5]), ("arrival_rate", 16.0), ("dataset_fingerprint", "g"), ("episodes", 41)):
        assert not tuning_done(tmp_path, want | {key: other}), key
    (tmp_path / "config.yaml").write_text("weights: [unclosed")
    assert not tuning_done(tmp_path, want)
