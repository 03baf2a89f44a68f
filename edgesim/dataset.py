"""Load and validate edge-cloud MoE region folders (SPEC section 2) into flat numpy arrays.

Everything the simulator needs per server, instance, link and task is computed here once, so the
step function only gathers from these arrays. Bad input raises `DatasetError` naming the file, the
line and the field; nothing is returned half-loaded.
"""
from __future__ import annotations

import hashlib
import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

LFS_HEADER = "version https://git-lfs.github.com/spec/v1"
SPLITS = ("train", "test")


class DatasetError(ValueError):
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
    with open(path, "rb") as f:
        return f.read(len(LFS_HEADER)).decode("utf-8", "replace") == LFS_HEADER


def _read_csv(path: Path, required: list[str], optional: bool = False) -> pd.DataFrame | None:
    """Read a CSV as strings (we parse and report bad cells ourselves); an LFS pointer counts as absent."""
    if not path.exists() or is_lfs_pointer(path):
        if optional:
            return None
        what = "is a Git LFS pointer, not data" if path.exists() else "not found"
        raise DatasetError(f"{path}: file {what} (every region folder needs it)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as e:  # pandas raises many types for broken CSV
        raise DatasetError(f"{path}: cannot be parsed as CSV ({e})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; found {list(df.columns)}")
    return df


def _line(i: int) -> int:
    """File line of data row i (header is line 1)."""
    return i + 2


def _numeric(df: pd.DataFrame, path: Path, col: str, *, lo: float | None = None,
             hi: float | None = None, lo_open: bool = False, integer: bool = False) -> np.ndarray:
    """Parse a column as finite numbers in [lo, hi]; the first bad cell is reported with its line."""
    raw = df[col]
    vals = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(vals)
    what = "an integer" if integer else "a finite number"
    if integer:
        bad |= np.isfinite(vals) & (vals != np.round(vals))
    if lo is not None:
        bad |= (vals <= lo) if lo_open else (vals < lo)
        what += f" {'>' if lo_open else '>='} {lo:g}"
    if hi is not None:
        bad |= vals > hi
        what += f" <= {hi:g}"
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{path}: line {_line(i)}, field '{col}': expected {what}, got {raw.iloc[i]!r}")
    return vals


def _unique(df: pd.DataFrame, path: Path, col: str) -> None:
    dup = df[col].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DatasetError(f"{path}: line {_line(i)}, field '{col}': duplicate id {df[col].iloc[i]!r}")


def _known(values: pd.Series, known: dict, path: Path, col: str, what: str) -> np.ndarray:
    idx = values.map(known)
    bad = idx.isna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise DatasetError(f"{path}: line {_line(i)}, field '{col}': unknown {what} {values.iloc[i]!r}")
    return idx.to_numpy(dtype=np.int64)


# ----------------------------------------------------------------------------- loading

def load_dataset(root: str | Path, regions: str | list[str] | tuple[str, ...]) -> Dataset:
    """Load region folders `root/<region>` into one Dataset (servers of all regions are candidates)."""
    root = Path(root)
    regions = (regions,) if isinstance(regions, str) else tuple(regions)
    if not regions:
        raise DatasetError("no region given: pass at least one folder name under the data root")
    notes: list[str] = []

    def warn(msg: str) -> None:
        notes.append(msg)
        warnings.warn(msg, stacklevel=3)

    # servers of every region first: instances and links may only reference known servers
    servers, region_of = [], {}
    for r, name in enumerate(regions):
        folder = root / name
        if not folder.is_dir():
            raise DatasetError(f"{folder}: region folder not found")
        for p in sorted(folder.iterdir()):
            if p.is_file() and is_lfs_pointer(p):
                warn(f"{p} is a Git LFS pointer, not data (clone with git-lfs for the real file); "
                     "treated as absent" + (": step tokens fall back to int(0.6*TaskSize) + int(0.4*TaskSize)"
                                            if p.name == "request_log.csv" else ""))
        path = folder / "servers.csv"
        df = _read_csv(path, ["ServerID", "Longitude", "Latitude", "NormalizedCompute"])
        _unique(df, path, "ServerID")
        for sid in df["ServerID"]:
            if sid in region_of:
                raise DatasetError(f"{path}: ServerID {sid!r} also appears in region {regions[region_of[sid]]!r}")
            region_of[sid] = r
        servers.append(pd.DataFrame({
            "id": df["ServerID"],
            "lon": _numeric(df, path, "Longitude", lo=-180, hi=180),
            "lat": _numeric(df, path, "Latitude", lo=-90, hi=90),
            "nc": _numeric(df, path, "NormalizedCompute", lo=0, lo_open=True, hi=1),
            "region": r,
        }))
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
        path = root / name / "trap_config.json"
        if not path.exists() or is_lfs_pointer(path):
            continue  # no trap configuration: no traps in this region
        try:
            cfg = json.loads(path.read_text())
            ids = cfg["trap_server_ids"]
            assert isinstance(ids, list)
        except Exception:
            raise DatasetError(f"{path}: expected a JSON object with a list 'trap_server_ids'") from None
        for sid in ids:
            if sid not in index_of:
                raise DatasetError(f"{path}: field 'trap_server_ids': unknown server {sid!r}")
            is_trap[index_of[sid]] = True
        mult = cfg.get("trap_cost_multiplier")
        if mult is not None:
            if not isinstance(mult, (int, float)) or not math.isfinite(mult) or mult < 0:
                raise DatasetError(f"{path}: field 'trap_cost_multiplier': expected a number >= 0, got {mult!r}")
            cost_mult[[index_of[s] for s in ids]] = float(mult)
        trap_config[name] = {k: v for k, v in cfg.items() if k != "trap_server_ids"}

    # model instances
    inst_frames = []
    for name in regions:
        path = root / name / "model_instances.csv"
        df = _read_csv(path, ["ModelInstanceID", "ServerID", "CostPerToken"])
        type_col = "ModelTypeName" if "ModelTypeName" in df.columns else "ModelType"
        if type_col not in df.columns:
            raise DatasetError(f"{path}: missing column 'ModelTypeName' (or 'ModelType')")
        empty = (df[type_col].str.strip() == "").to_numpy()
        if empty.any():
            i = int(np.flatnonzero(empty)[0])
            raise DatasetError(f"{path}: line {_line(i)}, field '{type_col}': expected a model type name, got ''")
        inst_frames.append(pd.DataFrame({
            "id": df["ModelInstanceID"],
            "server": _known(df["ServerID"], index_of, path, "ServerID", "server"),
            "type": df[type_col].str.strip(),
            "price": _numeric(df, path, "CostPerToken", lo=0),
            "path": str(path), "row": np.arange(len(df)),
        }))
    inst = pd.concat(inst_frames, ignore_index=True)
    dup = inst["id"].duplicated()
    if dup.any():
        j = int(np.flatnonzero(dup.to_numpy())[0])
        raise DatasetError(f"{inst['path'][j]}: line {_line(inst['row'][j])}, field 'ModelInstanceID': "
                           f"duplicate id {inst['id'][j]!r}")
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

    # links
    src, dst, lat_ms, bw, n_rows, lat_sum = [], [], [], [], 0, 0.0
    for name in regions:
        path = root / name / "network_links.csv"
        df = _read_csv(path, ["SrcServerID", "DstServerID", "BaseLatencyMs", "BandwidthMbps"])
        s = _known(df["SrcServerID"], index_of, path, "SrcServerID", "server")
        d = _known(df["DstServerID"], index_of, path, "DstServerID", "server")
        la = _numeric(df, path, "BaseLatencyMs", lo=0)
        b = _numeric(df, path, "BandwidthMbps", lo=0)
        keys = s * n + d
        dup = pd.Series(keys).duplicated().to_numpy()
        if dup.any():
            i = int(np.flatnonzero(dup)[0])
            raise DatasetError(f"{path}: line {_line(i)}: duplicate link "
                               f"{df['SrcServerID'].iloc[i]} -> {df['DstServerID'].iloc[i]}")
        src.append(s), dst.append(d), lat_ms.append(la), bw.append(b)
        n_rows, lat_sum = n_rows + len(df), lat_sum + float(la.sum())
    src, dst, lat_ms, bw = (np.concatenate(a) for a in (src, dst, lat_ms, bw))
    # a link applies in both directions: add the reverse of every row whose reverse is not written
    fwd = set((src * n + dst).tolist())
    rev = np.array([(d * n + s) not in fwd for s, d in zip(src.tolist(), dst.tolist())], bool)
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
        mean_out_latency=mean_out, trap_config=trap_config, tasks=tasks, warnings=tuple(notes))


