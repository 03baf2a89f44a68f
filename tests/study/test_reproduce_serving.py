"""total/reproduce_serving.py --quick end to end on its tiny generated region: training under `serving` through the
sweep, W tuned on the train split at the validation load, the best tuned rule as the reference, every
load and the confirmation topology evaluated, tables, verdicts, the serving figures and
the study's record."""
from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest
import yaml
from conftest import run_script

from total.reproduce_serving import QUICK

pytestmark = pytest.mark.slow


def test_the_serving_study_tunes_on_train_pairs_with_the_best_rule_and_draws_its_figures(tmp_path):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({
        "name": "tiny", "data": "data1", "algorithms": ["TopoFreeRL"], "seeds": [1, 2], "regions": [["Server1_Trap"]],
        "profiles": ["serving"], "budget": {"epochs": 2, "episodes": 8},
        "overrides": {"all": ["serving.load=0.9", "serving.worlds=2", "serving.warmup=2"]}}))
    results = tmp_path / "results"
    # the trainings as Ray tasks on a local instance where Ray is installed (CI installs it): the cluster path
    ray = ["--backend", "ray"] if importlib.util.find_spec("ray") else []
    proc = run_script("total/reproduce_serving.py", "--quick", "--sweep", str(sweep), "--trace",
                      "--results", str(results), "--workers", "2", *ray)  # no trace setting: the test's time
    assert proc.stdout.count(": trained (") == 2
    study = results / "serving_study"
    tuning = json.loads((study / "tuning" / "tuning.json").read_text())
    assert tuning["split"] == "train" and tuning["seed"] == 100 and tuning["serving"]["load"] == 0.9
    # every run trains on, and is tuned and judged by, the protocol's objectives
    slo = {f"slo_{k}": v for k, v in record_protocol()["slo"].items()}
    assert {k: tuning["serving"][k] for k in slo} == slo
    for run in (results / "TopoFreeRL").iterdir():
        assert {k: yaml.safe_load((run / "config.yaml").read_text())["serving"][k] for k in slo} == slo
    assert set(tuning["chosen_latency_weight"]) == {"greedy_queue", "least_loaded", "p2c"}
    record = yaml.safe_load((results / "figures" / "reproduce_serving.yaml").read_text())
    # the reference: the tuned rule with the best validation reward among the W that finished, chosen before any test run
    chosen = [r for r in tuning["table"] if r["latency_weight"] == tuning["chosen_latency_weight"][r["policy"]]]
    assert record["reference"] == max(chosen, key=lambda r: (-r["unfinished"], r["mean_reward"]))["policy"] + "_tuned"
    tags = ["serving_u0.5", "serving_u0.9"]
    assert record["settings"] == [f"Serving_Trap {t}" for t in tags] + ["ServingConfirm_Trap serving_u0.9"]
    assert record["protocol"]["validation_seed"] == 100 and record["seeds"] == [1, 2]
    assert record["backend"] == ("ray" if ray else "local") and record["address"] is None
    region = yaml.safe_load((study / "regions" / "Serving_Trap_generator.yaml").read_text())
    assert region == {"generator_seed": 3571, "servers": 10}  # the protocol's seed, quick's size
    for t in tags:
        folder = results / "eval" / f"Serving_Trap_{t}"
        config = yaml.safe_load((folder / "config.yaml").read_text())
        assert config["split"] == "test" and config["eval_seeds"] == [0, 1] and config["max_steps"] == 400
        assert {k: config["serving"][k] for k in slo} == slo
        summary = pd.read_csv(folder / "summary.csv")
        assert {"TopoFreeRL", "round_robin", "kv_jsq", "greedy_queue_tuned", "least_loaded_tuned"} <= set(summary["algo"])
        assert not {"lookahead", *QUICK["skip"]} & set(summary["algo"]) and summary["slo_attainment"].between(0, 1).all()
        assert (results / "figures" / f"results_table_{t}.csv").is_file()
        paired = results / "figures" / f"results_table_{t}_paired.csv"
        assert paired.is_file() == (t not in record["unpaired"])
        if paired.is_file():
            assert set(pd.read_csv(paired)["reference"]) == {record["reference"]}
    assert record["unpaired"] != tags  # at least one setting is paired with the reference
    confirmation = yaml.safe_load((results / "eval" / "ServingConfirm_Trap_serving_u0.9" / "config.yaml").read_text())
    assert confirmation["eval_seeds"] == [1000, 1001] and confirmation["zero_shot"]
    figures = results / "figures"
    for name in ("serving_load_Serving_Trap.png", "serving_cdf_serving_u0.9.png", "pareto_serving_u0.9.png",
                 "slo_scale_serving_u0.9.png", "verdicts_serving.csv"):
        assert (figures / name).stat().st_size > 100, name
    assert "| SLO attainment | u0.5 | u0.9 |" in proc.stdout and "| TopoFreeRL |" in proc.stdout  # the overview
    timelines = sorted(p.parent.name for p in (study / "timeline").rglob("timeline.csv"))
    assert (figures / "serving_timeline.png").is_file() == bool(timelines)
    # a second run goes on where the first ended: nothing is trained, tuned or evaluated again
    again = run_script("total/reproduce_serving.py", "--quick", "--sweep", str(sweep), "--trace",
                       "--results", str(results), "--workers", "2")
    assert again.stdout.count("finished, skipped") == 2 and "tuning on the train split: reusing" in again.stdout
    assert again.stdout.count("finished before with the same arguments and runs, not run again") == len(tags) + 1
    assert yaml.safe_load((results / "figures" / "reproduce_serving.yaml").read_text())["reference"] == record["reference"]


