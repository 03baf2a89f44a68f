"""The one JSON shape of the benchmarks' `--json [PATH]` output, so that total/report.py can render
every committed result in bench/results/ into docs/performance.md the same way: the command that
produced it, the machine it ran on (with its load, since timings on a shared machine are only
indicative), the date, and one row per measurement."""
from __future__ import annotations

import argparse
import datetime
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import torch

from schedkit.io import atomic_write_text


def add_json_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write one JSON object (command, machine, date, rows) to PATH, or print it without PATH")


def machine(device: str = "cpu") -> dict[str, Any]:
    """What a timing depends on: cores, torch and its threads, the device, and the load average
    when the benchmark ended (other work on the machine slows every figure)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "device": device, "loadavg_1_5_15": [round(x, 2) for x in load] if load else None}


def record(script: str, argv: list[str] | None, rows: list[dict], device: str = "cpu", **extra: Any) -> dict[str, Any]:
    args = sys.argv[1:] if argv is None else argv
    return {"command": shlex.join(["python", script, *args]), "machine": machine(device),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "rows": rows, **extra}


def emit(path: str | None, rec: dict[str, Any]) -> None:
    """Print the record ("-") or write it atomically to `path`; nothing without --json."""
    import json
    if path is None:
        return
    text = json.dumps(rec, indent=1) + "\n"
    if path == "-":
        print(text, end="")
    else:
        atomic_write_text(Path(path), text)
        print(f"wrote {path}", file=sys.stderr)
