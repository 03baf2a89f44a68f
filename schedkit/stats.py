"""Bootstrap confidence intervals for evaluation results (docs/evaluation.md)."""
from __future__ import annotations

import numpy as np


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


# --- Runs x tasks: training seeds are the unit of replication --------------------------------------
#
# An evaluation is a (runs, strata, tasks) array: R training runs (one for a deterministic heuristic),
# S evaluation seeds (strata), n episodes per stratum. Every scheduler meets the same tasks (common
# random numbers: episode i of eval seed s is the same task and draws for all), so tasks are *crossed*
# with runs. A bootstrap replicate therefore
#   1. draws one resample of the task indices per stratum, shared by every run (and, in a paired
#      comparison, by both schedulers), and
#   2. draws R runs with replacement (rliable's stratified bootstrap over runs).
# Drawing the task indices independently per run would treat the R runs' episodes as R*n independent
# observations and shrink the task part of the interval by about 1/sqrt(R): the bug this replaces.
# With one run, step 2 is the identity and the interval is over tasks (episodes) only.

def runs_array(frame, value: str, run: str = "run", stratum: str = "eval_seed", order: str = "episode") -> np.ndarray:
    """(R, S, n) array of `value` from a tidy frame: runs by `run`, strata by `stratum`, episodes in
    `order`. Every (run, stratum) must hold the same number of episodes (evaluate_all guarantees it)."""
    frame = frame.assign(_run=frame[run].astype(object).fillna("").astype(str))
    runs, strata = sorted(frame["_run"].unique()), sorted(frame[stratum].unique())
    cells = {k: g.sort_values(order)[value].to_numpy(dtype=float) for k, g in frame.groupby(["_run", stratum])}
    sizes = {len(cells.get((r, s), ())) for r in runs for s in strata}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(f"every (run, {stratum}) needs the same number of episodes for {value}, got sizes {sorted(sizes)}")
    return np.stack([np.stack([cells[(r, s)] for s in strata]) for r in runs])


def ci_unit(n_runs: int) -> str:
    """What an interval from the functions below resamples: 'runs' (and tasks) or 'episodes' only."""
    return "runs" if n_runs >= 2 else "episodes"


