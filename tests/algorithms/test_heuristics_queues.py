"""The queue-aware heuristics (greedy_switch, least_loaded, p2c, lookahead, telemetry), the latency weight
of the greedy family and lookahead, and Heuristics/tune.py, checked by hand on a 3-server world (built
like tests/edgesim/test_contention.py), by brute force over every plan, and against the oracle,
greedy_queue and TopoFreeRL's telemetry."""
from __future__ import annotations

import itertools
import json
from collections import OrderedDict

import pandas as pd
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
from edgesim.physics import EVAL_WEIGHTS, SWITCH_REWARD, latency_reward
from edgesim.registry import make_simulator
from edgesim.scores import GREEDY_COST_WEIGHT, GREEDY_LATENCY_WEIGHT, TELEMETRY_QUEUE_MS
from edgesim.simulator import Simulator
from Heuristics.policies import (
    SWITCH_EQUIVALENT_MS,
    LeastLoadedPolicy,
    LookaheadPolicy,
    OraclePolicy,
    PowerOfTwoPolicy,
    QueueGreedyPolicy,
    SwitchGreedyPolicy,
    TelemetryPolicy,
    expected_reward,
    planning_weights,
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


def _plan_value(sim, policy, plan, waits, later: bool = True) -> float:
    """Expected reward of running task 0's steps on the servers of `plan`, each step charged its server's
    wait (`later` False: step 0 only, as a planner ignoring the later steps' waits would)."""
    net, T = sim.net, sim.tasks
    total, prev = 0.0, -1
    for k, s in enumerate(plan):
        src = T.lon[0:1], T.lat[0:1], T.region[0:1]
        if prev >= 0:
            src = net.lon[prev:prev + 1], net.lat[prev:prev + 1], net.region[prev:prev + 1]
        total += float(expected_reward(sim, policy.table, policy.weights, src, torch.tensor([prev]), T.tokens[0, k],
                                       T.types[0, k], torch.tensor([s]),
                                       queue_ms=waits[s:s + 1] if later or k == 0 else None)[0])
        prev = s
    return total


@pytest.mark.parametrize("latency_weight", [GREEDY_LATENCY_WEIGHT, 0.9])
def test_lookahead_maximises_the_plan_value_with_the_live_waits_held_fixed(three, latency_weight):
    """Brute force over every plan of a 3-step workflow, each server's wait added to every step on it,
    at the planning weights of the default and of another latency weight."""
    sim = world(three, split="test", rate=0.01)  # w2: ChatGPT, ChatGPT, GPT-4
    obs, net, T = sim.observe(), sim.net, sim.tasks
    policy, gen, firsts = LookaheadPolicy(sim, latency_weight=latency_weight), torch.Generator().manual_seed(0), set()
    valid = [net.valid[T.types[0, k]].nonzero().squeeze(1).tolist() for k in range(3)]
    for _ in range(12):
        waits = torch.rand(3, generator=gen, dtype=torch.float64) * torch.tensor([400.0, 200.0, 100.0])
        waits[int(torch.randint(3, (1,), generator=gen))] = 0.0  # one idle server
        sim.busy[0] = sim.now + waits
        best = max(itertools.product(*valid), key=lambda plan: _plan_value(sim, policy, plan, waits))
        assert int(policy.act(sim, obs)) == best[0]
        firsts.add(best[0])
    assert len(firsts) >= 2  # the waits move the first step


def test_lookahead_charges_the_later_steps_their_servers_waits(three):
    """Brute force over a grid of long waits on A and B (C, the slow trap, idle), where the waits the
    later steps meet change the best first step: a planner that charged only step 0 its wait would
    start on the idle C to come back to A, whose wait it would then ignore."""
    sim = world(three, split="test", rate=0.01)  # w2: ChatGPT, ChatGPT, GPT-4 (GPT-4 on A and B only)
    obs, net, T = sim.observe(), sim.net, sim.tasks
    policy = LookaheadPolicy(sim)
    valid = [net.valid[T.types[0, k]].nonzero().squeeze(1).tolist() for k in range(3)]
    moved = 0
    for wait_a, wait_b in itertools.product(range(0, 4001, 500), range(0, 1501, 250)):
        waits = torch.tensor([wait_a, wait_b, 0.0], dtype=torch.float64)
        sim.busy[0] = sim.now + waits
        best = max(itertools.product(*valid), key=lambda plan: _plan_value(sim, policy, plan, waits))
        first_only = max(itertools.product(*valid), key=lambda plan: _plan_value(sim, policy, plan, waits, False))
        assert int(policy.act(sim, obs)) == best[0], (wait_a, wait_b)
        moved += best[0] != first_only[0]
    assert moved >= 3  # settings where only the later steps' waits decide the first step


def test_lookahead_cache_bound_evicts_least_recently_used_and_keeps_the_decisions(small_ds):
    """A `max_cache_bytes` that holds a few tasks' pair rewards: every decision is the unbounded cache's,
    the cache holds exactly the most recently used tasks that fit, and `cache_bytes` is their size."""
    sim = make_simulator(small_ds, 6, "train", "sequential", 0, profile="contention",
                         params=Contention(arrival_rate=20.0, worlds=2))
    unbounded = LookaheadPolicy(sim)

    def size(task: int) -> int:
        return sum(r.numel() * r.element_size() for r in unbounded.pair_rewards(sim, task)[1:])

    sizes = {t: size(t) for t in range(12)}
    bound = 3 * max(sizes.values())
    # the LRU cache by hand, through the public pair_rewards: repeats move a task to the newest end
    bounded, model = LookaheadPolicy(sim, max_cache_bytes=bound), OrderedDict()
    for task in [0, 1, 2, 0, 3, 4, 5, 3, 6, 7, 0, 8, 9, 10, 11, 9, 1]:
        got, want = bounded.pair_rewards(sim, task)[1:], unbounded.pair_rewards(sim, task)[1:]
        assert all(torch.equal(g, w) for g, w in zip(got, want))
        model[task] = sizes[task]
        model.move_to_end(task)
        while sum(model.values()) > bound and len(model) > 1:
            model.popitem(last=False)
        assert list(bounded.cache) == list(model)
        assert bounded.cache_bytes == sum(model.values()) <= bound
    # through act: the same decisions as the unbounded cache, with evictions along the way
    bounded, obs, held, evicted = LookaheadPolicy(sim, max_cache_bytes=bound), sim.observe(), set(), False
    for _ in range(60):
        a = unbounded.act(sim, obs)
        assert torch.equal(bounded.act(sim, obs), a)
        assert bounded.cache_bytes == sum(size(t) for t in bounded.cache) <= bound
        evicted |= bool(held - set(bounded.cache))
        held |= set(bounded.cache)
        obs, *_ = sim.step(a)
    assert evicted and float(sim.server_load().max()) > 0  # evictions happened, with queues to recompute


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


def test_a_switch_is_worth_its_latency_equivalent_in_the_reward():
    """The reward charges a switch w_S * 0.4; SWITCH_EQUIVALENT_MS of latency costs the same (166.7 ms)."""
    wl, _, ws = EVAL_WEIGHTS
    switch_cost = ws * SWITCH_REWARD
    latency_cost = wl * float(latency_reward(torch.tensor(SWITCH_EQUIVALENT_MS, dtype=torch.float64)))
    assert latency_cost == pytest.approx(switch_cost, rel=1e-12) and SWITCH_EQUIVALENT_MS == pytest.approx(500 / 3)


@pytest.mark.parametrize("latency_weight", [GREEDY_LATENCY_WEIGHT, 0.9])
def test_greedy_switch_is_greedy_queue_on_one_region(default_ds, latency_weight):
    sim = make_simulator(default_ds, 8, "test", "sequential", 0, profile="contention",
                         params=Contention(arrival_rate=8.0))
    assert len(set(default_ds.server_region.tolist())) == 1
    queue, switch = QueueGreedyPolicy(sim, latency_weight=latency_weight), SwitchGreedyPolicy(sim, latency_weight=latency_weight)
    obs = sim.observe()
    for _ in range(30):
        assert torch.equal(switch.scores(sim, obs), queue.scores(sim, obs))
        a = queue.act(sim, obs)
        assert torch.equal(switch.act(sim, obs), a)
        obs, *_ = sim.step(a)
    assert float(sim.server_load().max()) > 0  # decided with queues


def test_greedy_switch_charges_the_switch_on_many_regions(small_root):
    """On two regions: each server's score is greedy_queue's plus W * 166.7 ms / 2000 ms where the hop
    leaves the source's region, and the decisions differ from greedy_queue's only where greedy_queue
    switches and greedy_switch stays."""
    ds = load_dataset(small_root / "multi", ["Region1", "Region2"])
    sim = make_simulator(ds, 8, "test", "sequential", 0, profile="contention", params=Contention(arrival_rate=8.0))
    queue, switch = QueueGreedyPolicy(sim, latency_weight=0.9), SwitchGreedyPolicy(sim, latency_weight=0.9)
    obs, changed = sim.observe(), 0
    for _ in range(40):
        leaves = sim.net.region[None] != sim.hop_region()[:, None]  # (B, N) a switch
        expected = queue.scores(sim, obs) + 0.9 * SWITCH_EQUIVALENT_MS / 2000.0 * leaves
        torch.testing.assert_close(switch.scores(sim, obs), expected, rtol=1e-6, atol=1e-9)
        a, b = queue.act(sim, obs), switch.act(sim, obs)
        differ = a != b
        rows = torch.arange(sim.batch_size)
        assert leaves[rows, a][differ].all() and not leaves[rows, b][differ].any()
        changed += int(differ.sum())
        obs, *_ = sim.step(b)
    assert changed > 0


def test_lookahead_latency_weight_sets_its_planning_weights(default_ds):
    assert planning_weights(GREEDY_LATENCY_WEIGHT) == EVAL_WEIGHTS  # the default plans as before, bit for bit
    for w in (0.0, 0.3, 0.5, 0.75, 0.9, 1.0):
        wl, wc, ws = planning_weights(w)
        assert ws == EVAL_WEIGHTS[2] and wl + wc == pytest.approx(1 - ws) and min(wl, wc) >= 0
        # the latency-cost ratio moves by the factor the greedy score's W / (1 - W) moves from 0.6 / 0.4
        if 0 < w < 1:
            assert (wl / wc) / (0.45 / 0.40) == pytest.approx((w / (1 - w)) / (0.6 / 0.4))
    assert planning_weights(1.0)[1] == 0.0 and planning_weights(0.0)[0] == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        LookaheadPolicy(Simulator(default_ds, 1, "test", "sequential", 0), latency_weight=1.5)
    tasks = list(range(0, len(default_ds.tasks["test"]), 25))
    sim = make_simulator(default_ds, len(tasks), "test", "sequential", 0, profile="contention",
                         params=Contention(arrival_rate=8.0, worlds=2))
    default, latency_heavy = LookaheadPolicy(sim), LookaheadPolicy(sim, latency_weight=1.0)
    assert default.weights == EVAL_WEIGHTS
    obs, changed = sim.observe(), 0
    for _ in range(10):
        a = default.act(sim, obs)
        changed += int((latency_heavy.act(sim, obs) != a).sum())
        obs, *_ = sim.step(a)
    assert changed > 0


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
        assert s.get("latency_weight") == (0.7 if name in ("least_loaded", "p2c", "lookahead") else None)
    assert yaml.safe_load((out / "config.yaml").read_text())["latency_weight"] == 0.7
    tune = tmp_path / "t"
    proc = run_script("Heuristics/tune.py", "--data", str(small_root), "--region", "Small_Trap", "--profile",
                      "contention", "--arrival-rate", "8", "--worlds", "2", "--weights", "0.5", "0.9",
                      "--episodes", "20", "--policy", "greedy_queue", "p2c", "greedy_switch", "lookahead",
                      "--out", str(tune), "--no-progress")
    result = json.loads((tune / "tuning.json").read_text())
    assert result["split"] == "train" and len(result["table"]) == 8
    for name in ("greedy_queue", "p2c", "greedy_switch", "lookahead"):
        rows = [r for r in result["table"] if r["policy"] == name]
        best = max(rows, key=lambda r: r["mean_reward"])["latency_weight"]
        assert result["chosen_latency_weight"][name] == best and f"chosen {name}: latency weight" in proc.stdout
    config = yaml.safe_load((tune / "config.yaml").read_text())
    assert config["chosen_latency_weight"] == result["chosen_latency_weight"] and config["split"] == "train"


@pytest.mark.parametrize("setting, bound", [
    (["--profile", "contention", "--arrival-rate", "20", "--max-in-flight", "64"], "400"),  # some finish, some not
    (["--profile", "serving", "--load", "0.9", "--warmup", "2"], "80")], ids=["contention", "serving"])
def test_tuning_side_by_side_gives_each_candidate_the_rows_of_its_own_run(small_root, tmp_path, setting, bound):
    """The candidates of the rules that may share a simulator run side by side in one (greedy_queue and least_loaded
    at every W; p2c, which draws for the whole batch, alone): each row is the one tuning that candidate alone gives,
    in runs that the step bound cuts short too (only decision_ms, a wall time, differs). Under contention some blocks
    finish their workflows while the others go on to the bound."""
    def tune(out: str, policies: list[str], weights: list[str]) -> tuple[list[dict], str]:
        proc = run_script("Heuristics/tune.py", "--data", str(small_root), "--region", "Small_Trap", *setting,
                          "--worlds", "2", "--episodes", "10", "--max-steps", bound, "--policy", *policies,
                          "--weights", *weights, "--out", str(tmp_path / out), "--no-progress")
        rows = json.loads((tmp_path / out / "tuning.json").read_text())["table"]
        return [{k: v for k, v in r.items() if k != "decision_ms"} for r in rows], proc.stdout
    together, stdout = tune("together", ["greedy_queue", "least_loaded", "p2c"], ["0", "1"])
    assert ("4 candidates side by side in one simulator: greedy_queue W=0, greedy_queue W=1, least_loaded W=0, "
            "least_loaded W=1") in stdout
    alone = [row for name in ("greedy_queue", "least_loaded", "p2c") for w in ("0", "1")
             for row in tune(f"{name}_{w}", [name], [w])[0]]
    assert together == alone and all(r["unfinished"] > 0 for r in together[:2])
    if setting[1] == "contention":
        assert any(r["unfinished"] == 0 for r in together[:4])


@pytest.mark.parametrize("setting", [
    ["--region", "Small_Trap", "--profile", "contention", "--arrival-rate", "8", "--episodes", "20"],
    ["--region", "tiny", "--profile", "serving", "--max-in-flight", "2", "--episodes", "4"]],
    ids=["contention", "serving"])
def test_inference_side_by_side_gives_each_rule_the_rows_of_its_own_run(small_root, tiny_root, tmp_path, capsys,
                                                                       setting):
    """Heuristics/inference.py runs the rules that may share a simulator side by side in one (greedy_queue and
    least_loaded; p2c, which draws for the whole batch, alone): each rule's episodes and summary are those of
    evaluating it alone (but decision_ms, a wall time), the serving solo bound included."""
    from Heuristics.inference import main
    data = str(tiny_root if "tiny" in setting else small_root)
    base = ["--data", data, *setting, "--worlds", "2", "--no-progress"]
    names = ("greedy_queue", "least_loaded", "p2c")
    main([*base, "--policy", *names, "--out", str(tmp_path / "together")])
    assert "2 rules side by side in one simulator: greedy_queue, least_loaded" in capsys.readouterr().out
    for name in names:
        main([*base, "--policy", name, "--out", str(tmp_path / name)])
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "together" / name / "episodes.csv").drop(columns="decision_ms"),
                                      pd.read_csv(tmp_path / name / "episodes.csv").drop(columns="decision_ms"))
        together, alone = (json.loads((folder / "summary.json").read_text())
                           for folder in (tmp_path / "together" / name, tmp_path / name))
        assert {k: v for k, v in together.items() if "decision" not in k} == \
            {k: v for k, v in alone.items() if "decision" not in k}


def test_tune_bounded_by_max_steps_prefers_the_weights_that_finish(small_root, tmp_path):
    """With --max-steps, a W whose queues outgrow the run leaves workflows unfinished; its censored reward is an
    upper bound, so the W that finish are chosen first (here none finishes: the fewest unfinished wins)."""
    proc = run_script("Heuristics/tune.py", "--data", str(small_root), "--region", "Small_Trap", "--profile",
                      "contention", "--arrival-rate", "20", "--worlds", "2", "--max-in-flight", "64", "--weights", "0",
                      "1", "--episodes", "60", "--max-steps", "400", "--policy", "greedy_queue", "--out",
                      str(tmp_path / "t"), "--no-progress")
    result = json.loads((tmp_path / "t" / "tuning.json").read_text())
    rows = result["table"]
    assert result["max_steps"] == 400 and all(r["unfinished"] > 0 for r in rows)
    assert len({r["unfinished"] for r in rows}) == 2  # the bound separates the weights
    best = max(rows, key=lambda r: (-r["unfinished"], r["mean_reward"]))["latency_weight"]
    assert result["chosen_latency_weight"]["greedy_queue"] == best and "unfinished" in proc.stdout
