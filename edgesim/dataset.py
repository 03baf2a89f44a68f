"""Load and validate edge-cloud MoE region folders (docs/dataset.md) into flat numpy arrays.

Everything the simulator needs per server, instance, link and task is computed here once, so the
step function only gathers from these arrays. Bad input raises `DatasetError` naming the file, the
line and the field; nothing is returned half-loaded.
"""
from __future__ import annotations

import codecs
import hashlib
import io
import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, overload

import numpy as np
import pandas as pd

from .gpu_classes import GPU_CLASS_COLUMN, GPU_CLASS_NAMES
from .inputs import InputError, plain_name, regular_file

LFS_HEADER = "version https://git-lfs.github.com/spec/v1"
SPLITS = ("train", "test")
TOKEN_FILES = ("task_request_mapping.csv", "request_log.csv")
FALLBACK_NOTE = "step tokens fall back to int(0.6*TaskSize) + int(0.4*TaskSize)"
# Bounds far beyond real data, tight enough that every latency, cost and token sum derived from them
# stays finite and fits int64.
LIMIT = 1e9  # TaskSize, tokens per request side, WorkflowStepIndex, BaseLatencyMs, BandwidthMbps
MAX_PRICE = 1e6  # CostPerToken ($ per 1k tokens) and trap_cost_multiplier
MIN_COMPUTE = 1e-6  # NormalizedCompute: below this one step would take years
TRAP_NUMBERS = {"trap_cost_multiplier": MAX_PRICE, "trap_bandwidth": LIMIT, "trap_latency": LIMIT, "trap_rate": 1.0}
TRAP_KEYS = ("trap_server_ids", *TRAP_NUMBERS)  # what data1/generate.py and the reference sample write

Warn = Callable[[str], None]


class DatasetError(InputError):
    """A dataset file is missing, malformed or inconsistent; the message says where and why."""


@dataclass(frozen=True)
class TaskTable:
    """The tasks of one split, padded to the longest workflow (`types`/`tokens` are -1 past the end)."""

    ids: list[str]
    lon: np.ndarray  # (K,) degrees
    lat: np.ndarray  # (K,)
    region: np.ndarray  # (K,) index into Dataset.regions
    size: np.ndarray  # (K,) TaskSize
    n_steps: np.ndarray  # (K,)
    types: np.ndarray  # (K, S) model-type index per step
    tokens: np.ndarray  # (K, S) tokens per step

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Dataset:
    """One or more regions merged; servers are indexed in sorted-ServerID order (the action space)."""

    root: Path
    regions: tuple[str, ...]
    server_ids: list[str]
    server_region: np.ndarray  # (N,) int
    lon: np.ndarray  # (N,) degrees
    lat: np.ndarray  # (N,)
    nc: np.ndarray  # (N,) normalised compute in (0, 1]
    cost_mult: np.ndarray  # (N,)
    is_trap: np.ndarray  # (N,) bool
    type_names: tuple[str, ...]
    price: np.ndarray  # (T, N) $ per 1k tokens of the server's instance of the type, NaN if none
    instance_of: np.ndarray  # (T, N) row of that instance in `instance_ids`, -1 if none
    instance_ids: list[str]
    fallback_server: np.ndarray  # (T,) server of the first instance of each type in the files
    link_src: np.ndarray  # (E,) directed links, both directions present (reverse rows added)
    link_dst: np.ndarray  # (E,)
    link_latency: np.ndarray  # (E,) BaseLatencyMs
    link_bandwidth: np.ndarray  # (E,) Mbps
    mean_link_latency: float  # mean BaseLatencyMs over the link rows as written (switch penalty)
    mean_out_latency: np.ndarray  # (N,) mean BaseLatencyMs of a server's links, 0 without links
    trap_config: dict = field(default_factory=dict)
    tasks: dict[str, TaskTable] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    gpu_class: np.ndarray | None = None  # (N,) index into GPU_CLASS_NAMES from servers.csv's GPUClass; None: absent

    @property
    def n_servers(self) -> int:
        return len(self.server_ids)

    @property
    def valid(self) -> np.ndarray:
        """(T, N) bool: the server hosts an instance of the type."""
        return self.instance_of >= 0

    @property
    def fingerprint(self) -> str:
        """Hash of the action space (server order) and model types, saved with every checkpoint."""
        h = hashlib.sha256("\n".join(self.server_ids).encode())
        h.update(("|" + ",".join(self.type_names)).encode())
        return h.hexdigest()[:16]

    def summary(self) -> str:
        return (f"{', '.join(self.regions)}: {self.n_servers} servers ({int(self.is_trap.sum())} traps), "
                f"{len(self.instance_ids)} instances of {len(self.type_names)} types, "
                f"{len(self.link_src)} directed links, "
                + ", ".join(f"{len(t)} {s} tasks" for s, t in self.tasks.items()))


