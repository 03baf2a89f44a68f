"""total/decide.py: a sweep's candidates judged at its study's validation setting by the rule its file states."""
from __future__ import annotations

import pandas as pd
import pytest
import yaml
from conftest import ROOT

from total.decide import main, verdicts
from total.reproduce import load_studies

RESIDUAL = ROOT / "sweeps" / "serving_residual.yaml"


def test_the_decision_reads_the_validation_setting_and_the_sweeps_own_runs(capsys):
    main(["--sweep", str(RESIDUAL), "--dry-run", "--workers", "2"])
    out = capsys.readouterr().out
    evaluate = next(line for line in out.splitlines() if "total/evaluate_all.py" in line).split()
    protocol = load_studies()["serving"].protocol

    def after(flag: str, n: int = 1) -> list[str]:
        i = evaluate.index(flag)
        return evaluate[i + 1:i + 1 + n]

    assert after("--split") == ["train"] and "test" not in evaluate
    assert after("--load") == [f"{protocol['validation']['load']:g}"]
    first = protocol["validation"]["seed"]
    assert after("--eval-seeds", 5) == [str(first + i) for i in range(len(protocol["eval_seeds"]))]
    evaluation = protocol["evaluation"]
    assert [after(f"--{k.replace('_', '-')}")[0] for k in ("worlds", "warmup", "episodes", "max_steps")] == [
        str(evaluation[k]) for k in ("worlds", "warmup", "episodes", "max_steps")]
    assert after("--slo-ttft-ms") == [f"{protocol['slo']['ttft_ms']:g}"]
    runs = after("--only-runs", 11)[:-1]
    assert sorted(r.rsplit("/", 1)[1] for r in runs) == sorted(
        f"Serving_Trap_serving_{v}_seed{s}" for v in ("adopted", "residual") for s in range(42, 47))
    skipped = evaluate[evaluate.index("--skip") + 1:evaluate.index("--workers")]
    assert "greedy_queue" not in skipped and {"least_loaded", "round_robin", "oracle"} <= set(skipped)
    table = next(line for line in out.splitlines() if "total/make_table.py" in line)
    assert "--reference TopoFreeRL@adopted" in table and table.endswith("--slo-margin 0.01")


@pytest.mark.parametrize("decide,needle", [
    ({"study": "serving", "reference": "nothing", "rule": "reward_ci_above_zero"}, "decide.reference"),
    ({"study": "serving", "reference": "adopted", "rule": "p_below_half"}, "decide.rule"),
    ({"study": "contention", "reference": "adopted", "rule": "reward_ci_above_zero"}, "decide.study"),
    ({"study": "serving", "reference": "adopted"}, "'decide'"),
])
def test_a_bad_decide_block_is_one_line_before_anything_runs(tmp_path, decide, needle):
    sweep = yaml.safe_load(RESIDUAL.read_text()) | {"decide": decide}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    with pytest.raises(SystemExit) as e:
        main(["--sweep", str(path), "--dry-run"])
    assert str(e.value).startswith("error:") and needle in str(e.value) and "\n" not in str(e.value)


def test_a_sweep_without_a_decide_block_says_so(tmp_path):
    sweep = yaml.safe_load(RESIDUAL.read_text())
    del sweep["decide"]
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    with pytest.raises(SystemExit, match="no `decide` block"):
        main(["--sweep", str(path), "--dry-run"])


def test_the_rule_adopts_only_a_ci_above_zero_of_a_stable_candidate():
    paired = pd.DataFrame({
        "algo": ["A@up", "A@across", "A@unstable", "greedy_queue"], "reference": "A@ref",
        "d_reward": [0.03, 0.01, 0.05, -0.02], "d_reward_lo": [0.001, -0.01, 0.02, -0.04],
        "d_reward_hi": [0.06, 0.03, 0.08, 0.0], "unfinished": [0, 0, 3, 0]})
    got = {v.candidate: v.adopted for v in verdicts(paired, "A@ref", ["A@up", "A@across", "A@unstable"])}
    assert got == {"A@up": True, "A@across": False, "A@unstable": False}
    with pytest.raises(ValueError, match="A@missing"):
        verdicts(paired, "A@ref", ["A@missing"])
    with pytest.raises(ValueError, match="A@other"):
        verdicts(paired, "A@other", ["A@up"])
