"""The serving profile (docs/simulator.md §6): iteration arithmetic by hand, KV admission, non-clairvoyance,
invariants of a loaded run, common random numbers and bad inputs, all through make_simulator."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import one_line_error, run_script
from tiny import ONE_SERVER, write_tiny

from edgesim.crn import crn_hash, crn_uniform
from edgesim.dataset import load_dataset
from edgesim.gym_wrappers import EdgeMoEEnv
from edgesim.registry import make_simulator
from edgesim.serving import GPU_CLASSES, Serving, ServingError
from edgesim.serving_perf import idle_batch_ms, load_perf_model
from schedkit.evaluation import evaluate


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    write_tiny(root / "One", **ONE_SERVER)
    write_tiny(root / "tiny")
    even = root / "even.csv"
    even.write_text("Timestamp\n" + "\n".join(str(i) for i in range(10)) + "\n")  # equal gaps: arrivals every 1/rate
    with pytest.warns(UserWarning):  # the tiny region has a one-step task, skipped
        tiny = load_dataset(root, "tiny")
    return {"root": root, "one": load_dataset(root, "One"), "tiny": tiny, "even": str(even)}


def tokens(files, name: str, pairs: list[tuple[int, int]]) -> str:
    path = files["root"] / name
    path.write_text("ContextTokens,GeneratedTokens\n" + "".join(f"{p},{o}\n" for p, o in pairs))
    return str(path)


def run_until(sim, episodes: set[tuple[int, int]], policy=None, limit: int = 200) -> dict[tuple[int, int], dict]:
    """Step (every row picks server 0, or `policy`) until the (episode, step) requests in `episodes` completed."""
    seen: dict[tuple[int, int], dict] = {}
    obs = sim.observe()
    for _ in range(limit):
        obs, _, _, info = sim.step(policy(sim, obs) if policy else torch.zeros(sim.batch_size, dtype=torch.long))
        for i in range(len(info["episode"])):
            seen[(int(info["episode"][i]), int(info["step"][i]))] = {k: v[i].item() for k, v in info.items()}
        if episodes <= seen.keys():
            return seen
    raise AssertionError(f"not completed: {episodes - seen.keys()}")


LOWEST = load_perf_model().get(*GPU_CLASSES[0])  # one server is in the lowest tercile
LOWEST_KV = load_perf_model().kv_capacity_tokens(*GPU_CLASSES[0])


def prefill(*prompts: int) -> float:
    c = LOWEST
    return max(c.floor, c.p0 + c.p1 * sum(prompts) + c.p2 * sum(p * p for p in prompts) + c.p3 * len(prompts))


def boundaries(start: float, batch: int, kv: int):
    """The ends of the decode iterations of a constant batch from `start`, one by one: each attends to the
    batch's cached tokens, which grow by `batch` per iteration."""
    c, t = LOWEST, start
    while True:
        t += c.d0 + c.d1 * batch + c.d2 * kv
        kv += batch
        yield t


def first_at_or_after(start: float, batch: int, kv: int, t: float) -> tuple[int, float]:
    """(iterations, boundary): the first iteration end at or after `t`."""
    for k, end in enumerate(boundaries(start, batch, kv), 1):
        if end >= t:
            return k, end
    raise AssertionError


def after(start: float, batch: int, kv: int, iterations: int) -> float:
    return next(itertools.islice(boundaries(start, batch, kv), iterations - 1, None))


