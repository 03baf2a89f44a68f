"""Checks every input door shares: files, names and numbers, checked once here whichever way they come in
(command line, YAML, sweep file, checkpoint, trace, dataset, Gym argument, Python API).

Each check raises `InputError` (a ValueError) whose message names the input and what was expected, so a
script turns it into one `error:` line. The module depends on nothing else of the project, so the
simulator, the shared machinery and the scripts can all import it.
"""
from __future__ import annotations

import dataclasses
import math
import os
import stat
from collections.abc import Sequence
from numbers import Integral, Real
from pathlib import Path
from typing import Any, NamedTuple

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
        raise InputError(f"{what + ': ' if what else ''}expected a plain name (letters, digits, _ - . +; "
                         f"no '/' or leading '.'), got {shown(value)}")
    return value


def integer(value: Any, what: str, lo: int | None = None, hi: int | None = None) -> int:
    """An integer (not a bool, not a float such as 3.7 or a string such as '3') in [lo, hi]."""
    return int(Range(lo, hi, integer=True).check(value, what))


def number(value: Any, what: str, lo: float | None = None, hi: float | None = None,
           lo_open: bool = False, hi_open: bool = False) -> float:
    """A finite real number (not a bool or string) in the given range."""
    return float(Range(lo, hi, False, lo_open, hi_open).check(value, what))


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


def range_text(lo: float | None, hi: float | None, lo_open: bool = False, hi_open: bool = False) -> str:
    """' >= 1 and <= 100' for the bounds given (empty for none)."""
    parts = ([f"{'>' if lo_open else '>='} {_bound(lo)}"] if lo is not None else []) + \
            ([f"{'<' if hi_open else '<='} {_bound(hi)}"] if hi is not None else [])
    return f" {' and '.join(parts)}" if parts else ""


def _bound(x: float) -> str:
    """An integer bound written out (4294967295, 10000000); a real one as short as `:g` writes it unless
    that loses digits."""
    if isinstance(x, int):
        return str(x)
    short = f"{x:g}"
    return short if float(short) == x else str(x)


def shown(value: Any, limit: int = 40) -> str:
    """`repr(value)`, cut to `limit` characters: a message stays one readable line whatever was given."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit - 5]}...{text[-2:]}"


class Range(NamedTuple):
    """The values one setting may take, wherever it is given (a flag, a config key, a sweep field):
    `integer` or a finite real, between `lo` and `hi` (inclusive unless `*_open`). `text` replaces the
    generated description where a name says it better (e.g. "a probability in [0, 1)")."""

    lo: float | None  # None: unbounded
    hi: float | None
    integer: bool = False
    lo_open: bool = False
    hi_open: bool = False
    text: str = ""

    def describe(self) -> str:
        return self.text or ("an integer" if self.integer else "a finite number") + \
            range_text(self.lo, self.hi, self.lo_open, self.hi_open)

    def check(self, value: Any, what: str = "") -> int | float:
        """`value` (an int or float, not a bool or string) if in range, else an InputError naming `what`.
        An integer given for a real setting becomes a float."""
        typed = not isinstance(value, bool) and isinstance(value, Integral if self.integer else Real)
        # an int compares exactly with the bounds however large; only a float can be inf or nan
        if not (typed and (isinstance(value, Integral) or math.isfinite(value)) and self._holds(value)):
            raise self._error(shown(value), what)
        if self.integer:
            return int(value)
        try:
            return float(value)
        except OverflowError:  # an int beyond every float (possible only without an upper bound)
            raise self._error(shown(value), what) from None

    def parse(self, text: str, what: str = "") -> int | float:
        """A command-line word read as this setting: an integer written out (not 1e3 or 2**64) or a number."""
        try:
            value: int | float = int(text) if self.integer else float(text)
        except ValueError:
            raise self._error(shown(text), what) from None
        return self.check(value, what)

    def _error(self, got: str, what: str) -> InputError:
        return InputError(f"{what + ': ' if what else ''}expected {self.describe()}, got {got}")

    def _holds(self, v: Any) -> bool:
        above = self.lo is None or (v > self.lo if self.lo_open else v >= self.lo)
        return above and (self.hi is None or (v < self.hi if self.hi_open else v <= self.hi))


def ints(lo: int, hi: int) -> Range:
    """The integers in [lo, hi]."""
    return Range(lo, hi, integer=True)


def reals(lo: float, hi: float, lo_open: bool = False, hi_open: bool = False, text: str = "") -> Range:
    """The finite reals between lo and hi."""
    return Range(lo, hi, False, lo_open, hi_open, text)


SEEDS = ints(0, MAX_SEED)


def parameters(cls: type, block: Any, name: str, error: type[InputError]) -> Any:
    """A profile's parameter dataclass `cls` built from its config block `name:` (a mapping or None for the
    defaults); a non-mapping or an unknown key is one `error` naming the block and the known keys."""
    if block is not None and not isinstance(block, dict):
        raise error(f"{name}: expected a mapping of parameters, got {block!r}")
    given = dict(block or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(map(str, given)) - known)
    if unknown:
        raise error(f"unknown {name} key(s) {unknown}; known: {sorted(known)}")
    return cls(**given)
