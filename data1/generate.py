"""Deterministic generator for synthetic edge-server scheduling datasets.

Writes region folders in the same schema as the public Server1_Trap sample so that
experiments can scale the topology (servers, regions, trap share) without real data.
Run from the repository root:  python data1/generate.py --help
"""
from __future__ import annotations

import argparse
import io
import json
import os
import re
import time
from pathlib import Path
from typing import Callable, TextIO

import numpy as np
import pandas as pd
from tqdm import tqdm

from edgesim.gpu_classes import GPU_CLASS_COLUMN, GPU_CLASS_NAMES, tercile_classes
from edgesim.inputs import SEEDS, InputError, ints, read_text, reals, regular_file
from schedkit.cli import arg_type, user_errors

EARTH_RADIUS_KM = 6371.0
SWISS_BOX = (6.08, 10.31, 45.83, 47.74)  # lon_min, lon_max, lat_min, lat_max
# Region 1 is the Swiss (Zurich) box; later regions reuse its size around other cities.
CITY_CENTRES = [("Munich", 11.58, 48.14), ("Milan", 9.19, 45.46), ("Lyon", 4.84, 45.76),
                ("Vienna", 16.37, 48.21), ("Frankfurt", 8.68, 50.11), ("Paris", 2.35, 48.86),
                ("Barcelona", 2.17, 41.39), ("Prague", 14.42, 50.08), ("Amsterdam", 4.90, 52.37)]
MODEL_TYPES = ["ChatGPT", "GPT-4", "GPT-4v"]
COST_PER_TOKEN = [0.0015, 0.03, 0.06]
# Per-step type probabilities (ChatGPT, GPT-4, GPT-4v): later steps lean multimodal.
STEP_TYPE_PROBS = np.array([[0.54, 0.46, 0.0], [0.54, 0.34, 0.12], [0.49, 0.27, 0.24],
                            [0.50, 0.13, 0.37], [0.49, 0.035, 0.475]])
GPT4_COUNT_PROBS = [0.35, 0.30, 0.25, 0.10]  # 1..4 instances, mean 2.1
LINK_PICK_PROBS = [0.20, 0.30, 0.25, 0.15, 0.10]  # 1..5 nearest picked; gives mean degree ~3.6
MAX_INSTANCES, MAX_DEGREE = 16, 8
N_TOWNS, CLUSTER_SHARE, TOWN_SIGMA_DEG = 12, 0.65, 0.15
# Log-normal fits to the Azure LLM inference trace 2023 (conversation): medians and means.
PROMPT_MEDIAN, PROMPT_MEAN, RESPONSE_MEDIAN, RESPONSE_MEAN = 1020, 1155, 129, 211
TRACE_COLUMNS = [("ContextTokens", "GeneratedTokens"), ("Request tokens", "Response tokens")]
SITE_COLUMNS = [("longitude", "latitude"), ("lon", "lat"), ("lng", "lat"), ("long", "lat")]
KNN_CHUNK = 512
# What the generator accepts, from the command line or generate_region alike. Servers: 10x the largest
# benchmarked topology (10,000); the link step compares every pair, so more would take hours. Tasks and
# steps: 100x the defaults (the request log has tasks x steps rows per split).
SIZES = {"--servers": ints(2, 100_000), "--regions": ints(1, 100),
         "--trap-fraction": reals(0, 1, hi_open=True, text="a share F with 0 <= F < 1"),
         "--train-tasks": ints(1, 100_000), "--test-tasks": ints(1, 100_000), "--steps": ints(2, 50), "--seed": SEEDS}


class GenerationError(ValueError):
    """Raised for bad user inputs (files, sizes) so the CLI can report them cleanly."""


def check_sizes(n_servers: int, trap_fraction: float, train_tasks: int, test_tasks: int,
                steps: int) -> str | None:
    """Shared by the CLI and generate_region so library callers get the same guarantees (SIZES)."""
    given = {"--servers": n_servers, "--trap-fraction": trap_fraction, "--train-tasks": train_tasks,
             "--test-tasks": test_tasks, "--steps": steps}
    for flag, value in given.items():
        try:
            SIZES[flag].check(value, flag)
        except InputError as e:
            return str(e)
    return None


