"""Iteration times of an LLM server with continuous batching, calibrated on measured data.

The `serving` profile needs, per server, how long one prefill iteration and one decode iteration take for
the batch it holds. Both are linear in a few batch statistics, so the simulator can evaluate them for all
servers at once (every function takes floats or tensors):

  prefill_ms(T, Q, b) = max(floor, p0 + p1*T + p2*Q + p3*b)
      T = prompt tokens in the iteration (linear layers: cost per token), Q = sum of squared prompt lengths
      (self-attention over each prompt), b = prompts in the iteration (a per-sequence cost: in the measured
      table a batch of b prompts of p tokens costs more than one prompt of b*p tokens on several machines).
      `floor` is the least time an iteration takes however few tokens it holds (weight reads, kernel launches,
      tensor-parallel all-reduces): measured prefill times are flat up to about 512 tokens, then grow.
  decode_ms(b, K) = d0 + d1*b + d2*K
      b = sequences in the batch (one new token each), K = KV-cache tokens the iteration attends to over the
      whole batch (attention reads the cache; memory bound).

The coefficients per (model, hardware, tensor parallel) are fitted by `tools/fit_serving_model.py` on the
SplitwiseSim table shipped in data1/serving/ and stored with the model and GPU facts that give the KV-cache
capacity in `data1/serving/perf_model.json` (see docs/serving_model.md).
"""
from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import torch

from .dataset import REPO

PERF_MODEL = REPO / "data1" / "serving" / "perf_model.json"
PERF_TABLE = REPO / "data1" / "serving" / "splitwise_perf_model.csv"
PREFILL_TERMS = ("p0", "p1", "p2", "p3")
DECODE_TERMS = ("d0", "d1", "d2")
FORMAT = 1

Num = Union[float, torch.Tensor]


class PerfModelError(ValueError):
    """A coefficient file or table that cannot be used; the message is one line naming file and field."""


@dataclass(frozen=True)
class ServingCoefficients:
    """One (model, hardware, tensor parallel) setting's iteration-time coefficients, in ms."""
    floor: float
    p0: float
    p1: float
    p2: float
    p3: float
    d0: float
    d1: float
    d2: float


@dataclass(frozen=True)
class ModelFacts:
    """What a model needs in memory: fp16 weights and the KV cache per token."""
    layers: int
    kv_heads: int
    head_dim: int
    weight_bytes: int
    max_batch: int

    @property
    def kv_bytes_per_token(self) -> int:
        """Keys and values (2) of every layer and KV head, fp16 (2 bytes)."""
        return self.layers * 2 * self.kv_heads * self.head_dim * 2


@dataclass(frozen=True)
class PerfModel:
    """The coefficient file: facts per model and hardware, coefficients per (model, hardware, tp)."""
    models: dict[str, ModelFacts]
    gpu_memory_bytes: dict[str, int]
    coefficients: dict[tuple[str, str, int], ServingCoefficients]

    def get(self, model: str, hardware: str, tensor_parallel: int) -> ServingCoefficients:
        """The coefficients of one setting; a PerfModelError listing the fitted ones otherwise."""
        key = (model, hardware, int(tensor_parallel))
        if key not in self.coefficients:
            raise PerfModelError(f"no serving coefficients for {key}; fitted: {sorted(self.coefficients)}")
        return self.coefficients[key]

    def kv_capacity_tokens(self, model: str, hardware: str, tensor_parallel: int) -> int:
        """KV-cache tokens one server holds: (GPU memory x TP - weights) / KV bytes per token; 0 if the
        weights do not fit."""
        facts = self.models[model]
        free = self.gpu_memory_bytes[hardware] * int(tensor_parallel) - facts.weight_bytes
        return max(free, 0) // facts.kv_bytes_per_token


def _maximum(a: Num, b: float) -> Num:
    return torch.clamp(a, min=b) if isinstance(a, torch.Tensor) else max(a, b)


def prefill_ms(c: ServingCoefficients, tokens: Num, sq_tokens: Num, prompts: Num) -> Num:
    """One prefill iteration of `prompts` prompts with `tokens` tokens in all and `sq_tokens` = the sum
    of their squared lengths."""
    return _maximum(c.p0 + c.p1 * tokens + c.p2 * sq_tokens + c.p3 * prompts, c.floor)


def decode_ms(c: ServingCoefficients, batch: Num, kv_tokens: Num) -> Num:
    """One decode iteration of `batch` sequences attending to `kv_tokens` cached tokens in all."""
    return c.d0 + c.d1 * batch + c.d2 * kv_tokens


def decode_span_ms(c: ServingCoefficients, batch: Num, kv_tokens0: Num, iterations: Num) -> Num:
    """`iterations` consecutive decode iterations of a constant batch, the first attending to `kv_tokens0`
    tokens and each adding `batch` tokens: an arithmetic series, summed in closed form so the simulator can
    jump over the iterations between two events."""
    k = iterations
    return k * decode_ms(c, batch, kv_tokens0) + c.d2 * batch * k * (k - 1) / 2


