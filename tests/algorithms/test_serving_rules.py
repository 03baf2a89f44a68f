"""The serving rules (Heuristics/serving_rules.py) and the serving-aware least_loaded, on the tiny region under
the serving profile: each picks what its definition says over the live inputs, round_robin cycles, no rule picks
an invalid server or reads an output length, every registered heuristic runs through Heuristics/inference.py,
and the solo latency bound is exact where requests run alone and a bound where they do not."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from conftest import one_line_error, run_script
from tiny import ONE_SERVER, write_tiny

from edgesim.dataset import load_dataset
from edgesim.inputs import InputError
from edgesim.registry import get_profile, make_simulator
from edgesim.serving import Serving
from Heuristics.policies import GreedyPolicy, LeastLoadedPolicy, QueueGreedyPolicy, RandomPolicy
from Heuristics.serving_rules import (
    JoinShortestQueuePolicy,
    KVJSQPolicy,
    RoundRobinPolicy,
    TokenJSQPolicy,
)
from schedkit.evaluation import eval_simulator, evaluate
from schedkit.registry import SCHEDULERS, get, heuristics

# busy worlds: arrivals far faster than the four engines serve, so queues, prefills and batches build up
BUSY = Serving(arrival_rate=40.0, worlds=3, max_in_flight=6, warmup=0)


def serving_sim(tiny_ds, params: Serving = BUSY):
    return make_simulator(tiny_ds, params.worlds, "train", "random", 0, profile="serving", params=params)


def states(sim, decisions: int = 40):
    """Yield the simulator at each of `decisions` decisions, stepping with random valid servers in between."""
    mover = RandomPolicy(sim, seed=1)
    obs = sim.observe()
    for _ in range(decisions):
        yield obs
        obs = sim.step(mover.act(sim, obs))[0]


def lowest_index_argmin(values: list[float]) -> int:
    """Position of the smallest value, the first among equals."""
    return min(range(len(values)), key=lambda i: (values[i], i))


def brute_force(sim, key) -> list[int]:
    """Per world, the valid server minimising key(world, server), lowest index among equals, by enumeration."""
    valid = sim.net.valid[sim.required_type()].tolist()
    out = []
    for g in range(sim.batch_size):
        servers = [s for s in range(sim.n_servers) if valid[g][s]]
        out.append(servers[lowest_index_argmin([key(g, s) for s in servers])])
    return out


RULES = {
    "jsq": (JoinShortestQueuePolicy,
            lambda sim: (lambda q, r: lambda g, s: float(q[g, s] + r[g, s]))(sim.queue_length(), sim.running_batch())),
    "token_jsq": (TokenJSQPolicy, lambda sim: (lambda t: lambda g, s: float(t[g, s]))(sim.outstanding_tokens())),
    "kv_jsq": (KVJSQPolicy, lambda sim: (lambda f: lambda g, s: -float(f[g, s]))(sim.free_kv_tokens())),
}


@pytest.mark.parametrize("name", RULES)
def test_each_rule_picks_the_valid_argmin_of_its_live_input(tiny_ds, name):
    cls, key = RULES[name]
    sim = serving_sim(tiny_ds)
    policy = cls(sim)
    differs_from_first_valid = 0
    for obs in states(sim):
        picked = policy.act(sim, obs).tolist()
        assert picked == brute_force(sim, key(sim))
        assert sim.valid_mask()[torch.arange(sim.batch_size), torch.tensor(picked)].all()
        differs_from_first_valid += sum(p != int(sim.valid_mask()[g].float().argmax()) for g, p in enumerate(picked))
    if name != "kv_jsq":  # the largest engine's KV cache stays the freest on this tiny_ds region
        assert differs_from_first_valid > 0  # the live input, not the index order, decided


def test_the_states_are_loaded(tiny_ds):
    """The argmin test sees queues, prefills and batches, not only idle servers."""
    sim = serving_sim(tiny_ds)
    seen = {"queue": 0.0, "tokens": 0.0, "batch": 0.0, "kv_used": 0.0}
    for _ in states(sim):
        seen["queue"] = max(seen["queue"], float(sim.queue_length().max()))
        seen["tokens"] = max(seen["tokens"], float(sim.outstanding_tokens().max()))
        seen["batch"] = max(seen["batch"], float(sim.running_batch().max()))
        seen["kv_used"] = max(seen["kv_used"], float((sim.perf.kv_capacity - sim.free_kv_tokens()).max()))
    assert all(v > 0 for v in seen.values()), seen


def test_least_loaded_under_serving_is_fewest_outstanding_tokens_then_the_greedy_score(tiny_ds):
    sim = serving_sim(tiny_ds)
    policy, greedy = LeastLoadedPolicy(sim), GreedyPolicy(sim)
    for obs in states(sim):
        tokens, score = sim.outstanding_tokens(), greedy.scores(sim, obs)
        expected = brute_force(sim, lambda g, s, t=tokens, c=score: (float(t[g, s]), float(c[g, s])))
        assert policy.act(sim, obs).tolist() == expected


def test_greedy_queue_adds_servings_expected_wait_and_batch_slowdown_in_ms(tiny_ds):
    sim = serving_sim(tiny_ds)
    queue_greedy, greedy = QueueGreedyPolicy(sim), GreedyPolicy(sim)
    servers = torch.arange(sim.n_servers)[None].expand(sim.batch_size, -1)
    rows = torch.arange(sim.batch_size)[:, None]
    waited = slowed = 0
    for obs in states(sim):
        wait = sim.server_load()
        assert (wait >= 0).all()
        valid = sim.valid_mask()
        idle = sim.expected_engine_ms(servers, sim.decision_prompt()[:, None], torch.zeros(()), torch.zeros(()))
        used_kv = sim.perf.kv_capacity.double() - sim.free_kv_tokens()
        busy = sim.expected_engine_ms(servers, sim.decision_prompt()[:, None], sim.running_batch().double(), used_kv)
        torch.testing.assert_close(sim.profile.expected_compute_ms(sim, obs.tokens[:, None], servers, rows,
                                                                   live=True, current=True), busy)
        # the same score with the wait and the live batch's slowdown added to E[latency]
        diff = (queue_greedy.scores(sim, obs) - greedy.scores(sim, obs))[valid]
        torch.testing.assert_close(diff, (greedy.latency_weight * (wait + busy - idle) / 2000.0)[valid])
        waited += int((wait[valid] > 0).sum())
        slowed += int((busy - idle > 0)[valid].sum())
    assert waited > 0 and slowed > 0


def test_round_robin_cycles_per_world_and_model_type(tiny_ds):
    sim = serving_sim(tiny_ds)
    policy = RoundRobinPolicy(sim)
    turn: dict[tuple[int, int], int] = {}
    valid = sim.net.valid.tolist()
    obs = sim.observe()
    for _ in range(40):
        picked = policy.act(sim, obs)
        for g, t in enumerate(sim.required_type().tolist()):
            servers = [s for s in range(sim.n_servers) if valid[t][s]]
            k = turn.get((g, t), 0)
            assert int(picked[g]) == servers[k % len(servers)]
            turn[(g, t)] = k + 1
        obs = sim.step(picked)[0]
    assert max(turn.values()) > 4  # some (world, type) went round the four ChatGPT servers more than once


def test_rules_never_read_output_lengths(tiny_ds):
    """Changing the hidden output lengths mid-run changes no rule's choice at that decision."""
    sim = serving_sim(tiny_ds)
    policies = [cls(sim) for cls, _ in RULES.values()] + [LeastLoadedPolicy(sim), QueueGreedyPolicy(sim)]
    for i, obs in enumerate(states(sim, 30)):
        if i % 5:
            continue
        before = [p.act(sim, obs) for p in policies]
        saved = sim.hidden_output.clone(), sim.hidden_remaining.clone()
        sim.hidden_output, sim.hidden_remaining = saved[0] * 3 + 7, saved[1] * 3 + 7
        after = [p.act(sim, obs) for p in policies]
        sim.hidden_output, sim.hidden_remaining = saved
        for b, a in zip(before, after):
            assert torch.equal(b, a)