def cost_multiplier(nc: np.ndarray, lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """Reference per-server price multiplier: slow servers are dearer, with a location-seeded jitter."""
    jitter = 0.8 + 0.4 * (np.mod(1000.0 * lon + 100.0 * lat, 100.0) / 100.0)
    return np.clip((3.5 - 4.0 * (nc - 0.25)) * jitter, 0.3, 3.5)


# ----------------------------------------------------------------------------- file helpers

def is_lfs_pointer(path: Path) -> bool:
    """A clone made without git-lfs leaves a 3-line pointer where the data file should be."""
    try:
        with open(path, "rb") as f:
            return f.read(len(LFS_HEADER)) == LFS_HEADER.encode()
    except OSError:
        return False  # unreadable: reported by the code that needs the file, if any does


def _show(value: object, width: int = 60, render: Callable[[object], str] = repr) -> str:
    """A bad value for a message (repr, or json.dumps for JSON files), cut short so a huge or
    multi-line value still gives a one-line error."""
    text = render(value)
    return text if len(text) <= width else text[:width] + "..."


def _fmt(x: float) -> str:
    """A bound as people write it: 1e9, not 1e+09."""
    return f"{x:g}".replace("e+0", "e").replace("e-0", "e-").replace("e+", "e")


def _absent(path: Path) -> str:
    """How a warning describes an optional file that counts as absent."""
    return "treated as absent" + (f": {FALLBACK_NOTE}" if path.name in TOKEN_FILES else "")


def _file_text(path: Path, optional: bool, warn: Warn) -> str | None:
    """A data file's UTF-8 text (a BOM is dropped), or None where an optional file is missing, a Git
    LFS pointer or blank. Every other way a file can be unusable becomes a DatasetError naming it."""
    if not path.exists() and not path.is_symlink():
        if optional:
            return None
        raise DatasetError(f"{path}: file not found (every region folder needs it)")
    try:
        data = regular_file(path, "data file").read_bytes()  # a FIFO or /dev/zero would hang or fill memory
    except InputError as e:
        raise DatasetError(str(e)) from None
    except OSError as e:  # no permission, an I/O error
        raise DatasetError(f"{path}: cannot be read ({e.strerror or e})") from None
    lfs = data.startswith(LFS_HEADER.encode())
    body = data.removeprefix(codecs.BOM_UTF8)
    try:
        text = "" if lfs else body.decode("utf-8")
    except UnicodeDecodeError as e:
        line = body[:e.start].count(b"\n") + 1
        raise DatasetError(f"{path}: line {line}: not UTF-8 text (byte {body[e.start]:#04x}); "
                           "save the file as UTF-8") from None
    if text.strip():
        return text
    if not optional:
        raise DatasetError(f"{path}: file is {'a Git LFS pointer, not data' if lfs else 'empty'} "
                           "(every region folder needs it)")
    if not lfs:  # the folder sweep in load_dataset warns about every LFS pointer
        warn(f"{path} is empty; {_absent(path)}")
    return None


@overload
def _read_csv(path: Path, required: list[str], warn: Warn, *, optional: Literal[False] = False,
              empty_ok: bool = False) -> pd.DataFrame: ...


@overload
def _read_csv(path: Path, required: list[str], warn: Warn, *, optional: bool,
              empty_ok: bool = False) -> pd.DataFrame | None: ...


def _read_csv(path: Path, required: list[str], warn: Warn, *, optional: bool = False,
              empty_ok: bool = False) -> pd.DataFrame | None:
    """Read a CSV as strings (we parse and report bad cells ourselves). An optional file that is
    absent, blank or header-only gives None; a required one must have rows unless `empty_ok`."""
    text = _file_text(path, optional, warn)
    if text is None:
        return None
    try:
        df = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises many types for broken CSV
        raise DatasetError(f"{path}: cannot be parsed as CSV ({' '.join(str(e).split())})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {_show(list(df.columns), 200)}")
    if df.empty and optional:
        warn(f"{path} has a header but no rows; {_absent(path)}")
        return None
    if df.empty and not empty_ok:
        raise DatasetError(f"{path}: file has a header but no rows")
    return df


def _line(i: int) -> int:
    """File line of data row i (header is line 1)."""
    return i + 2


def _cell_error(path: Path, i: int, col: str, why: str) -> DatasetError:
    return DatasetError(f"{path}: line {_line(i)}, field '{col}': {why}")


def _check(bad: np.ndarray, path: Path, col: str, why: Callable[[int], str]) -> None:
    """Raise for the first row flagged in `bad`; `why(i)` says what is wrong with row i."""
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise _cell_error(path, i, col, why(i))


def _numeric(df: pd.DataFrame, path: Path, col: str, *, lo: float | None = None,
             hi: float | None = None, lo_open: bool = False, integer: bool = False) -> np.ndarray:
    """Parse a column as finite numbers in [lo, hi]; the first bad cell is reported with its line."""
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(vals)
    if integer:
        bad |= np.isfinite(vals) & (vals != np.round(vals))
    bounds = []
    if lo is not None:
        bad |= (vals <= lo) if lo_open else (vals < lo)
        bounds.append(f"{'>' if lo_open else '>='} {_fmt(lo)}")
    if hi is not None:
        bad |= vals > hi
        bounds.append(f"<= {_fmt(hi)}")
    what = " ".join(["an integer" if integer else "a finite number", " and ".join(bounds)]).strip()
    _check(bad, path, col, lambda i: f"expected {what}, got {_show(raw.iloc[i])}")
    return vals


def _unique(df: pd.DataFrame, path: Path, cols: list[str], what: str = "id") -> None:
    """No two rows may share the key `cols` (a later row would silently replace the first)."""
    def why(i: int) -> str:
        keys = list(zip(*(df[c].tolist() for c in cols)))
        key = keys[i] if len(cols) > 1 else keys[i][0]
        return f"duplicate {what} {_show(key)} (first on line {_line(keys.index(keys[i]))})"
    _check(df.duplicated(cols).to_numpy(), path, "/".join(cols), why)


def _ids(df: pd.DataFrame, path: Path, col: str) -> None:
    """An id column: every cell non-blank and unique within the file."""
    ids = df[col]
    _check((ids.str.strip() == "").to_numpy(), path, col,
           lambda i: f"expected a non-empty id, got {_show(ids.iloc[i])}")
    _unique(df, path, [col])


def _known(values: pd.Series, known: dict, path: Path, col: str, what: str, where: str = "") -> np.ndarray:
    """Map every cell through `known`; a cell it lacks is an error (`where` says where it was looked for)."""
    idx = values.map(known)
    _check(idx.isna().to_numpy(), path, col, lambda i: f"unknown {what} {_show(values.iloc[i])}{where}")
    return idx.to_numpy(dtype=np.int64)


def _load_trap_config(path: Path, index_of: dict[str, int], warn: Warn) -> dict | None:
    """One region's trap_config.json, checked key by key; None where it is absent (no traps).
    Unknown keys are rejected: a typo would otherwise silently drop a setting."""
    text = _file_text(path, True, warn)
    if text is None:
        return None
    try:
        cfg = json.loads(text)
    except (ValueError, RecursionError) as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("trap_server_ids"), list):
        raise DatasetError(f"{path}: expected a JSON object with a list 'trap_server_ids'")
    unknown = [k for k in cfg if k not in TRAP_KEYS]
    if unknown:
        raise DatasetError(f"{path}: unknown key {_show(unknown[0])}; known keys: {', '.join(TRAP_KEYS)}")
    seen: set[str] = set()
    for sid in cfg["trap_server_ids"]:
        if not isinstance(sid, str):
            raise DatasetError(f"{path}: field 'trap_server_ids': expected ServerID strings, got "
                               f"{_show(sid, render=json.dumps)}")
        if sid not in index_of:
            raise DatasetError(f"{path}: field 'trap_server_ids': unknown server {_show(sid)}")
        if sid in seen:
            raise DatasetError(f"{path}: field 'trap_server_ids': duplicate server {_show(sid)}")
        seen.add(sid)
    for key, hi in TRAP_NUMBERS.items():
        v = cfg.get(key, 0)  # an absent key passes; bool is an int in Python, but `true` is no number
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= hi:
            raise DatasetError(f"{path}: field '{key}': expected a number >= 0 and <= {_fmt(hi)}, "
                               f"got {_show(v, render=json.dumps)}")
    return cfg


