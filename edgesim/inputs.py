"""Checks every input door shares: files, names and numbers, checked once here whichever way they come in
(command line, YAML, sweep file, checkpoint, trace, dataset, Gym argument, Python API).

Each check raises `InputError` (a ValueError) whose message names the input and what was expected, so a
script turns it into one `error:` line. The module depends on nothing else of the project, so the
simulator, the shared machinery and the scripts can all import it.
"""
from __future__ import annotations

import math
import os
import stat
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np

MiB = 1 << 20
# The largest file any input door reads: the biggest shipped region's CSVs are ~1 MiB and the Azure
# traces ~2 MiB, so 256 MiB is far above any legitimate input and well below the machine's memory.
MAX_INPUT_BYTES = 256 * MiB
MAX_SEED = 2**32 - 1  # numpy's and torch's seeds alike accept [0, 2**32)
MAX_EPISODES = 10_000_000  # per evaluation or epoch: a week of simulation on the 2-core machine
MAX_WORLDS = 1 << 16  # batched worlds of one simulator (memory: a few KB each on 500 servers)
MAX_SLOTS = 1 << 24  # workflows in flight in one contention simulator, worlds x max_in_flight (~100 bytes each)
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.+")


class InputError(ValueError):
    """A bad input: the message names it and says what was expected."""


def regular_file(path: str | os.PathLike, what: str = "file", max_bytes: int = MAX_INPUT_BYTES) -> Path:
    """`path` as a Path if it is a regular file of at most `max_bytes` bytes. A FIFO, a device such as
    /dev/zero, a folder or a huge file is refused before a byte is read (reading one could hang or
    exhaust memory)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{p}: {what} not found") from None
    except OSError as e:
        raise InputError(f"{p}: {what} cannot be read ({e.strerror or e})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p}: {what} is a folder, expected a file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{p}: {what} is not a regular file (a pipe, socket or device cannot be read safely)")
    if st.st_size > max_bytes:
        raise InputError(f"{p}: {what} is {st.st_size / MiB:.0f} MiB, more than the {max_bytes / MiB:.0f} MiB "
                         "this toolkit reads")
    return p


def read_text(path: str | os.PathLike, what: str = "file", max_bytes: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of a regular file (`regular_file`), or an InputError naming it."""
    p = regular_file(path, what, max_bytes)
    try:
        return p.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{p}: {what} is not UTF-8 text (a binary file?)") from None
    except OSError as e:
        raise InputError(f"{p}: {what} cannot be read ({e.strerror or e})") from None


def plain_name(value: Any, what: str = "name") -> str:
    """A name that is only a name: non-empty, letters, digits and `_-.+`, not `.` or `..`, no path
    separator. Region and run names become folder names, so `../x` would write outside the results."""
    if not isinstance(value, str) or not value or value in (".", "..") or value.startswith(".") \
            or not set(value) <= NAME_CHARS or len(value) > 200:
        raise InputError(f"{what}: expected a plain name (letters, digits, _ - . +; no '/' or leading '.'), "
                         f"got {value!r}")
    return value


def integer(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (not a bool, not a float such as 3.7 or a string such as '3') in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise InputError(f"{what}: expected an integer{_bounds(lo, hi)}, got {value!r} ({type(value).__name__})")
    v = int(value)
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise InputError(f"{what}: expected an integer{_bounds(lo, hi)}, got {v}")
    return v


def number(value: Any, what: str, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number (not a bool or string) in the given range."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise InputError(f"{what}: expected a finite number{_bounds(lo, hi, lo_open, hi_open)}, got {value!r}")
    v = float(value)
    if (lo is not None and (v < lo or (lo_open and v == lo))) or (hi is not None and (v > hi or (hi_open and v == hi))):
        raise InputError(f"{what}: expected a finite number{_bounds(lo, hi, lo_open, hi_open)}, got {v!r}")
    return v


def choice(value: Any, what: str, options: Sequence[str]) -> str:
    """One of the strings `options` (a split, an order, a mode), never a near miss or another type."""
    if not isinstance(value, str) or value not in options:
        raise InputError(f"{what}: expected one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def flag(value: Any, what: str) -> bool:
    """A bool (numpy's too), not a truthy string such as 'no' that would silently mean True."""
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{what}: expected True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def _bounds(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    parts = ([f"{'>' if lo_open else '>='} {_show(lo)}"] if lo is not None else []) + \
            ([f"{'<' if hi_open else '<='} {_show(hi)}"] if hi is not None else [])
    return f" {' and '.join(parts)}" if parts else ""


def _show(bound: float) -> str:
    """A bound as short as `:g` writes it, unless that loses digits (2**32 - 1, not 4.29497e+09)."""
    short = f"{bound:g}"
    return short if float(short) == bound else str(bound)
