"""The simulator on a CUDA device against the CPU, both profiles, with the same draws.

Skipped without CUDA. `TOPOFREERL_EQUIV_DEVICE=cpu` runs the same comparisons CPU against CPU (what
`bench/gpu_suite.py --device cpu` does as a dry run): it checks the harness, not a device.

Same draws: the step uniforms are drawn on the CPU and passed to both simulators, tasks are dealt in
file order, and the contention worlds take their arrivals from a trace (whose start points the
device simulator copies with `load_world_state`), so no draw comes from a device generator.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from edgesim.contention import Contention, ContentionSimulator
from edgesim.simulator import Simulator

DEVICE = os.environ.get("TOPOFREERL_EQUIV_DEVICE", "cuda")
pytestmark = pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(), reason="no CUDA device")
INFO = ("latency", "network_ms", "compute_ms", "queue_ms", "cost", "server", "fallback", "trap_hit", "episode", "done")


def play_both(cpu: Simulator, dev: Simulator, steps: int, seed: int) -> int:
    """Step both with the same actions (a valid server, or an arbitrary one for 20% of the rows) and
    uniforms; every reward and info field must agree. Returns the number of decisions compared."""
    gen = torch.Generator().manual_seed(seed)
    finished = 0
    for _ in range(steps):
        actions = cpu.sample_valid(gen)
        wild = torch.rand(cpu.batch_size, generator=gen) < 0.2
        actions = torch.where(wild, torch.randint(cpu.n_servers, (cpu.batch_size,), generator=gen), actions)
        u = torch.rand((cpu.batch_size, 4), generator=gen, dtype=torch.float64)
        _, r_cpu, done, i_cpu = cpu.step(actions, uniforms=u)
        _, r_dev, _, i_dev = dev.step(actions.to(dev.device), uniforms=u.to(dev.device))
        torch.testing.assert_close(r_dev.cpu(), r_cpu, rtol=1e-9, atol=1e-9)
        for key in INFO:
            a, b = i_cpu[key], i_dev[key].cpu()
            if a.is_floating_point():
                torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-6, msg=key)
            else:
                assert torch.equal(a, b), key
        finished += int(done.sum())
    return finished


def test_paper_profile_matches_the_cpu(default_ds):
    cpu = Simulator(default_ds, batch_size=256, split="test", order="sequential", seed=0)
    dev = Simulator(default_ds, batch_size=256, split="test", order="sequential", seed=0, device=DEVICE)
    assert play_both(cpu, dev, steps=30, seed=1) > 256  # every row went through at least one reset


def test_contention_profile_matches_the_cpu(default_ds, tmp_path):
    trace = tmp_path / "trace.csv"
    stamps = np.cumsum(np.random.default_rng(0).exponential(1.0, 500))
    trace.write_text("Timestamp\n" + "\n".join(f"{t:.6f}" for t in stamps) + "\n")
    c = Contention(arrival_rate=16, worlds=32, arrival_trace=str(trace))
    cpu = ContentionSimulator(default_ds, 32, "test", "sequential", 0, contention=c)
    dev = ContentionSimulator(default_ds, 32, "test", "sequential", 0, DEVICE, contention=c)
    dev.load_world_state(cpu.world_state())  # the trace start points, drawn by the CPU generator
    assert play_both(cpu, dev, steps=200, seed=2) > 32
    for key, value in cpu.world_state().items():
        torch.testing.assert_close(dev.world_state()[key].cpu(), value, rtol=1e-9, atol=1e-6, msg=key)