def test_one_server_iteration_arithmetic_by_hand(files):
    prompt, output = 100, 50
    trace = tokens(files, "one_pair.csv", [(prompt, output)])
    params = Serving(arrival_rate=1.0, arrival_trace=files["even"], token_trace=trace, max_in_flight=2, worlds=1,
                     warmup=0)
    sim = make_simulator(files["one"], 1, "train", "sequential", 0, profile="serving", params=params)
    obs = sim.step(torch.zeros(1, dtype=torch.long))[0]  # the first request; the second decision is next
    assert float(obs.now_ms[0]) == 2000.0
    live = {name: float(getattr(sim, name)()[0, 0]) for name in
            ("server_load", "free_kv_tokens", "running_batch", "queue_length", "outstanding_tokens")}
    rows = run_until(sim, {(0, 0), (1, 0), (0, 1)})
    first, second, third = rows[(0, 0)], rows[(1, 0)], rows[(0, 1)]
    assert first["arrival_ms"] == 1000.0 and second["arrival_ms"] == 2000.0  # even gaps of 1000 ms
    a1 = 1000.0 + first["network_ms"]
    a2 = 2000.0 + second["network_ms"]
    f1 = a1 + prefill(prompt)  # idle server: admitted on arrival, prefilled alone
    # the live inputs at the second decision: the first decodes alone, its first iteration over prompt + 1 tokens
    done, next_end = first_at_or_after(f1, 1, prompt + 1, math.nextafter(2000.0, math.inf))
    done -= 1
    assert live["server_load"] == pytest.approx(next_end - 2000.0)
    assert live["free_kv_tokens"] == LOWEST_KV - (prompt + 1 + done)
    assert (live["running_batch"], live["queue_length"], live["outstanding_tokens"]) == (1, 0, 0)
    assert first["ttft_ms"] == pytest.approx(f1 - 1000.0, abs=1e-9)
    k, boundary = first_at_or_after(f1, 1, prompt + 1, a2)  # arrives mid-decode: admitted at the next boundary
    assert 0 < k < output - 1
    assert second["queue_ms"] == pytest.approx(boundary - a2, abs=1e-9)
    f2 = boundary + prefill(prompt)  # the first's decode pauses for the second's prefill
    assert second["ttft_ms"] == pytest.approx(f2 - 2000.0, abs=1e-9)
    end1 = after(f2, 2, (prompt + 1 + k) + (prompt + 1), output - 1 - k)
    assert first["end_ms"] == pytest.approx(end1, abs=1e-6)
    assert first["latency"] == pytest.approx(end1 - 1000.0, abs=1e-6)
    # the first workflow's next step is decided at end1; it reaches the server while the second decodes alone
    a3 = end1 + third["network_ms"]
    second_kv = prompt + 1 + (output - 1 - k)
    j, b3 = first_at_or_after(end1, 1, second_kv, a3)
    assert 0 < j < k
    assert third["queue_ms"] == pytest.approx(b3 - a3, abs=1e-6)
    f3 = b3 + prefill(prompt)
    assert third["ttft_ms"] == pytest.approx(f3 - end1, abs=1e-6)
    assert second["end_ms"] == pytest.approx(after(f3, 2, (second_kv + j) + (prompt + 1), k - j), abs=1e-6)
    for row in (first, second, third):
        assert row["decode_iterations"] == output - 1 and row["prefills"] == 1
        assert row["latency"] == pytest.approx(row["network_ms"] + row["queue_ms"] + row["compute_ms"], abs=1e-6)
        assert row["tpot_ms"] == pytest.approx((row["latency"] - row["ttft_ms"]) / (output - 1))


def test_a_request_that_does_not_fit_the_kv_cache_waits_for_a_completion(files):
    kv = LOWEST_KV
    prompt, output = 4000, 96
    fit = kv // (prompt + output)  # this many fit at once; the next must wait
    trace = tokens(files, "big_pair.csv", [(prompt, output)])
    params = Serving(arrival_rate=1000.0, arrival_trace=files["even"], token_trace=trace, max_in_flight=fit + 1,
                     worlds=1, warmup=0)
    sim = make_simulator(files["one"], 1, "train", "sequential", 0, profile="serving", params=params)
    reserved = []

    def policy(s, obs):
        reserved.append(int(s.hidden_reserved_kv().max()))
        return torch.zeros(1, dtype=torch.long)

    rows = run_until(sim, {(e, 0) for e in range(fit + 1)}, policy)
    assert 0 < max(reserved) <= kv
    last = rows[(fit, 0)]
    admitted = last["end_ms"] - last["compute_ms"]
    first_end = min(rows[(e, 0)]["end_ms"] for e in range(fit))
    assert admitted == pytest.approx(first_end, abs=1e-9)  # enters at the boundary where the first ones leave
    # it arrived during the first request's prefill; at that prefill's end the others entered, it did not
    assert last["queue_ms"] > prefill(prompt)
    assert all(rows[(e, 0)]["queue_ms"] < last["queue_ms"] for e in range(fit))