# ----------------------------------------------------------------------------- loading

REPO = Path(__file__).resolve().parents[1]  # the clone the package runs from


def data_root(path: str | Path) -> Path:
    """A data root as written in a config or typed by a user: absolute as is; relative, the folder in
    the current directory if there is one, else the repository's (so `data: data1` works anywhere)."""
    path = Path(path)
    if path.is_absolute() or path.exists() or not (REPO / path).exists():
        return path
    return REPO / path


def _data_folder(root: object) -> Path:
    """The data root as a Path, if it is a folder."""
    if not isinstance(root, (str, Path)) or not str(root):
        raise DatasetError(f"data root: expected a folder path, got {root!r} ({type(root).__name__})")
    path = Path(root)
    if not path.is_dir():
        raise DatasetError(f"{path}: data root {'is not a folder' if path.exists() else 'not found'}")
    return path


def _region_names(regions: object) -> tuple[str, ...]:
    """Region names as given: each a plain folder name (never a path such as ../x), none twice."""
    names = (regions,) if isinstance(regions, str) else regions
    if not isinstance(names, (list, tuple)):
        raise DatasetError(f"region: expected a region name or a list of them, got {regions!r}")
    if not names:
        raise DatasetError("no region given: pass at least one folder name under the data root")
    try:
        checked = tuple(plain_name(name, "region") for name in names)
    except InputError as e:
        raise DatasetError(str(e)) from None
    twice = sorted({name for name in checked if checked.count(name) > 1})
    if twice:
        raise DatasetError(f"region: {twice[0]!r} given twice; each region is loaded once")
    return checked


