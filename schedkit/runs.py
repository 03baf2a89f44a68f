"""Run directories and checkpoints: one layout for every learned scheduler.

    results/<Algo>/<region>_seed<S>_<timestamp>/
        config.yaml            resolved configuration
        metrics.csv            one row per finished epoch
        checkpoints/epoch_XXXX.pt (the newest `keep_checkpoints`), final.pt
        tensorboard/           metrics.csv's rows as TensorBoard events (schedkit/tensorboard.py)
    results/<Algo>/latest -> the newest run (symlink)

Checkpoints hold only tensors and plain Python values (str, int, float, bool, None, lists, dicts)
and are read by torch's weights-only unpickler, so a checkpoint received from someone else cannot
run code; every field is checked before it is used (schedkit/checkpoints.py). They are written
atomically and carry the dataset's identity, so evaluation on a different dataset fails with a
clear message instead of a shape error. A run directory is
claimed atomically and locked while a process writes to it.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import os
import re
import time
from pathlib import Path
from typing import Any, BinaryIO

import pandas as pd
import torch

from edgesim.dataset import Dataset

from .checkpoints import CHECKPOINT_FORMAT as CHECKPOINT_FORMAT
from .checkpoints import Checkpoint as Checkpoint
from .checkpoints import CheckpointError as CheckpointError
from .checkpoints import check_checkpoint, read_checkpoint
from .io import atomic_write_bytes, write_csv, write_yaml
from .paths import checkpoint_dir, epoch_checkpoint, final_checkpoint, run_name


class RunError(RuntimeError):
    """A run directory cannot be used: another process writes to it, or it already holds a run."""


# ----------------------------------------------------------------------------- run directories

def claim_run_dir(results: str | Path, algo: str, regions: list[str], seed: int) -> Path:
    """Create `results/<algo>/<regions>_seed<S>_<time>` atomically; a run started in the same second
    by another process gets the next free `_<k>` suffix instead of sharing the folder."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(results) / algo / run_name(regions, seed, stamp=stamp)
    base.parent.mkdir(parents=True, exist_ok=True)
    run, k = base, 1
    while True:
        try:
            run.mkdir()
            return run
        except FileExistsError:
            run, k = base.with_name(f"{base.name}_{k}"), k + 1


class RunLock:
    """An exclusive lock on `<run>/.lock` for as long as one process writes to the run (or, `what`
    "folder", to any output folder: schedkit/outputs.py)."""

    def __init__(self, run: Path, what: str = "run"):
        self.path, self.what = run / ".lock", what
        self.file: BinaryIO | None = None

    def __enter__(self) -> "RunLock":
        self.file = open(self.path, "ab")
        try:
            fcntl.flock(self.file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.file.close()
            raise RunError(f"{self.path.parent}: another process is writing to this {self.what}; wait for it or "
                           "choose another --out") from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            fcntl.flock(self.file, fcntl.LOCK_UN)
            self.file.close()


def is_locked(run: Path) -> bool:
    """Whether a live process holds `run`'s RunLock now (a lock file left by a dead one does not count)."""
    lock = run / ".lock"
    if not lock.is_file():
        return False
    with open(lock, "rb") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(f, fcntl.LOCK_UN)
    return False


def point_latest(run: Path, results: str | Path) -> None:
    """Make `<results>/<algo>/latest` a relative symlink to `run`, replaced atomically. Only for runs
    directly under the results root, and never over a file or folder a user put there."""
    run, results = run.resolve(), Path(results).resolve()
    if run.parent.parent != results:
        return
    link = run.parent / "latest"
    if link.exists() and not link.is_symlink():
        return
    tmp = run.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run.name, tmp)
    os.replace(tmp, link)


def epoch_checkpoints(run: Path) -> list[Path]:
    return sorted(checkpoint_dir(run).glob("epoch_*.pt"))


def latest_checkpoint(run: Path) -> Path | None:
    final = final_checkpoint(run)
    ckpts = epoch_checkpoints(run)
    return final if final.exists() else (ckpts[-1] if ckpts else None)


def save_epoch_checkpoint(run: Path, next_epoch: int, state: dict[str, Any], keep: int) -> Path:
    """`epoch_XXXX.pt`, then delete all but the newest `keep` epoch checkpoints (final.pt is separate)."""
    path = save_checkpoint(epoch_checkpoint(run, next_epoch), state)
    for old in epoch_checkpoints(run)[:-keep]:
        old.unlink(missing_ok=True)
    return path


