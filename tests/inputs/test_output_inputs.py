"""Hard to break: file inputs are regular files of bounded size, outputs are claimed (locked, never
replaced when made with other settings), and figures and tables refuse a broken evaluation in one line.
Everything through the scripts."""
from __future__ import annotations

import os
import resource
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, run_script
from fake_eval import fake_episodes, write_fake_eval
from test_script_inputs import one_line_error

from schedkit.runs import RunLock

HEURISTIC = ["Heuristics/inference.py", "--policy", "greedy", "--episodes", "2", "--no-progress"]
ONLY_GREEDY = ["--skip", "random", "maxcompute", "oracle", "lookahead", "greedy_queue", "least_loaded", "p2c",
               "telemetry"]


@pytest.fixture
def fifo(tmp_path):
    """A FIFO. A reader that opens it anyway (a regression) gets end-of-file instead of hanging the suite:
    a helper thread keeps opening its write end, which succeeds only once a reader is waiting."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    stop = threading.Event()

    def unblock() -> None:
        while not stop.is_set():
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                stop.wait(0.05)
    thread = threading.Thread(target=unblock, daemon=True)
    thread.start()
    yield path
    stop.set()
    thread.join()


def cpu_limited() -> None:
    """A child that reads /dev/zero by mistake is stopped by its CPU time, not left running."""
    resource.setrlimit(resource.RLIMIT_CPU, (120, 120))


def valid_eval(folder: Path) -> Path:
    return write_fake_eval(folder, fake_episodes(episodes=40, seeds=2))


def test_a_fifo_is_refused_as_every_file_input(fifo, tmp_path):
    data = tmp_path / "data" / "Server1_Trap"
    data.mkdir(parents=True)
    for f in (ROOT / "data1" / "Server1_Trap").iterdir():
        if f.name != "tasks.csv":
            (data / f.name).symlink_to(f)
    (data / "tasks.csv").symlink_to(fifo)
    one_line_error(run_script(*HEURISTIC, "--data", str(tmp_path / "data"), "--out", str(tmp_path / "o"),
                              check=False), "tasks.csv", "not a regular file")
    one_line_error(run_script("total/evaluate_all.py", "--tuning", str(fifo), "--results", str(tmp_path / "r"),
                              check=False), str(fifo), "not a regular file")
    one_line_error(run_script("TopoFreeRL/train.py", "--config", str(fifo), "--out", str(tmp_path / "run"),
                              check=False), "not a regular file")
    ev = valid_eval(tmp_path / "results" / "eval" / "Server1_Trap")
    (ev / "episodes.csv").unlink()
    (ev / "episodes.csv").symlink_to(fifo)
    one_line_error(run_script("total/plot_latency_cdf.py", "--results", str(tmp_path / "results"), check=False),
                   "episodes.csv", "not a regular file")
    assert not (tmp_path / "o").exists() and not (tmp_path / "r").exists()


def test_dev_zero_is_refused_before_a_byte_is_read(tmp_path):
    ev = valid_eval(tmp_path / "results" / "eval" / "Server1_Trap")
    (ev / "summary.csv").unlink()
    (ev / "summary.csv").symlink_to("/dev/zero")
    for cmd in (["total/make_table.py", "--results", str(tmp_path / "results")],
                ["total/evaluate_all.py", "--tuning", "/dev/zero", "--results", str(tmp_path / "r")]):
        proc = subprocess.run([sys.executable, *cmd], cwd=ROOT, capture_output=True, text=True, preexec_fn=cpu_limited)
        one_line_error(proc, "not a regular file")


@pytest.mark.parametrize("out,needle", [("file", "is not a folder"), ("/dev/null", "is not a folder"),
                                        ("code", "inside the repository's code"), ("broken", "broken symlink")])
def test_an_output_folder_that_cannot_hold_results_is_refused(tmp_path, out, needle):
    (tmp_path / "file").write_text("my notes")
    (tmp_path / "broken").symlink_to(tmp_path / "nowhere")
    target = {"file": tmp_path / "file", "/dev/null": Path("/dev/null"), "code": ROOT / "schedkit" / "x",
              "broken": tmp_path / "broken"}[out]
    one_line_error(run_script(*HEURISTIC, "--out", str(target), check=False), needle)
    assert (tmp_path / "file").read_text() == "my notes" and not (ROOT / "schedkit" / "x").exists()


def test_a_read_only_output_folder_is_one_line(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: permissions are not enforced")
        one_line_error(run_script(*HEURISTIC, "--out", str(ro), check=False), str(ro))
    finally:
        ro.chmod(0o755)


# ----------------------------------------------------------------------------- overwrite guards

def test_heuristics_never_replace_a_config_made_with_other_policies(tmp_path):
    out = tmp_path / "h"
    run_script(*HEURISTIC[:2], "greedy", "random", *HEURISTIC[3:], "--out", str(out))
    before = (out / "config.yaml").read_bytes()
    one_line_error(run_script(*HEURISTIC[:2], "greedy", "oracle", *HEURISTIC[3:], "--out", str(out), check=False),
                   "config.yaml was made with other settings (policies)", "--overwrite")
    assert (out / "config.yaml").read_bytes() == before and not (out / "oracle").exists()
    run_script(*HEURISTIC[:2], "greedy", "random", *HEURISTIC[3:], "--out", str(out))  # same settings: fine
    run_script(*HEURISTIC[:2], "greedy", "oracle", *HEURISTIC[3:], "--out", str(out), "--overwrite")
    assert (out / "oracle" / "summary.json").exists()


def test_a_file_whose_settings_were_never_recorded_is_not_replaced(tmp_path):
    out = tmp_path / "h"
    out.mkdir()
    (out / "episodes.csv").write_text("my own table\n")
    one_line_error(run_script(*HEURISTIC, "--out", str(out), check=False), "never recorded", "--overwrite")
    assert (out / "episodes.csv").read_text() == "my own table\n"


def test_tune_refuses_to_replace_a_tuning_made_with_other_weights(tmp_path):
    tune = ["Heuristics/tune.py", "--policy", "greedy", "--episodes", "2", "--no-progress", "--out", str(tmp_path / "t")]
    run_script(*tune, "--weights", "0.5", "0.6")
    before = (tmp_path / "t" / "tuning.json").read_bytes()
    one_line_error(run_script(*tune, "--weights", "0.7", check=False), "other settings (weights)")
    assert (tmp_path / "t" / "tuning.json").read_bytes() == before


def test_evaluate_all_keeps_the_test_split_and_refuses_other_settings(tmp_path):
    results = tmp_path / "results"
    base = ["total/evaluate_all.py", "--results", str(results), "--no-progress", *ONLY_GREEDY]
    run_script(*base, "--episodes", "3")
    test_dir = results / "eval" / "Server1_Trap"
    before = {p.name: p.read_bytes() for p in test_dir.iterdir() if p.is_file()}
    run_script(*base, "--episodes", "3", "--split", "train")
    assert (results / "eval" / "Server1_Trap_train" / "summary.csv").exists()
    assert {p.name: p.read_bytes() for p in test_dir.iterdir() if p.is_file()} == before
    one_line_error(run_script(*base, "--episodes", "4", check=False), "other settings (episodes)", "--overwrite")
    assert {p.name: p.read_bytes() for p in test_dir.iterdir() if p.is_file()} == before
    stale = test_dir / ".episodes.csv.x1y2.tmp"  # what a killed evaluate_all leaves
    stale.write_text("partial")
    run_script(*base, "--episodes", "4", "--overwrite")
    assert not stale.exists() and len(pd.read_csv(test_dir / "episodes.csv")) == 4 * 5  # five evaluation seeds


def test_a_table_made_from_other_results_is_not_replaced(tmp_path):
    figures = tmp_path / "figures"
    for name in ("a", "b"):
        valid_eval(tmp_path / name / "eval" / "Server1_Trap")
    run_script("total/make_table.py", "--results", str(tmp_path / "a"), "--figures", str(figures))
    before = (figures / "results_table.csv").read_bytes()
    one_line_error(run_script("total/make_table.py", "--results", str(tmp_path / "b"), "--figures", str(figures),
                              check=False), "results_table.csv was made with other settings (results)")
    assert (figures / "results_table.csv").read_bytes() == before
    run_script("total/make_table.py", "--results", str(tmp_path / "b"), "--figures", str(figures), "--overwrite")


# ----------------------------------------------------------------------------- concurrency

def test_every_writer_is_refused_while_another_process_writes_its_folder(tmp_path):
    results = tmp_path / "results"
    valid_eval(results / "eval" / "Server1_Trap")
    cases = [(tmp_path / "h", [*HEURISTIC, "--out", str(tmp_path / "h")]),
             (tmp_path / "t", ["Heuristics/tune.py", "--policy", "greedy", "--episodes", "2", "--out",
                               str(tmp_path / "t")]),
             (results / "eval" / "Server1_Trap", ["total/evaluate_all.py", "--results", str(results), *ONLY_GREEDY,
                                                  "--overwrite", "--episodes", "2"]),
             (results / "figures", ["total/plot_pareto.py", "--results", str(results)]),
             (results / "figures", ["total/make_table.py", "--results", str(results)])]
    for folder, cmd in cases:
        folder.mkdir(parents=True, exist_ok=True)
        with RunLock(folder):
            before = sorted(p.name for p in folder.iterdir())
            one_line_error(run_script(*cmd, check=False), str(folder), "another process is writing to this folder")
        assert sorted(p.name for p in folder.iterdir()) == before, cmd[0]


def test_two_heuristic_runs_at_once_never_mix_their_files(tmp_path):
    out = tmp_path / "h"
    procs = [subprocess.Popen([sys.executable, *HEURISTIC[:4], str(n), "--no-progress", "--out", str(out)], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in (2, 3)]
    results = [(p.wait(), p.communicate()[1]) for p in procs]
    assert sum(rc == 0 for rc, _ in results) >= 1, results
    for rc, err in results:
        assert rc == 0 or ("another process is writing" in err or "other settings (episodes)" in err), err
    episodes = len(pd.read_csv(out / "episodes.csv"))
    assert pd.read_json(out / "summary.json", typ="series")["episodes"] == episodes


# ----------------------------------------------------------------------------- figures on a broken evaluation

def _break(ev: Path, how: str) -> str:
    episodes = ev / "episodes.csv"
    df = pd.read_csv(episodes, dtype={"run": str})
    if how == "nan":
        df.loc[5, "latency_ms"] = np.nan
        df.to_csv(episodes, index=False)
        return "line 7, column 'latency_ms': expected a finite number"
    if how == "missing column":
        df.drop(columns="cost").to_csv(episodes, index=False)
        return "lacks column(s) cost"
    if how == "binary":
        episodes.write_bytes(bytes(range(256)) * 8)
        return "not UTF-8 text"
    if how == "no rows":
        df.iloc[:0].to_csv(episodes, index=False)
        return "has no rows"
    if how == "text number":
        df["reward"] = df["reward"].astype(object)
        df.loc[2, "reward"] = "abc"
        df.to_csv(episodes, index=False)
        return "line 4, column 'reward'"
    summary = pd.read_csv(ev / "summary.csv")
    summary["reward_lo"] = summary["reward_lo"].astype(object)
    summary.loc[0, "reward_lo"] = "low"
    summary.to_csv(ev / "summary.csv", index=False)
    return "summary.csv line 2, column 'reward_lo': expected a finite number, got 'low'"


@pytest.mark.parametrize("how", ["nan", "missing column", "binary", "no rows", "text number", "summary type"])
@pytest.mark.parametrize("script", ["total/plot_latency_cdf.py", "total/plot_pareto.py", "total/plot_cost_breakdown.py",
                                    "total/make_table.py", "total/compare.py"])
def test_a_broken_evaluation_is_one_line_naming_file_and_column(tmp_path, script, how):
    ev = valid_eval(tmp_path / "eval" / "Server1_Trap")
    needle = _break(ev, how)
    if script == "total/compare.py" and how == "summary type":
        return  # compare reads episodes.csv only
    proc = run_script(script, "--results", str(tmp_path), "--figures", str(tmp_path / "f"), check=False)
    one_line_error(proc, needle)
    assert not (tmp_path / "f").exists() or not [p for p in (tmp_path / "f").iterdir() if p.name != ".lock"]


def test_a_sweep_run_another_process_writes_is_refused_and_its_record_kept(tmp_path):
    from total.sweep import RECORD, Run, execute
    run = Run("TopoFreeRL", 42, ("Server1_Trap",), "paper", 1, 8, str(ROOT / "data1"), str(tmp_path), "cpu", "test",
              2, 0)
    run.dir.mkdir(parents=True)
    with RunLock(run.dir):
        result = execute(run)
    assert result["status"] == "failed" and "another process is writing to this run" in result["reason"]
    assert not (run.dir / RECORD).exists()


def test_a_failed_writer_removes_the_outputs_it_began_and_keeps_what_was_there(tmp_path):
    """An evaluation that stops part-way (an error, Ctrl-C) leaves none of its own new files: a config.yaml no
    record describes would refuse the next run. A file that was there before the claim stays as it was."""
    from schedkit.outputs import claim_output
    fresh = tmp_path / "fresh"
    with pytest.raises(KeyboardInterrupt), claim_output(fresh, {"config.yaml": {"a": 1}, "episodes.csv": {"a": 1}}):
        (fresh / "config.yaml").write_text("a: 1\n")
        raise KeyboardInterrupt
    assert not fresh.exists()  # nothing of the failed run, not even its folder
    with claim_output(fresh, {"config.yaml": {"a": 1}}) as claim:  # the same run again: no refusal
        claim.write_bytes("config.yaml", b"a: 1\n", {"a": 1})
    kept = tmp_path / "kept"
    kept.mkdir()
    (kept / "notes.txt").write_text("mine\n")
    with pytest.raises(RuntimeError), claim_output(kept, {"config.yaml": {"a": 1}, "notes.txt": {"a": 1}},
                                                   overwrite=True):
        (kept / "config.yaml").write_text("a: 1\n")
        raise RuntimeError("stopped")
    assert sorted(p.name for p in kept.iterdir() if p.name != ".lock") == ["notes.txt"]
    assert (kept / "notes.txt").read_text() == "mine\n"
