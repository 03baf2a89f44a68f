"""Fuzz the loader: every bad input is a one-line DatasetError, or an accept documented in ACCEPT.

Each case copies the small generated region `Small_Trap` (conftest `small_root`), mutates one thing
and loads the copy once:
- cells: every column of every CSV, first data row, set to non-numeric text, NaN, inf, -inf, -1,
  1e300, a 30-digit integer, an empty cell, a JSON list; or the column dropped;
- rows: the first data row duplicated (a duplicate id or key);
- files: missing, a directory, empty, header only, binary garbage, control bytes, non-UTF-8, and
  three harmless format changes (a UTF-8 BOM, CRLF line ends, an extra column);
- trap_config.json: not JSON, not an object, ids not a list, nested or non-string or unknown or
  duplicate ids, a missing id list, each number key as text, list, null, boolean, negative, huge or
  NaN, an out-of-range rate, an unknown key, an empty id list.
Either load_dataset raises DatasetError with a one-line message naming the file and (for cells and
rows) the field, at line 2 where the mutated file is the one blamed; or the case is in ACCEPT, which
says why and how many warnings it gives, and then every loaded array is finite. Any other exception
fails the test. A few previously-crashing cases also run through Heuristics/inference.py.
"""
from __future__ import annotations

import json
import random
import re
import shutil
import warnings
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import run_script

from edgesim.dataset import Dataset, DatasetError, load_dataset

REGION = "Small_Trap"
MAPPING, LOG, TRAP = "task_request_mapping.csv", "request_log.csv", "trap_config.json"
# the columns data1/generate.py writes (test_generated_columns_are_all_covered keeps this honest)
COLUMNS = {
    "servers.csv": ["ServerID", "Longitude", "Latitude", "LinkBandwidth", "ComputationCapacity", "StorageCapacity",
                    "TrafficRate", "ClusterID", "OriginalID", "NormalizedCompute"],
    "model_instances.csv": ["ModelID", "ModelType", "ArenaScore", "ServerID", "ModelTypeName", "ModelInstanceID",
                            "CostPerToken"],
    "network_links.csv": ["SrcServerID", "DstServerID", "BandwidthMbps", "BaseLatencyMs"],
    "tasks.csv": ["TaskID", "Split", "TaskLongitude", "TaskLatitude", "TaskSize", "RequiredModelTypes"],
    MAPPING: ["TaskID", "WorkflowStepIndex", "MappedRequestID", "RequiredModelType"],
    LOG: ["RequestID", "RequestLengthTokens", "ResponseLengthTokens"],
}
KEYS = {"servers.csv": "ServerID", "model_instances.csv": "ModelInstanceID", "network_links.csv": "SrcServerID",
        "tasks.csv": "TaskID", MAPPING: "TaskID", LOG: "RequestID"}  # what a duplicated row duplicates
CELL_VALUES = {"text": "abc", "nan": "NaN", "inf": "inf", "-inf": "-inf", "negative": "-1", "huge": "1e300",
               "huge_int": "9" * 30, "empty": "", "json_list": "[1, 2]"}
# a renamed id is only noticed where it is referred to: the error may name that file and field instead
REFERRED = {
    ("servers.csv", "ServerID"): [("model_instances.csv", "ServerID"), ("network_links.csv", "SrcServerID"),
                                  ("network_links.csv", "DstServerID"), (TRAP, "trap_server_ids")],
    ("tasks.csv", "TaskID"): [(MAPPING, "TaskID")],
    (LOG, "RequestID"): [(MAPPING, "MappedRequestID")],
    # without ModelTypeName the numeric ModelType column names the types, and no task requires '1'
    ("model_instances.csv", "ModelTypeName"): [("tasks.csv", "RequiredModelTypes")],
}
GARBAGE = bytes(random.Random(0).randrange(256) for _ in range(512))


