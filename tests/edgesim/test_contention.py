"""The contention profile's queueing arithmetic, pinned on hand-made 3-server worlds.

Arrivals come from a trace with equal gaps, so the arrival times are known exactly; every
expected number below is worked out by hand from the rules in edgesim/contention.py, using the
channel time the simulator reports (the channel itself is pinned by test_simulator.py)."""
from __future__ import annotations

import math

import pytest
import torch
from tiny import write_tiny

from edgesim.contention import (
    CONTENTION,
    Contention,
    ContentionError,
    ContentionSimulator,
    attempt_probabilities,
    attempts,
    load_arrival_gaps,
)
from edgesim.dataset import load_dataset
from edgesim.paper import PAPER
from edgesim.registry import make_simulator
from edgesim.simulator import Simulator

SERVERS = """ServerID,Longitude,Latitude,NormalizedCompute
A,8.000,47.000,1.0
B,8.001,47.000,0.5
C,8.002,47.000,0.25
"""
INSTANCES = """ModelInstanceID,ServerID,ModelTypeName,CostPerToken
ia,A,ChatGPT,0.0015
ib,B,ChatGPT,0.0015
ic,C,ChatGPT,0.0015
"""
LINKS = """SrcServerID,DstServerID,BaseLatencyMs,BandwidthMbps
A,B,0.4,50
B,C,2000,1
"""
# TaskSize 100 -> 60 + 40 = 100 tokens per step: compute is 50 ms on A, 100 ms on B, 200 ms on C
TASKS = """TaskID,Split,TaskLongitude,TaskLatitude,TaskSize,RequiredModelTypes
w0,train,8.000,47.000,100,"[""ChatGPT"", ""ChatGPT""]"
w1,train,8.000,47.000,100,"[""ChatGPT"", ""ChatGPT""]"
w2,test,8.000,47.000,100,"[""ChatGPT"", ""ChatGPT""]"
"""
U = torch.tensor([[0.5, 0.5, 0.5, 0.9]], dtype=torch.float64)  # fixed channel draws; trap coin/retransmission 0.9


def write_three(root, instances: str = INSTANCES, tasks: str = TASKS):
    """The 3-server region (C a trap) under root/Three."""
    write_tiny(root / "Three", **{"servers.csv": SERVERS, "model_instances.csv": instances, "network_links.csv": LINKS,
                                  "tasks.csv": tasks, "task_request_mapping.csv": None, "request_log.csv": None,
                                  "trap_config.json": '{"trap_server_ids": ["C"]}'})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    write_three(root)
    trace = root / "even.csv"
    trace.write_text("Timestamp\n" + "\n".join(str(i) for i in range(10)) + "\n")  # BurstGPT-style seconds
    return load_dataset(root, "Three"), trace


def sim_for(world, gap_ms: float, in_flight: int, **kw) -> ContentionSimulator:
    ds, trace = world
    c = Contention(arrival_rate=1000.0 / gap_ms, arrival_trace=str(trace), max_in_flight=in_flight, **kw)
    return make_simulator(ds, 1, "train", "sequential", 0, profile="contention", params=c)


def server(ds, sid: str) -> torch.Tensor:
    return torch.tensor([ds.server_ids.index(sid)])


