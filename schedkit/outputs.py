"""Claiming an output folder: the one door every writer of results goes through.

A writer claims its folder before it writes and holds the claim until it is done:
- the folder must be a folder a result may go to: not an existing file or device (`--out /dev/null`),
  not a broken symlink, not one of the repository's code folders;
- the claim takes the lock training runs take (`<folder>/.lock`, schedkit.runs.RunLock), so a second
  process writing there stops with one line instead of mixing its files with the first one's;
- temp files a killed writer left are removed (they are only ever partial);
- each output file's settings are recorded in `<folder>/.outputs.json`; a file made with other
  settings, or one whose settings were never recorded, is replaced only with `--overwrite`. A run with
  the same settings reproduces the same result, so it may rewrite it.
Files under the committed figures (total/figures/) are replaced on request only (that is the flag
that writes there), so they count as overwritable.
"""
from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from edgesim.inputs import InputError, MiB, read_text

from .io import atomic_write_bytes, remove_stale_temps, write_json
from .paths import COMMITTED_FIGURES, REPO
from .runs import RunLock

RECORD = ".outputs.json"
MAX_RECORD_BYTES = 16 * MiB
# the repository's own folders: an output inside one would mix results into the code (or the shipped data)
CODE_FOLDERS = ("edgesim", "schedkit", "total", "Heuristics", "TopoFreeRL", "PFAPPO", "PPO_algorithm",
                "Stark_Scheduler", "bench", "tests", "tools", "docs", "examples", "sweeps", "data1", ".git")

Settings = Mapping[str, Any]


class OutputError(RuntimeError):
    """An output path no result may be written to."""


class OutputExists(OutputError):
    """An output folder already holds a result made with other (or unrecorded) settings."""


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def output_folder(path: str | os.PathLike) -> Path:
    """`path` as a folder results may be written to, created if missing. An existing file, device or
    FIFO, a broken symlink and the repository's code folders are refused with one line."""
    p = Path(path)
    if p.is_symlink() and not p.exists():
        raise OutputError(f"{p}: output folder is a broken symlink (to {os.readlink(p)})")
    if p.exists() and not p.is_dir():
        raise OutputError(f"{p}: output folder exists and is not a folder (a file or device); choose a folder")
    real = p.resolve()
    code = [REPO / name for name in CODE_FOLDERS]
    if (real == REPO or any(_inside(real, c) for c in code)) and not _inside(real, COMMITTED_FIGURES):
        raise OutputError(f"{p}: output folder is inside the repository's code or data ({real}); "
                          "write results under results/ or outside the repository")
    p.mkdir(parents=True, exist_ok=True)
    return p


def recorded_settings(folder: Path) -> dict[str, Any]:
    """{file name: the settings it was made with} of an output folder; {} where there is no readable record
    (then every file in the folder counts as made with unrecorded settings)."""
    path = folder / RECORD
    if not path.exists() and not path.is_symlink():
        return {}
    try:
        data = json.loads(read_text(path, "output record", MAX_RECORD_BYTES))
    except (InputError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def plain(settings: Settings) -> dict[str, Any]:
    """Settings as JSON gives them back (tuples as lists, paths as strings), so a recorded value and
    a new one compare equal exactly when they are the same setting."""
    return json.loads(json.dumps(dict(settings), default=str))


class Claim:
    """A locked output folder (see the module's docstring); use `claim_output`."""

    def __init__(self, folder: Path, overwrite: bool, hint: str):
        self.folder, self.hint = folder, hint
        self.overwrite = overwrite or _inside(folder.resolve(), COMMITTED_FIGURES)
        self.record = recorded_settings(folder)

    def check(self, name: str, settings: Settings) -> None:
        """Refuse (OutputExists) to replace `name` unless it was made with these settings or --overwrite."""
        if self.overwrite:
            return
        old, new = self.record.get(name), plain(settings)
        path = self.folder / name
        if old is None:
            if path.exists() or path.is_symlink():
                raise OutputExists(f"{path} already exists and its settings were never recorded; pass --overwrite "
                                   f"to replace it, or {self.hint} for another folder")
            return
        diff = [k for k in new if not isinstance(old, dict) or old.get(k) != new[k]]
        diff += [k for k in (old if isinstance(old, dict) else {}) if k not in new]
        if diff:
            raise OutputExists(f"{path} was made with other settings ({', '.join(diff)}); pass --overwrite to "
                               f"replace it, or {self.hint} for another folder")

    def note(self, name: str, settings: Settings) -> None:
        """Record that `name` now holds a result made with `settings`."""
        self.record[name] = plain(settings)
        write_json(self.folder / RECORD, self.record)

    def write_bytes(self, name: str, data: bytes, settings: Settings) -> Path:
        """Check, write atomically and record one output file."""
        self.check(name, settings)
        path = atomic_write_bytes(self.folder / name, data)
        self.note(name, settings)
        return path


def _remove_if_unused(folder: Path) -> None:
    """Remove a folder this claim found empty and left with nothing but its lock, so a refused or failed
    writer leaves no trace."""
    if [p.name for p in folder.iterdir()] == [".lock"]:
        (folder / ".lock").unlink()
        folder.rmdir()


@contextlib.contextmanager
def claim_output(folder: str | os.PathLike, outputs: Mapping[str, Settings] | None = None, overwrite: bool = False,
                 hint: str = "--out") -> Iterator[Claim]:
    """Claim `folder` (created if missing) for as long as the block runs: locked, stale temp files
    removed, and every file of `outputs` ({file name: the settings it is made with}) checked before
    anything is computed. When the block ends without an error, `outputs` are recorded as written; when it
    fails, those of `outputs` it created are removed (part of an unfinished result, which no record
    describes and which would block the next run), and files that were there before are kept.
    `hint` names the flag that chooses another folder, for the refusal message."""
    path = output_folder(folder)
    created = not any(path.iterdir())
    with RunLock(path, what="folder"):
        before = {name for name in outputs or {} if (path / name).exists()}
        try:
            remove_stale_temps(path)
            claim = Claim(path, overwrite, hint)
            for name, settings in (outputs or {}).items():
                claim.check(name, settings)
            yield claim
        except BaseException:
            for name in set(outputs or {}) - before:
                (path / name).unlink(missing_ok=True)
            if created:
                _remove_if_unused(path)
            raise
        for name, settings in (outputs or {}).items():
            if (path / name).exists():
                claim.record[name] = plain(settings)
        if outputs:
            write_json(path / RECORD, claim.record)