def _available(root: Path) -> str:
    """The region folders under a data root (those with a servers.csv), for a message."""
    try:
        names = sorted(p.name for p in root.iterdir() if not p.name.startswith(".") and (p / "servers.csv").is_file())
    except OSError:
        names = []
    if not names:
        return "none (no folder with a servers.csv)"
    return ", ".join(names[:20]) + (f" and {len(names) - 20} more" if len(names) > 20 else "")


def load_dataset(root: str | Path, regions: str | list[str] | tuple[str, ...]) -> Dataset:
    """Load region folders `root/<region>` into one Dataset (servers of all regions are candidates)."""
    root = _data_folder(root)
    regions = _region_names(regions)
    notes: list[str] = []

    def warn(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, stacklevel=3)

    # servers of every region first: instances and links may only reference known servers
    servers: list[pd.DataFrame] = []
    region_of: dict[str, int] = {}  # server id -> its region's index
    gpu_paths: list[tuple[Path, bool]] = []  # each region's servers.csv and whether it has a GPUClass column
    for r, name in enumerate(regions):
        folder = root / name
        if not folder.is_dir():
            raise DatasetError(f"{folder}: region folder not found; regions under {root}: {_available(root)}")
        try:
            entries = sorted(folder.iterdir())
        except OSError as e:
            raise DatasetError(f"{folder}: cannot list the region folder ({e.strerror or e})") from None
        for p in entries:
            if p.is_file() and is_lfs_pointer(p):
                warn(f"{p} is a Git LFS pointer, not data (clone with git-lfs for the real file); {_absent(p)}")
        path = folder / "servers.csv"
        df = _read_csv(path, ["ServerID", "Longitude", "Latitude", "NormalizedCompute"], warn)
        _ids(df, path, "ServerID")
        for sid in df["ServerID"]:
            if sid in region_of:
                raise DatasetError(f"{path}: ServerID {sid!r} also appears in region {regions[region_of[sid]]!r}")
            region_of[sid] = r
        servers.append(pd.DataFrame({
            "id": df["ServerID"],
            "lon": _numeric(df, path, "Longitude", lo=-180, hi=180),
            "lat": _numeric(df, path, "Latitude", lo=-90, hi=90),
            "nc": _numeric(df, path, "NormalizedCompute", lo=MIN_COMPUTE, hi=1),
            "region": r,
            "gpu": _gpu_classes(df, path),
        }))
        gpu_paths.append((path, GPU_CLASS_COLUMN in df.columns))
    _same_gpu_columns(gpu_paths)
    srv = pd.concat(servers, ignore_index=True).sort_values("id", kind="stable").reset_index(drop=True)
    server_ids = srv["id"].tolist()
    index_of = {sid: i for i, sid in enumerate(server_ids)}
    n = len(server_ids)
    lon, lat, nc = (srv[c].to_numpy(float) for c in ("lon", "lat", "nc"))
    cost_mult = cost_multiplier(nc, lon, lat)

    # traps
    is_trap = np.zeros(n, bool)
    trap_config: dict = {}
    for name in regions:
        cfg = _load_trap_config(root / name / "trap_config.json", index_of, warn)
        if cfg is None:
            continue  # no trap configuration: no traps in this region
        traps = [index_of[s] for s in cfg["trap_server_ids"]]
        is_trap[traps] = True
        if "trap_cost_multiplier" in cfg:
            cost_mult[traps] = float(cfg["trap_cost_multiplier"])
        trap_config[name] = {k: v for k, v in cfg.items() if k != "trap_server_ids"}

    # model instances
    inst_frames = []
    for name in regions:
        path = root / name / "model_instances.csv"
        df = _read_csv(path, ["ModelInstanceID", "ServerID", "CostPerToken"], warn)
        type_col = "ModelTypeName" if "ModelTypeName" in df.columns else "ModelType"
        if type_col not in df.columns:
            raise DatasetError(f"{path}: missing column 'ModelTypeName' (or 'ModelType')")
        _ids(df, path, "ModelInstanceID")
        types = df[type_col].str.strip()
        _check((types == "").to_numpy(), path, type_col,
               lambda i: f"expected a model type name, got {_show(df[type_col].iloc[i])}")
        inst_frames.append(pd.DataFrame({
            "id": df["ModelInstanceID"],
            "server": _known(df["ServerID"], index_of, path, "ServerID", "server"),
            "type": types,
            "price": _numeric(df, path, "CostPerToken", lo=0, hi=MAX_PRICE),
            "path": str(path), "row": np.arange(len(df)),
        }))
    inst = pd.concat(inst_frames, ignore_index=True)
    dup = inst["id"].duplicated()
    if dup.any():  # the same id in two regions (within one file `_ids` has caught it)
        j = int(np.flatnonzero(dup.to_numpy())[0])
        raise _cell_error(Path(inst["path"][j]), inst["row"][j], "ModelInstanceID",
                          f"duplicate id {_show(inst['id'][j])} (also in an earlier region)")
    type_names = tuple(dict.fromkeys(inst["type"]))  # order of first appearance
    type_index = {t: k for k, t in enumerate(type_names)}
    inst_type = inst["type"].map(type_index).to_numpy(np.int64)
    inst_server = inst["server"].to_numpy(np.int64)
    instance_of = np.full((len(type_names), n), -1, np.int64)
    # first instance of (type, server) in file order wins: assign in reverse so earlier rows overwrite
    order = np.arange(len(inst))[::-1]
    instance_of[inst_type[order], inst_server[order]] = order
    price = np.where(instance_of >= 0, inst["price"].to_numpy(float)[np.maximum(instance_of, 0)], np.nan)
    fallback_server = np.array([inst_server[np.flatnonzero(inst_type == k)[0]] for k in range(len(type_names))])

    # links: a region may have none (a header-only file); a link from a server to itself is the latency
    # between two steps on that server (the public reference sample has ten)
    parts: list[list[np.ndarray]] = [[], [], [], []]  # source, destination, latency, bandwidth of each region
    n_rows, lat_sum = 0, 0.0
    for name in regions:
        path = root / name / "network_links.csv"
        df = _read_csv(path, ["SrcServerID", "DstServerID", "BaseLatencyMs", "BandwidthMbps"], warn, empty_ok=True)
        s = _known(df["SrcServerID"], index_of, path, "SrcServerID", "server")
        d = _known(df["DstServerID"], index_of, path, "DstServerID", "server")
        la = _numeric(df, path, "BaseLatencyMs", lo=0, hi=LIMIT)
        b = _numeric(df, path, "BandwidthMbps", lo=0, lo_open=True, hi=LIMIT)
        _unique(df, path, ["SrcServerID", "DstServerID"], "link")
        for part, values in zip(parts, (s, d, la, b)):
            part.append(values)
        n_rows, lat_sum = n_rows + len(df), lat_sum + float(la.sum())
    src, dst, lat_ms, bw = (np.concatenate(a) for a in parts)
    # a link applies in both directions: add the reverse of every row whose reverse is not written
    fwd = set((src * n + dst).tolist())
    rev = np.array([(d * n + s) not in fwd for s, d in zip(src.tolist(), dst.tolist())], dtype=bool)
    link_src = np.concatenate([src, dst[rev]])
    link_dst = np.concatenate([dst, src[rev]])
    link_latency = np.concatenate([lat_ms, lat_ms[rev]])
    link_bandwidth = np.concatenate([bw, bw[rev]])
    deg = np.bincount(link_src, minlength=n)
    mean_out = np.divide(np.bincount(link_src, weights=link_latency, minlength=n), np.maximum(deg, 1))
    mean_link_latency = lat_sum / n_rows if n_rows else 0.0

    tasks = _load_tasks(root, regions, type_index, warn)
    return Dataset(
        root=root, regions=regions, server_ids=server_ids, server_region=srv["region"].to_numpy(np.int64),
        lon=lon, lat=lat, nc=nc, cost_mult=cost_mult, is_trap=is_trap, type_names=type_names,
        price=price, instance_of=instance_of, instance_ids=inst["id"].tolist(),
        fallback_server=fallback_server, link_src=link_src, link_dst=link_dst,
        link_latency=link_latency, link_bandwidth=link_bandwidth, mean_link_latency=mean_link_latency,
        mean_out_latency=mean_out, trap_config=trap_config, tasks=tasks, warnings=tuple(notes),
        gpu_class=srv["gpu"].to_numpy(np.int64) if gpu_paths[0][1] else None)


