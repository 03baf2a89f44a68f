"""total/studies.yaml: what each study of total/reproduce.py makes, checked when loaded (a bad field is
one line naming the file and the field), and the argument templates it drives the scripts with."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from conftest import ROOT

from schedkit.config import ConfigError
from total.reproduce import STUDIES, expand_entry, load_studies
from total.sweep import load_sweep


def test_the_committed_studies_load_with_their_sweeps_and_steps_in_order():
    studies = load_studies()
    assert list(studies) == ["paper", "contention", "claims", "serving"]
    assert [s.name for s in studies["claims"].sweeps] == ["trap_share.yaml", "multi_region.yaml"]
    assert [e.script for e in studies["paper"].steps] == ["total/plot_all_comparison.py"]
    assert [e.script for e in studies["contention"].steps][:2] == ["total/make_table.py", "total/plot_load_curve.py"]
    assert [e.script for e in studies["serving"].steps][-1] == "total/verdicts.py"
    assert studies["serving"].protocol["validation"] == {"load": 0.9, "seed": 100}
    assert all(e.script == "total/evaluate_all.py" for s in studies.values() for e in s.evaluations)
    for study in studies.values():  # every run of every study's sweeps resolves as its train.py will resolve it
        for sweep in study.sweeps:
            assert load_sweep(sweep, trains=True)["budget"], sweep


def mutated(tmp_path: Path, study: str, change) -> Path:
    spec = yaml.safe_load(STUDIES.read_text())
    change(spec[study])
    path = tmp_path / "studies.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize(("field", "change", "expected"), [
    ("code", lambda s: s.update(code="total/reproduce.py"), '"total.<module>:<function>"'),
    ("code", lambda s: s.update(code="total.no_such_module:main"), "a module of total/"),
    ("sweeps", lambda s: s.update(sweeps=["no_such_sweep"]), "a list of names of"),
    ("steps", lambda s: s.update(steps={"script": "total/make_table.py"}), "a list"),
    ("steps[0].script", lambda s: s["steps"][0].update(script="total/no_such_figure.py"), "an existing script"),
    ("steps[0].script", lambda s: s["steps"][0].update(script="/etc/passwd"), "an existing script"),
    ("steps[0].args", lambda s: s["steps"][0].update(args=["--rate", 8]), "a list of strings"),
    ("steps[0].for", lambda s: s["steps"][0].update({"for": {"a": "as", "b": "bs"}}), "one `name: list` pair"),
    ("steps[0].log", lambda s: s["steps"][0].update(log="x"), "one of script, args, for, when"),
    ("steps[0].colour", lambda s: s["steps"][0].update(colour="red"), "one of"),
    ("evaluations[0].log", lambda s: s["evaluations"][0].pop("log"), "a value"),
    ("figures", lambda s: s.update(figures=[]), "every one of code, sweeps, evaluations, steps, margins and optionally "
                                                "protocol"),
    ("margins", lambda s: s.pop("margins"), "every one of"),
    ("protocol", lambda s: s.update(protocol=[1]), "a mapping of the study's settings"),
    ("margins", lambda s: s.update(margins={"reward": 0.01}), "a mapping of reward, p99_latency, slo_attainment"),
    ("margins.p99_latency", lambda s: s["margins"].update(p99_latency=2), "a finite number > 0 and < 1"),
    ("margins.reward", lambda s: s["margins"].update(reward="0.01"), "a finite number > 0 and < 1"),
    ("steps", lambda s: s.pop("steps"), "every one of"),
])
def test_a_bad_field_is_one_line_naming_the_file_and_the_field(tmp_path, field, change, expected):
    path = mutated(tmp_path, "paper", change)
    with pytest.raises(ConfigError) as e:
        load_studies(path)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: paper.{field}: expected ") and expected in message


def test_an_empty_or_unreadable_file_is_one_line(tmp_path):
    path = tmp_path / "studies.yaml"
    path.write_text("")
    with pytest.raises(ConfigError, match="expected a mapping of study names"):
        load_studies(path)
    path.write_text("paper: [unclosed")
    with pytest.raises(ConfigError) as e:
        load_studies(path)
    assert "\n" not in str(e.value)


def test_templates_expand_lists_loops_and_conditions():
    contention = load_studies()["contention"]
    values = {"results": "R", "figures": "F", "region": "Reg", "tags": ["contention_r2", "contention_r8"],
              "rates": ["2", "8"], "tune_tag": "contention_r8", "tune_rate": "8", "tune_rate_evaluated": False,
              "severity_scales": [], "zero_shot_region": "Big", "confirmation_region": "Fresh", "paired_tables": ["a.csv"],
              "reference": "greedy_queue_tuned",
              "margins": {"reward": 0.01, "p99_latency": 0.02}}
    calls = [(e.script, argv) for i, e in enumerate(contention.steps) for argv, _ in expand_entry(e, values, str(i))]
    assert calls[0] == ("total/make_table.py", ["--tag", "contention_r2", "--results", "R", "--figures", "F",
                                                "--region", "Reg", "--reward-margin", "0.01", "--p99-margin", "0.02",
                                                "--reference", "greedy_queue_tuned"])
    assert calls[1][1][0] == "--tag" and calls[1][1][1] == "contention_r8"
    assert calls[2] == ("total/plot_load_curve.py", ["--rates", "2", "8", "--results", "R", "--figures", "F",
                                                     "--region", "Reg"])
    # tune rate not evaluated and no severity scales: no CDF, Pareto or severity figure; the zero-shot and
    # confirmation tables
    assert [s for s, _ in calls] == (["total/make_table.py"] * 2 + ["total/plot_load_curve.py"] + ["total/make_table.py"] * 2
                                     + ["total/verdicts.py"])
    assert calls[3][1][-8:-6] == ["--figures", "F/Big"]
    assert calls[4][1][-8:-6] == ["--figures", "F/confirmation"] and calls[4][1][5] == "Fresh"


def test_a_value_the_study_does_not_provide_ends_with_one_line():
    paper = load_studies()["paper"]
    with pytest.raises(SystemExit) as e:
        list(expand_entry(paper.steps[0], {"results": "R", "figures": "F"}, "paper.steps[0]"))
    assert str(e.value) == f"error: {STUDIES}: paper.steps[0]: the study provides no value {{region}}"


def test_every_study_module_named_in_the_file_has_its_function():
    from total.reproduce import study_main
    for study in load_studies().values():
        assert callable(study_main(study)), study.name
    assert (ROOT / "total" / "studies.yaml") == STUDIES
