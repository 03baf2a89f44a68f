"""Bootstrap confidence intervals for evaluation results (SPEC section 5)."""
from __future__ import annotations

import numpy as np


def stratified_bootstrap_ci(groups: list[np.ndarray], n_boot: int = 2000, level: float = 0.95,
                            seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high) of the mean over groups (e.g. training seeds) of each group's mean.

    Each bootstrap sample resamples the episodes within every group, so seeds keep equal weight
    and the interval reflects episode noise within them.
    """
    rng = np.random.default_rng(seed)
    groups = [np.asarray(g, dtype=float) for g in groups]
    point = float(np.mean([g.mean() for g in groups]))
    boot = np.zeros(n_boot)
    for g in groups:
        boot += g[rng.integers(0, len(g), (n_boot, len(g)))].mean(1)
    boot /= len(groups)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return point, float(lo), float(hi)