def region_box(index: int) -> tuple[float, float, float, float]:
    """Box for 1-based region `index`: Swiss box first, then city boxes of equal size."""
    k = (index - 1) % (len(CITY_CENTRES) + 1)
    if k == 0:
        return SWISS_BOX
    _, lon, lat = CITY_CENTRES[k - 1]
    half_w, half_h = (SWISS_BOX[1] - SWISS_BOX[0]) / 2, (SWISS_BOX[3] - SWISS_BOX[2]) / 2
    return (lon - half_w, lon + half_w, lat - half_h, lat + half_h)


def server_prefix(folder: Path) -> str:
    """`Server1_Trap` -> `Server1` (matches the published sample), otherwise the folder name."""
    match = re.fullmatch(r"(Server\d+)_Trap", folder.name)
    return match.group(1) if match else folder.name


def haversine_km(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray,
                 lat2: np.ndarray) -> np.ndarray:
    """Great-circle distance; links and task distances must be in real kilometres."""
    lon1, lat1, lon2, lat2 = map(np.radians, (lon1, lat1, lon2, lat2))
    a = (np.sin((lat2 - lat1) / 2) ** 2
         + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2)
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0)))


def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lon, lat = np.radians(lon), np.radians(lat)
    return np.column_stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])


def nearest_neighbours(q_lon: np.ndarray, q_lat: np.ndarray, lon: np.ndarray, lat: np.ndarray,
                       k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """k nearest points per query, sorted by distance, in row chunks to keep memory O(chunk*N).

    Ranking uses the 3-D dot product (monotone in great-circle distance). A full
    argpartition per row is slow, so each row is first pruned exactly: the k-th best
    similarity over a column sample is a lower bound for the true k-th best, which
    leaves ~100 candidates per row to sort. Distances returned are haversine km.
    """
    points, queries = _unit_vectors(lon, lat), _unit_vectors(q_lon, q_lat)
    idx = np.empty((len(queries), k), dtype=np.int64)
    stride = max(1, 100 // k) if len(points) // max(1, 100 // k) > k + 1 else 1
    for start in range(0, len(queries), KNN_CHUNK):
        sim = queries[start:start + KNN_CHUNK] @ points.T
        if exclude_self:
            rows = np.arange(sim.shape[0])
            sim[rows, start + rows] = -np.inf
        bound = np.partition(sim[:, ::stride], -k, axis=1)[:, -k]
        row, col = np.nonzero(sim >= bound[:, None])
        order = np.lexsort((-sim[row, col], row))
        row, col = row[order], col[order]
        rank = np.arange(len(row)) - np.searchsorted(row, row)
        keep = rank < k
        idx[start + row[keep], rank[keep]] = col[keep]
    dist = haversine_km(q_lon[:, None], q_lat[:, None], lon[idx], lat[idx])
    return idx, dist


def place_clustered(rng: np.random.Generator, n: int,
                    box: tuple[float, float, float, float]) -> np.ndarray:
    """Cell-site-like layout: Zipf-weighted towns with Gaussian clusters plus uniform background."""
    lon0, lon1, lat0, lat1 = box
    margin_lon, margin_lat = 0.1 * (lon1 - lon0), 0.1 * (lat1 - lat0)
    towns = np.column_stack([rng.uniform(lon0 + margin_lon, lon1 - margin_lon, N_TOWNS),
                             rng.uniform(lat0 + margin_lat, lat1 - margin_lat, N_TOWNS)])
    weights = 1.0 / np.arange(1, N_TOWNS + 1)
    town = rng.choice(N_TOWNS, size=n, p=weights / weights.sum())
    sigma = TOWN_SIGMA_DEG * np.array([1.0 / np.cos(np.radians((lat0 + lat1) / 2)), 1.0])
    clustered = towns[town] + rng.normal(size=(n, 2)) * sigma
    uniform = np.column_stack([rng.uniform(lon0, lon1, n), rng.uniform(lat0, lat1, n)])
    xy = np.where((rng.random(n) < CLUSTER_SHARE)[:, None], clustered, uniform)
    return np.column_stack([np.clip(xy[:, 0], lon0, lon1), np.clip(xy[:, 1], lat0, lat1)])


def read_sites(path: Path) -> np.ndarray:
    """Valid (lon, lat) rows of a user CSV, so servers can sit on real cell-site coordinates."""
    df = read_csv_text(path, "--sites file")
    lower = {str(c).strip().lower(): c for c in df.columns}
    pair = next(((lower[a], lower[b]) for a, b in SITE_COLUMNS if a in lower and b in lower), None)
    if pair is None:
        raise GenerationError(f"{path}: no longitude/latitude columns (expected one of "
                              f"{', '.join('/'.join(p) for p in SITE_COLUMNS)}, case-insensitive)")
    xy = df[list(pair)].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    ok = (np.isfinite(xy).all(axis=1) & (np.abs(xy[:, 0]) <= 180) & (np.abs(xy[:, 1]) <= 90))
    return xy[ok]


def read_csv_text(path: Path, what: str, **kwargs) -> pd.DataFrame:
    """A user CSV read as bounded UTF-8 text (edgesim/inputs.py): a binary file, a folder, a device or a
    malformed CSV is a GenerationError naming the file."""
    try:
        return pd.read_csv(io.StringIO(read_text(path, what)), **kwargs)
    except InputError as e:
        raise GenerationError(str(e)) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise GenerationError(f"{path}: {what} is not a readable CSV ({' '.join(str(e).split())})") from None


def read_token_trace(path: Path) -> np.ndarray:
    """(prompt, response) token pairs from an Azure- or BurstGPT-style trace, validated per cell."""
    df = read_csv_text(path, "--token-trace file", skip_blank_lines=False).dropna(how="all")  # index + 2 = file line
    cols = next((c for c in TRACE_COLUMNS if set(c) <= set(df.columns)), None)
    if cols is None:
        raise GenerationError(f"{path}: unrecognised token trace header; expected columns "
                              f"{' or '.join(','.join(c) for c in TRACE_COLUMNS)}")
    if df.empty:
        raise GenerationError(f"{path}: token trace has no rows")
    for col in cols:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            line, cell = df.index[bad[0]] + 2, str(df[col].iloc[bad[0]])
            raise GenerationError(f"{path}: line {line}, column {col!r}: expected a "
                                  f"non-negative number, got {cell!r}")
    return np.rint(df[list(cols)].to_numpy(dtype=float)).astype(np.int64)


def build_links(rng: np.random.Generator, lon: np.ndarray,
                lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric kNN graph: each server picks 1-5 nearest, then degrees above 8 are trimmed.

    Returns undirected edges (E x 2) and their lengths in km.
    """
    n = len(lon)
    k = min(len(LINK_PICK_PROBS), n - 1)
    idx, dist = nearest_neighbours(lon, lat, lon, lat, k, exclude_self=True)
    picks = rng.choice(np.arange(1, len(LINK_PICK_PROBS) + 1), size=n, p=LINK_PICK_PROBS)
    mask = np.arange(k)[None, :] < np.minimum(picks, k)[:, None]
    src, dst, km = np.repeat(np.arange(n), k)[mask.ravel()], idx[mask], dist[mask]
    a, b = np.minimum(src, dst), np.maximum(src, dst)
    _, first = np.unique(a * n + b, return_index=True)
    edges, km = np.column_stack([a, b])[first], km[first]
    degree = np.bincount(edges.ravel(), minlength=n)
    if degree.max() > MAX_DEGREE:
        keep = np.ones(len(edges), dtype=bool)
        for e in np.argsort(-km, kind="stable"):
            u, v = edges[e]
            if (degree[u] > MAX_DEGREE or degree[v] > MAX_DEGREE) and min(degree[u], degree[v]) > 1:
                keep[e] = False
                degree[u] -= 1
                degree[v] -= 1
        edges, km = edges[keep], km[keep]
    return edges, km


def atomic_write(path: Path, write: Callable[[TextIO], object]) -> None:
    """Write via a temp file and os.replace so a crash never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", newline="") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_csv(df: pd.DataFrame, path: Path) -> None:
    """CSV with header and LF line endings, identical bytes on every platform."""
    atomic_write(path, lambda fh: df.to_csv(fh, index=False, lineterminator="\n"))


def generate_region(out: Path, n_servers: int, trap_fraction: float,
                    seed: int | np.random.Generator,
                    box: tuple[float, float, float, float] = SWISS_BOX,
                    train_tasks: int = 1000, test_tasks: int = 200, steps: int = 5,
                    token_trace: Path | None = None, sites: Path | None = None,
                    progress: bool = False, gpu_classes: bool = False) -> dict:
    """Generate one region folder at `out`; returns summary statistics.

    Everything derives from one generator so identical arguments give identical bytes. `gpu_classes` adds
    servers.csv's GPUClass column, each server's serving GPU class by the tercile of its NormalizedCompute
    within the region (edgesim.gpu_classes.tercile_classes); it draws no random number, so every other
    byte is the same with or without it.
    """
    problem = check_sizes(n_servers, trap_fraction, train_tasks, test_tasks, steps)
    if problem:
        raise GenerationError(problem)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    pool = read_sites(Path(sites)) if sites is not None else None
    if pool is not None and len(pool) < n_servers:
        raise GenerationError(f"{sites}: only {len(pool)} valid site rows, need {n_servers}")
    trace = read_token_trace(Path(token_trace)) if token_trace is not None else None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    prefix, n = server_prefix(out), n_servers
    bar = tqdm(total=6, desc=out.name, unit="stage", disable=not progress, leave=False)

    if pool is not None:
        xy = pool[rng.choice(len(pool), size=n, replace=False)]
    else:
        xy = pool = place_clustered(rng, n, box)
    lon, lat = np.round(xy[:, 0], 4), np.round(xy[:, 1], 4)
    ids = np.array([f"{prefix}_{i}" for i in range(1, n + 1)])
    cap = rng.integers(15, 60, size=n)
    servers = pd.DataFrame({
        "ServerID": ids, "Longitude": lon, "Latitude": lat, "LinkBandwidth": 50,
        "ComputationCapacity": cap, "StorageCapacity": rng.integers(15, 38, size=n),
        "TrafficRate": rng.integers(20, 48, size=n), "ClusterID": prefix,
        "OriginalID": rng.choice(90_000_000, size=n, replace=False) + 10_000_000,
        "NormalizedCompute": np.round(cap / cap.max(), 6)})
    if gpu_classes:
        servers[GPU_CLASS_COLUMN] = np.array(GPU_CLASS_NAMES)[tercile_classes(servers["NormalizedCompute"].to_numpy())]
    n_traps = int(round(trap_fraction * n))
    trap_idx = np.lexsort((rng.random(n), -cap))[:n_traps]
    is_trap = np.isin(np.arange(n), trap_idx)
    write_csv(servers.iloc[rng.permutation(n)], out / "servers.csv")
    config = {"trap_server_ids": ids[trap_idx].tolist(), "trap_cost_multiplier": 1.2,
              "trap_bandwidth": 1.0, "trap_latency": 2000.0, "trap_rate": trap_fraction}
    atomic_write(out / "trap_config.json", lambda fh: fh.write(json.dumps(config, indent=2) + "\n"))
    bar.update()

    counts = np.zeros((n, 3), dtype=np.int64)
    counts[:, 0] = rng.integers(2, 14, size=n)
    gpt4 = rng.choice(n, size=max(1, int(round(0.56 * n))), replace=False)
    counts[gpt4, 1] = rng.choice([1, 2, 3, 4], size=len(gpt4), p=GPT4_COUNT_PROBS)
    gpt4v = rng.choice(n, size=max(1, int(round(0.12 * n))), replace=False)
    counts[gpt4v, 2] = rng.integers(1, 4, size=len(gpt4v))
    counts[:, 0] = np.minimum(counts[:, 0], MAX_INSTANCES - counts[:, 1:].sum(axis=1))
    server_of = np.repeat(np.repeat(np.arange(n), 3), counts.ravel())
    type_of = np.repeat(np.tile(np.arange(3), n), counts.ravel())
    order = rng.permutation(len(server_of))
    server_of, type_of = server_of[order], type_of[order]
    model_id = np.arange(1, len(server_of) + 1)
    names = np.array(MODEL_TYPES)[type_of]
    write_csv(pd.DataFrame({
        "ModelID": model_id, "ModelType": type_of + 1,
        "ArenaScore": np.round(rng.uniform(0.4, 1.0, size=len(model_id)), 3),
        "ServerID": ids[server_of], "ModelTypeName": names,
        "ModelInstanceID": [f"model_{s}_{m}" for s, m in zip(ids[server_of], model_id)],
        "CostPerToken": np.array(COST_PER_TOKEN)[type_of]}), out / "model_instances.csv")
    bar.update()

    edges, km = build_links(rng, lon, lat)
    latency = np.round(0.33 + 0.004 * km + rng.uniform(-0.03, 0.03, size=len(km)), 6)
    trap_edge = is_trap[edges].any(axis=1)
    latency[trap_edge], bandwidth = 2000.0, np.where(trap_edge, 1.0, 50.0)
    src, dst = edges.ravel(), edges[:, ::-1].ravel()  # each undirected link as two rows
    write_csv(pd.DataFrame({"SrcServerID": ids[src], "DstServerID": ids[dst],
                            "BandwidthMbps": np.repeat(bandwidth, 2),
                            "BaseLatencyMs": np.repeat(latency, 2)}), out / "network_links.csv")
    bar.update()

    n_tasks = test_tasks + train_tasks
    split = np.array(["test"] * test_tasks + ["train"] * train_tasks)
    task_ids = [f"task_{prefix}_{s}_0_{i}" for s, i in
                zip(split, list(range(test_tasks)) + list(range(train_tasks)))]
    lo, hi = pool.min(axis=0), pool.max(axis=0)  # server (or whole site file) extent
    t_lon, t_lat = rng.uniform(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo), size=(n_tasks, 2)).T
    probs = STEP_TYPE_PROBS[np.minimum(np.arange(steps), len(STEP_TYPE_PROBS) - 1)]
    cum = np.cumsum(probs, axis=1)
    cum[:, -1] = 1.0
    step_types = (rng.random((n_tasks, steps))[:, :, None] > cum[None, :, :-1]).sum(axis=2)
    type_names = np.array(MODEL_TYPES)[step_types]
    write_csv(pd.DataFrame({
        "TaskID": task_ids, "Split": split, "TaskLongitude": np.round(t_lon, 6),
        "TaskLatitude": np.round(t_lat, 6), "TaskSize": rng.integers(1, 522, size=n_tasks),
        "RequiredModelTypes": [json.dumps(row) for row in type_names.tolist()]}), out / "tasks.csv")
    bar.update()

    n_req = n_tasks * steps
    req_ids = np.array([f"req_{j}" for j in range(n_req)])
    write_csv(pd.DataFrame({"TaskID": np.repeat(task_ids, steps),
                            "WorkflowStepIndex": np.tile(np.arange(steps), n_tasks),
                            "MappedRequestID": req_ids, "RequiredModelType": type_names.ravel()}),
              out / "task_request_mapping.csv")
    if trace is not None:
        tokens = trace[rng.integers(0, len(trace), size=n_req)]
    else:
        sig_p = np.sqrt(2 * np.log(PROMPT_MEAN / PROMPT_MEDIAN))
        sig_r = np.sqrt(2 * np.log(RESPONSE_MEAN / RESPONSE_MEDIAN))
        tokens = np.column_stack([
            np.clip(np.rint(rng.lognormal(np.log(PROMPT_MEDIAN), sig_p, n_req)), 1, 16384),
            np.clip(np.rint(rng.lognormal(np.log(RESPONSE_MEDIAN), sig_r, n_req)), 1, 1000),
        ]).astype(np.int64)
    write_csv(pd.DataFrame({"RequestID": req_ids, "RequestLengthTokens": tokens[:, 0],
                            "ResponseLengthTokens": tokens[:, 1]}), out / "request_log.csv")
    bar.update()

    _, task_km = nearest_neighbours(t_lon, t_lat, lon, lat, 1)
    bar.update()
    bar.close()
    return {"out": str(out), "servers": n, "traps": n_traps, "links": 2 * len(edges),
            "mean_degree": 2 * len(edges) / n, "instances": len(model_id), "tasks": n_tasks,
            "requests": n_req, "median_task_km": float(np.median(task_km))}


def build_parser() -> argparse.ArgumentParser:
    """CLI definition, kept separate so tests can inspect the help text."""
    p = argparse.ArgumentParser(prog="generate.py", description=(
        "Generate a deterministic synthetic edge-LLM scheduling dataset (servers, model "
        "instances, links, traps, tasks, requests) in the Server1_Trap schema."))
    p.add_argument("--servers", type=arg_type(SIZES["--servers"]), required=True,
                   help="servers per region (N >= 2)")
    p.add_argument("--regions", type=arg_type(SIZES["--regions"]), default=1, help=(
        "number of regions K; for K > 1 the regions are written to OUT/Region1..RegionK, "
        "each around a different European city (default 1)"))
    p.add_argument("--trap-fraction", type=arg_type(SIZES["--trap-fraction"]), default=0.1, help=(
        "share F of servers turned into traps (the highest-capacity ones), 0 <= F < 1 "
        "(default 0.1)"))
    p.add_argument("--seed", type=arg_type(SIZES["--seed"]), default=0,
                   help="random seed; the same arguments give byte-identical files (default 0)")
    p.add_argument("--out", type=Path, required=True, help=(
        "output folder (K = 1) or parent folder (K > 1); a folder named ServerX_Trap gives "
        "server IDs ServerX_1, ServerX_2, ..., any other name is used as the ID prefix"))
    p.add_argument("--token-trace", type=Path, help=(
        "CSV with ContextTokens,GeneratedTokens (Azure) or 'Request tokens,Response tokens' "
        "(BurstGPT) to resample token counts from, instead of the built-in log-normal fit "
        "to the Azure 2023 conversation trace"))
    p.add_argument("--sites", type=Path, help=(
        "CSV with longitude/latitude columns (also lon/lat, lng/lat, long/lat, any case): "
        "servers are sampled from these real sites without replacement"))
    p.add_argument("--train-tasks", type=arg_type(SIZES["--train-tasks"]), default=1000,
                   help="training tasks per region, >= 1 (default 1000)")
    p.add_argument("--test-tasks", type=arg_type(SIZES["--test-tasks"]), default=200,
                   help="test tasks per region, >= 1 (default 200)")
    p.add_argument("--steps", type=arg_type(SIZES["--steps"]), default=5,
                   help="workflow steps per task, >= 2 (default 5)")
    p.add_argument("--gpu-classes", action="store_true", help=(
        f"also write servers.csv's {GPU_CLASS_COLUMN} column: each server's GPU class for the serving "
        f"profile ({', '.join(GPU_CLASS_NAMES)}), by the tercile of its NormalizedCompute within the region; "
        "without it the simulator derives the same classes from a single region"))
    p.add_argument("--force", action="store_true",
                   help="overwrite the generated files in a non-empty --out")
    return p


def main(argv: list[str] | None = None) -> dict:
    """CLI entry point; returns the per-region summaries for scripted use."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name in ("token_trace", "sites"):
        path = getattr(args, name)
        try:
            if path is not None:
                regular_file(path, f"--{name.replace('_', '-')} file")
        except InputError as e:
            parser.error(str(e))
    if args.out.exists() and not args.out.is_dir():
        parser.error(f"--out {args.out}: exists and is not a folder")
    if args.out.exists() and any(args.out.iterdir()) and not args.force:
        parser.error(f"{args.out} exists and is not empty; use --force to overwrite")

    start = time.perf_counter()
    common = dict(n_servers=args.servers, trap_fraction=args.trap_fraction,
                  train_tasks=args.train_tasks, test_tasks=args.test_tasks, steps=args.steps,
                  token_trace=args.token_trace, sites=args.sites, progress=True, gpu_classes=args.gpu_classes)
    try:
        with user_errors():  # a full disk or a read-only --out: one line naming the path
            if args.regions == 1:
                summaries = [generate_region(args.out, seed=args.seed, **common)]
            else:
                summaries = [generate_region(args.out / f"Region{i}", box=region_box(i),
                                             seed=np.random.default_rng([args.seed, i]), **common)
                             for i in tqdm(range(1, args.regions + 1), desc="regions", unit="region")]
    except GenerationError as exc:
        parser.exit(2, f"{parser.prog}: error: {exc}\n")
    total = {key: sum(s[key] for s in summaries)
             for key in ("servers", "traps", "links", "instances", "tasks", "requests")}
    print(f"wrote {len(summaries)} region(s) to {args.out}: {total['servers']} servers, "
          f"{total['traps']} traps, {total['links']} directed links, {total['instances']} model "
          f"instances, {total['tasks']} tasks, {total['requests']} requests, median task-to-server "
          f"{np.median([s['median_task_km'] for s in summaries]):.1f} km "
          f"({time.perf_counter() - start:.1f} s)")
    return {"regions": summaries, **total}


if __name__ == "__main__":
    main()