def test_jobs_queue_fifo_across_workflows_and_decisions_follow_the_clock(world):
    ds = world[0]
    sim = sim_for(world, gap_ms=10.0, in_flight=2)
    a = server(ds, "A")
    assert sim.now.item() == pytest.approx(10.0)  # slot 0 holds the first arrival, at one gap
    # workflow 0, step 0 at t=10: A is idle -> no wait, A busy until 10 + 50
    _, _, done, i0 = sim.step(a, U)
    assert (i0["episode"].item(), i0["step"].item(), i0["queue_ms"].item()) == (0, 0, 0.0)
    assert i0["compute_ms"].item() == pytest.approx(50.0)
    assert sim.busy[0, 0].item() == pytest.approx(60.0)
    t0 = 10.0 + i0["latency"].item()  # workflow 0's next decision
    # the earliest pending decision is workflow 1's arrival at t=20 (< t0): it waits 60 - 20 = 40 ms on A
    assert sim.now.item() == pytest.approx(20.0) and t0 > 20.0
    _, _, _, i1 = sim.step(a, U)
    assert (i1["episode"].item(), i1["step"].item()) == (1, 0)
    assert i1["queue_ms"].item() == pytest.approx(40.0)
    assert i1["latency"].item() == pytest.approx(i1["channel_ms"].item() + 50.0 + 40.0)
    assert sim.busy[0, 0].item() == pytest.approx(110.0)  # start 60, + 50
    # workflow 1's clock moved by its latency once: 20 + channel + 40 + 50
    t1 = 20.0 + i1["latency"].item()
    assert t1 == pytest.approx(110.0 + i1["channel_ms"].item())
    # next: whichever workflow is earlier; workflow 0 at t0 waits max(0, 110 - t0) on A
    assert sim.now.item() == pytest.approx(min(t0, t1))
    _, _, done, i2 = sim.step(a, U)
    assert i2["episode"].item() == 0 and i2["step"].item() == 1 and bool(done)
    assert i2["queue_ms"].item() == pytest.approx(max(0.0, 110.0 - t0))
    assert sim.server_load()[0, 0].item() == pytest.approx(max(0.0, sim.busy[0, 0].item() - sim.now.item()))


def test_an_arrival_with_no_free_slot_waits_and_the_wait_is_queue_delay(world):
    ds = world[0]
    sim = sim_for(world, gap_ms=10.0, in_flight=1)
    b = server(ds, "B")
    _, _, _, s0 = sim.step(b, U)  # workflow 0 at t=10 on B: 100 ms compute
    _, _, done, s1 = sim.step(b, U)
    assert bool(done)
    finish = 10.0 + s0["latency"].item() + s1["latency"].item()
    # workflow 1 arrived at t=20 but the only slot frees at `finish`: it starts then
    assert sim.now.item() == pytest.approx(finish)
    _, _, _, n0 = sim.step(server(ds, "A"), U)
    assert n0["episode"].item() == 1 and n0["step"].item() == 0
    assert n0["admission_ms"].item() == pytest.approx(finish - 20.0)
    assert n0["queue_ms"].item() == pytest.approx(finish - 20.0)  # A is idle, so all of it is admission
    assert n0["latency"].item() == pytest.approx(n0["channel_ms"].item() + 50.0 + finish - 20.0)
    # the clock does not count the admission twice
    assert sim.now.item() == pytest.approx(finish + n0["latency"].item() - n0["admission_ms"].item())


def test_busy_times_persist_across_workflows_unlike_the_paper_profile(world):
    ds = world[0]
    a = server(ds, "A")
    cont = sim_for(world, gap_ms=1.0, in_flight=1)
    paper = Simulator(ds, 1, "train", "sequential", 0)
    lat_c, lat_p = [], []
    for _ in range(4):
        lat_c.append(cont.step(a, U)[3]["queue_ms"].item())
        lat_p.append(paper.step(a, U)[3]["queue_ms"].item())
    assert lat_p == [0.0] * 4  # docs/simulator.md §2: the queue resets with every episode
    # workflow 1 arrives at t=2 while A is busy with workflow 0's last job
    assert lat_c[2] > 0.0


