"""Bootstrap confidence intervals for evaluation results (SPEC section 5)."""
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
    boot = 0.0
    for g in groups:
        g = np.asarray(g, dtype=float)
        boot = boot + g[rng.integers(0, len(g), (n_boot, len(g)))].mean(1)
    return boot / len(groups)


def iqm(values: np.ndarray) -> float:
    """Interquartile mean: the mean of the middle 50% of values (robust to a few outliers)."""
    x = np.sort(np.asarray(values, dtype=float))
    n = len(x)
    return float(x[n // 4: n - n // 4].mean()) if n >= 4 else float(x.mean())
