"""bench/against.py's timed snippet builds the simulator of the profile it is asked for (before, `--profiles serving`
silently timed the paper simulator) and refuses a profile it does not know."""
from __future__ import annotations

import sys

import pytest
import torch

from bench.against import TIMED_RUN


def run_snippet(monkeypatch, root, profile: str) -> dict:
    """TIMED_RUN in this process, as `python -c TIMED_RUN ROOT REGION 2 1 PROFILE` runs it; its namespace."""
    monkeypatch.setattr(sys, "argv", ["-c", str(root), "Small_Trap", "2", "1", profile])
    namespace: dict = {}
    grad, threads = torch.is_grad_enabled(), torch.get_num_threads()
    try:
        exec(TIMED_RUN, namespace)  # noqa: S102 -- the repository's own snippet
    finally:
        torch.set_grad_enabled(grad)
        torch.set_num_threads(threads)
    return namespace


@pytest.mark.parametrize("profile, simulator", [("paper", "Simulator"), ("contention", "ContentionSimulator"),
                                                ("serving", "ServingSimulator")])
def test_each_profile_is_timed_on_its_own_simulator(monkeypatch, capsys, small_root, profile, simulator):
    namespace = run_snippet(monkeypatch, small_root, profile)
    assert type(namespace["sim"]).__name__ == simulator
    assert float(capsys.readouterr().out.strip()) > 0  # decisions per second


def test_an_unknown_profile_is_refused(monkeypatch, small_root):
    with pytest.raises(SystemExit, match="expected paper, contention or serving"):
        run_snippet(monkeypatch, small_root, "servin")
