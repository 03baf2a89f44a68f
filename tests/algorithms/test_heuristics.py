"""Expected-value model against Monte Carlo, the oracle's DP against brute force, and the heuristics."""
from __future__ import annotations

import itertools

import pytest
import torch
from tiny import write_tiny

from edgesim import physics as P
from edgesim.dataset import load_dataset
from edgesim.expectation import ChannelTable, _clipped_latency_reward, expected_step
from edgesim.simulator import Simulator
from Heuristics.policies import GreedyPolicy, MaxComputePolicy, OraclePolicy, RandomPolicy


@pytest.fixture(scope="module")
def table():
    return ChannelTable()


def test_the_shared_channel_table_is_built_once_per_device_and_dtype_with_the_same_values(table):
    shared = ChannelTable.shared("cpu")
    assert ChannelTable.shared(torch.device("cpu"), torch.float64) is shared  # one integration per process
    assert ChannelTable.shared("cpu", torch.float32) is not shared
    for name in ("mean", "bins", "bin_mean", "bin_max", "log_d"):
        assert torch.equal(getattr(shared, name), getattr(table, name)), name


@pytest.mark.parametrize("d_km", [0.5, 8.0, 150.0, 800.0])
def test_channel_table_matches_monte_carlo(table, d_km):
    u = torch.rand((400_000, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mc = P.inverse_rate(torch.tensor(d_km, dtype=torch.float64), u[:, 0], u[:, 1], u[:, 2])
    est = float(table.mean_inv_rate(torch.tensor([d_km], dtype=torch.float64))[0])
    se = float(mc.std()) / len(mc) ** 0.5
    assert abs(est - float(mc.mean())) < 4 * se + 5e-3 * float(mc.mean())


def _monte_carlo_step(ds, task_split, task, prev, server, draws=20000):
    """Empirical mean latency and latency reward of one step, replaying the simulator many times."""
    sim = Simulator(ds, batch_size=draws, split=task_split, order="sequential", seed=1)
    sim.task[:] = task
    if prev >= 0:  # walk step 0 to `prev` first so the hop starts there
        sim.step(torch.full((draws,), prev))
    _, reward, _, info = sim.step(torch.full((draws,), server))
    lat, rl = info["latency"], reward[:, 0]
    return lat.mean(), lat.std() / draws ** 0.5, rl.mean(), rl.std() / draws ** 0.5


@pytest.mark.parametrize("tokens", [1200, 9000])  # 9000 tokens pushes slow servers past the 5 s clip
def test_expected_step_matches_simulated_latency_and_clipped_reward(tmp_path, table, tokens):
    requests = f"RequestID,RequestLengthTokens,ResponseLengthTokens\nr1,{tokens - 200},200\nr2,{tokens - 500},500\n"
    write_tiny(tmp_path / "Tiny", **{"request_log.csv": requests})
    ds = load_dataset(tmp_path, "Tiny")
    sim = Simulator(ds, batch_size=1, split="test", seed=0)
    net = sim.net
    T = sim.tasks
    for prev, server in [(-1, 0), (-1, 3), (0, 1), (2, 3), (3, 1)]:  # step 0 from the task; step 1 over links/traps
        k = 0 if prev < 0 else 1
        if prev >= 0 and not ds.instance_of[T.types[0, 0], prev] >= 0:
            continue
        if prev < 0:
            src = (T.lon[0:1], T.lat[0:1], T.region[0:1])
        else:
            src = (net.lon[prev:prev + 1], net.lat[prev:prev + 1], net.region[prev:prev + 1])
        e = expected_step(net, table, *src, torch.tensor([prev]), T.tokens[0, k], T.types[0, k], torch.tensor([server]))
        if not ds.instance_of[T.types[0, k], server] >= 0:
            continue
        lat, lat_se, rl, rl_se = _monte_carlo_step(ds, "test", 0, prev, server)
        assert abs(float(e["latency"][0]) - float(lat)) < 4 * float(lat_se) + 2e-3 * float(lat)
        assert abs(float(e["rL"][0]) - float(rl)) < 4 * float(rl_se) + 2e-3 * abs(float(rl)) + 1e-6


def test_clipped_reward_shortcuts_equal_the_full_bin_average(table):
    """Steps that cannot reach the clip and trap-free steps skip work; every step gets the number the
    full average over bins and outcomes gives."""
    g = torch.Generator().manual_seed(3)
    M = 4000
    d = torch.exp(torch.empty(M, dtype=torch.float64).uniform_(-2, 10, generator=g))
    base = torch.empty(M, dtype=torch.float64).uniform_(10, 6000, generator=g)  # some past the clip already
    k = torch.empty(M, dtype=torch.float64).uniform_(100, 400_000, generator=g)
    trap = torch.rand(M, generator=g) < 0.3
    values = torch.where(trap[:, None], torch.tensor([100.0, 200.0, 300.0], dtype=torch.float64), 0.0)
    probs = torch.where(trap[:, None], torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64),
                        torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64))
    lat = base[:, None] + k[:, None] * table.inv_rate_bins(d)
    full = (P.latency_reward(lat[:, None, :] + values[:, :, None]).mean(-1) * probs).sum(-1)
    idx, reward = _clipped_latency_reward(table, d, base, k, values, probs, torch.ones(M, dtype=torch.bool))
    assert torch.equal(idx[0], torch.arange(M))
    binding = base + k * table.inv_rate_bin_max(d) + values.amax(-1) > P.LATENCY_NORM_MS
    assert 0.1 < float(binding.double().mean()) < 0.9  # both paths are exercised
    torch.testing.assert_close(reward, full, rtol=1e-12, atol=1e-12)


