"""The serving profile's GPU classes (docs/simulator.md §6) and the rule that gives a server its class.

Kept apart from edgesim/serving.py so that the dataset loader (which checks a `GPUClass` column) and the
generator (which writes one) share the names and the rule without importing the simulator.
"""
from __future__ import annotations

import numpy as np
import torch

# (model, hardware, tensor parallel) of the fitted performance model (data1/serving/perf_model.json), lowest
# NormalizedCompute tercile first, and the name a dataset's GPUClass column gives each
GPU_CLASSES = (
    ("llama2-70b", "a100-80gb", 2),
    ("llama2-70b", "h100-80gb-pcap", 4),
    ("llama2-70b", "h100-80gb", 8),
)
GPU_CLASS_NAMES = tuple(f"{hardware}-tp{tp}" for _, hardware, tp in GPU_CLASSES)
GPU_CLASS_COLUMN = "GPUClass"  # the optional servers.csv column


def tercile_classes(nc: np.ndarray) -> np.ndarray:
    """(N,) int64 index into GPU_CLASSES of each server, by the tercile of its NormalizedCompute: above the
    2/3 quantile the last class, above the 1/3 quantile the middle one, else the first (quantiles linearly
    interpolated, in float64). The default of a dataset without a GPUClass column."""
    values = torch.tensor(np.asarray(nc, dtype=np.float64))
    q1, q2 = torch.quantile(values, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64))
    return ((values > q1).long() + (values > q2).long()).numpy()