# ----------------------------------------------------------------------------- checkpoints

def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **state}, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", algo: str | None = None,
                    finite: bool = True) -> dict[str, Any]:
    """Read a checkpoint without running anything in it, then check every field (schedkit/checkpoints.py):
    the expected algorithm, its config through the command line's checks, and (with `finite`) finite weights."""
    return check_checkpoint(read_checkpoint(path, map_location), path, algo, finite)


def dataset_identity(ds: Dataset) -> dict[str, Any]:
    return {"fingerprint": ds.fingerprint, "server_ids": ds.server_ids, "type_names": list(ds.type_names),
            "regions": list(ds.regions), "content": dataset_content_hash(ds)}


def dataset_content_hash(ds: Dataset) -> str:
    """SHA-256 of every file of the loaded region folders: any edit to the data changes it."""
    h = hashlib.sha256()
    for region in ds.regions:
        folder = Path(ds.root) / region
        for p in sorted(folder.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                h.update(f"{region}/{p.name}\0".encode())
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()[:16]


def check_dataset(state: dict[str, Any], ds: Dataset, path: str | Path) -> None:
    """A checkpoint only schedules the server order it was trained on."""
    saved = state["dataset"]
    if saved["fingerprint"] == ds.fingerprint:
        if list(saved["server_ids"]) != list(ds.server_ids):
            raise CheckpointError(f"{path}: field dataset['server_ids'] does not list the servers its fingerprint "
                                  f"{saved['fingerprint']} stands for: a damaged checkpoint")
        return
    n_saved, n_now = len(saved["server_ids"]), ds.n_servers
    detail = (f"it was trained on {n_saved} servers of {saved['regions']}, the dataset has {n_now} servers of "
              f"{list(ds.regions)}" if n_saved != n_now else
              f"same server count ({n_now}) but a different server order or model types")
    raise CheckpointError(f"{path}: checkpoint does not match the dataset: {detail} "
                          f"(fingerprint {saved['fingerprint']} != {ds.fingerprint})")


def check_same_data(state: dict[str, Any], ds: Dataset, path: str | Path) -> None:
    """Resuming needs the very data the run started on, not only the same server order."""
    check_dataset(state, ds, path)
    saved = state["dataset"].get("content")
    if saved is not None and saved != dataset_content_hash(ds):
        raise CheckpointError(f"{path}: the dataset's files changed since this run started (content "
                              f"{saved} != {dataset_content_hash(ds)}); resuming would mix two datasets. "
                              "Start a new run, or restore the data")


LATEST_MODEL = re.compile(r"^LATEST_(?P<region>.+)_seed(?P<seed>\d+)_final\.pt$")


def resolve_model_path(model: str | Path) -> Path:
    """The path a user gives, or for `<results>/<Algo>/models/LATEST_<region>_seed<S>_final.pt` (the
    paper's layout) the final checkpoint of the newest finished run of that region and seed."""
    path = Path(model)
    m = LATEST_MODEL.match(path.name)
    if path.exists() or m is None or path.parent.name != "models":
        return path
    algo_dir = path.parent.parent
    pattern = re.compile(rf"^{re.escape(m['region'])}(_[a-z]+)?_seed{m['seed']}(_\d{{8}}-\d{{6}}(_\d+)?)?$")
    runs = [r for r in algo_dir.iterdir() if r.is_dir() and not r.is_symlink() and pattern.match(r.name)
            and final_checkpoint(r).exists()] if algo_dir.is_dir() else []
    if not runs:
        raise CheckpointError(f"{path}: no finished run of {m['region']} seed {m['seed']} under {algo_dir} "
                              f"(runs live in {algo_dir}/<region>_seed<S>_<time>/checkpoints/final.pt)")
    newest = max(runs, key=lambda r: final_checkpoint(r).stat().st_mtime)
    return final_checkpoint(newest)


class MetricsLog:
    """metrics.csv, rewritten atomically each epoch; on resume, rows after the checkpoint are dropped."""

    def __init__(self, path: Path, keep_until_epoch: int | None = None):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if keep_until_epoch is not None and path.exists():
            old = pd.read_csv(path)
            self.rows = old[old["epoch"] < keep_until_epoch].to_dict("records")

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        write_csv(self.path, pd.DataFrame(self.rows))


def write_config(run: Path, cfg: dict[str, Any]) -> None:
    write_yaml(run / "config.yaml", cfg)
