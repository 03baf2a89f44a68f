"""The test harness itself: a script run in the test process (`run_script`'s default) behaves as the
same command in a child process, so the suite's in-process runs test what a user's shell runs."""
from __future__ import annotations

import pandas as pd
import pytest
from conftest import ROOT, run_script


def both_ways(*args: str, cwd=ROOT):
    return (run_script(*args, check=False, cwd=cwd, in_process=True),
            run_script(*args, check=False, cwd=cwd, in_process=False))


def test_a_run_writes_the_same_numbers_in_process_and_in_a_child_process(tmp_path):
    args = ("Heuristics/inference.py", "--policy", "random", "--episodes", "12", "--seed", "3", "--no-progress")
    for out, in_process in (("here", True), ("child", False)):
        proc = run_script(*args, "--out", out, cwd=tmp_path, in_process=in_process)
        assert proc.stdout.count("wrote") == 1 and not proc.stderr
    here, child = (pd.read_csv(tmp_path / out / "episodes.csv").drop(columns="decision_ms") for out in ("here", "child"))
    assert len(here) == 12 and here["reward"].std() > 0
    pd.testing.assert_frame_equal(here, child)


@pytest.mark.parametrize("args, code", [
    (("Heuristics/inference.py", "--episodes", "zero"), 2),                     # argparse: usage and exit 2
    (("Heuristics/inference.py", "--region", "Missing", "--episodes", "2"), 1),  # sys.exit("error: ...")
    (("TopoFreeRL/train.py", "--set", "no_such_key=1"), 1),                    # a config error
])
def test_errors_give_the_same_exit_code_and_message_both_ways(args, code):
    here, child = both_ways(*args)
    assert here.returncode == child.returncode == code
    assert here.stderr == child.stderr and here.stderr.strip() and "Traceback" not in here.stderr
    assert here.stdout == child.stdout


def test_an_uncaught_exception_is_exit_code_1_with_its_traceback(tmp_path):
    script = tmp_path / "boom.py"
    script.write_text("import sys\nprint('before')\nraise ValueError('boom')\n")
    here, child = both_ways(str(script))
    assert here.returncode == child.returncode == 1
    assert here.stdout == child.stdout == "before\n"
    for proc in (here, child):
        assert proc.stderr.splitlines()[-1] == "ValueError: boom" and "Traceback" in proc.stderr