def test_trap_links_pay_base_latency_per_attempt_other_trap_hits_the_surcharge(world):
    ds = world[0]
    sim = sim_for(world, gap_ms=1000.0, in_flight=1, trap_loss=0.5, trap_max_attempts=4)
    b, c = server(ds, "B"), server(ds, "C")
    _, _, _, first = sim.step(c, U)  # step 0 onto trap C: no link row, flat surcharge (coin 0.9 -> 100 ms)
    assert first["trap_hit"].item() and first["trap_ms"].item() == 100.0 and first["link_ms"].item() == 0.0
    sim.step(b, U)  # C -> B over the B-C trap link (either direction)
    sim.step(b, U)  # next workflow, step 0 on B
    u = U.clone()
    u[0, 3] = 0.8  # 1 + floor(log(0.2) / log(0.5)) = 3 attempts
    _, _, _, hop = sim.step(c, u)
    assert hop["trap_ms"].item() == pytest.approx(3 * 2000.0) and hop["link_ms"].item() == 0.0
    assert attempts(torch.tensor([0.0, 0.49, 0.5, 0.8, 0.9999]), 0.5, 4).tolist() == [1, 1, 2, 3, 4]
    probs = attempt_probabilities(0.3, 4)
    assert sum(probs) == pytest.approx(1.0) and probs[0] == pytest.approx(0.7)
    draws = attempts(torch.rand(200_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64), 0.3, 4)
    for k, p in enumerate(probs, 1):
        assert (draws == k).double().mean().item() == pytest.approx(p, abs=0.005)


def test_the_trap_surcharge_scale_multiplies_the_flat_trap_delay_in_the_simulator_and_the_planners(world):
    ds = world[0]
    sim = sim_for(world, gap_ms=1000.0, in_flight=1, trap_surcharge_scale=2.5)
    _, _, _, first = sim.step(server(ds, "C"), U)  # step 0 onto trap C: no link row (coin 0.9 -> 100 ms)
    assert first["trap_ms"].item() == 250.0
    from edgesim.expectation import trap_outcomes
    values, probs = trap_outcomes(torch.tensor([True]), torch.tensor([0.0], dtype=torch.float64),
                                  sim.profile.trap_model(sim.params))
    assert values[0, :2].tolist() == [250.0, 500.0] and probs[0, :2].tolist() == [0.5, 0.5]


def test_poisson_arrivals_have_the_configured_rate_and_runs_reproduce(default_ds):
    c = Contention(arrival_rate=5.0, max_in_flight=4)
    sim = make_simulator(default_ds, 3, "train", "random", 7, profile="contention", params=c)
    gaps = sim._gap(torch.zeros(20000, dtype=torch.long), torch.arange(20000))
    assert gaps.mean().item() == pytest.approx(200.0, rel=0.03)
    assert gaps.std().item() == pytest.approx(200.0, rel=0.05)  # exponential: sd = mean

    def run(seed):
        s = make_simulator(default_ds, 3, "train", "random", seed, profile="contention", params=c)
        g = torch.Generator().manual_seed(1)
        return torch.stack([s.step(s.sample_valid(g))[3]["latency"] for _ in range(60)])

    assert torch.equal(run(3), run(3)) and not torch.equal(run(3), run(4))


def test_arrival_trace_azure_style(reference_root):
    gaps = load_arrival_gaps(reference_root / "traces" / "AzureLLMInferenceTrace_conv.csv")
    assert len(gaps) == 19365 and gaps.mean() == pytest.approx(1.0) and (gaps >= 0).all()


def test_arrival_trace_burstgpt_style(tmp_path):
    burst = tmp_path / "burst.csv"
    burst.write_text("Timestamp,Model,Request tokens,Response tokens\n0.0,ChatGPT,10,2\n1.0,ChatGPT,5,5\n"
                     "4.0,GPT-4,7,7\n")
    assert load_arrival_gaps(burst).tolist() == pytest.approx([0.5, 1.5])  # gaps 1 s and 3 s, mean 2 s


@pytest.mark.parametrize("text, message", [
    ("time\n1\n2\n", "no 'TIMESTAMP' / 'Timestamp' column"),
    ("TIMESTAMP\n2023-11-16 18:15:46\nyesterday\n", "line 3, field 'TIMESTAMP': expected a timestamp"),
    ("Timestamp\n5\n", "need at least 2 timestamps"),
    ("Timestamp\n5\n5\n", "spans no time"),
])
def test_bad_arrival_traces_name_file_and_line(tmp_path, text, message):
    bad = tmp_path / "trace.csv"
    bad.write_text(text)
    with pytest.raises(ContentionError, match=message):
        Contention.from_dict({"arrival_trace": str(bad)})


