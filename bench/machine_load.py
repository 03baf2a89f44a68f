"""The "busy" setting of the benchmarks: one pure-Python spinning process per core beside the
timed work, as when other jobs share the machine; "idle" adds nothing."""
from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

LOADS = ("idle", "busy")


@contextmanager
def machine_load(load: str) -> Iterator[list[subprocess.Popen]]:
    """Run the body under `load`; the spinners (yielded) are stopped when it ends, however it ends."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)] \
        if load == "busy" else []
    try:
        yield spinners
    finally:
        for proc in spinners:
            proc.kill()
            proc.wait()
