"""The queue-aware heuristics (least_loaded, p2c, lookahead, telemetry), the greedy family's
latency weight and Heuristics/tune.py, checked by hand on a 3-server world (built like
tests/edgesim/test_contention.py) and against the oracle, greedy_queue and TopoFreeRL's telemetry."""
from __future__ import annotations

import json

import pytest
import torch
import yaml
from conftest import ROOT, run_script
from test_contention import INSTANCES as BASE_INSTANCES
from test_contention import write_three
from tiny import write_tiny

from edgesim.contention import Contention
from edgesim.dataset import load_dataset
from edgesim.expectation import expected_step
from edgesim.registry import make_simulator
from edgesim.scores import GREEDY_COST_WEIGHT, GREEDY_LATENCY_WEIGHT, TELEMETRY_QUEUE_MS
from edgesim.simulator import Simulator
from Heuristics.policies import (
    LeastLoadedPolicy,
    LookaheadPolicy,
    OraclePolicy,
    PowerOfTwoPolicy,
    QueueGreedyPolicy,
    TelemetryPolicy,
)

# test_contention.py's world (A fast: 50 ms of compute per 100-token step, B 100 ms, C a slow trap,
# 200 ms), plus GPT-4 on A and B only, so GPT-4 steps have exactly two valid servers
INSTANCES = BASE_INSTANCES + "ja,A,GPT-4,0.03\njb,B,GPT-4,0.03\n"
TASKS = """TaskID,Split,TaskLongitude,TaskLatitude,TaskSize,RequiredModelTypes
w0,train,8.000,47.000,100,"[""ChatGPT"", ""ChatGPT""]"
w1,train,8.000,47.000,100,"[""GPT-4"", ""ChatGPT""]"
w2,test,8.000,47.000,100,"[""ChatGPT"", ""ChatGPT"", ""GPT-4""]"
"""


@pytest.fixture(scope="module")
def three(tmp_path_factory):
    root = tmp_path_factory.mktemp("three")
    write_three(root, INSTANCES, TASKS)
    return load_dataset(root, "Three")


def world(ds, split: str = "train", rate: float = 1.0, worlds: int = 1):
    c = Contention(arrival_rate=rate, worlds=worlds, max_in_flight=4, warmup=0)
    return make_simulator(ds, worlds, split, "sequential", 0, profile="contention", params=c)


def sid(ds, name: str) -> int:
    return ds.server_ids.index(name)


def load_server(sim, server: int, wait_ms: float) -> None:
    """Give `server` a queue of `wait_ms` at the current decision of every world."""
    sim.busy[:, server] = sim.now + wait_ms


def test_least_loaded_picks_the_idle_server_and_breaks_ties_by_greedy(three):
    sim = world(three)
    obs = sim.observe()  # w0, step 0: ChatGPT on A, B, C
    policy, greedy = LeastLoadedPolicy(sim), QueueGreedyPolicy(sim)
    assert int(policy.act(sim, obs)) == int(greedy.act(sim, obs)) == sid(three, "A")  # all idle: greedy's choice
    load_server(sim, sid(three, "A"), 500.0)
    load_server(sim, sid(three, "B"), 100.0)
    assert int(policy.act(sim, obs)) == sid(three, "C")  # the only idle server, though slow and a trap
    load_server(sim, sid(three, "C"), 300.0)
    assert int(policy.act(sim, obs)) == sid(three, "B")  # none idle: the shortest queue
    load_server(sim, sid(three, "A"), 0.0)
    assert int(policy.act(sim, obs)) == sid(three, "A")


def test_p2c_returns_valid_distinct_draws_and_the_better_of_two(three, default_ds):
    sim = make_simulator(default_ds, 8, "test", "sequential", 0, profile="contention",
                         params=Contention(arrival_rate=8.0))
    policy = PowerOfTwoPolicy(sim, seed=3)
    obs = sim.observe()
    for _ in range(20):
        pair = policy.draw(sim)
        assert sim.valid_mask().gather(1, pair).all() and (pair[:, 0] != pair[:, 1]).all()
        a = policy.act(sim, obs)
        assert sim.valid_mask().gather(1, a[:, None]).all()
        obs, *_ = sim.step(a)
    # exactly two valid servers (GPT-4 on A and B): the one of lower greedy_queue score, whatever the draw
    sim = world(three, rate=0.01)
    while int(sim.observe().required_type) != three.type_names.index("GPT-4"):  # w1's step 0
        sim.step(torch.tensor([sid(three, "A")]))
    obs = sim.observe()
    assert int(sim.valid_mask().sum()) == 2
    greedy, p2c = QueueGreedyPolicy(sim), PowerOfTwoPolicy(sim)
    for wait, best in ((0.0, "A"), (5000.0, "B")):
        load_server(sim, sid(three, "A"), wait)
        assert int(greedy.act(sim, obs)) == sid(three, best)
        assert {int(p2c.act(sim, obs)) for _ in range(10)} == {sid(three, best)}  # 10 fresh draws


