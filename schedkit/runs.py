"""Run directories and checkpoints: one layout for every learned scheduler.

    results/<Algo>/<region>_seed<S>_<timestamp>/
        config.yaml            resolved configuration
        metrics.csv            one row per finished epoch
        checkpoints/epoch_XXXX.pt, final.pt
    results/<Algo>/latest -> the newest run (symlink)

Checkpoints are written atomically and carry the dataset fingerprint and server order, so
evaluation on a different dataset fails with a clear message instead of a shape error.
"""
from __future__ import annotations

import io
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from edgesim.dataset import Dataset

from .io import atomic_write_bytes, write_csv, write_yaml


class CheckpointError(ValueError):
    pass


def new_run_dir(results: str | Path, algo: str, regions: list[str], seed: int) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(results) / algo / f"{'+'.join(regions)}_seed{seed}_{stamp}"
    run, k = base, 1
    while run.exists():  # two runs started in the same second
        run, k = base.with_name(f"{base.name}_{k}"), k + 1
    return run


def point_latest(run: Path) -> None:
    """Make `<algo dir>/latest` a relative symlink to `run`, replaced atomically."""
    link = run.parent / "latest"
    tmp = run.parent / f".latest.{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(run.name, tmp)
    os.replace(tmp, link)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as e:
        raise CheckpointError(f"{path}: not a readable checkpoint (corrupted or truncated? {type(e).__name__})") from None
    missing = {"model", "config", "dataset"} - set(state) if isinstance(state, dict) else {"model"}
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this toolkit (missing {sorted(missing)})")
    return state


def dataset_identity(ds: Dataset) -> dict[str, Any]:
    return {"fingerprint": ds.fingerprint, "server_ids": ds.server_ids, "type_names": list(ds.type_names),
            "regions": list(ds.regions)}


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