def idle_batch_ms(c: ServingCoefficients, prompt: Num, batch: Num, output_tokens: Num) -> tuple[Num, Num, Num]:
    """(TTFT, TPOT, E2E) of `batch` requests of `prompt` tokens arriving together at an idle server: one
    prefill iteration (which yields the first token), then output_tokens - 1 decode iterations with the
    batch constant, the first attending to prompt + 1 tokens per sequence. TPOT is the mean decode
    iteration (0 when there is none)."""
    ttft = prefill_ms(c, batch * prompt, batch * prompt * prompt, batch)
    k = output_tokens - 1
    span = decode_span_ms(c, batch, batch * (prompt + 1), k)
    tpot = span / _maximum(k, 1.0)
    return ttft, tpot, ttft + span


# ----------------------------------------------------------------------------- loading


def _field(raw: Any, name: str, where: str, kind: type, path: Path) -> Any:
    if not isinstance(raw, dict) or name not in raw:
        raise PerfModelError(f"{path}: {where}: missing field {name!r}")
    value = raw[name]
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
          if kind is float else isinstance(value, kind) and not isinstance(value, bool))
    if kind is int and ok:
        ok = value > 0
    if not ok:
        expected = "a finite number >= 0" if kind is float else ("a positive integer" if kind is int else kind.__name__)
        raise PerfModelError(f"{path}: {where}.{name}: expected {expected}, got {value!r}")
    return float(value) if kind is float else value


def load_perf_model(path: str | Path = PERF_MODEL) -> PerfModel:
    """Read a coefficient file written by tools/fit_serving_model.py; bad content is a one-line
    PerfModelError naming the file and the field."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise PerfModelError(f"{path}: cannot read the serving coefficient file ({e.strerror or e})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise PerfModelError(f"{path}: not valid JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise PerfModelError(f"{path}: expected a JSON object at the top, got {type(raw).__name__}")
    if raw.get("format") != FORMAT:
        raise PerfModelError(f"{path}: format: expected {FORMAT}, got {raw.get('format')!r}")
    for key in ("models", "hardware"):
        if not isinstance(raw.get(key), dict) or not raw[key]:
            raise PerfModelError(f"{path}: {key}: expected a non-empty object")
    models = {name: ModelFacts(**{f: _field(m, f, f"models.{name}", int, path)
                                  for f in ("layers", "kv_heads", "head_dim", "weight_bytes", "max_batch")})
              for name, m in raw["models"].items()}
    memory = {name: _field(h, "gpu_memory_bytes", f"hardware.{name}", int, path) for name, h in raw["hardware"].items()}
    fits = raw.get("fits")
    if not isinstance(fits, list) or not fits:
        raise PerfModelError(f"{path}: fits: expected a non-empty list")
    coefficients: dict[tuple[str, str, int], ServingCoefficients] = {}
    for i, fit in enumerate(fits):
        where = f"fits[{i}]"
        model = _field(fit, "model", where, str, path)
        hardware = _field(fit, "hardware", where, str, path)
        tp = _field(fit, "tensor_parallel", where, int, path)
        if model not in models or hardware not in memory:
            raise PerfModelError(f"{path}: {where}: model {model!r} or hardware {hardware!r} not described above")
        prefill = fit.get("prefill")
        decode = fit.get("decode")
        values = {f: _field(prefill, f, f"{where}.prefill", float, path) for f in ("floor",) + PREFILL_TERMS}
        values |= {f: _field(decode, f, f"{where}.decode", float, path) for f in DECODE_TERMS}
        if (model, hardware, tp) in coefficients:
            raise PerfModelError(f"{path}: {where}: ({model}, {hardware}, {tp}) fitted twice")
        coefficients[(model, hardware, tp)] = ServingCoefficients(**values)
    return PerfModel(models, memory, coefficients)


# ----------------------------------------------------------------------------- fitting

SETTING = ["model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size"]
TABLE_COLUMNS = SETTING + ["prompt_time", "token_time", "e2e_time"]
TRUNCATED_BELOW = 0.85


def read_table(path: str | Path = PERF_TABLE) -> Any:
    """The measured table, one row per setting with the median of its repetitions (a pandas DataFrame),
    plus two flags: `anomaly` (excluded from the fit and the error summary, see `anomaly`) and
    `e2e_truncated` (the measured request ended before token_size tokens)."""
    import pandas as pd

    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise PerfModelError(f"{path}: cannot read the measured table ({str(e).splitlines()[0]})") from None
    missing = [c for c in TABLE_COLUMNS if c not in raw.columns]
    if missing:
        raise PerfModelError(f"{path}: missing column {missing[0]!r}; expected {TABLE_COLUMNS}")
    for c in TABLE_COLUMNS[2:]:
        if not pd.api.types.is_numeric_dtype(raw[c]) or not (raw[c] > 0).all():
            raise PerfModelError(f"{path}: column {c!r}: expected positive numbers")
    table = raw.groupby(SETTING, sort=True)[TABLE_COLUMNS[6:]].median().reset_index()
    table["anomaly"] = [anomaly(r.model, r.tensor_parallel, r.batch_size) for r in table.itertuples()]
    whole = table.prompt_time + (table.token_size - 1) * table.token_time
    table["e2e_truncated"] = table.e2e_time < TRUNCATED_BELOW * whole
    return table


def anomaly(model: str, tensor_parallel: int, batch_size: int) -> str:
    """Why a setting is left out of the fit and the error summary, or '': llama2-70b at tensor parallel 2,
    batch 64 (every hardware) has prefill 8x faster than batch 32 and decode faster too, so it is not a
    run of 64 prompts (the other anomalies are kept; tools/fit_serving_model.py lists them)."""
    tp2_batch64 = model == "llama2-70b" and int(tensor_parallel) == 2 and int(batch_size) == 64
    return "tp2_batch64: faster than batch 32" if tp2_batch64 else ""


def nnls(a: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least squares with non-negative coefficients, exactly: the best of the unconstrained solutions on
    every subset of columns that come out non-negative (at most 4 columns here, so 15 subsets)."""
    n = a.shape[1]
    best = (float((y**2).sum()), np.zeros(n))  # all coefficients 0 is always allowed
    for r in range(1, n + 1):
        for cols in itertools.combinations(range(n), r):
            sol = np.linalg.lstsq(a[:, cols], y, rcond=None)[0]
            if (sol < 0).any():
                continue
            x = np.zeros(n)
            x[list(cols)] = sol
            res = float(((a @ x - y) ** 2).sum())
            if res < best[0] - 1e-12 * max(res, 1.0):
                best = (res, x)
    return best[1]