def _gpu_classes(df: pd.DataFrame, path: Path) -> np.ndarray:
    """(rows,) index into GPU_CLASS_NAMES of each server's GPUClass cell (surrounding spaces dropped), -1 for
    every row of a file without the column."""
    if GPU_CLASS_COLUMN not in df.columns:
        return np.full(len(df), -1, np.int64)
    names = df[GPU_CLASS_COLUMN].str.strip()
    index = {name: i for i, name in enumerate(GPU_CLASS_NAMES)}
    _check(~names.isin(index).to_numpy(), path, GPU_CLASS_COLUMN,
           lambda i: f"expected a GPU class ({', '.join(GPU_CLASS_NAMES)}), got {_show(df[GPU_CLASS_COLUMN].iloc[i])}")
    return names.map(index).to_numpy(np.int64)


def _same_gpu_columns(paths: list[tuple[Path, bool]]) -> None:
    """Every loaded region's servers.csv has a GPUClass column, or none has: a missing one would need the
    tercile default, which is taken over all loaded servers and would not match the classes given."""
    given = [p for p, has in paths if has]
    lacking = [p for p, has in paths if not has]
    if given and lacking:
        raise DatasetError(f"{lacking[0]}: missing column '{GPU_CLASS_COLUMN}' ({given[0]} has it; give it in every "
                           "loaded region or in none)")