def test_lookahead_moves_to_an_idle_slower_server_when_the_fast_queue_is_long(three):
    sim = world(three)
    obs = sim.observe()  # w0: two ChatGPT steps
    policy, oracle = LookaheadPolicy(sim), OraclePolicy(sim)
    assert int(policy.act(sim, obs)) == int(oracle.act(sim, obs)) == sid(three, "A")  # queues empty
    load_server(sim, sid(three, "A"), 20.0)  # B's extra 50 ms of compute costs more than this wait
    assert int(policy.act(sim, obs)) == sid(three, "A")
    load_server(sim, sid(three, "A"), 1000.0)
    assert int(policy.act(sim, obs)) == sid(three, "B")
    assert int(oracle.act(sim, obs)) == sid(three, "A")  # the load-blind plan stays on A


def test_lookahead_maximises_the_plan_value_with_the_live_waits_held_fixed(three):
    """Brute force over every plan of a 3-step workflow, each server's wait added to every step on it."""
    import itertools

    from Heuristics.policies import expected_reward
    sim = world(three, split="test", rate=0.01)  # w2: ChatGPT, ChatGPT, GPT-4
    obs, net, T = sim.observe(), sim.net, sim.tasks
    policy, gen, firsts = LookaheadPolicy(sim), torch.Generator().manual_seed(0), set()
    valid = [net.valid[T.types[0, k]].nonzero().squeeze(1).tolist() for k in range(3)]
    for _ in range(12):
        waits = torch.rand(3, generator=gen, dtype=torch.float64) * torch.tensor([400.0, 200.0, 100.0])
        waits[int(torch.randint(3, (1,), generator=gen))] = 0.0  # one idle server
        sim.busy[0] = sim.now + waits

        def value(plan):
            total, prev = 0.0, -1
            for k, s in enumerate(plan):
                src = T.lon[0:1], T.lat[0:1], T.region[0:1]
                if prev >= 0:
                    src = net.lon[prev:prev + 1], net.lat[prev:prev + 1], net.region[prev:prev + 1]
                total += float(expected_reward(sim, policy.table, policy.weights, src, torch.tensor([prev]),
                                               T.tokens[0, k], T.types[0, k], torch.tensor([s]),
                                               queue_ms=waits[s:s + 1])[0])
                prev = s
            return total
        best = max(itertools.product(*valid), key=value)
        assert int(policy.act(sim, obs)) == best[0]
        firsts.add(best[0])
    assert len(firsts) >= 2  # the waits move the first step


def _agree_with_the_oracle(sim, check_empty: bool, passes: int = 3) -> int:
    """Step every row through whole workflows with the oracle's actions; lookahead must match at
    every decision. Returns the number of decisions compared."""
    oracle, lookahead = OraclePolicy(sim), LookaheadPolicy(sim)
    obs, decisions = sim.observe(), 0
    for _ in range(int(sim.tasks.max_steps) * passes):
        if check_empty:
            assert float(sim.server_load().max()) == 0.0
        a = oracle.act(sim, obs)
        assert torch.equal(lookahead.act(sim, obs), a)
        decisions += len(a)
        obs, *_ = sim.step(a)
    return decisions


def test_lookahead_is_the_oracle_without_queues_on_the_default_test_split(default_ds):
    tasks = list(range(0, len(default_ds.tasks["test"]), 25))  # 8 test tasks, every step of each
    sim = Simulator(default_ds, len(tasks), "test", "sequential", 0, task_subset=tasks)
    assert (sim.tasks.n_steps == 5).all()
    assert _agree_with_the_oracle(sim, check_empty=False, passes=1) == 5 * len(tasks)


def test_lookahead_is_the_oracle_in_a_contention_world_with_empty_queues(tmp_path):
    write_tiny(tmp_path / "Tiny")  # 4 servers, two model types, links and a trap
    ds = load_dataset(tmp_path, "Tiny")
    for split in ("train", "test"):
        sim = world(ds, split, rate=0.01, worlds=3)  # 100 s between arrivals: every queue has drained
        assert _agree_with_the_oracle(sim, check_empty=True) > 0