def prefill_features(prompt: np.ndarray, batch: np.ndarray) -> np.ndarray:
    b = batch.astype(float)
    p = prompt.astype(float)
    return np.stack([np.ones_like(b), b * p, b * p * p, b], axis=1)


def decode_features(prompt: np.ndarray, batch: np.ndarray, tokens: np.ndarray) -> np.ndarray:
    """K = b * (prompt + tokens / 2): the batch's KV tokens averaged over the token_size - 1 decode
    iterations that token_time averages (the i-th attends to b * (prompt + i))."""
    b = batch.astype(float)
    return np.stack([np.ones_like(b), b, b * (prompt.astype(float) + tokens.astype(float) / 2)], axis=1)


def fit_prefill(prompt: np.ndarray, batch: np.ndarray, ms: np.ndarray) -> dict[str, float]:
    """Relative least squares (rows divided by the measured time) of max(floor, p0 + p1*T + p2*Q + p3*b).
    The floor is tried at 0 and at every measured time; for each, the linear part is fitted on the rows
    above it, and the floor with the least total squared relative error wins."""
    f = prefill_features(prompt, batch)
    best: tuple[float, float, np.ndarray] | None = None
    for floor in [0.0] + sorted(set(ms.tolist())):
        above = ms > floor
        if above.sum() < f.shape[1]:
            continue
        x = nnls(f[above] / ms[above, None], np.ones(int(above.sum())))
        err = float(((np.maximum(f @ x, floor) / ms - 1) ** 2).sum())
        if best is None or err < best[0] - 1e-12:
            best = (err, floor, x)
    if best is None:
        raise PerfModelError(f"a (model, hardware, tensor parallel) has {len(ms)} settings; the prefill fit needs "
                             f"at least {f.shape[1]}")
    return {"floor": best[1]} | dict(zip(PREFILL_TERMS, best[2].tolist()))


def fit_decode(prompt: np.ndarray, batch: np.ndarray, tokens: np.ndarray, ms: np.ndarray) -> dict[str, float]:
    """Relative least squares of d0 + d1*b + d2*K, non-negative."""
    f = decode_features(prompt, batch, tokens)
    return dict(zip(DECODE_TERMS, nnls(f / ms[:, None], np.ones(len(ms))).tolist()))


def fit_group(rows: Any) -> ServingCoefficients:
    """The coefficients of one (model, hardware, tp) from its table rows (anomalies already dropped)."""
    p, b, n = (rows[c].to_numpy() for c in ("prompt_size", "batch_size", "token_size"))
    pre = fit_prefill(p, b, rows.prompt_time.to_numpy(dtype=float))
    dec = fit_decode(p, b, n, rows.token_time.to_numpy(dtype=float))
    return ServingCoefficients(**{k: float(f"{v:.6g}") for k, v in (pre | dec).items()})


def fit_table(table: Any) -> dict[tuple[str, str, int], ServingCoefficients]:
    """Coefficients of every (model, hardware, tp) in a table from read_table, anomalies excluded."""
    kept = table[table.anomaly == ""]
    return {(m, h, int(tp)): fit_group(rows)
            for (m, h, tp), rows in kept.groupby(["model", "hardware", "tensor_parallel"], sort=True)}