def _model_types(cell: str, path: Path, i: int, type_index: dict[str, int]) -> list[str]:
    """One RequiredModelTypes cell: a JSON list of type names, stripped like the instances' names."""
    try:
        types = json.loads(cell)
    except (ValueError, RecursionError):
        types = None
    if not isinstance(types, list) or not all(isinstance(t, str) and t.strip() for t in types):
        raise _cell_error(path, i, "RequiredModelTypes", f"expected a JSON list of model type names, got {_show(cell)}")
    types = [t.strip() for t in types]
    for t in types:
        if t not in type_index:
            raise _cell_error(path, i, "RequiredModelTypes", f"model type {_show(t)} has no instance in the loaded "
                                                             f"regions (known: {sorted(type_index)})")
    return types


def _load_step_tokens(folder: Path, task_ids: list[str], task_types: list[list[str]],
                      warn: Warn) -> dict[tuple[str, int], int]:
    """(TaskID, step) -> request + response tokens, from the optional mapping and request log.

    The mapping is checked against tasks.csv even without a log. A mapped request missing from the
    log is an error: that step would otherwise quietly fall back to TaskSize tokens."""
    mpath, lpath = (folder / f for f in TOKEN_FILES)
    mapping = _read_csv(mpath, ["TaskID", "WorkflowStepIndex", "MappedRequestID"], warn, optional=True)
    log = _read_csv(lpath, ["RequestID", "RequestLengthTokens", "ResponseLengthTokens"], warn, optional=True)
    if (mapping is None) != (log is None):
        given, lacking = (mpath, lpath) if log is None else (lpath, mpath)
        if not lacking.exists():  # an LFS pointer or blank file has had its own warning
            warn(f"{given} is given but {lacking.name} is not: {FALLBACK_NOTE}")
    if mapping is None:
        return {}
    row = _known(mapping["TaskID"], {t: i for i, t in enumerate(task_ids)}, mpath, "TaskID", "task")
    n_steps = np.array([len(t) for t in task_types], np.int64)[row]
    step = _numeric(mapping, mpath, "WorkflowStepIndex", lo=0, hi=LIMIT, integer=True).astype(np.int64)
    _check(step >= n_steps, mpath, "WorkflowStepIndex", lambda i: f"task {_show(task_ids[row[i]])} has "
           f"{n_steps[i]} steps, got {_show(mapping['WorkflowStepIndex'].iloc[i])}")
    _unique(pd.DataFrame({"TaskID": mapping["TaskID"], "WorkflowStepIndex": step}), mpath,
            ["TaskID", "WorkflowStepIndex"], "step")
    if "RequiredModelType" in mapping.columns:  # written by data1/generate.py and the reference sample
        want = np.array([task_types[r][k] for r, k in zip(row, step)], dtype=object)
        got = mapping["RequiredModelType"].str.strip().to_numpy(dtype=object)
        _check(got != want, mpath, "RequiredModelType", lambda i: f"tasks.csv has {want[i]!r} at step {step[i]} "
               f"of task {_show(task_ids[row[i]])}, got {_show(mapping['RequiredModelType'].iloc[i])}")
    if log is None:
        return {}
    _ids(log, lpath, "RequestID")
    total = (_numeric(log, lpath, "RequestLengthTokens", lo=0, hi=LIMIT, integer=True)
             + _numeric(log, lpath, "ResponseLengthTokens", lo=0, hi=LIMIT, integer=True)).astype(np.int64)
    tokens = _known(mapping["MappedRequestID"], dict(zip(log["RequestID"], total.tolist())), mpath,
                    "MappedRequestID", "request", f" (not in {lpath.name})")
    return dict(zip(zip(mapping["TaskID"], step.tolist()), tokens.tolist()))


