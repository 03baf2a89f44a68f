"""Run directories and checkpoints: one layout for every learned scheduler.

    results/<Algo>/<region>_seed<S>_<timestamp>/
        config.yaml            resolved configuration
        metrics.csv            one row per finished epoch
        checkpoints/epoch_XXXX.pt (the newest `keep_checkpoints`), final.pt
        tensorboard/           metrics.csv's rows as TensorBoard events (schedkit/tensorboard.py)
    results/<Algo>/latest -> the newest run (symlink)

Checkpoints hold only tensors and plain Python values (str, int, float, bool, None, lists, dicts)
and are loaded with `torch.load(weights_only=True)`, so a checkpoint received from someone else
cannot run code. They are written atomically and carry the dataset's identity, so evaluation on a
different dataset fails with a clear message instead of a shape error. A run directory is
claimed atomically and locked while a process writes to it.
"""
from __future__ import annotations

import fcntl
import hashlib
import io
import math
import os
import pickle
import re
import time
from pathlib import Path
from typing import Any, BinaryIO, TypedDict

import pandas as pd
import torch

from edgesim.dataset import Dataset

from .io import atomic_write_bytes, write_csv, write_yaml
from .paths import checkpoint_dir, epoch_checkpoint, final_checkpoint, run_name

CHECKPOINT_FORMAT = 2  # 1: before weights-only loading (numpy values inside); convert with tools/convert_checkpoint.py
CONVERTER = "tools/convert_checkpoint.py"


class CheckpointError(ValueError):
    pass


class Checkpoint(TypedDict, total=False):
    """What a checkpoint of this toolkit holds (weights only: tensors and plain values, so loading one
    never runs code). `load_checkpoint` checks the first six keys and their types."""

    format: int  # CHECKPOINT_FORMAT
    algo: str  # the registry name of the scheduler (schedkit/registry.py)
    epoch: int  # the next epoch to train: a resumed run starts there
    model: dict[str, torch.Tensor]  # the agent's state_dict
    config: dict[str, Any]  # the resolved config the run was trained with
    dataset: dict[str, Any]  # dataset_identity(): fingerprint, server_ids, type_names, regions, content
    dwa: dict[str, Any] | None  # {"weights": [3 floats], ...} for agents trained with DWA, None otherwise
    optimizer: dict[str, Any]
    prev_losses: list[float] | None  # DWA's previous epoch losses
    best: dict[str, Any]  # imitation training (STARK): the validation-selected epoch
    worlds: dict[str, torch.Tensor]  # training worlds that run on across epochs (contention, rollout: continuing)


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
    """Load a checkpoint without executing anything in it (weights only), then check its shape:
    the keys this toolkit writes, the expected algorithm, and (with `finite`) finite weights."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found" if not path.exists() else f"{path}: not a file")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        if "global" not in str(e).lower():  # a damaged byte stream, not a reference to code
            raise CheckpointError(f"{path}: not a readable checkpoint (corrupted or truncated?)") from None
        raise CheckpointError(
            f"{path}: refused: it holds Python objects besides tensors and plain values, and loading those "
            f"could run code. If it is a checkpoint of an older version of this toolkit from a source you "
            f"trust, convert it once with: python {CONVERTER} {path}") from None
    except Exception as e:  # noqa: BLE001 - torch raises many types for a damaged file
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupted or truncated? "
                              f"{type(e).__name__})") from None
    missing = {"model", "config", "dataset", "algo", "epoch", "dwa"} - set(state) if isinstance(state, dict) \
        else {"model"}
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit (missing {sorted(missing)})")
    _check_types(state, path)
    if algo is not None and state["algo"] != algo:
        raise CheckpointError(f"{path}: a {state['algo']} checkpoint, not {algo}; evaluate it with "
                              f"{state['algo']}'s own inference.py (total/evaluate_all.py takes any)")
    if finite:
        bad = [k for k, v in state["model"].items() if v.is_floating_point() and not bool(torch.isfinite(v).all())]
        if bad:
            raise CheckpointError(f"{path}: holds non-finite weights (NaN or inf) in {bad[0]!r}"
                                  f"{f' and {len(bad) - 1} more' if len(bad) > 1 else ''}: the training "
                                  "diverged; use an earlier checkpoint of the run")
    return state


def _check_types(state: dict, path: Path) -> None:
    """The fields inference and resume read have the types they expect."""
    ds, dwa = state["dataset"], state["dwa"]
    ok = (isinstance(state["algo"], str) and isinstance(state["epoch"], int) and isinstance(state["config"], dict)
          and isinstance(state["model"], dict) and all(isinstance(v, torch.Tensor) for v in state["model"].values())
          and isinstance(ds, dict) and isinstance(ds.get("fingerprint"), str)
          and isinstance(ds.get("server_ids"), list) and isinstance(ds.get("regions"), list)
          and (dwa is None or (isinstance(dwa, dict) and isinstance(dwa.get("weights"), list) and len(dwa["weights"]) == 3
                               and all(isinstance(w, float) and math.isfinite(w) for w in dwa["weights"])))
          and all(isinstance(state["config"].get(k), t) for k, t in (("algo", str), ("seed", int))))
    if not ok:
        raise CheckpointError(f"{path}: a damaged checkpoint: its fields do not have the types this toolkit writes")


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
