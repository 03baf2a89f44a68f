"""How total/evaluate_all.py groups a setting's evaluations: the rules that may share a simulator side by side in one
(split over the workers); every learned run, every rule that draws for the batch and every planner of each row alone."""
from __future__ import annotations

import math

from total.evaluate_all import Job, evaluation_units, shares_a_simulator

RULES = ["greedy_queue", "random", "least_loaded", "kv_jsq", "lookahead", "jsq"]


def jobs() -> list[Job]:
    learned = Job("TopoFreeRL", None, 1.0, "run1")  # a learned run: alone by default
    return [learned, *(Job(name, None, math.nan, "", alone=not shares_a_simulator(name)) for name in RULES)]


def test_rules_that_draw_for_the_batch_or_plan_each_row_go_alone_by_their_class():
    names = ["oracle", "greedy", "random", "p2c", "lookahead", "round_robin"]
    assert [name for name in names if not shares_a_simulator(name)] == ["random", "p2c", "lookahead"]


def test_deterministic_rules_share_a_simulator_and_the_others_go_alone():
    pending = list(range(7))
    assert evaluation_units(jobs(), pending, True, 1) == [[1, 3, 4, 6], [0], [2], [5]]
    assert evaluation_units(jobs(), pending, True, 2) == [[1, 3], [4, 6], [0], [2], [5]]
    assert evaluation_units(jobs(), pending, True, 3) == [[1, 3], [4], [6], [0], [2], [5]]
    # only what is pending, and nothing side by side where the profile cannot batch worlds
    assert evaluation_units(jobs(), [0, 3, 6], True, 1) == [[3, 6], [0]]
    assert evaluation_units(jobs(), pending, False, 2) == [[i] for i in pending]
