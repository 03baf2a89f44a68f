"""The scheduler registry (schedkit/registry.py): every entry loads and is consistent, and a toy
scheduler added with one registry line runs through total/evaluate_all.py and the table."""
from __future__ import annotations

import pandas as pd
import torch
from conftest import ROOT

from schedkit.registry import SCHEDULERS, Scheduler, heuristics, learned
from total import evaluate_all, make_table


class FirstValidPolicy:
    """The lowest-numbered server that hosts the step's model: a scheduler no one would ship."""

    name = "first_valid"

    def __init__(self, sim, seed: int = 0):
        pass

    def act(self, sim, obs) -> torch.Tensor:
        return sim.valid_mask().float().argmax(1)


def test_every_entry_loads_and_says_what_it_is():
    assert learned() == ["TopoFreeRL", "PPO", "PFAPPO", "STARK"]
    assert set(heuristics()) == {"oracle", "lookahead", "greedy", "greedy_queue", "greedy_switch", "least_loaded", "p2c",
                                 "telemetry", "maxcompute", "random", "round_robin", "jsq", "token_jsq", "kv_jsq"}
    for name, s in SCHEDULERS.items():
        cls = s.load()
        if s.learned:
            assert all((ROOT / s.folder / f).is_file() for f in ("train.py", "inference.py", "config.yaml"))
            assert hasattr(cls, "features") and hasattr(cls, "forward")
        else:
            assert cls.name == name and callable(cls.act)


def test_a_scheduler_added_with_one_registry_line_runs_through_evaluate_all_and_the_table(small_root, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setitem(SCHEDULERS, "first_valid",
                        Scheduler("first_valid", f"{__name__}:FirstValidPolicy", "#123456", linestyle="--", marker="x"))
    results, figures = tmp_path / "results", tmp_path / "figures"
    evaluate_all.main(["--data", str(small_root), "--region", "Small_Trap", "--results", str(results),
                       "--episodes", "12", "--eval-seeds", "0", "--no-progress"])
    summary = pd.read_csv(results / "eval" / "Small_Trap" / "summary.csv").set_index("algo")
    # registry order; the queue-aware and the serving rules are not evaluated in the paper profile
    assert list(summary.index) == ["oracle", "greedy", "maxcompute", "random", "first_valid"]
    episodes = pd.read_csv(results / "eval" / "Small_Trap" / "episodes.csv")
    mine = episodes[episodes["algo"] == "first_valid"]
    assert len(mine) == 12 and summary.loc["first_valid", "reward"] == mine["reward"].mean()
    make_table.main(["--results", str(results), "--region", "Small_Trap", "--figures", str(figures), "--formats", "md"])
    table = (figures / "results_table.md").read_text()
    assert "| first_valid |" in table and "| greedy |" in table
    paired = (figures / "results_table_paired.md").read_text()  # against the oracle, on the same tasks
    assert "| first_valid |" in paired
