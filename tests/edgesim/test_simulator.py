"""The vectorised simulator against the scalar executable specification, and its contracts."""
from __future__ import annotations

import math

import pytest
import torch

from edgesim.scalar_model import ScalarEpisode
from edgesim.simulator import Simulator


def _play_against_spec(ds, split: str, batch: int, steps: int, seed: int, invalid_share: float = 0.2):
    """Step the batched simulator and a scalar episode per row with identical draws; compare everything."""
    sim = Simulator(ds, batch_size=batch, split=split, order="random", seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    scalar = [ScalarEpisode(ds, split, int(t)) for t in sim.task]
    checked = 0
    for _ in range(steps):
        actions = sim.sample_valid(gen)
        wild = torch.rand(batch, generator=gen) < invalid_share  # arbitrary servers exercise the fallback
        actions = torch.where(wild, torch.randint(sim.n_servers, (batch,), generator=gen), actions)
        u = torch.rand((batch, 4), generator=gen, dtype=torch.float64)
        _, reward, done, info = sim.step(actions, uniforms=u)
        for b in range(batch):
            ref = scalar[b].step(int(actions[b]), u[b].tolist())
            assert int(info["server"][b]) == ref["server"]
            assert bool(info["fallback"][b]) == ref["fallback"]
            assert bool(info["trap_hit"][b]) == ref["trap_hit"]
            assert bool(info["switch"][b]) == ref["switch"]
            assert math.isclose(float(info["latency"][b]), ref["latency"], rel_tol=1e-9, abs_tol=1e-9)
            assert math.isclose(float(info["cost"][b]), ref["cost"], rel_tol=1e-9, abs_tol=1e-12)
            assert math.isclose(float(info["queue_ms"][b]), ref["queue_ms"], abs_tol=1e-9)
            assert math.isclose(float(info["compute_ms"][b]), ref["compute_ms"], rel_tol=1e-9)
            for got, want in zip(reward[b].tolist(), ref["reward"]):
                assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12)
            assert bool(done[b]) == ref["done"]
            if ref["done"]:  # same-step autoreset: the row already holds its next task
                scalar[b] = ScalarEpisode(ds, split, int(sim.task[b]))
            checked += 1
    return checked


def test_matches_scalar_spec_on_reference_sample(reference_ds):
    assert _play_against_spec(reference_ds, "train", batch=16, steps=25, seed=0) == 400


def test_matches_scalar_spec_on_multi_region_data(small_root):
    from edgesim.dataset import load_dataset
    ds = load_dataset(small_root / "multi", ["Region1", "Region2"])
    assert len(set(ds.server_region.tolist())) == 2
    _play_against_spec(ds, "test", batch=12, steps=20, seed=5, invalid_share=0.5)


def test_cross_region_hops_switch_and_skip_distance_floor(small_root):
    from edgesim.dataset import load_dataset
    ds = load_dataset(small_root / "multi", ["Region1", "Region2"])
    sim = Simulator(ds, batch_size=1, split="train", order="sequential", seed=0)
    home = int(sim.tasks.region[sim.task[0]])
    req0 = int(sim.tasks.types[sim.task[0], 0])
    other = [s for s in range(ds.n_servers) if ds.server_region[s] != home and ds.instance_of[req0, s] >= 0][0]
    _, reward, _, info = sim.step(torch.tensor([other]))
    assert bool(info["switch"][0]) and float(reward[0, 2]) == pytest.approx(-0.4)
    assert float(info["switch_penalty_ms"][0]) == pytest.approx(ds.mean_link_latency)


def test_same_seed_same_metrics_and_other_seed_differs(reference_ds):
    def run(seed):
        sim = Simulator(reference_ds, batch_size=64, seed=seed)
        gen = torch.Generator().manual_seed(7)
        total = torch.zeros(3, dtype=torch.float64)
        for _ in range(20):
            _, r, _, _ = sim.step(sim.sample_valid(gen))
            total += r.sum(0)
        return total
    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_sequential_order_deals_tasks_in_file_order_and_autoresets(reference_ds):
    sim = Simulator(reference_ds, batch_size=3, split="test", order="sequential", seed=0)
    assert sim.task.tolist() == [0, 1, 2]
    for k in range(5):
        obs = sim.observe()
        assert obs.step.tolist() == [k] * 3
        obs, _, done, info = sim.step(sim.sample_valid(torch.Generator().manual_seed(k)))
    assert done.all() and info["task"].tolist() == [0, 1, 2] and info["step"].tolist() == [4] * 3
    assert sim.task.tolist() == [3, 4, 5] and obs.step.tolist() == [0] * 3 and obs.prev_server.tolist() == [-1] * 3
    assert sim.episode.tolist() == [3, 4, 5]


