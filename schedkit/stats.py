"""Bootstrap confidence intervals for evaluation results (docs/evaluation.md)."""
from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
import pandas as pd


def stratified_bootstrap_ci(groups: list[np.ndarray], n_boot: int = 2000, level: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of the mean over groups (e.g. training seeds) of each group's mean.

    Each bootstrap sample resamples the episodes within every group, so seeds keep equal weight
    and the interval reflects episode noise within them.
    """
    groups = [np.asarray(g, dtype=float) for g in groups]
    point = float(np.mean([g.mean() for g in groups]))
    boot = stratified_bootstrap_means(groups, n_boot, seed)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)


def stratified_bootstrap_percentile_ci(groups: list[np.ndarray], q: float, n_boot: int = 1000, level: float = 0.95,
                                        seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high) of the q-th percentile of all episodes pooled, resampling within each group."""
    groups = [np.asarray(g, dtype=float) for g in groups]
    point = float(np.percentile(np.concatenate(groups), q))
    rng = np.random.default_rng(seed)
    pooled = np.concatenate([g[rng.integers(0, len(g), (n_boot, len(g)))] for g in groups], axis=1)
    lo, hi = np.quantile(np.percentile(pooled, q, axis=1), [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)


def stratified_bootstrap_means(groups: list[np.ndarray], n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_boot, ...) bootstrap replicates of the mean over groups of each group's mean.

    Groups may be (n_i,) or (n_i, k) arrays; rows are resampled jointly, so the k columns keep
    their correlation (used for the latency-cost confidence ellipses)."""
    rng = np.random.default_rng(seed)
    boot: np.ndarray | float = 0.0
    for g in groups:
        values = np.asarray(g, dtype=float)
        boot = boot + values[rng.integers(0, len(values), (n_boot, len(values)))].mean(1)
    return np.asarray(boot) / len(groups)


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of values (robust to a few outliers)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    return float(x[n // 4: n - n // 4].mean()) if n >= 4 else float(x.mean())


# --- Runs x eval seeds x task clusters -------------------------------------------------------------
#
# An evaluation is a (runs, eval seeds, episodes) array: R training runs (one for a deterministic
# heuristic), S evaluation seeds, n episodes per seed. The n episodes are passes over a set of tasks:
# episode i's task is `clusters[i]`, the same in every run and eval seed (common random numbers), and a
# task comes back once per pass. Three levels vary and each enters the interval:
#   runs:          delete-one-run jackknife (each side of a paired comparison on its own), R - 1 df;
#   eval seeds:    delete-one-seed jackknife, shared by every run and both sides, S - 1 df;
#   task clusters: bootstrap of whole clusters (every episode of a task, across passes, runs, eval seeds
#                  and both sides of a pair, is drawn together), K - 1 df.
# The interval is point +- t_df * SE with SE^2 the sum of the three variances and df from
# Welch-Satterthwaite: a t-interval, not a percentile bootstrap, because a percentile bootstrap over 3
# or 5 runs covers only about 76% / 84% of the time. Episode noise and interactions enter the estimate
# of more than one level, so the interval errs on the wide side (tests/schedkit/test_stats.py measures
# its coverage). Resampling episodes independently would treat the passes over one task as independent
# observations and shrink the task part of the interval.

def runs_array(frame, value: str, run: str = "run", stratum: str = "eval_seed", order: str = "episode") -> np.ndarray:
    """(R, S, n) array of `value` from a tidy frame: runs by `run`, strata by `stratum`, episodes in
    `order`. Every (run, stratum) must hold the same number of episodes (evaluate_all guarantees it);
    task_clusters gives the matching cluster of each episode."""
    frame = frame.assign(_run=frame[run].astype(object).fillna("").astype(str))
    runs, strata = sorted(frame["_run"].unique()), sorted(frame[stratum].unique())
    cells = {k: g.sort_values(order)[value].to_numpy(dtype=float) for k, g in frame.groupby(["_run", stratum])}
    sizes = {len(cells.get((r, s), ())) for r in runs for s in strata}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every (run, {stratum}) needs the same number of episodes for {value}, got sizes {sorted(sizes)}")
    return np.stack([np.stack([cells[(r, s)] for s in strata]) for r in runs])


def task_clusters(frame, task: str = "task_id", run: str = "run", stratum: str = "eval_seed",
                  order: str = "episode") -> np.ndarray:
    """(n,) cluster id of each episode of runs_array(frame, ...): the episodes of one task form one cluster.
    Episode i must be the same task in every run and eval seed (common random numbers), else ValueError."""
    codes = frame.assign(_task=pd.factorize(frame[task])[0])
    ids = runs_array(codes, "_task", run, stratum, order)
    if not (ids == ids[:1, :1]).all():
        raise ValueError(f"episode i must be the same {task} in every (run, {stratum}) to form task clusters")
    return ids[0, 0].astype(int)


def ci_unit(n_runs: int, n_eval_seeds: int = 1) -> str:
    """The top level an interval from the functions below resamples: training 'runs' (then evaluation seeds
    and task clusters within them), else 'eval seeds, tasks', else 'tasks' (task clusters only)."""
    if n_runs >= 2:
        return "runs"
    return "eval seeds, tasks" if n_eval_seeds >= 2 else "tasks"


def t_quantile(p: float, df: float) -> float:
    """The p-quantile (p >= 0.5) of Student's t with `df` (possibly fractional, >= 1) degrees of freedom.
    The project does not depend on scipy, so the CDF is integrated numerically after t = sqrt(df) tan(u),
    which makes the integrand cos(u)^(df - 1): smooth and bounded, so a fine trapezoid rule is exact to ~1e-9."""
    if not 0.5 <= p < 1 or not df >= 1:
        raise ValueError(f"t_quantile needs 0.5 <= p < 1 and df >= 1, got p={p}, df={df}")
    if df > 1e7:
        return NormalDist().inv_cdf(p)
    scale = math.exp(math.lgamma((df + 1) / 2) - math.lgamma(df / 2)) / math.sqrt(math.pi)

    def cdf(x: float) -> float:
        u = np.linspace(0.0, math.atan(x / math.sqrt(df)), 4001)
        return 0.5 + scale * float(np.trapezoid(np.cos(u) ** (df - 1), u))

    lo, hi = 0.0, 1.0
    while cdf(hi) < p:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) < p else (lo, mid)
    return (lo + hi) / 2


def _cluster_ids(clusters: np.ndarray | None, n: int) -> np.ndarray:
    """Cluster ids 0..K-1 of n episodes; every episode its own cluster when none are given."""
    if clusters is None:
        return np.arange(n)
    clusters = np.asarray(clusters)
    if clusters.shape != (n,):
        raise ValueError(f"clusters must give one task per episode, {n}, got shape {clusters.shape}")
    return np.unique(clusters, return_inverse=True)[1].reshape(-1)


def _cluster_weights(K: int, n_boot: int, rng) -> np.ndarray:
    """(n_boot, K) how often each cluster is drawn in each replicate of K draws with replacement."""
    flat = rng.integers(0, K, (n_boot, K)) + (np.arange(n_boot) * K)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * K).reshape(n_boot, K).astype(float)


def _mean_stat(a: np.ndarray, ids: np.ndarray, w: np.ndarray | None) -> np.ndarray | float:
    """Mean of a (R, S, n); with cluster weights w (B, K), the B replicates' weighted means."""
    if w is None:
        return float(a.mean())
    K = w.shape[1]
    sums = np.bincount(ids, weights=a.mean(axis=(0, 1)), minlength=K)
    return (w @ sums) / (w @ np.bincount(ids, minlength=K))


def _percentile_stat(q: float):
    def stat(a: np.ndarray, ids: np.ndarray, w: np.ndarray | None) -> np.ndarray | float:
        """q-th percentile of every episode of a pooled; with cluster weights w (B, K), each replicate's
        weighted (inverted-CDF) percentile, in chunks to bound memory."""
        if w is None:
            return float(np.percentile(a, q))
        values = a.reshape(-1)
        order = np.argsort(values, kind="stable")
        values, cl = values[order], np.broadcast_to(ids, a.shape).reshape(-1)[order]
        out = np.empty(len(w))
        for start in range(0, len(w), 50):
            cum = np.cumsum(w[start:start + 50][:, cl], axis=1)
            at = (cum < (q / 100) * cum[:, -1:]).sum(axis=1)
            out[start:start + 50] = values[np.minimum(at, len(values) - 1)]
        return out
    return stat


def _jackknife_var(values: list[float]) -> float:
    v = np.asarray(values)
    return float((len(v) - 1) / len(v) * ((v - v.mean()) ** 2).sum())


def _t_interval(sides: list[tuple[np.ndarray, float]], stat, clusters: np.ndarray | None, n_boot: int,
                level: float, seed: int) -> tuple[float, float, float]:
    """(point, low, high) of sum(sign * stat(side)) over sides (R_i, S, n), as the module comment says:
    jackknife over each side's runs and over the shared eval seeds, bootstrap over shared task clusters,
    combined into a Welch-Satterthwaite t-interval."""
    S, n = sides[0][0].shape[1:3]
    ids = _cluster_ids(clusters, n)
    K = int(ids.max()) + 1

    def total(arrays, w=None):
        return sum(sign * stat(a, ids, w) for a, (_, sign) in zip(arrays, sides, strict=True))

    arrays = [a for a, _ in sides]
    point = float(total(arrays))
    parts: list[tuple[float, int]] = []
    for i, a in enumerate(arrays):
        if len(a) >= 2:
            parts.append((_jackknife_var([total(arrays[:i] + [np.delete(a, r, 0)] + arrays[i + 1:])
                                          for r in range(len(a))]), len(a) - 1))
    if S >= 2:
        parts.append((_jackknife_var([total([np.delete(a, s, 1) for a in arrays]) for s in range(S)]), S - 1))
    if K >= 2:
        boot = total(arrays, _cluster_weights(K, n_boot, np.random.default_rng(seed)))
        parts.append((float(np.var(boot, ddof=1)) * K / (K - 1), K - 1))
    var = sum(v for v, _ in parts)
    if var <= 0:
        return point, point, point
    df = var ** 2 / sum(v ** 2 / d for v, d in parts if v > 0)
    half = t_quantile((1 + level) / 2, max(df, 1.0)) * math.sqrt(var)
    return point, point - half, point + half


def hierarchical_bootstrap_ci(x: np.ndarray, n_boot: int = 2000, level: float = 0.95, seed: int = 0,
                              clusters: np.ndarray | None = None) -> tuple[float, float, float]:
    """(mean, low, high): the mean of x (R, S, n) with a t-interval over runs, eval seeds and task
    clusters (`clusters`: the task of each episode, from task_clusters; None: every episode its own
    task). Its run level is ci_unit(R)."""
    x = np.asarray(x, dtype=float)
    return _t_interval([(x, 1.0)], _mean_stat, clusters, n_boot, level, seed)


def hierarchical_bootstrap_percentile_ci(x: np.ndarray, q: float, n_boot: int = 1000, level: float = 0.95,
                                         seed: int = 0, clusters: np.ndarray | None = None
                                         ) -> tuple[float, float, float]:
    """(value, low, high) of the q-th percentile of every episode of x (R, S, n) pooled, with the same
    t-interval over runs, eval seeds and task clusters as hierarchical_bootstrap_ci."""
    x = np.asarray(x, dtype=float)
    return _t_interval([(x, 1.0)], _percentile_stat(q), clusters, n_boot, level, seed)


def hierarchical_bootstrap_means(x: np.ndarray, n_boot: int = 2000, seed: int = 0,
                                 clusters: np.ndarray | None = None) -> np.ndarray:
    """(n_boot, ...) replicates of the mean of x (R, S, n, ...) for drawing (confidence ellipses): runs
    resampled, task clusters resampled jointly for every run, eval seeds kept. Trailing dimensions (e.g.
    latency and cost) are resampled together and keep their correlation."""
    x = np.asarray(x, dtype=float)
    R, _, n = x.shape[:3]
    ids = _cluster_ids(clusters, n)
    rng = np.random.default_rng(seed)
    w = _cluster_weights(int(ids.max()) + 1, n_boot, rng)[:, ids]  # (B, n)
    per_run = np.einsum("bn,rn...->br...", w / w.sum(1, keepdims=True), x.mean(axis=1))  # (B, R, ...)
    runs = rng.integers(0, R, (n_boot, R)) if R > 1 else np.zeros((n_boot, 1), dtype=int)
    return per_run[np.arange(n_boot)[:, None], runs].mean(axis=1)


def _check_paired(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"paired arrays need the same strata and tasks, got {x.shape} and {y.shape}")
    return x, y


def paired_bootstrap_ci(x: np.ndarray, y: np.ndarray, q: float | None = None, n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0, clusters: np.ndarray | None = None
                        ) -> tuple[float, float, float]:
    """(difference, low, high) of mean(x) - mean(y), or of their q-th percentiles, on shared tasks.

    x (R, S, n) and y (R', S, n) hold the same tasks at the same positions. The eval-seed jackknife and
    every task-cluster replicate are shared by both sides (the pairing: task difficulty cancels); each
    side's runs enter on their own. The interval is the t-interval of the module comment."""
    x, y = _check_paired(x, y)
    stat = _mean_stat if q is None else _percentile_stat(q)
    return _t_interval([(x, 1.0), (y, -1.0)], stat, clusters, n_boot, level, seed)


def probability_of_improvement(x: np.ndarray, y: np.ndarray, higher_is_better: bool = True, n_boot: int = 2000,
                               level: float = 0.95, seed: int = 0, clusters: np.ndarray | None = None
                               ) -> tuple[float, float, float]:
    """(P(X > Y), low, high), rliable's probability of improvement on paired episodes: the probability
    that a random run of X beats a random run of Y on the same task (ties count one half), averaged
    over every pair of runs, strata and tasks. A descriptive effect size: its percentile-bootstrap CI
    resamples task clusters (shared) and both sides' runs, and keeps the eval seeds."""
    x, y = _check_paired(x, y)
    a, b = (x[:, None], y[None]) if higher_is_better else (y[None], x[:, None])
    wins = (a > b) + 0.5 * (a == b)  # (R, R', S, n)
    ids = _cluster_ids(clusters, x.shape[2])
    rng = np.random.default_rng(seed)
    w = _cluster_weights(int(ids.max()) + 1, n_boot, rng)[:, ids]
    m = np.einsum("bn,ijsn->bijs", w / w.sum(1, keepdims=True), wins)  # (B, R, R', S)
    runs_x = rng.integers(0, len(x), (n_boot, len(x))) if len(x) > 1 else np.zeros((n_boot, 1), dtype=int)
    runs_y = rng.integers(0, len(y), (n_boot, len(y))) if len(y) > 1 else np.zeros((n_boot, 1), dtype=int)
    rows = np.arange(n_boot)[:, None, None]
    boot = m[rows, runs_x[:, :, None], runs_y[:, None, :]].mean(axis=(1, 2, 3))
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(wins.mean()), float(lo), float(hi)