def record_protocol() -> dict:
    from total.reproduce import load_studies
    return load_studies()["serving"].protocol


def test_a_trace_setting_is_tagged_by_its_arrivals_and_tokens():
    from total.reproduce_serving import TRACES, tag
    assert tag(0.9) == "serving_u0.9"
    assert tag(0.9, TRACES[0]) == "serving_u0.9_trace-AzureLLMInferenceTrace_conv"


def test_an_arrival_trace_and_a_token_trace_of_one_file_get_different_tags():
    from edgesim.serving import SERVING, Serving
    from total.reproduce_serving import TRACES
    conv, code = (str(t) for t in TRACES)
    tags = [SERVING.tag(Serving(load=0.9, **kw)) for kw in (
        {"arrival_trace": conv}, {"token_trace": conv}, {"arrival_trace": conv, "token_trace": code})]
    assert tags == ["serving_u0.9_arr-AzureLLMInferenceTrace_conv", "serving_u0.9_tok-AzureLLMInferenceTrace_conv",
                    "serving_u0.9_arr-AzureLLMInferenceTrace_conv_tok-AzureLLMInferenceTrace_code"]


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p | {"loads": [0.5, 2.0]}, r"serving\.protocol\.loads: expected a list of loads in \(0, 1\.2\], got"),
    (lambda p: p | {"evaluation": {**p["evaluation"], "max_steps": 0}}, r"evaluation\.max_steps: expected a positive"),
    (lambda p: p | {"validation": {"load": 0.9}}, r"validation\.seed: expected a seed, got nothing"),
    (lambda p: p | {"eval_seeds": [100, 1]}, "the test, validation and confirmation evaluation seeds must differ"),
    (lambda p: p | {"slo": {"ttft_ms": 2500.0}}, r"slo\.tpot_ms: expected milliseconds > 0, got nothing"),
])
def test_a_bad_protocol_field_ends_the_study_with_one_line(change, expected):
    from dataclasses import replace

    from total.reproduce import load_studies
    from total.reproduce_serving import Protocol
    study = load_studies()["serving"]
    assert Protocol.from_study(study).max_steps == study.protocol["evaluation"]["max_steps"]
    with pytest.raises(SystemExit, match=expected):
        Protocol.from_study(replace(study, protocol=change(study.protocol)))


@pytest.mark.parametrize("study", ["total/reproduce.py", "total/reproduce_serving.py", "total/reproduce_contention.py",
                                   "total/reproduce_claims.py"])
def test_an_address_without_the_ray_backend_is_refused_not_ignored(study, tmp_path):
    proc = run_script(study, "--quick", "--address", "auto", "--results", str(tmp_path / "r"), check=False)
    assert proc.returncode == 2 and "--address names a Ray cluster: it needs --backend ray" in proc.stderr
    assert not (tmp_path / "r").exists()