def test_valid_mask_and_sampler_agree_with_instances(reference_ds):
    sim = Simulator(reference_ds, batch_size=256, seed=0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        mask = sim.valid_mask()
        req = sim.observe().required_type
        assert torch.equal(mask, torch.tensor(reference_ds.instance_of >= 0)[req])
        a = sim.sample_valid(gen)
        assert mask.gather(1, a[:, None]).all()
        _, _, _, info = sim.step(a)
        assert not info["fallback"].any()


def test_latency_history_follows_the_ema(reference_ds):
    sim = Simulator(reference_ds, batch_size=2, split="test", order="sequential", seed=0)
    h0 = 5 * reference_ds.mean_link_latency
    assert torch.allclose(sim.latency_history(), torch.full((2, 500), h0, dtype=torch.float64))
    a = sim.sample_valid(torch.Generator().manual_seed(0))
    _, _, _, i1 = sim.step(a)
    _, _, _, i2 = sim.step(i1["server"])  # the same server again, if valid for the next type
    h = sim.latency_history()
    for b in range(2):
        s1, s2 = int(i1["server"][b]), int(i2["server"][b])
        first = 0.5 * float(i1["latency"][b]) + 0.5 * h0
        if s1 == s2:
            assert float(h[b, s1]) == pytest.approx(0.5 * float(i2["latency"][b]) + 0.5 * first)
        else:
            assert float(h[b, s1]) == pytest.approx(first)
        assert int((h[b] != h0).sum()) == len({s1, s2})


def test_bad_actions_are_rejected_clearly(reference_ds):
    sim = Simulator(reference_ds, batch_size=4, seed=0)
    with pytest.raises(ValueError, match=r"server indices in \[0, 500\)"):
        sim.step(torch.tensor([0, 1, 2, 500]))
    with pytest.raises(ValueError, match="expected 4 actions"):
        sim.step(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="profile: expected a Profile object, got 'crowded'"):
        Simulator(reference_ds, profile="crowded")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu_with_common_draws(reference_ds):
    cpu = Simulator(reference_ds, batch_size=32, seed=0, order="sequential")
    gpu = Simulator(reference_ds, batch_size=32, seed=0, order="sequential", device="cuda")
    gen = torch.Generator().manual_seed(0)
    for _ in range(10):
        a = cpu.sample_valid(gen)
        u = torch.rand((32, 4), generator=gen, dtype=torch.float64)
        _, r1, _, _ = cpu.step(a, uniforms=u)
        _, r2, _, _ = gpu.step(a.cuda(), uniforms=u.cuda())
        assert torch.allclose(r1, r2.cpu(), rtol=1e-9, atol=1e-12)


def test_busy_until_and_queue_wait_follow_the_episode_history(reference_ds):
    sim = Simulator(reference_ds, batch_size=4, split="test", order="sequential", seed=0)
    a = sim.sample_valid(torch.Generator().manual_seed(0))
    _, _, _, info = sim.step(a)
    used = info["server"][:, None]
    unused = (info["server"][:, None] + 1) % sim.n_servers
    # step 0 starts at t=0, so the server is busy until its compute time; the episode clock is
    # already past that (latency >= compute), hence no wait, as docs/simulator.md §2 says
    assert torch.equal(sim.busy_until(used)[:, 0], info["compute_ms"])
    assert torch.equal(sim.busy_until(unused)[:, 0], torch.zeros(4, dtype=torch.float64))
    assert torch.equal(sim.queue_wait(torch.cat([used, unused], 1)), torch.zeros((4, 2), dtype=torch.float64))


def test_take_and_take_cells_equal_advanced_indexing():
    """The simulator's gathers (index_select, on flat views for 2-D tables) return exactly what x[i]
    and x[i, j] do, for every index shape `take` accepts."""
    from edgesim.simulator import take, take_cells
    gen = torch.Generator().manual_seed(0)
    x1 = torch.rand(50, generator=gen, dtype=torch.float64)
    x2 = torch.randint(0, 9, (7, 50), generator=gen)
    for shape in [(13,), (4, 5), (1, 6)]:
        i = torch.randint(0, 50, shape, generator=gen)
        assert torch.equal(take(x1, i), x1[i]) and torch.equal(take(x2.T.contiguous(), i), x2.T[i])
    i, r = torch.randint(0, 50, (64,), generator=gen), torch.randint(0, 7, (64,), generator=gen)
    assert torch.equal(take_cells(x2, r * 50 + i), x2[r, i])
