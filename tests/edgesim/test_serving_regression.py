"""Pins the serving profile's outcomes: a short run's completed requests hashed, so that a change to the
simulator's internals (an optimisation of `step`) that moves any request's timing or placement fails here.

The digests were computed from the simulator as specified in docs/simulator.md §6; a change of the
model itself (not of its speed) must update them deliberately, with the reason in its commit."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from tiny import write_tiny

from edgesim.dataset import load_dataset
from edgesim.registry import make_simulator
from edgesim.serving import Serving

ROOT = Path(__file__).resolve().parents[2]


def digest(sim, steps: int) -> tuple[str, int]:
    """sha256 of (episode, step, server, end_ms to 1e-6, ttft_ms to 1e-6, decode iterations) of every completed
    request over `steps` steps of random valid decisions, step by step (sorted within a step: the order of one
    step's rows is not part of the model); and their count."""
    gen = torch.Generator().manual_seed(0)
    h, n = hashlib.sha256(), 0
    for _ in range(steps):
        _, _, _, info = sim.step(sim.sample_valid(gen))
        rows = zip(*(info[k].tolist() for k in ("episode", "step", "server", "end_ms", "ttft_ms", "decode_iterations")))
        for e, s, srv, end, ttft, it in sorted(rows):
            h.update(f"{e},{s},{srv},{end:.6f},{ttft:.6f},{it}\n".encode())
            n += 1
        h.update(b"step\n")
    return h.hexdigest(), n


def test_tiny_run_is_pinned(tmp_path):
    write_tiny(tmp_path / "tiny")
    with pytest.warns(UserWarning):  # the tiny region has a one-step task, skipped
        ds = load_dataset(tmp_path, "tiny")
    sim = make_simulator(ds, 3, "train", "random", 0, profile="serving",
                         params=Serving(worlds=3, max_in_flight=16, warmup=0, load=0.9))
    assert digest(sim, 200) == TINY


def test_server1_run_is_pinned():
    ds = load_dataset(ROOT / "data1", "Server1_Trap")
    sim = make_simulator(ds, 2, "train", "random", 1, profile="serving",
                         params=Serving(worlds=2, max_in_flight=64, warmup=0, load=1.0))
    assert digest(sim, 150) == SERVER1


TINY = ("2d8abc903993aac91da3d6f10451d0580ace1356f72a0753bea36cdfc256d439", 555)
SERVER1 = ("3657d546cebde1a15af0bb477a71f9c2724b2949d0f0ef833457c8a34c06c59e", 174)