def _load_step_tokens(folder: Path, warn) -> dict[tuple[str, int], int]:
    """(TaskID, step) -> request + response tokens, from the optional mapping and request log."""
    mpath, lpath = folder / "task_request_mapping.csv", folder / "request_log.csv"
    mapping = _read_csv(mpath, ["TaskID", "WorkflowStepIndex", "MappedRequestID"], optional=True)
    log = _read_csv(lpath, ["RequestID", "RequestLengthTokens", "ResponseLengthTokens"], optional=True)
    if mapping is None or log is None:
        return {}
    step = _numeric(mapping, mpath, "WorkflowStepIndex", lo=0, integer=True).astype(np.int64)
    total = (_numeric(log, lpath, "RequestLengthTokens", lo=0, integer=True)
             + _numeric(log, lpath, "ResponseLengthTokens", lo=0, integer=True)).astype(np.int64)
    by_request = dict(zip(log["RequestID"], total.tolist()))
    return {(t, int(k)): by_request[r] for t, k, r in zip(mapping["TaskID"], step, mapping["MappedRequestID"])
            if r in by_request}


def _load_tasks(root: Path, regions: tuple[str, ...], type_index: dict[str, int], warn) -> dict[str, TaskTable]:
    rows: dict[str, list] = {s: [] for s in SPLITS}
    short = 0
    for r, name in enumerate(regions):
        folder = root / name
        path = folder / "tasks.csv"
        df = _read_csv(path, ["TaskID", "Split", "TaskLongitude", "TaskLatitude", "TaskSize", "RequiredModelTypes"])
        _unique(df, path, "TaskID")
        lon = _numeric(df, path, "TaskLongitude", lo=-180, hi=180)
        lat = _numeric(df, path, "TaskLatitude", lo=-90, hi=90)
        size = _numeric(df, path, "TaskSize", lo=0)
        tokens = _load_step_tokens(folder, warn)
        for i, (tid, split, cell) in enumerate(zip(df["TaskID"], df["Split"], df["RequiredModelTypes"])):
            if split not in SPLITS:
                raise DatasetError(f"{path}: line {_line(i)}, field 'Split': expected 'train' or 'test', got {split!r}")
            try:
                types = json.loads(cell)
                assert isinstance(types, list) and all(isinstance(t, str) for t in types)
            except Exception:
                raise DatasetError(f"{path}: line {_line(i)}, field 'RequiredModelTypes': expected a JSON "
                                   f"list of model type names, got {cell!r}") from None
            for t in types:
                if t not in type_index:
                    raise DatasetError(f"{path}: line {_line(i)}, field 'RequiredModelTypes': model type {t!r} "
                                       f"has no instance in the loaded regions (known: {sorted(type_index)})")
            if len(types) < 2:
                short += 1
                continue
            fallback = int(0.6 * size[i]) + int(0.4 * size[i])
            toks = [tokens.get((tid, k), fallback) for k in range(len(types))]
            rows[split].append((tid, lon[i], lat[i], r, size[i], [type_index[t] for t in types], toks))
    if short:
        warn(f"skipped {short} task(s) with fewer than 2 workflow steps")
    tables = {}
    for split, items in rows.items():
        if not items:
            raise DatasetError(f"tasks.csv of {list(regions)}: split {split!r} is empty "
                               "(need at least one task with Split=" + split + " and 2+ steps)")
        s_max = max(len(it[5]) for it in items)
        types = np.full((len(items), s_max), -1, np.int64)
        toks = np.full((len(items), s_max), -1, np.int64)
        for j, it in enumerate(items):
            types[j, :len(it[5])] = it[5]
            toks[j, :len(it[6])] = it[6]
        tables[split] = TaskTable(
            ids=[it[0] for it in items], lon=np.array([it[1] for it in items]), lat=np.array([it[2] for it in items]),
            region=np.array([it[3] for it in items], np.int64), size=np.array([it[4] for it in items]),
            n_steps=np.array([len(it[5]) for it in items], np.int64), types=types, tokens=toks)
    return tables