@pytest.mark.parametrize("key, value", [("arrival_rate", 0), ("max_in_flight", 0), ("trap_loss", 1.0),
                                        ("worlds", 2.5), ("trap_max_attempts", "3")])
def test_bad_contention_parameters_are_named(key, value):
    with pytest.raises(ContentionError, match=f"contention.{key}: expected"):
        Contention.from_dict({key: value})
    with pytest.raises(ContentionError, match="unknown contention key"):
        Contention.from_dict({"arival_rate": 1.0})


def test_a_simulator_carries_its_profile_object_and_a_name_goes_through_make_simulator(world):
    with pytest.raises(ValueError, match="make_simulator"):
        Simulator(world[0], profile="contention")
    by_name, by_object = make_simulator(world[0], 2, profile="contention"), make_simulator(world[0], 2, profile=CONTENTION)
    assert type(by_name) is type(by_object) is ContentionSimulator
    assert by_name.profile is by_object.profile is CONTENTION and Simulator(world[0]).profile is PAPER
    assert math.isclose(Contention(arrival_rate=4).mean_gap_ms, 250.0)


@pytest.mark.parametrize("profile, params", [("contention", Contention(arrival_rate=40.0, max_in_flight=8, worlds=3,
                                                                      warmup=4)),
                                             ("serving", None)])
def test_two_schedulers_meet_the_same_arrivals_tasks_and_draws(default_ds, profile, params):
    """Common random numbers: every arrival's world, index, time and task are the same whatever the schedule,
    so a paired difference is paired on the same workflow; the schedules themselves differ."""
    from edgesim.registry import get_profile
    from edgesim.serving import Serving
    from Heuristics.policies import QueueGreedyPolicy, RandomPolicy
    from schedkit.evaluation import eval_simulator, evaluate

    prof = get_profile(profile)
    params = params or Serving(load=0.9, worlds=3, max_in_flight=16, warmup=4)
    keys = ["episode", "world", "arrival_index", "arrival_ms", "task_id"]

    def run(policy_class, seed=3):
        sim = eval_simulator(default_ds, "test", 60, seed, profile=prof, params=params)
        return evaluate(sim, policy_class(sim, seed=seed), 60, progress=False)

    rand, queue = run(RandomPolicy), run(QueueGreedyPolicy)
    assert rand[keys].equals(queue[keys])
    assert (rand["episode"] == rand["arrival_index"] * 3 + rand["world"] - 4 * 3).all()
    assert not rand["latency_ms"].equals(queue["latency_ms"]) and rand["queue_ms"].mean() > 0
    assert not run(RandomPolicy, seed=4)["arrival_ms"].equals(rand["arrival_ms"])


def test_evaluation_seeds_run_side_by_side_exactly_as_one_by_one(default_ds):
    """Batched evaluation seeds (one simulator, every seed's worlds as rows) give each seed the rows its
    own simulator gives, so the batching is a speed-up only."""
    from Heuristics.policies import QueueGreedyPolicy
    from schedkit.evaluation import evaluate_seeds

    prof, c = CONTENTION, Contention(arrival_rate=60.0, max_in_flight=16, worlds=4, warmup=3)
    policy = lambda sim, seed: QueueGreedyPolicy(sim, seed=seed)  # noqa: E731
    together = evaluate_seeds(default_ds, "test", 80, [5, 9, 2], "cpu", prof, c, policy, progress=False)
    apart = [(seed, run) for seed in (5, 9, 2)
             for run in [evaluate_seeds(default_ds, "test", 80, [seed], "cpu", prof, c, policy, progress=False)[0][1]]]
    for (s1, a), (s2, b) in zip(together, apart):
        cols = [col for col in b.episodes if col != "decision_ms"]
        assert s1 == s2 and a.episodes[cols].equals(b.episodes[cols])
        assert a.stats == pytest.approx(b.stats, rel=1e-12) and a.stats["utilisation"] > 0  # each seed's load measures, not the batch's
    assert not together[0][1].episodes["reward"].equals(together[1][1].episodes["reward"])
    assert together[0][1].episodes["queue_ms"].mean() > 0