def test_latency_weight_default_is_todays_greedy_queue_and_another_weight_changes_decisions(default_ds):
    sim = make_simulator(default_ds, 8, "test", "sequential", 0, profile="contention",
                         params=Contention(arrival_rate=8.0))
    default, w06, w09 = QueueGreedyPolicy(sim), QueueGreedyPolicy(sim, latency_weight=0.6), \
        QueueGreedyPolicy(sim, latency_weight=0.9)
    obs, changed = sim.observe(), 0
    for _ in range(30):
        lon, lat, region = sim.hop_source()  # today's rule, written out: 0.6 E[latency + wait] / 2000 + 0.4 cost / 0.05
        e = expected_step(sim.net, default.table, lon[:, None], lat[:, None], region[:, None], obs.prev_server[:, None],
                          obs.tokens[:, None], obs.required_type[:, None], default.servers[None], with_reward=False,
                          traps=sim.profile.trap_model(sim.params))
        today = (0.6 * (e["latency"] + sim.server_load()) / 2000.0 + 0.4 * e["cost"] / 0.05).masked_fill(
            ~sim.valid_mask(), torch.inf)
        assert torch.equal(default.scores(sim, obs), today) and torch.equal(w06.scores(sim, obs), today)
        a = default.act(sim, obs)
        changed += int((w09.act(sim, obs) != a).sum())
        obs, *_ = sim.step(a)
    assert (GREEDY_LATENCY_WEIGHT, GREEDY_COST_WEIGHT) == (0.6, 0.4) and changed > 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        QueueGreedyPolicy(sim, latency_weight=1.5)


def test_telemetry_is_the_argmax_of_topofreerls_telemetry(default_ds):
    from schedkit.config import resolve
    from TopoFreeRL.agent import TopoFreeAgent
    cfg = resolve(ROOT / "TopoFreeRL" / "config.yaml")
    agent = TopoFreeAgent(default_ds, cfg, torch.device("cpu"))
    for sim in (Simulator(default_ds, 16, "test", "sequential", 0),
                make_simulator(default_ds, 8, "test", "sequential", 0, profile="contention",
                               params=Contention(arrival_rate=8.0))):
        policy, obs = TelemetryPolicy(sim), sim.observe()
        weights = torch.full((sim.batch_size, 3), 1 / 3)
        for _ in range(40):
            feats = agent.features(sim, obs, weights)
            telemetry = feats.get("telemetry", agent.telemetry.expand(sim.batch_size, -1))
            expected = telemetry.masked_fill(~sim.valid_mask(), -torch.inf).argmax(1)
            a = policy.act(sim, obs)
            assert torch.equal(a, expected)
            obs, *_ = sim.step(a)


def test_telemetry_defaults_are_topofreerls_shipped_config():
    """The telemetry heuristic keeps its own defaults (it reads no config); they must stay the shipped agent's."""
    cfg = yaml.safe_load((ROOT / "TopoFreeRL" / "config.yaml").read_text())
    assert float(cfg["telemetry_queue_ms"]) == TELEMETRY_QUEUE_MS


def test_tune_refuses_the_test_split():
    proc = run_script("Heuristics/tune.py", "--split", "test", check=False)
    assert proc.returncode == 2 and "--split test is refused" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_script("Heuristics/inference.py", "--latency-weight", "1.5", check=False)
    assert proc.returncode == 2 and "--latency-weight: expected a number in [0, 1]" in proc.stderr


def test_scripts_run_the_new_heuristics_and_tune_under_contention(small_root, tmp_path):
    out = tmp_path / "h"
    names = ("least_loaded", "p2c", "lookahead", "telemetry")
    run_script("Heuristics/inference.py", "--data", str(small_root), "--region", "Small_Trap", "--profile",
               "contention", "--arrival-rate", "8", "--worlds", "2", "--policy", *names, "--episodes", "40",
               "--latency-weight", "0.7", "--out", str(out), "--no-progress")
    for name in names:
        s = json.loads((out / name / "summary.json").read_text())
        assert s["policy"] == name and s["episodes"] == 40 and s["decision_ms"] > 0
        assert s.get("latency_weight") == (0.7 if name in ("least_loaded", "p2c") else None)
    assert yaml.safe_load((out / "config.yaml").read_text())["latency_weight"] == 0.7
    tune = tmp_path / "t"
    proc = run_script("Heuristics/tune.py", "--data", str(small_root), "--region", "Small_Trap", "--profile",
                      "contention", "--arrival-rate", "8", "--worlds", "2", "--weights", "0.5", "0.9",
                      "--episodes", "20", "--out", str(tune), "--no-progress")
    result = json.loads((tune / "tuning.json").read_text())
    assert result["split"] == "train" and len(result["table"]) == 4
    for name in ("greedy_queue", "p2c"):
        rows = [r for r in result["table"] if r["policy"] == name]
        best = max(rows, key=lambda r: r["mean_reward"])["latency_weight"]
        assert result["chosen_latency_weight"][name] == best and f"chosen {name}: latency weight" in proc.stdout
    config = yaml.safe_load((tune / "config.yaml").read_text())
    assert config["chosen_latency_weight"] == result["chosen_latency_weight"] and config["split"] == "train"
