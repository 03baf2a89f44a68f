"""How total/evaluate_all.py groups a setting's evaluations: the rules that may share a simulator side by side in one
and the learned runs that decide their own rows alone (split over the workers); every rule that draws for the batch,
every planner of each row and every learned run that cannot decide its rows alone in a simulator of its own."""
from __future__ import annotations

import math

from schedkit.registry import get
from total.evaluate_all import Job, evaluation_units

RULES = ["greedy_queue", "random", "least_loaded", "kv_jsq", "lookahead", "jsq"]


def jobs() -> list[Job]:
    learned = Job("TopoFreeRL", None, 1.0, "run1")  # alone by default
    return [learned, *(Job(name, None, math.nan, "", alone=not get(name).shares_a_simulator()) for name in RULES),
            Job("STARK", None, 1.0, "run2", alone=False)]  # one that decides its own rows alone


def test_rules_that_draw_for_the_batch_or_plan_each_row_go_alone_by_their_class():
    names = ["oracle", "greedy", "random", "p2c", "lookahead", "round_robin"]
    assert [name for name in names if not get(name).shares_a_simulator()] == ["random", "p2c", "lookahead"]


def test_deterministic_rules_share_a_simulator_and_the_others_go_alone():
    pending = list(range(8))
    assert evaluation_units(jobs(), pending, True, 1) == [[1, 3, 4, 6, 7], [0], [2], [5]]
    assert evaluation_units(jobs(), pending, True, 2) == [[1, 3, 4], [6, 7], [0], [2], [5]]
    assert evaluation_units(jobs(), pending, True, 3) == [[1, 3], [4, 6], [7], [0], [2], [5]]
    # only what is pending, and nothing side by side where the profile cannot batch worlds
    assert evaluation_units(jobs(), [0, 3, 6], True, 1) == [[3, 6], [0]]
    assert evaluation_units(jobs(), pending, False, 2) == [[i] for i in pending]
