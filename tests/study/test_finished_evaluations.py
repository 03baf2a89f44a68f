"""total/finished_evaluations.py: a scheduler's finished evaluation reads back as the rows that were written,
and only for the settings and the scheduler it was made for."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from total.finished_evaluations import Finished, FinishedEvaluations

SETTINGS = {"region": ["Tiny_Trap"], "episodes": 16, "eval_seeds": [0, 1], "max_steps": None}
WHO = {"name": "round_robin", "train_seed": None, "run": ""}


def finished() -> Finished:
    episodes = pd.DataFrame({"algo": ["round_robin"] * 3, "train_seed": [np.nan] * 3, "eval_seed": [0, 0, 1],
                             "run": ["", "", ""], "episode": [0, 1, 0], "task_id": ["007", "1", "T3"],
                             "reward": [-1.25, 0.1 + 0.2, -1 / 3], "finished": [True, False, True],
                             "slo_met": [True, False, False]})
    requests = pd.DataFrame({"algo": ["round_robin"] * 2, "episode": [0, 0], "step": [0, 1],
                             "ttft_ms": [math.pi, 1e-300], "slo_met": [True, False]})
    return Finished(episodes, requests, [{"utilisation": 0.5, "mean_queue_wait_ms": math.nan}], {"bound": -0.75})


def test_an_entry_reads_back_as_written(tmp_path):
    store, written = FinishedEvaluations(tmp_path, SETTINGS, fresh=False), finished()
    store.save(WHO, written)
    got = FinishedEvaluations(tmp_path, dict(SETTINGS), fresh=False).load(dict(WHO))
    assert got is not None
    pd.testing.assert_frame_equal(got.episodes, written.episodes, check_exact=True)
    assert got.requests is not None and written.requests is not None
    pd.testing.assert_frame_equal(got.requests, written.requests, check_exact=True)
    assert got.loads[0]["utilisation"] == 0.5 and math.isnan(got.loads[0]["mean_queue_wait_ms"])
    assert got.extra == {"bound": -0.75}


def test_other_settings_another_scheduler_a_damaged_entry_and_a_fresh_start_evaluate_again(tmp_path):
    FinishedEvaluations(tmp_path, SETTINGS, fresh=False).save(WHO, finished())
    assert FinishedEvaluations(tmp_path, SETTINGS | {"episodes": 32}, fresh=False).load(WHO) is None
    assert FinishedEvaluations(tmp_path, SETTINGS, fresh=False).load(WHO | {"name": "jsq"}) is None
    (entry,) = (tmp_path / "finished").iterdir()
    (entry / "episodes.csv").write_text("algo,reward\nround_robin,-1\n")
    assert FinishedEvaluations(tmp_path, SETTINGS, fresh=False).load(WHO) is None
    FinishedEvaluations(tmp_path, SETTINGS, fresh=False).save(WHO, finished())
    assert FinishedEvaluations(tmp_path, SETTINGS, fresh=True).load(WHO) is None and not (tmp_path / "finished").exists()
