"""Atomic file writes: a crash or Ctrl-C never leaves a half-written result behind.

Files get the permissions an ordinary `open()` would give them (0666 minus the umask), so a team
sharing a `results/` folder can read each other's runs; `mkstemp` alone would make them 0600.
"""
from __future__ import annotations

import json
import math
import os
import signal
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()
TMP_SUFFIX = ".tmp"


@contextmanager
def interrupts_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM until the block ends, where the platform can, for a step that must happen whole
    or not at all (a temp file's creation and the `try` that removes it; a process pool's start, see
    total/evaluate_all.py). The signal is delivered after. A process forked inside inherits the held mask.
    The mask alone is not enough: another thread of the process may receive the signal, and Python then runs
    the handler in the main thread at once, so in the main thread the handlers only note a signal until the end."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    noted: list[int] = []
    swapped = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(sig) is not None:  # None: a handler not set from Python, which Python cannot restore
                swapped[sig] = signal.signal(sig, lambda signum, _frame: noted.append(signum))
    held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, held)
        for sig, handler in swapped.items():
            signal.signal(sig, handler)
        if noted:
            signal.raise_signal(noted[0])


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temp file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with interrupts_held():
        return _write_and_rename(path, data)


def _write_and_rename(path: Path, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        Path(tmp).unlink(missing_ok=True)
        if e.filename is None:  # a failed write says no file: name the one being written
            e.filename = str(path)
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temp files a killed writer left in `folder` (call only while holding the folder's lock)."""
    folder = Path(folder)
    stale = sorted(folder.glob(f".*{TMP_SUFFIX}")) if folder.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def _finite(obj: Any, where: str = "") -> Any:
    """JSON has no NaN or Infinity: such a value becomes null, with a warning naming its key."""
    if isinstance(obj, float) and not math.isfinite(obj):
        warnings.warn(f"{where or 'value'} is {obj}; written as null (JSON has no NaN/Infinity)", stacklevel=4)
        return None
    if isinstance(obj, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    return obj


def write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def write_yaml(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False))


def write_csv(path: str | Path, df: pd.DataFrame) -> Path:
    return atomic_write_text(path, df.to_csv(index=False))


def write_csv_or_remove(path: str | Path, df: pd.DataFrame | None) -> None:
    """Write an optional output (`df`), or remove a stale one an earlier evaluation left where it has none."""
    if df is not None:
        write_csv(path, df)
    else:
        Path(path).unlink(missing_ok=True)