@pytest.mark.parametrize("profile", ["paper", "contention"])
def test_a_rule_without_its_live_input_refuses_in_one_line(tiny_ds, profile):
    sim = make_simulator(tiny_ds, 2, "train", "random", 0, profile=profile)
    for cls, needs in ((JoinShortestQueuePolicy, "queue_length()"), (TokenJSQPolicy, "outstanding_tokens()"),
                       (KVJSQPolicy, "free_kv_tokens()")):
        with pytest.raises(InputError, match=rf"policy {cls.name}: .*{needs[:-2]}.*{profile} profile") as e:
            cls(sim)
        assert "\n" not in str(e.value) and "--profile serving" in str(e.value)
    RoundRobinPolicy(sim)  # it reads no live input: it runs anywhere


def test_the_registry_keeps_the_serving_rules_to_the_serving_profile():
    serving, contention, paper = (get_profile(p) for p in ("serving", "contention", "paper"))
    rules = ["round_robin", "jsq", "token_jsq", "kv_jsq"]
    assert [n for n in heuristics() if get(n).profiles] == rules
    assert all(get(n).runs_under(serving) and get(n).evaluated_under(serving, 2) for n in heuristics())
    assert [n for n in heuristics() if not get(n).evaluated_under(contention, 2)] == rules
    assert [n for n in heuristics() if not get(n).evaluated_under(paper, 2)] == [
        n for n in heuristics() if get(n).queue_aware or get(n).profiles]
    # on one region the switch-aware rule is greedy_queue: evaluated only on data of several regions
    assert [n for n in heuristics() if not get(n).evaluated_under(contention, 1)] == ["greedy_switch", *rules]
    assert len({s.color for s in SCHEDULERS.values()}) == len(SCHEDULERS)
    assert len({s.marker for s in SCHEDULERS.values()}) == len(SCHEDULERS)