@pytest.mark.parametrize("batch, prompt, output", [(1, 100, 50), (4, 512, 128), (16, 1000, 200), (3, 300, 1),
                                                   (8, 2048, 64)])
def test_an_idle_server_given_one_batch_matches_the_closed_form_of_the_performance_model(files, batch, prompt, output):
    # `batch` workflows arrive at 0 (the trace's gaps are 0 but for its last two), are sent to the one server
    # with the same network draws, so they reach it together; their first requests are served as one batch
    burst = files["root"] / "burst.csv"
    burst.write_text("Timestamp\n" + "0\n" * 10_000 + "1\n2\n")
    trace = tokens(files, f"batch_{prompt}_{output}.csv", [(prompt, output)])
    params = Serving(arrival_rate=1.0, arrival_trace=str(burst), token_trace=trace, max_in_flight=batch, worlds=1,
                     warmup=0)
    sim = make_simulator(files["one"], 1, "train", "sequential", 0, profile="serving", params=params, task_subset=[0])
    draws = torch.full((1, 4), 0.5, dtype=torch.float64)
    rows: dict[int, dict] = {}
    for _ in range(batch + 1):
        _, _, _, info = sim.step(torch.zeros(1, dtype=torch.long), uniforms=draws)
        rows |= {int(e): {k: v[i].item() for k, v in info.items()}
                 for i, (e, s) in enumerate(zip(info["episode"], info["step"])) if s == 0}
    assert sorted(rows) == list(range(batch))
    ttft, tpot, e2e = idle_batch_ms(LOWEST, float(prompt), float(batch), float(output))
    for row in rows.values():
        assert row["arrival_ms"] == 0.0 and row["network_ms"] == rows[0]["network_ms"] > 0 and row["queue_ms"] == 0.0
        assert row["ttft_ms"] - row["network_ms"] == pytest.approx(ttft, rel=1e-12)
        assert row["tpot_ms"] == pytest.approx(tpot, rel=1e-12, abs=1e-12)
        assert row["latency"] - row["network_ms"] == pytest.approx(e2e, rel=1e-12)


def test_output_lengths_stay_hidden_until_a_request_completes(files):
    def run(output: int):
        trace = tokens(files, f"hidden_{output}.csv", [(300, output)])
        params = Serving(arrival_rate=40.0, token_trace=trace, max_in_flight=16, worlds=3, warmup=0)
        sim = make_simulator(files["tiny"], 3, "train", "sequential", 0, profile="serving", params=params)
        obs, seen = sim.observe(), []
        for _ in range(60):
            live = [sim.queue_length(), sim.running_batch(), sim.free_kv_tokens(), sim.outstanding_tokens(),
                    sim.server_load(), sim.latency_history()]
            score = sim.server_load() - 1e-3 * sim.free_kv_tokens() + sim.outstanding_tokens()
            action = score.masked_fill(~sim.valid_mask(), math.inf).argmin(1)
            seen.append((obs, live, action))
            obs, _, done, _ = sim.step(action)
            if len(done):
                return seen
        return seen

    short, long = run(30), run(2000)
    assert len(short) >= 5  # several decisions before the first completion
    for (obs_a, live_a, act_a), (obs_b, live_b, act_b) in zip(short, long):
        for x, y in zip(obs_a, obs_b):
            assert torch.equal(x, y)
        for x, y in zip(live_a, live_b):
            assert torch.equal(x, y)
        assert torch.equal(act_a, act_b)


