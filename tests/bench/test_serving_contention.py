"""bench/serving_contention.py through the shell on a small generated region: one JSON row per (load,
scheduler) with the serving statistics, and checks computed from those rows."""
from __future__ import annotations

import json

import pytest
from conftest import one_line_error, run_script


def test_rows_and_checks_agree(tmp_path):
    out = tmp_path / "contention.json"
    run_script("bench/serving_contention.py", "--servers", "8", "--loads", "0.3", "0.8", "--policies", "least_loaded",
               "random", "--spread-of", "least_loaded", "random", "--worlds", "1", "--warmup", "20", "--episodes", "6",
               "--max-in-flight", "256", "--max-steps", "300", "--json", str(out), "--no-progress")
    record = json.loads(out.read_text())
    rows = {(r["load"], r["policy"]): r for r in record["rows"]}
    assert set(rows) == {(load, p) for load in (0.3, 0.8) for p in ("least_loaded", "random")}
    for r in rows.values():
        assert 0 <= r["slo_attainment"] <= 1 and r["steps"] <= 300 and 0 <= r["unfinished"] <= 6
        assert 0 < r["utilisation"] <= 1.2 and 0 < r["busy_share"] <= 1 and r["mean_queue_wait_ms"] >= 0
    for load in ("0.3", "0.8"):
        check = record["checks"][load]
        slo = [rows[(float(load), p)]["slo_attainment"] for p in ("least_loaded", "random")]
        assert check["spread_points"] == pytest.approx(100 * (max(slo) - min(slo)))
        assert check["stable_utilisation_error"] == pytest.approx(rows[(float(load), "least_loaded")]["utilisation"]
                                                                   - float(load))
    assert set(record["checks"]["targets"]) == {"utilisation_within_0.05", "spread_at_highest_load_>=_20_points",
                                                "least_loaded_waits_at_highest_load", "spread_grows_with_load"}


def test_a_stopped_run_resumes_with_the_rows_it_had(tmp_path):
    """The JSON is rewritten after every evaluation; --resume keeps its rows (not run again: same wall time)
    and runs the rest; a file of other settings is refused in one line."""
    out = tmp_path / "contention.json"
    common = ["--servers", "8", "--loads", "0.5", "--spread-of", "least_loaded", "random", "--worlds", "1",
              "--warmup", "20", "--episodes", "6", "--max-in-flight", "256", "--max-steps", "300", "--json", str(out),
              "--no-progress"]
    run_script("bench/serving_contention.py", *common, "--policies", "least_loaded")
    first = json.loads(out.read_text())["rows"][0]
    proc = run_script("bench/serving_contention.py", *common, "--policies", "least_loaded", "random", "--resume")
    assert "least_loaded: kept from" in proc.stdout
    record = json.loads(out.read_text())
    assert record["complete"] and [r["policy"] for r in record["rows"]] == ["least_loaded", "random"]
    assert record["rows"][0] == first
    other = [a if a != "300" else "301" for a in common]
    proc = run_script("bench/serving_contention.py", *other, "--policies", "random", "--resume", check=False)
    one_line_error(proc, "resume only the same run")
