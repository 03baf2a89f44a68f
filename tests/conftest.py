"""Shared fixtures: the public reference sample (skipped when ../shared is absent) and a small
generated dataset made through the generator's own command line."""
from __future__ import annotations

import contextlib
import io
import os
import runpy
import signal
import subprocess
import sys
import traceback
import warnings
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT.parent / "shared" / "reference"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
# tests are grouped by component (edgesim/, schedkit/, algorithms/, inputs/, study/, bench/); a few share
# fixtures-as-modules across groups (e.g. `from test_scripts import SUMMARY_KEYS`), so every group is importable
sys.path[2:2] = [str(group) for group in sorted((ROOT / "tests").iterdir()) if group.is_dir() and group.name != "data"
                 and not group.name.startswith((".", "__"))]
torch.set_num_threads(1)  # one thread per test process: pytest-xdist runs one process per core
IN_PROCESS = os.environ.get("TOPOFREERL_TEST_SUBPROCESS", "") != "1"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fuzz-examples", type=int, default=None,
                     help="examples per property-based fuzz test (tests/inputs/test_fuzz_inputs.py; default: its own, "
                          "a few hundred in all)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--fuzz-examples"):
        os.environ["TOPOFREERL_FUZZ_EXAMPLES"] = str(config.getoption("--fuzz-examples"))


def run_script(*args: str, check: bool = True, cwd: Path = ROOT,
               in_process: bool = IN_PROCESS) -> subprocess.CompletedProcess:
    """Run a project script (a path relative to the repository, then its arguments) from `cwd` as a
    user would, and return its exit code and output. No wall-clock timeout: a busy machine makes a test
    slower, never failed.

    By default the script runs in this test process, as `python SCRIPT ARGS` would run it: its file
    executes as `__main__` with that `sys.argv`, its folder first on `sys.path`, `cwd` as the current
    directory and its output captured; an uncaught exception becomes exit code 1 with its traceback on
    stderr. This saves the interpreter start and the imports (about 3 s a call, most of the suite's
    time). Process-level behaviour (signals, the umask, exit codes seen by a shell) is tested with real
    child processes, `in_process=False` forces one, and TOPOFREERL_TEST_SUBPROCESS=1 runs every script
    in a child process."""
    if not in_process:
        proc = subprocess.run([sys.executable, _argv0(args[0], cwd), *args[1:]], cwd=cwd, capture_output=True,
                              text=True)
    else:
        proc = _run_in_process(args, cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The script failed with exactly one `error:` line on stderr and no traceback; the line holds every needle."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:") or ": error:" in ln]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _argv0(script: str, cwd: Path) -> str:
    """The script as typed: relative from the repository root, absolute from anywhere else."""
    return script if cwd == ROOT else str(ROOT / script)


def _interpreter_warnings() -> None:
    """Warnings as a fresh interpreter shows them (printed to stderr, each once per place; deprecations
    hidden), not recorded by pytest."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)
    warnings.showwarning = lambda message, category, filename, lineno, file=None, line=None: sys.stderr.write(
        warnings.formatwarning(message, category, filename, lineno, line))


def _run_in_process(args: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess:
    """`python ROOT/args[0] args[1:]` in this process; global state the script may change is restored."""
    script = Path(_argv0(args[0], cwd))
    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_path, saved_cwd = sys.argv, sys.path[:], os.getcwd()
    saved_signals = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    saved_torch = torch.is_grad_enabled(), torch.get_default_dtype()
    returncode = 0
    sys.argv = [str(script), *args[1:]]
    sys.path.insert(0, str((cwd / script).parent))
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
            _interpreter_warnings()
            try:
                runpy.run_path(str(cwd / script), run_name="__main__")
            except SystemExit as e:  # what the interpreter does with it at exit
                if isinstance(e.code, int) or e.code is None:
                    returncode = e.code or 0
                else:
                    print(e.code, file=sys.stderr)
                    returncode = 1
            except BaseException:  # noqa: BLE001 - the interpreter prints any other and exits 1
                traceback.print_exc()
                returncode = 1
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        os.chdir(saved_cwd)
        for sig, handler in saved_signals.items():
            signal.signal(sig, handler)
        torch.set_num_threads(1)
        torch.set_grad_enabled(saved_torch[0])
        torch.set_default_dtype(saved_torch[1])
    return subprocess.CompletedProcess([sys.executable, str(script), *args[1:]], returncode, out.getvalue(),
                                       err.getvalue())


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


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory) -> Path:
    """A data root holding the hand-written tiny region (tests/tiny.py) as `tiny`, one per test module."""
    from tiny import write_tiny
    root = tmp_path_factory.mktemp("tiny")
    write_tiny(root / "tiny")
    return root


@pytest.fixture(scope="module")
def tiny_ds(tiny_root):
    from edgesim.dataset import load_dataset
    with pytest.warns(UserWarning):  # the tiny region has a one-step task, skipped
        return load_dataset(tiny_root, "tiny")


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