def test_invariants_of_a_loaded_run(files):
    params = Serving(load=1.2, max_in_flight=24, worlds=4, warmup=2, max_batch=8)
    sim = make_simulator(files["tiny"], 4, "train", "sequential", 3, profile="serving", params=params)
    cap = sim.perf.kv_capacity
    gen = torch.Generator().manual_seed(1)
    completed: dict[int, list[int]] = {}
    intervals: list[tuple[int, int, float, float, int]] = []  # (world, server, admitted, end, reserved tokens)
    finished: set[int] = set()
    last_end = torch.full((4,), -math.inf, dtype=torch.float64)
    clock, now = sim.world_clock.clone(), sim.now.clone()
    obs = sim.observe()
    admitted_late = 0  # first requests that waited for a free slot: their TTFT counts the wait
    for _ in range(100):
        obs, reward, done, info = sim.step(sim.sample_valid(gen))
        assert bool((sim.world_clock >= clock).all()) and bool((obs.now_ms >= now).all())
        clock, now = sim.world_clock.clone(), obs.now_ms.clone()
        assert bool((sim.hidden_reserved_kv() <= cap).all()) and bool((sim.running_batch() <= 8).all())
        assert bool((sim.queue_length() >= 0).all()) and bool((sim.free_kv_tokens() <= cap).all())
        assert reward.shape == (len(done), 3)
        for i in range(len(done)):
            row = {k: v[i].item() for k, v in info.items()}
            assert row["queue_ms"] >= 0 and row["admission_ms"] >= 0 and row["network_ms"] > 0
            assert row["compute_ms"] > 0 and row["ttft_ms"] >= row["network_ms"] + row["admission_ms"]
            admitted_late += row["admission_ms"] > 0
            assert row["prefills"] == 1 and row["decode_iterations"] == row["output_tokens"] - 1
            assert row["prompt_tokens"] + row["output_tokens"] <= 4096
            assert row["end_ms"] >= last_end[row["world"]]
            last_end[row["world"]] = row["end_ms"]
            intervals.append((row["world"], row["server"], row["end_ms"] - row["compute_ms"], row["end_ms"],
                              row["prompt_tokens"] + row["output_tokens"]))
            steps = completed.setdefault(row["episode"], [])
            assert row["step"] == len(steps) and row["episode"] not in finished  # in order, exactly once
            steps.append(row["step"])
            if row["done"]:
                finished.add(row["episode"])
    assert len(finished) > 30 and admitted_late > 0
    # replayed from the completed requests alone: reservations and batch never exceed the engine's limits
    # (a completion frees its tokens before an admission at the same boundary)
    fullest = 0
    for key in {(w, srv) for w, srv, *_ in intervals}:
        events = sorted([(t0, 1, need) for w, srv, t0, _, need in intervals if (w, srv) == key]
                        + [(t1, 0, -need) for w, srv, _, t1, need in intervals if (w, srv) == key])
        kv, batch = np.cumsum([e[2] for e in events]), np.cumsum([1 if e[1] else -1 for e in events])
        assert kv.max() <= int(cap[key[1]]) and batch.max() <= 8
        fullest = max(fullest, int(batch.max()))
    assert fullest == 8  # the batch limit was reached
    in_flight = set(sim.slot_int[0].tolist())
    dealt = {int(a) * 4 + g for g in range(4) for a in range(int(sim.next_index[g]))}
    assert finished.isdisjoint(in_flight) and finished | in_flight == dealt  # every arrival: finished or in flight
    stats = sim.serving_stats()
    assert 0 < stats["utilisation"] <= stats["busy_share"] <= 1 and 0 < stats["kv_occupancy"] < 1
    assert 1 <= stats["mean_running_batch"] <= 8 and stats["mean_queue_wait_ms"] > 0


