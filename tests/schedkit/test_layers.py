"""The packages import one another in one direction only: edgesim at the bottom, schedkit above it,
the schedulers (Heuristics, TopoFreeRL, ...) and total on top. A scheduler package importing another
scheduler package makes a circle that a newcomer has to untangle before changing either."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

SCHEDULERS = ("Heuristics", "TopoFreeRL", "PPO_algorithm", "PFAPPO", "Stark_Scheduler")
PACKAGES = ("edgesim", "schedkit", *SCHEDULERS, "total")


def imported_packages(folder: Path) -> set[str]:
    """The top-level project packages that any module of `folder` imports (at any depth, lazy ones included)."""
    found: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return (found & set(PACKAGES)) - {folder.name}


def test_no_circle_between_packages():
    graph = {p: imported_packages(ROOT / p) for p in PACKAGES}
    circles = sorted(f"{a} <-> {b}" for a in graph for b in graph[a] if a < b and a in graph[b])
    assert circles == []


@pytest.mark.parametrize("package", ["edgesim", "schedkit"])
def test_lower_layers_import_no_scheduler(package):
    assert imported_packages(ROOT / package) & set(SCHEDULERS) == set()


@pytest.mark.parametrize(("package", "blocked"), [("Heuristics.policies", "TopoFreeRL"),
                                                  ("TopoFreeRL.agent", "Heuristics")])
def test_imports_without_the_other_scheduler(package, blocked):
    """Each of the two packages that shared the scores loads with the other one made unimportable."""
    code = (f"import sys; sys.modules[{blocked!r}] = None; import {package}; "
            f"assert not any(m == {blocked!r} or m.startswith({blocked + '.'!r}) for m in sys.modules if sys.modules[m])")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
