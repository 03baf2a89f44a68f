"""Shared fixtures: the public reference sample (skipped when ../shared is absent) and a small
generated dataset made through the generator's own command line."""
from __future__ import annotations

import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
torch.set_num_threads(1)  # one thread per test process: pytest-xdist runs one process per core


def run_script(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run a project script from the repo root exactly as a user would. No wall-clock timeout: a busy
    machine makes a test slower, never failed."""
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def sigint_enabled() -> None:
    """`preexec_fn` of a child the test will Ctrl-C: a job started in the background by a shell
    without job control inherits SIGINT ignored, and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def reference_root() -> Path:
    if not (REFERENCE / "Server1_Trap" / "servers.csv").exists():
        pytest.skip("../shared/reference is absent (a fresh clone has none)")
    return REFERENCE


@pytest.fixture(scope="session")
def reference_ds(reference_root):
    from edgesim.dataset import load_dataset
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_dataset(reference_root, "Server1_Trap")


@pytest.fixture(scope="session")
def small_root(tmp_path_factory) -> Path:
    """Two small generated regions (80 servers each) under one data root."""
    root = tmp_path_factory.mktemp("data")
    run_script("data1/generate.py", "--servers", "80", "--regions", "2", "--trap-fraction", "0.1", "--seed", "3",
               "--train-tasks", "60", "--test-tasks", "20", "--out", str(root / "multi"))
    run_script("data1/generate.py", "--servers", "80", "--regions", "1", "--trap-fraction", "0.1", "--seed", "4",
               "--train-tasks", "60", "--test-tasks", "20", "--out", str(root / "Small_Trap"))
    return root


@pytest.fixture(scope="session")
def small_ds(small_root):
    from edgesim.dataset import load_dataset
    return load_dataset(small_root, "Small_Trap")


@pytest.fixture(scope="session")
def default_ds():
    """The committed default dataset (made by data1/generate.py)."""
    from edgesim.dataset import load_dataset
    return load_dataset(ROOT / "data1", "Server1_Trap")