def test_the_live_state_is_each_callers_own_and_follows_every_step(files):
    """The live state is computed once per decision (several policies ask for it): a caller that changes what it was
    given changes nobody else's, and after each step every quantity is that of the new state, as a simulator that
    was never asked before it computes it."""
    params = Serving(load=1.2, max_in_flight=24, worlds=4, warmup=2, max_batch=8)
    asked, fresh = (make_simulator(files["tiny"], 4, "train", "sequential", 3, profile="serving", params=params)
                    for _ in range(2))
    gen = torch.Generator().manual_seed(1)
    quantities = ("server_load", "free_kv_tokens", "live_inputs")
    changed = dict.fromkeys(quantities, 0)
    before = {q: getattr(asked, q)() for q in quantities}
    for _ in range(60):
        for q in quantities:
            mine = getattr(asked, q)()
            kept = mine.clone()
            mine.add_(1.0)  # the caller's own copy
            assert torch.equal(getattr(asked, q)(), kept), q
        actions = asked.sample_valid(gen)
        asked.step(actions)
        fresh.step(actions)
        for q in quantities:
            now = getattr(asked, q)()
            assert torch.equal(now, getattr(fresh, q)()), q  # fresh was not asked before this step
            changed[q] += not torch.equal(now, before[q])
            before[q] = now
    assert all(n > 30 for n in changed.values()), changed  # the state moved: a stale copy would have been caught


def test_the_hash_is_uniform_and_arrivals_tasks_and_tokens_are_common_random_numbers(files):
    u = crn_uniform(7, torch.arange(20000), 3, 0, 1)
    counts = np.histogram(u.numpy(), bins=20, range=(0, 1))[0]
    chi2 = ((counts - 1000) ** 2 / 1000).sum()
    assert chi2 < 43.8  # 19 degrees of freedom, p = 0.001
    assert 0 <= int(crn_hash(2**32 - 1, torch.tensor([2**40])).max()) < 2**32
    assert not torch.equal(crn_uniform(7, torch.arange(5), 1), crn_uniform(8, torch.arange(5), 1))

    def run(policy):
        params = Serving(load=1.0, max_in_flight=16, worlds=2, warmup=0)
        sim = make_simulator(files["tiny"], 2, "train", "random", 5, profile="serving", params=params)
        rows, obs = {}, sim.observe()
        for _ in range(60):
            obs, _, _, info = sim.step(policy(sim, obs))
            for i in range(len(info["episode"])):
                rows[(int(info["episode"][i]), int(info["step"][i]))] = tuple(
                    info[k][i].item() for k in ("world", "arrival_index", "arrival_ms", "task", "prompt_tokens",
                                                "output_tokens"))
        return rows

    gen = torch.Generator().manual_seed(0)
    first = run(lambda s, o: s.valid_mask().long().argmax(1))
    other = run(lambda s, o: s.sample_valid(gen))
    common = first.keys() & other.keys()
    assert len(common) > 20
    assert all(first[k] == other[k] for k in common)


class RandomValid:
    name = "random_valid"

    def __init__(self) -> None:
        self.gen = torch.Generator().manual_seed(3)

    def act(self, sim, obs) -> torch.Tensor:
        return sim.sample_valid(self.gen)


def test_evaluate_sums_completed_requests_per_workflow(files):
    params = Serving(load=0.5, max_in_flight=8, worlds=2, warmup=1)
    sim = make_simulator(files["tiny"], 2, "test", "sequential", 0, profile="serving", params=params)
    df = evaluate(sim, RandomValid(), 8, progress=False)
    n_steps = [int(sim.tasks.n_steps[sim.tasks.ids.index(t)]) for t in df["task_id"]]
    assert len(df) == 8 and (df["steps"] == n_steps).all()
    assert np.allclose(df["latency_ms"], df["network_ms"] + df["queue_ms"] + df["compute_ms"])