def _load_tasks(root: Path, regions: tuple[str, ...], type_index: dict[str, int], warn: Warn) -> dict[str, TaskTable]:
    rows: dict[str, list] = {s: [] for s in SPLITS}
    short = 0
    for r, name in enumerate(regions):
        folder = root / name
        path = folder / "tasks.csv"
        df = _read_csv(path, ["TaskID", "Split", "TaskLongitude", "TaskLatitude", "TaskSize", "RequiredModelTypes"],
                       warn)
        _ids(df, path, "TaskID")
        lon = _numeric(df, path, "TaskLongitude", lo=-180, hi=180)
        lat = _numeric(df, path, "TaskLatitude", lo=-90, hi=90)
        size = _numeric(df, path, "TaskSize", lo=0, hi=LIMIT)
        split = df["Split"]
        _check(~split.isin(SPLITS).to_numpy(), path, "Split",
               lambda i: f"expected 'train' or 'test', got {_show(split.iloc[i])}")
        types = [_model_types(cell, path, i, type_index) for i, cell in enumerate(df["RequiredModelTypes"])]
        tokens = _load_step_tokens(folder, df["TaskID"].tolist(), types, warn)
        for i, (tid, s, ts) in enumerate(zip(df["TaskID"], split, types)):
            if len(ts) < 2:
                short += 1
                continue
            fallback = int(0.6 * size[i]) + int(0.4 * size[i])
            toks = [tokens.get((tid, k), fallback) for k in range(len(ts))]
            rows[s].append((tid, lon[i], lat[i], r, size[i], [type_index[t] for t in ts], toks))
    if short:
        warn(f"skipped {short} task(s) with fewer than 2 workflow steps")
    tables = {}
    for split, items in rows.items():
        if not items:
            raise DatasetError(f"tasks.csv of {list(regions)}: split {split!r} is empty "
                               "(need at least one task with Split=" + split + " and 2+ steps)")
        s_max = max(len(it[5]) for it in items)
        type_table = np.full((len(items), s_max), -1, np.int64)
        token_table = np.full((len(items), s_max), -1, np.int64)
        for j, it in enumerate(items):
            type_table[j, :len(it[5])] = it[5]
            token_table[j, :len(it[6])] = it[6]
        tables[split] = TaskTable(
            ids=[it[0] for it in items], lon=np.array([it[1] for it in items]), lat=np.array([it[2] for it in items]),
            region=np.array([it[3] for it in items], np.int64), size=np.array([it[4] for it in items]),
            n_steps=np.array([len(it[5]) for it in items], np.int64), types=type_table, tokens=token_table)
    return tables
