"""The simulator on a CUDA device against the CPU, every profile, with the same draws.

Skipped without CUDA. `TOPOFREERL_EQUIV_DEVICE=cpu` runs the same comparisons CPU against CPU (what
`bench/gpu_suite.py --device cpu` does as a dry run): it checks the harness, not a device.

Same draws: the step uniforms are drawn on the CPU and passed to both simulators, tasks are dealt in
file order, and the contention worlds take their arrivals from a trace (whose start points the
device simulator copies with `load_world_state`), so no draw comes from a device generator. The
serving profile draws everything (arrivals, tasks, token pairs, network) as counter-based hashes of
(seed, world, arrival, step), computed on each device: the same seed must give the same numbers there.
"""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from tiny import write_tiny

from edgesim.contention import Contention, ContentionSimulator
from edgesim.dataset import load_dataset
from edgesim.serving import Serving, ServingSimulator
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


SERVING_EXACT = ("episode", "step", "task", "server", "world", "arrival_index", "prompt_tokens", "output_tokens",
                 "decode_iterations", "prefills", "switch", "trap_hit", "fallback", "done")
SERVING_FLOAT = ("latency", "ttft_ms", "tpot_ms", "queue_ms", "admission_ms", "network_ms", "compute_ms", "cost",
                 "end_ms", "arrival_ms")


def test_serving_profile_matches_the_cpu(tmp_path):
    """Loaded worlds (the tiny region at load 0.9, a random valid server per decision: its slowest server
    saturates and queues grow), the same seed and decisions: every step completes the same requests with
    the same TTFT, TPOT and latency (float64 tolerance) and identical integer columns, and the measured
    period's statistics agree."""
    with pytest.warns(UserWarning, match="skipped 1 task"):  # the tiny region's one-step task
        ds = load_dataset(write_tiny(tmp_path / "Tiny").parent, "Tiny")
    params = Serving(load=0.9, max_in_flight=64, warmup=16)
    cpu = ServingSimulator(ds, 32, "train", "random", 0, serving=params)
    dev = ServingSimulator(ds, 32, "train", "random", 0, DEVICE, serving=params)
    cpu.reset()
    dev.reset()
    gen = torch.Generator().manual_seed(3)
    rows, queued = 0, 0
    for _ in range(300):
        actions = cpu.sample_valid(gen)
        _, r_cpu, done, i_cpu = cpu.step(actions)
        _, r_dev, _, i_dev = dev.step(actions.to(dev.device))
        key = lambda info: info["episode"].cpu() * 16 + info["step"].cpu()  # noqa: E731  (at most 10 steps)
        a, b = torch.argsort(key(i_cpu)), torch.argsort(key(i_dev))
        torch.testing.assert_close(r_dev.cpu()[b], r_cpu[a], rtol=1e-9, atol=1e-9)
        for name in SERVING_EXACT:
            assert torch.equal(i_dev[name].cpu()[b], i_cpu[name][a]), name
        for name in SERVING_FLOAT:
            torch.testing.assert_close(i_dev[name].cpu()[b], i_cpu[name][a], rtol=1e-9, atol=1e-6, msg=name)
        rows += len(done)
        queued += int((i_cpu["queue_ms"] > 0).sum())
    assert rows > 1000 and queued > rows // 2  # many requests completed, most after waiting in a queue
    s_cpu, s_dev = cpu.serving_stats(), dev.serving_stats()
    for name, value in s_cpu.items():
        assert s_dev[name] == pytest.approx(value, rel=1e-9, abs=1e-9), name
    assert s_cpu["mean_queue_length"] > 0