def test_every_heuristic_runs_through_inference_under_serving(tiny_root, tmp_path):
    out = tmp_path / "out"
    run_script("Heuristics/inference.py", "--data", str(tiny_root), "--region", "tiny", "--profile", "serving",
               "--worlds", "2", "--max-in-flight", "2", "--episodes", "4", "--policy", "all", "--out", str(out),
               "--no-progress", cwd=tmp_path)
    bounds = set()
    for name in heuristics():
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["policy"] == name and summary["episodes"] == 4
        assert "reward_upper_bound" not in summary  # the oracle's plan value bounds nothing under serving
        assert 0 < summary["latency_lower_bound_ms"] <= summary["mean_compute_ms"] < summary["mean_latency_ms"]
        bounds.add(summary["latency_lower_bound_ms"])
    assert len(bounds) == 1  # one number for every scheduler: the same episodes and token pairs


def test_the_solo_bound_is_exact_for_requests_that_never_share_an_engine(tiny_root, tmp_path):
    """One server, one workflow in flight, arrivals far apart: every request runs alone, so the mean compute
    time is the solo bound; with several in flight it stays a bound and is no longer reached."""
    write_tiny(tiny_root / "One", **ONE_SERVER)
    with pytest.warns(UserWarning):
        one = load_dataset(tiny_root, "One")
    (tmp_path / "pairs.csv").write_text("ContextTokens,GeneratedTokens\n300,40\n1200,90\n50,7\n")
    alone = Serving(arrival_rate=0.001, token_trace=str(tmp_path / "pairs.csv"), worlds=1, max_in_flight=1, warmup=0)
    sim = eval_simulator(one, "train", 6, 0, profile=get_profile("serving"), params=alone)
    df = evaluate(sim, RandomPolicy(sim), 6, progress=False)
    assert (df["queue_ms"] == 0).all()
    assert sim.measured_bounds(df)["latency_lower_bound_ms"] == pytest.approx(df["compute_ms"].mean(), rel=1e-12)
    crowded = Serving(arrival_rate=50.0, token_trace=str(tmp_path / "pairs.csv"), worlds=1, max_in_flight=6, warmup=0)
    sim = eval_simulator(one, "train", 12, 0, profile=get_profile("serving"), params=crowded)
    df = evaluate(sim, RandomPolicy(sim), 12, progress=False)
    assert sim.measured_bounds(df)["latency_lower_bound_ms"] < df["compute_ms"].mean()


def test_inference_all_leaves_the_serving_rules_out_elsewhere_and_refuses_them_by_name(tiny_root, tmp_path):
    out = tmp_path / "out"
    run_script("Heuristics/inference.py", "--data", str(tiny_root), "--region", "tiny", "--episodes", "2",
               "--policy", "all", "--out", str(out), "--no-progress", cwd=tmp_path)
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == sorted(
        n for n in heuristics() if n not in ("round_robin", "jsq", "token_jsq", "kv_jsq"))
    proc = run_script("Heuristics/inference.py", "--data", str(tiny_root), "--region", "tiny", "--profile", "contention",
                      "--policy", "token_jsq", "--out", str(tmp_path / "refused"), check=False, cwd=tmp_path)
    one_line_error(proc, "token_jsq", "outstanding_tokens()", "contention profile", "--profile serving")


def test_evaluate_all_under_serving_evaluates_the_serving_rules_without_an_oracle_bound(tiny_root, tmp_path):
    results = tmp_path / "results"
    others = [n for n in heuristics() if n not in ("oracle", "token_jsq")]
    run_script("total/evaluate_all.py", "--data", str(tiny_root), "--region", "tiny", "--results", str(results),
               "--profile", "serving", "--worlds", "2", "--max-in-flight", "2", "--episodes", "4", "--skip", *others,
               "--no-progress", cwd=tmp_path)
    [folder] = (results / "eval").iterdir()
    summary = pd.read_csv(folder / "summary.csv").set_index("algo")
    assert list(summary.index) == ["oracle", "token_jsq"] and "reward_upper_bound" not in summary.columns