@dataclass(frozen=True)
class Case:
    id: str
    file: str
    field: str | None  # what the error must name besides the file (None: the file alone)
    mutate: Callable[[Path], None]  # applied to the region folder
    line: int | None = None  # the line the error must give where it blames the mutated file


def _edit_csv(name: str, edit: Callable[[pd.DataFrame], pd.DataFrame]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        df = pd.read_csv(folder / name, dtype=str, keep_default_na=False)
        edit(df).to_csv(folder / name, index=False)
    return mutate


def _set_cell(name: str, col: str, value: str) -> Callable[[Path], None]:
    def edit(df: pd.DataFrame) -> pd.DataFrame:
        df.loc[0, col] = value
        return df
    return _edit_csv(name, edit)


def _write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def _edit_bytes(name: str, edit: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(edit((folder / name).read_bytes()))


def _make_dir(name: str) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        (folder / name).unlink()
        (folder / name).mkdir()
    return mutate


def _edit_trap(edit: Callable[[dict], object]) -> Callable[[Path], None]:
    def mutate(folder: Path) -> None:
        cfg = json.loads((folder / TRAP).read_text())
        (folder / TRAP).write_text(json.dumps(edit(cfg)))
    return mutate


def _non_utf8(data: bytes) -> bytes:
    """A latin-1 'é' as the first byte of line 2."""
    head, rest = data.split(b"\n", 1)
    return head + b"\n\xe9" + rest


def _cell_cases() -> list[Case]:
    cases = []
    for name, cols in COLUMNS.items():
        for col in cols:
            cases += [Case(f"{name}-{col}-{m}", name, col, _set_cell(name, col, v), 2) for m, v in CELL_VALUES.items()]
            cases.append(Case(f"{name}-{col}-missing_column", name, col,
                              _edit_csv(name, lambda df, c=col: df.drop(columns=c))))
        cases.append(Case(f"{name}-duplicate_row", name, KEYS[name],
                          _edit_csv(name, lambda df: pd.concat([df, df.iloc[:1]]))))
    return cases


def _file_cases() -> list[Case]:
    cases = []
    for name in [*COLUMNS, TRAP]:
        mutations = {
            "missing": lambda folder, n=name: (folder / n).unlink(),
            "directory": _make_dir(name),
            "empty": _write(name, b""),
            "binary": _write(name, GARBAGE),
            "control_bytes": _write(name, bytes(range(32)) * 8),
            "non_utf8": _edit_bytes(name, _non_utf8),
            "bom": _edit_bytes(name, lambda d: b"\xef\xbb\xbf" + d),
            "crlf": _edit_bytes(name, lambda d: d.replace(b"\n", b"\r\n")),
        }
        if name.endswith(".csv"):
            mutations["header_only"] = _edit_bytes(name, lambda d: d.split(b"\n", 1)[0] + b"\n")
            mutations["extra_column"] = _edit_csv(name, lambda df: df.assign(Comment="kept aside"))
        cases += [Case(f"{name}-{m}", name, None, f, 2 if m == "non_utf8" else None) for m, f in mutations.items()]
    return cases


def _trap_cases() -> list[Case]:
    def ids(cfg: dict) -> list:
        return cfg["trap_server_ids"]

    structural = {  # mutation -> (field the error must name, mutate)
        "not_json": (None, _write(TRAP, b"{not json")),
        "not_object": (None, _edit_trap(ids)),
        "ids_not_list": (None, _edit_trap(lambda cfg: cfg | {"trap_server_ids": ids(cfg)[0]})),
        "ids_missing": (None, _edit_trap(lambda cfg: {k: v for k, v in cfg.items() if k != "trap_server_ids"})),
        "ids_nested_list": ("trap_server_ids", _edit_trap(lambda cfg: cfg | {"trap_server_ids": [ids(cfg)]})),
        "ids_number": ("trap_server_ids", _edit_trap(lambda cfg: cfg | {"trap_server_ids": [1]})),
        "ids_unknown": ("trap_server_ids", _edit_trap(lambda cfg: cfg | {"trap_server_ids": ["NoSuchServer"]})),
        "ids_duplicate": ("trap_server_ids", _edit_trap(lambda cfg: cfg | {"trap_server_ids": ids(cfg)[:1] * 2})),
        "ids_empty_list": ("trap_server_ids", _edit_trap(lambda cfg: cfg | {"trap_server_ids": []})),
        "unknown_key": ("trap_multiplier", _edit_trap(lambda cfg: cfg | {"trap_multiplier": 2.0})),
        "rate_above_1": ("trap_rate", _edit_trap(lambda cfg: cfg | {"trap_rate": 1.5})),
    }
    cases = [Case(f"{TRAP}-{m}", TRAP, col, f) for m, (col, f) in structural.items()]
    wrong = {"text": "1.2", "list": [1.2], "null": None, "true": True, "negative": -1, "huge": 1e300,
             "nan": float("nan")}
    for key in ("trap_cost_multiplier", "trap_bandwidth", "trap_latency", "trap_rate"):
        cases += [Case(f"{TRAP}-{key}-{m}", TRAP, key, _edit_trap(lambda cfg, k=key, v=v: cfg | {k: v}))
                  for m, v in wrong.items()]
    return cases


CASES = _cell_cases() + _file_cases() + _trap_cases()

# ----------------------------------------------------------------------------- documented accepts
# case id -> (warnings it gives, why it is accepted); every other case must raise DatasetError
UNCHANGED = {c.id for c in CASES if c.id.endswith(("-bom", "-crlf", "-extra_column"))}  # load bit-identically
ONE_WARNING_ABSENT = (1, "an empty or header-only optional file counts as absent, with one warning")
ACCEPT: dict[str, tuple[int, str]] = {
    **{f"{name}-{col}-{m}": (0, "generator metadata: the loader does not read this column")
       for name, cols in {"servers.csv": ["LinkBandwidth", "ComputationCapacity", "StorageCapacity", "TrafficRate",
                                          "ClusterID", "OriginalID"],
                          "model_instances.csv": ["ModelID", "ModelType", "ArenaScore"]}.items()
       for col in cols for m in [*CELL_VALUES, "missing_column"]},
    **{f"model_instances.csv-ModelInstanceID-{m}": (0, "an instance id is a label nothing refers to")
       for m in CELL_VALUES if m != "empty"},
    **{f"model_instances.csv-ModelTypeName-{m}": (0, "a type name is a label: a new one is a new type no task needs")
       for m in CELL_VALUES if m != "empty"},
    **{f"{name}-{col}-negative": (0, "-1 degrees is a valid longitude or latitude")
       for name, col in [("servers.csv", "Longitude"), ("servers.csv", "Latitude"), ("tasks.csv", "TaskLongitude"),
                         ("tasks.csv", "TaskLatitude")]},
    f"{MAPPING}-RequiredModelType-missing_column": (0, "the type cross-check runs only where the column exists"),
    **{case: (0, "a UTF-8 BOM, CRLF line ends and extra columns change nothing") for case in UNCHANGED},
    "network_links.csv-header_only": (0, "a region may have no links"),
    f"{MAPPING}-missing": (1, "the request log alone is unused: TaskSize tokens, with one warning"),
    f"{LOG}-missing": (1, "the mapping alone gives no tokens: TaskSize tokens, with one warning"),
    f"{MAPPING}-empty": ONE_WARNING_ABSENT,
    f"{LOG}-empty": ONE_WARNING_ABSENT,
    f"{MAPPING}-header_only": ONE_WARNING_ABSENT,
    f"{LOG}-header_only": ONE_WARNING_ABSENT,
    f"{TRAP}-empty": ONE_WARNING_ABSENT,
    f"{TRAP}-missing": (0, "no trap_config.json means no traps (docs/dataset.md)"),
    f"{TRAP}-ids_empty_list": (0, "an empty trap list means no traps"),
}


def _load(root: Path) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # counted through Dataset.warnings
        return load_dataset(root, REGION)


def _assert_finite(ds: Dataset) -> None:
    """Every loaded number is finite, tokens are >= 0, and the largest step cost and compute time too."""
    for name in ("lon", "lat", "nc", "cost_mult", "link_latency", "link_bandwidth", "mean_out_latency"):
        assert np.isfinite(getattr(ds, name)).all(), name
    assert np.isfinite(ds.mean_link_latency) and np.isfinite(ds.price[ds.valid]).all() and (ds.nc > 0).all()
    for t in ds.tasks.values():
        assert np.isfinite(t.lon).all() and np.isfinite(t.lat).all() and np.isfinite(t.size).all()
        steps = t.types >= 0
        assert (t.tokens[steps] >= 0).all() and (t.tokens[~steps] == -1).all()
        most = float(t.tokens.max())
        assert np.isfinite(most / 1000 * np.nanmax(ds.price) * ds.cost_mult.max()) and np.isfinite(most / ds.nc.min())


def _same(ds: Dataset, base: Dataset) -> bool:
    def eq(a, b) -> bool:
        return np.array_equal(a, b, equal_nan=True) if isinstance(a, np.ndarray) else a == b
    same_tasks = all(eq(getattr(ds.tasks[s], f.name), getattr(base.tasks[s], f.name))
                     for s in base.tasks for f in fields(base.tasks[s]))
    return same_tasks and all(eq(getattr(ds, f.name), getattr(base, f.name)) for f in fields(base)
                              if f.name not in ("root", "tasks"))


@pytest.fixture(scope="module")
def base(small_root) -> Dataset:
    return _load(small_root)


def test_generated_columns_are_all_covered(small_root):
    for name, cols in COLUMNS.items():
        assert list(pd.read_csv(small_root / REGION / name, nrows=0).columns) == cols, name
    assert set(json.loads((small_root / REGION / TRAP).read_text())) == {
        "trap_server_ids", "trap_cost_multiplier", "trap_bandwidth", "trap_latency", "trap_rate"}


def test_accept_table_names_only_real_cases():
    assert set(ACCEPT) <= {c.id for c in CASES}
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_a_one_line_error_or_a_documented_accept(small_root, base, tmp_path, case):
    folder = tmp_path / REGION
    shutil.copytree(small_root / REGION, folder)
    case.mutate(folder)
    if case.id in ACCEPT:
        ds = _load(tmp_path)
        assert len(ds.warnings) == ACCEPT[case.id][0], ds.warnings
        _assert_finite(ds)
        assert case.id not in UNCHANGED or _same(ds, base)
        return
    with pytest.raises(DatasetError) as caught:
        _load(tmp_path)
    msg = str(caught.value).replace(str(tmp_path), "")
    assert "\n" not in msg and "\r" not in msg
    allowed = [(case.file, case.field), *REFERRED.get((case.file, case.field), [])]
    assert any(name in msg and (col is None or re.search(rf"\b{col}\b", msg)) for name, col in allowed), msg
    if case.line is not None and msg.startswith(f"/{REGION}/{case.file}:"):
        assert f": line {case.line}" in msg, msg


@pytest.mark.parametrize("name,mutate", [
    ("tasks.csv", _set_cell("tasks.csv", "TaskSize", "1e20")),
    (TRAP, _edit_trap(lambda cfg: cfg | {"trap_server_ids": [cfg["trap_server_ids"]]})),
    ("servers.csv", _make_dir("servers.csv")),
], ids=["task_size_1e20", "nested_trap_ids", "servers_csv_is_a_directory"])
def test_scripts_print_one_error_line_without_a_traceback(small_root, tmp_path, name, mutate):
    shutil.copytree(small_root / REGION, tmp_path / REGION)
    mutate(tmp_path / REGION)
    proc = run_script("Heuristics/inference.py", "--data", str(tmp_path), "--region", REGION, "--episodes", "2",
                      "--no-progress", check=False)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and name in lines[0], proc.stderr
