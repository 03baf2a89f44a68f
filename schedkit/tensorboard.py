"""TensorBoard events beside metrics.csv, in `<run>/tensorboard/`, to watch and compare runs live.

metrics.csv stays the record every script reads; the events repeat its rows, one step per epoch,
under CleanRL's tag names (`charts/*`, `losses/*`), so these runs and CleanRL-style ones share one
TensorBoard. The package is optional: config `tensorboard: auto` (the default) logs when it is
installed, `true` (`--tensorboard`) requires it, `false` (`--no-tensorboard`) never logs.
"""
from __future__ import annotations

import math
import numbers
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .config import ConfigError
from .paths import tensorboard_dir

INSTALL = "pip install -r requirements-rl-libs.txt"
# metrics-row columns that are optimisation terms (PPO's, and the imitation loss of STARK)
LOSSES = frozenset({"loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_frac"})


def scalars(row: Mapping[str, Any]) -> dict[str, float]:
    """A metrics row as TensorBoard tags: `losses/<column>` for the optimisation terms, `charts/<column>`
    for the rest (return, reward, latency, cost, rates, DWA weights, lr, timings, steps/s). Column names
    are kept, so a curve is found under the name its metrics.csv column has. `epoch` is the step, not a
    scalar. Non-finite values (NaN) are left out: TensorBoard would draw them as spikes or breaks."""
    return {f"{'losses' if key in LOSSES else 'charts'}/{key}": float(value) for key, value in row.items()
            if key != "epoch" and isinstance(value, numbers.Real) and math.isfinite(value)}


def _writer_class() -> Any:
    """torch's SummaryWriter, or None where the tensorboard package is missing (it is optional)."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter


def wanted(choice: str | bool) -> bool:
    """Resolve config `tensorboard` (auto, true or false) to whether this run logs. `true` without the
    package is a ConfigError naming the install, raised before a run writes anything."""
    if choice == "auto":
        return _writer_class() is not None
    if choice and _writer_class() is None:
        raise ConfigError(f"TensorBoard logging (--tensorboard, config tensorboard: true) needs the tensorboard "
                          f"package: {INSTALL} (or pass --no-tensorboard)")
    return bool(choice)


def sort_after_existing_events(folder: Path) -> None:
    """TensorBoard reads a run's event files in name order, and a name begins with its writer's start second,
    then host, pid and a counter as text. A writer started in the same second as the folder's newest file may
    sort before it; the older file, read last, would then win over a resumed run's epochs. So wait (at most
    about a second) until this writer's second is later than every file's."""
    stamps = [int(part) for p in folder.glob("events.out.tfevents.*")
              if (part := p.name.split(".")[3]).isdigit()]
    newest = max(stamps, default=0)
    if 0 <= newest - int(time.time()) <= 1:  # a file from further in the future (a clock change) is not waited for
        while int(time.time()) <= newest:
            time.sleep(0.02)


class EventLog:
    """The TensorBoard side of the epoch loop: `append(epoch, row)` writes the row's scalars at step
    `epoch`. Resuming at `start` hides the events of epochs >= start from the interrupted run (purge),
    as MetricsLog drops its rows. A no-op when `choice` resolves to off; use it as a context manager,
    so the events are flushed and the file closed even when training stops with an exception or Ctrl-C."""

    def __init__(self, run: Path, start: int, choice: str | bool):
        self.writer = None
        if wanted(choice):
            sort_after_existing_events(tensorboard_dir(run))
            self.writer = _writer_class()(log_dir=str(tensorboard_dir(run)), purge_step=start)

    def append(self, epoch: int, row: Mapping[str, Any]) -> None:
        if self.writer is None:
            return
        for tag, value in scalars(row).items():
            self.writer.add_scalar(tag, value, epoch)
        self.writer.flush()  # one epoch takes seconds: show it now, not after flush_secs

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> EventLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