@pytest.mark.parametrize("field, value, message", [
    ("load", 0.0, "serving.load: expected a utilisation > 0 and <= 1.2, got 0.0"),
    ("load", 1.5, "serving.load"), ("max_batch", 0, "serving.max_batch"), ("worlds", True, "serving.worlds"),
    ("arrival_rate", -1.0, "serving.arrival_rate"), ("token_trace", "", "serving.token_trace"),
    ("slo_ttft_ms", math.inf, "serving.slo_ttft_ms"),
])
def test_bad_parameters_are_named(field, value, message):
    with pytest.raises(ServingError, match=message.replace("(", r"\(")) as e:
        Serving(**{field: value})
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("text, message", [
    ("a,b\n1,2\n", "expected columns ContextTokens and GeneratedTokens"),
    ("ContextTokens,GeneratedTokens\n", "no rows"),
    ("ContextTokens,GeneratedTokens\n10,5\n-3,4\n", "line 3, field 'ContextTokens': expected a token count"),
    ("Request tokens,Response tokens\n10,five\n", "line 2, field 'Response tokens'"),
])
def test_bad_token_traces_name_file_line_and_column(tmp_path, text, message):
    path = tmp_path / "tokens.csv"
    path.write_text(text)
    with pytest.raises(ServingError, match=message) as e:
        Serving.from_dict({"token_trace": str(path)})
    assert str(path) in str(e.value) and "serving.token_trace" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(ServingError, match="unknown serving key"):
        Serving.from_dict({"tokens": str(path)})


def test_gym_credits_completed_requests(files):
    env = EdgeMoEEnv(files["tiny"], profile="serving", horizon=5)  # tests/edgesim/test_gym.py: its semantics
    obs, _ = env.reset(seed=0)
    info = env.step(int(obs["action_mask"].argmax()))[4]
    assert set(info["completed"]) >= {"episode_id", "step", "ttft_ms", "tpot_ms", "latency_ms", "reward"}


@pytest.mark.parametrize("args, needles", [
    (["--profile", "serving", "--load", "2"], ["--load", "<= 1.2"]),
    (["--profile", "contention", "--load", "0.5"], ["--load is a serving parameter", "add --profile serving"]),
    (["--profile", "serving", "--token-trace", "no_such.csv"], ["serving.token_trace", "no_such.csv", "not found"]),
    (["--profile", "serving", "--max-batch", "0"], ["--max-batch"]),
])
def test_bad_serving_flags_end_a_script_with_one_line(tmp_path, args, needles):
    proc = run_script("Heuristics/inference.py", *args, "--out", str(tmp_path / "out"), check=False, cwd=tmp_path)
    one_line_error(proc, *needles)
    assert not (tmp_path / "out").exists()


def test_the_reward_scores_latency_against_each_requests_slo_budget(files):
    """rL = -4 (0.5 min(latency / (2 budget), 1) + 0.5 missed), budget = slo_ttft + (o - 1) slo_tpot; cost and
    switch terms as in the paper profile. Checked by hand on every request of a short loaded run."""
    from edgesim import physics as P
    params = Serving(load=1.0, max_in_flight=8, worlds=2, warmup=0, slo_ttft_ms=800.0, slo_tpot_ms=40.0)
    sim = make_simulator(files["tiny"], 2, "train", "sequential", 0, profile="serving", params=params)
    gen, seen, missed = torch.Generator().manual_seed(0), 0, 0
    for _ in range(60):
        _, reward, _, info = sim.step(sim.sample_valid(gen))
        for i in range(len(reward)):
            lat, o = info["latency"][i].item(), info["output_tokens"][i].item()
            miss = info["ttft_ms"][i].item() > 800.0 or info["tpot_ms"][i].item() > 40.0
            r_l = -4.0 * (0.5 * min(lat / (2 * (800.0 + (o - 1) * 40.0)), 1.0) + 0.5 * miss)
            assert reward[i, 0].item() == pytest.approx(r_l, rel=1e-12)
            assert reward[i, 1].item() == pytest.approx(P.cost_reward(info["cost"][i]).item(), rel=1e-12)
            assert reward[i, 2].item() == (-0.4 if info["switch"][i] else 0.0)
            seen, missed = seen + 1, missed + miss
    assert seen > 10 and 0 < missed < seen  # both sides of the SLO term were exercised


def drive(sim, steps: int, seed: int) -> torch.Tensor:
    """`steps` seeded random valid decisions; every completed request's latency and episode, in order."""
    gen = torch.Generator().manual_seed(seed)
    out = [torch.zeros(0, dtype=torch.float64)]
    for _ in range(steps):
        _, _, _, info = sim.step(sim.sample_valid(gen))
        out.append(torch.cat([info["latency"], info["episode"].double()]))
    return torch.cat(out)


