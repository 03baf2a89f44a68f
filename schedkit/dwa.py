"""Dynamic Weight Adjustment (docs/schedulers.md): scalarisation weights that follow metric drift.

Each active epoch compares every objective's loss L_k (the previous epoch's mean of -r_k) with
its own slow moving mean; an objective getting worse relative to its history gains weight.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INITIAL_WEIGHTS = (0.45, 0.40, 0.15)  # latency, cost, switch


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


@dataclass
class DWA:
    """Weights (wL, wC, wS), updated once per epoch for `start <= epoch < frac_end * epochs`."""

    epochs: int
    weights: np.ndarray = field(default_factory=lambda: np.array(INITIAL_WEIGHTS))
    moving_mean: np.ndarray | None = None
    start: int = 3
    frac_end: float = 0.8
    momentum: float = 0.15
    ratio_clip: tuple[float, float] = (0.7, 1.3)
    temperature: float = 3.0
    scale: float = 3.0
    mix: float = 0.3
    weight_clip: tuple[float, float] = (0.15, 0.7)

    def active(self, epoch: int) -> bool:
        return self.start <= epoch < self.frac_end * self.epochs

    def update(self, epoch: int, losses: np.ndarray) -> np.ndarray:
        """`losses` = previous epoch's mean of (-rL, -rC, -rS). Returns the weights for `epoch`.

        The moving mean is only tracked while DWA is active: m = L + 1e-6 the first time, then
        m <- 0.15 L + 0.85 m; ratio q = clip(L / m, 0.7, 1.3); w_new = softmax(3 softmax(q / 3));
        w <- 0.3 w_new + 0.7 w, clipped to [0.15, 0.7] and renormalised. Frozen outside the window.
        """
        if not self.active(epoch):
            return self.weights
        losses = np.asarray(losses, dtype=float)
        if self.moving_mean is None:
            self.moving_mean = losses + 1e-6
        else:
            self.moving_mean = self.momentum * losses + (1 - self.momentum) * self.moving_mean
        q = np.clip(losses / self.moving_mean, *self.ratio_clip)
        w_new = _softmax(self.scale * _softmax(q / self.temperature))
        w = np.clip(self.mix * w_new + (1 - self.mix) * self.weights, *self.weight_clip)
        self.weights = w / w.sum()
        return self.weights

    def state_dict(self) -> dict:
        return {"weights": self.weights.tolist(),
                "moving_mean": None if self.moving_mean is None else self.moving_mean.tolist()}

    def load_state_dict(self, state: dict) -> None:
        self.weights = np.array(state["weights"])
        self.moving_mean = None if state["moving_mean"] is None else np.array(state["moving_mean"])
