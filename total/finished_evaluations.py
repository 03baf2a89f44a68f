"""Each scheduler's finished evaluation, kept while `total/evaluate_all.py` runs, so a stopped run resumes.

A loaded setting evaluates dozens of schedulers for minutes each; the folder's episodes.csv, requests.csv
and summary.csv are written only when every one is done. Meanwhile each scheduler's rows (all its
evaluation seeds) go to `<folder>/finished/<key>/`: episodes.csv, requests.csv where there are requests,
then meta.json last, which makes the entry count. meta.json holds the evaluation's settings, the
scheduler's identity (name, training seed, run folder, and for a checkpoint its path, size and modification
time), the load measures of each seed, any extra values, and the frames' column types. A re-run with the
same settings takes an entry whose settings and identity match instead of evaluating again, and says so;
an entry that does not match, or cannot be read, is evaluated again. The evaluation's results are the same
either way: the rows read back are the rows written. The folder is removed once the final files are
written, and ignored under --overwrite.
"""
from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any

import pandas as pd

from edgesim.inputs import InputError, MiB, read_text
from schedkit.io import atomic_write_text, write_csv
from schedkit.outputs import plain

FOLDER = "finished"
MAX_BYTES = 1024 * MiB
TEXT = ("object", "str", "string")  # a text column's dtype, by pandas version


@dataclass
class Finished:
    """One scheduler's evaluation over every seed: its episode and request rows, its load measures per seed
    (`total/evaluate_all.py measures`) and extra values (the oracle's reward bound)."""

    episodes: pd.DataFrame
    requests: pd.DataFrame | None
    loads: list[dict[str, float]]
    extra: dict[str, float]


def _types(df: pd.DataFrame) -> dict[str, str]:
    return {c: str(t) for c, t in df.dtypes.items()}


def _read(path: Path, types: dict[str, str]) -> pd.DataFrame:
    """A frame this module wrote, with the column types it had (text columns keep their empty strings)."""
    text = {c for c, t in types.items() if t in TEXT}
    df = pd.read_csv(StringIO(read_text(path, path.name, MAX_BYTES)), dtype=dict.fromkeys(text, str))
    if list(df.columns) != list(types):
        raise ValueError(f"{path}: columns differ from those recorded")
    for c, t in types.items():
        df[c] = df[c].fillna("").astype(t) if c in text else df[c].astype(t)
    return df


class FinishedEvaluations:
    """The `finished/` folder of one claimed evaluation folder, for one set of evaluation `settings`."""

    def __init__(self, folder: Path, settings: dict[str, Any], fresh: bool):
        self.root, self.settings = folder / FOLDER, plain(settings)
        if fresh:
            shutil.rmtree(self.root, ignore_errors=True)

    def _entry(self, identity: dict[str, Any]) -> Path:
        text = json.dumps(plain(identity), sort_keys=True)
        return self.root / hashlib.sha256(text.encode()).hexdigest()[:20]

    def _meta(self, identity: dict[str, Any]) -> dict[str, Any] | None:
        """The meta.json of `identity`'s entry where it was made with these settings, else None."""
        try:
            meta = json.loads(read_text(self._entry(identity) / "meta.json", "meta.json", 64 * MiB))
            return meta if meta["settings"] == self.settings and meta["identity"] == plain(identity) else None
        except (InputError, OSError, ValueError, KeyError, TypeError, RecursionError):
            return None

    def holds(self, identity: dict[str, Any]) -> bool:
        """Whether `identity` has an entry of these settings (its meta.json only: the frames are read by load)."""
        return self._meta(identity) is not None

    def load(self, identity: dict[str, Any]) -> Finished | None:
        """The entry of `identity` made with these settings, or None (none, another's, or unreadable)."""
        meta = self._meta(identity)
        if meta is None:
            return None
        entry = self._entry(identity)
        try:
            episodes = _read(entry / "episodes.csv", meta["episode_types"])
            requests = None if meta["request_types"] is None else _read(entry / "requests.csv", meta["request_types"])
            return Finished(episodes, requests, meta["loads"], meta["extra"])
        except (InputError, OSError, ValueError, KeyError, TypeError, RecursionError):
            return None

    def save(self, identity: dict[str, Any], finished: Finished) -> None:
        """Write one scheduler's entry; meta.json last, so a half-written entry never counts."""
        entry = self._entry(identity)
        shutil.rmtree(entry, ignore_errors=True)
        entry.mkdir(parents=True)
        write_csv(entry / "episodes.csv", finished.episodes)
        if finished.requests is not None:
            write_csv(entry / "requests.csv", finished.requests)
        meta = {"settings": self.settings, "identity": plain(identity), "loads": finished.loads,
                "extra": finished.extra, "episode_types": _types(finished.episodes),
                "request_types": None if finished.requests is None else _types(finished.requests)}
        atomic_write_text(entry / "meta.json", json.dumps(meta, allow_nan=True))  # a NaN measure reads back as NaN

    def remove(self) -> None:
        """Once the evaluation's own files are written, the entries have served."""
        shutil.rmtree(self.root, ignore_errors=True)