def test_a_saved_world_state_continues_the_same_worlds_and_a_damaged_one_is_refused(files):
    """Training runs serving worlds on across epochs (rollout: continuing): a simulator loaded with another's
    state, then re-seeded alike, runs exactly as that one does; states that no world can hold are refused."""
    params = Serving(load=1.0, max_in_flight=24, worlds=3, warmup=2, max_batch=8)

    def sim():
        return make_simulator(files["tiny"], 3, "train", "random", 3, profile="serving", params=params)
    a, b = sim(), sim()
    drive(a, 40, 0)
    drive(b, 13, 5)  # other worlds until the state is loaded
    saved = a.world_state()
    assert int(saved["srv_batch"].sum()) > 0 and int(saved["srv_queue"].sum()) > 0  # engines mid-run
    b.load_world_state(saved)
    a.reseed(7), b.reseed(7)
    ran = drive(a, 60, 1)
    assert len(ran) > 100 and torch.equal(ran, drive(b, 60, 1))
    assert all(torch.equal(x, y) for x, y in zip(a.world_state().values(), b.world_state().values()))
    for key, change, problem in (("srv_kv", lambda x: x.view(-1)[0].add_(1), "srv_kv differs"),
                                 ("slot_now", lambda x: x.view(-1)[0].fill_(math.nan), "slot_now holds NaN"),
                                 ("slot_phase", lambda x: x.view(-1)[0].fill_(7), "slot_phase holds phases"),
                                 ("hidden_remaining", lambda x: x.add_(5000), "do not add up")):
        state = {k: v.clone() for k, v in saved.items()}
        change(state[key])
        with pytest.raises(ValueError, match=problem):
            b.load_world_state(state)
    with pytest.raises(ValueError, match="does not fit"):
        b.load_world_state({k: v for k, v in saved.items() if k != "history"})


def test_a_load_is_the_same_arrival_rate_under_every_seed(files):
    rates = {make_simulator(files["tiny"], 2, "train", "random", seed, profile="serving",
                            params=Serving(load=0.8, max_in_flight=4, worlds=2)).rate_per_s for seed in (0, 1, 12345)}
    assert len(rates) == 1


@pytest.mark.parametrize("max_steps", [None, 150])
def test_batched_evaluation_seeds_give_each_seed_its_own_run(small_ds, max_steps):
    """One simulator holding two seeds' worlds gives each seed the episodes, requests and load statistics
    its own run gives (each seed's measured period ends where its own run would stop), bounded or not."""
    from edgesim.serving import SERVING
    from Heuristics.policies import QueueGreedyPolicy
    from schedkit.evaluation import evaluate_seeds

    c = Serving(load=0.9, worlds=2, warmup=12, max_in_flight=64)
    policy = lambda sim, seed: QueueGreedyPolicy(sim, seed=seed)  # noqa: E731
    together = evaluate_seeds(small_ds, "test", 16, [5, 9], "cpu", SERVING, c, policy, progress=False,
                              max_steps=max_steps)
    for seed, a in together:
        (_, b), = evaluate_seeds(small_ds, "test", 16, [seed], "cpu", SERVING, c, policy, progress=False,
                                 max_steps=max_steps)
        cols = [col for col in b.episodes if col != "decision_ms"]
        assert a.episodes[cols].equals(b.episodes[cols])
        assert a.requests is not None and b.requests is not None and a.requests.equals(b.requests)
        assert a.stats == pytest.approx(b.stats, rel=1e-12) and a.slo_ms == b.slo_ms
    assert together[0][1].stats["utilisation"] > 0 and together[0][1].stats["mean_queue_wait_ms"] > 0
    assert together[0][1].stats != together[1][1].stats
    if max_steps is not None:
        assert not together[0][1].episodes["finished"].all()  # the bound cut these runs short