def _plan_value(oracle, sim, task, plan):
    """Expected episode reward of a fixed plan, summed step by step."""
    net, T = sim.net, sim.tasks
    total, prev = 0.0, -1
    for k, s in enumerate(plan):
        if prev < 0:
            src = (T.lon[task].reshape(1), T.lat[task].reshape(1), T.region[task].reshape(1))
        else:
            src = (net.lon[prev].reshape(1), net.lat[prev].reshape(1), net.region[prev].reshape(1))
        total += float(oracle._reward(sim, src, torch.tensor([prev]), k, task, torch.tensor([s]))[0])
        prev = s
    return total


def test_oracle_dp_equals_brute_force_enumeration(tmp_path):
    write_tiny(tmp_path / "Tiny")
    ds = load_dataset(tmp_path, "Tiny")
    for split in ("train", "test"):
        sim = Simulator(ds, batch_size=1, split=split, seed=0)
        oracle = OraclePolicy(sim)
        for task in range(len(ds.tasks[split])):
            steps = int(sim.tasks.n_steps[task])
            valid = [ds.instance_of[sim.tasks.types[task, k]].__ge__(0).nonzero()[0].tolist() for k in range(steps)]
            best = max(itertools.product(*valid), key=lambda plan: _plan_value(oracle, sim, task, plan))
            plan, value = oracle.plan(sim, task)
            assert plan[:steps].tolist() == list(best)
            assert value == pytest.approx(_plan_value(oracle, sim, task, best), rel=1e-9)


def test_oracle_expected_value_bounds_greedy_on_every_test_task(reference_ds):
    sim = Simulator(reference_ds, batch_size=1, split="test", order="sequential", seed=0)
    oracle, greedy = OraclePolicy(sim), GreedyPolicy(sim)
    for task in range(0, 200, 10):
        sim.task[:] = task
        sim.reset_done(torch.tensor([False]))
        greedy_plan = []
        obs = sim.observe()
        while True:  # greedy's actions depend only on the previous server, so its plan is deterministic
            a = greedy.act(sim, obs)
            greedy_plan.append(int(a[0]))
            obs, _, done, _ = sim.step(a)
            if done[0]:
                break
            sim.task[:] = task
        assert oracle.plan(sim, task)[1] >= _plan_value(oracle, sim, task, greedy_plan) - 1e-12


def test_heuristics_choose_valid_servers_and_maxcompute_the_fastest(reference_ds):
    sim = Simulator(reference_ds, batch_size=64, seed=0)
    nc = torch.tensor(reference_ds.nc)
    policies = [RandomPolicy(sim, 0), GreedyPolicy(sim), MaxComputePolicy(sim), OraclePolicy(sim)]
    for _ in range(5):
        obs, mask = sim.observe(), sim.valid_mask()
        for p in policies:
            assert mask.gather(1, p.act(sim, obs)[:, None]).all(), p.name
        best = policies[2].act(sim, obs)
        assert torch.equal(nc[best], torch.where(mask, nc, -1.0).amax(1))
        sim.step(policies[0].act(sim, obs))


def test_random_policy_is_uniform_over_valid_servers(reference_ds):
    sim = Simulator(reference_ds, batch_size=20000, split="test", order="sequential", seed=0)
    sim.task[:] = 1  # step 0 needs ChatGPT: hosted by all 500 servers
    counts = torch.bincount(RandomPolicy(sim, 0).act(sim, sim.observe()), minlength=500).double()
    assert (counts > 0).sum() >= 495  # 40 expected per server
    chi2 = float(((counts - 40) ** 2 / 40).sum())
    assert chi2 < 650  # 499 dof: mean 499, sd ~32