def _resamples(shape: tuple[int, int, int], n_boot: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """Task indices (n_boot, S, n), shared by every run, and run indices (n_boot, R)."""
    R, S, n = shape
    tasks = rng.integers(0, n, (n_boot, S, n))
    return tasks, _run_resamples(R, n_boot, rng)


def _run_resamples(R: int, n_boot: int, rng) -> np.ndarray:
    """(n_boot, R) run indices drawn with replacement; the identity draw when there is one run."""
    return rng.integers(0, R, (n_boot, R)) if R > 1 else np.zeros((n_boot, 1), dtype=int)


def _counts(tasks: np.ndarray) -> np.ndarray:
    """(n_boot, S, n) how often each task is drawn in each replicate."""
    B, S, n = tasks.shape
    flat = tasks + (np.arange(B * S) * n).reshape(B, S, 1)
    return np.bincount(flat.ravel(), minlength=B * S * n).reshape(B, S, n).astype(float)


def _task_means(x: np.ndarray, tasks: np.ndarray) -> np.ndarray:
    """(R, S, n_boot, ...) mean of each run over each replicate's resampled tasks."""
    counts = _counts(tasks) / tasks.shape[2]
    return np.stack([np.stack([np.tensordot(counts[:, s], x[r, s], axes=(1, 0)) for s in range(x.shape[1])])
                     for r in range(len(x))])


def _over_runs(m: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """(n_boot, ...) mean over strata and over each replicate's resampled runs of (R, S, n_boot, ...) means."""
    m = np.moveaxis(m, 2, 0)  # (B, R, S, ...)
    picked = m[np.arange(len(runs))[:, None], runs]  # (B, R, S, ...)
    return picked.mean(axis=(1, 2))


def hierarchical_bootstrap_means(x: np.ndarray, n_boot: int = 2000, seed: int = 0) -> np.ndarray:
    """(n_boot, ...) replicates of the mean of x (R, S, n, ...): runs resampled, tasks resampled jointly.
    Trailing dimensions (e.g. latency and cost) are resampled together and keep their correlation."""
    x = np.asarray(x, dtype=float)
    tasks, runs = _resamples(x.shape[:3], n_boot, np.random.default_rng(seed))
    return _over_runs(_task_means(x, tasks), runs)


def _quantiles(boot: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def hierarchical_bootstrap_ci(x: np.ndarray, n_boot: int = 2000, level: float = 0.95,
                              seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean over runs, strata and tasks of x (R, S, n) with a bootstrap CI that
    resamples runs (when R >= 2) and tasks. Its unit is ci_unit(R)."""
    x = np.asarray(x, dtype=float)
    return (float(x.mean()), *_quantiles(hierarchical_bootstrap_means(x, n_boot, seed), level))


def _pooled(x: np.ndarray, tasks: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """(n_boot, R*S*n) every replicate's pooled episodes: its runs, and within them its tasks."""
    B = len(runs)
    s = np.arange(x.shape[1])
    return x[runs[:, :, None, None], s[None, None, :, None], tasks[:, None, :, :]].reshape(B, -1)


def hierarchical_bootstrap_percentile_ci(x: np.ndarray, q: float, n_boot: int = 1000, level: float = 0.95,
                                         seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high) of the q-th percentile of every episode pooled, resampling runs and tasks."""
    x = np.asarray(x, dtype=float)
    tasks, runs = _resamples(x.shape, n_boot, np.random.default_rng(seed))
    return (float(np.percentile(x, q)), *_quantiles(np.percentile(_pooled(x, tasks, runs), q, axis=1), level))


def _check_paired(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape[1:] != y.shape[1:]:
        raise ValueError(f"paired arrays need the same strata and tasks, got {x.shape} and {y.shape}")
    return x, y


def paired_bootstrap_ci(x: np.ndarray, y: np.ndarray, q: float | None = None, n_boot: int = 2000,
                        level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(difference, low, high) of mean(x) - mean(y), or of their q-th percentiles, on shared tasks.

    x (R, S, n) and y (R', S, n) hold the same tasks at the same positions. Each replicate draws one
    task resample used by both (the pairing: task difficulty cancels), and the runs of each side
    independently."""
    x, y = _check_paired(x, y)
    rng = np.random.default_rng(seed)
    tasks, runs_x = _resamples(x.shape, n_boot, rng)
    runs_y = _run_resamples(len(y), n_boot, rng)
    if q is None:
        point = x.mean() - y.mean()
        boot = _over_runs(_task_means(x, tasks), runs_x) - _over_runs(_task_means(y, tasks), runs_y)
    else:
        point = np.percentile(x, q) - np.percentile(y, q)
        boot = (np.percentile(_pooled(x, tasks, runs_x), q, axis=1)
                - np.percentile(_pooled(y, tasks, runs_y), q, axis=1))
    return (float(point), *_quantiles(boot, level))


def probability_of_improvement(x: np.ndarray, y: np.ndarray, higher_is_better: bool = True, n_boot: int = 2000,
                               level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """(P(X > Y), low, high), rliable's probability of improvement on paired episodes: the probability
    that a random run of X beats a random run of Y on the same task (ties count one half), averaged
    over every pair of runs, strata and tasks. The CI resamples tasks (shared) and both sides' runs."""
    x, y = _check_paired(x, y)
    a, b = (x[:, None], y[None]) if higher_is_better else (y[None], x[:, None])
    wins = (a > b) + 0.5 * (a == b)  # (R, R', S, n)
    rng = np.random.default_rng(seed)
    tasks, runs_x = _resamples(x.shape, n_boot, rng)
    runs_y = _run_resamples(len(y), n_boot, rng)
    counts = _counts(tasks) / x.shape[2]
    m = np.einsum("bsn,ijsn->bijs", counts, wins)  # (B, R, R', S)
    rows = np.arange(n_boot)[:, None, None]
    boot = m[rows, runs_x[:, :, None], runs_y[:, None, :]].mean(axis=(1, 2, 3))
    return (float(wins.mean()), *_quantiles(boot, level))
