"""The batched serving worlds against the plain-Python executable spec (edgesim/scalar_serving.py), request
by request and decision by decision, with the same common random numbers.

Every random value of the serving profile is a pure function of (seed, world, arrival index, step,
purpose), so the spec world is fed `crn_uniform` of the same keys and the simulator's public
`token_pairs` of the same (world, arrival index, step); the simulator draws its own network uniforms.
Times are compared with rel_tol 1e-9 and abs_tol 1e-6 ms: the simulator jumps over decode segments
with a closed form, the spec adds iteration lengths one by one, so they agree to rounding only."""
from __future__ import annotations

import math

import pytest
import torch
from tiny import ONE_SERVER, write_tiny

from edgesim.contention import load_arrival_gaps
from edgesim.crn import crn_uniform, draw_key
from edgesim.dataset import load_dataset
from edgesim.registry import make_simulator
from edgesim.scalar_model import ScalarTopology
from edgesim.scalar_serving import Draws, Perf, ServingWorld, request_rewards
from edgesim.serving import Serving, ServingSimulator
from Heuristics.policies import LeastLoadedPolicy, RandomPolicy
from Heuristics.serving_rules import RoundRobinPolicy

WORLDS, SLOTS, DECISIONS, SPLIT = 2, 12, 60, "train"
LOW, HIGH = 0.1, 1.2  # offered utilisation: nearly idle engines, and saturated ones
TIMES = ("end_ms", "network_ms", "queue_ms", "admission_ms", "compute_ms", "latency", "ttft_ms", "tpot_ms",
         "channel_ms", "trap_ms", "link_ms", "cost", "arrival_ms")
COUNTS = ("episode", "step", "task", "server", "prompt_tokens", "output_tokens", "decode_iterations", "prefills",
          "arrival_index", "switch", "fallback", "trap_hit", "done")


def close(got: float, want: float) -> bool:
    return math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving_spec")
    write_tiny(root / "tiny")
    write_tiny(root / "One", **ONE_SERVER)
    with pytest.warns(UserWarning):  # the tiny region has a one-step task, skipped
        ds = load_dataset(root, "tiny")
    one = load_dataset(root, "One")
    return {"tiny": (ds, ScalarTopology(ds)), "one": (one, ScalarTopology(one)), "root": root}


def spec_worlds(sim: ServingSimulator, topology: ScalarTopology, params: Serving) -> list[ServingWorld]:
    """One spec world per simulator row, with the simulator's engines, rate and draws."""
    p = sim.perf
    names = ("floor", "p0", "p1", "p2", "p3", "d0", "d1", "d2", "kv_capacity")
    perf = [Perf(*(getattr(p, n)[s].item() for n in names)) for s in range(sim.n_servers)]
    gaps = None if params.arrival_trace is None else load_arrival_gaps(params.arrival_trace).tolist()
    worlds = []
    for g in range(sim.batch_size):
        def uniform(index: int, step: int, purpose: int, g: int = g) -> float:
            return float(crn_uniform(sim.seed, index, draw_key(g, step, purpose)))

        def tokens(index: int, step: int, g: int = g) -> tuple[int, int]:
            prompt, output = sim.token_pairs(torch.tensor([g]), torch.tensor([index]), torch.tensor([step]))
            return int(prompt[0]), int(output[0])

        worlds.append(ServingWorld(topology, SPLIT, g, sim.batch_size, perf, params.max_in_flight, params.max_batch,
                                   sim.rate_per_s, Draws(uniform, tokens), params.trap_loss, params.trap_max_attempts,
                                   params.trap_surcharge_scale, gaps, params.warmup, sim.valid_server.tolist()))
    return worlds


def play(ds, topology: ScalarTopology, policy_class, seed: int, decisions: int = DECISIONS, slots: int = SLOTS,
         **kwargs) -> dict:
    """Run the batched worlds for `decisions` steps against one spec world each; every check is an assert.
    Returns what the run exercised: queue waits, the fullest batch and KV reservation, the request count."""
    params = Serving(**{"max_in_flight": slots, "worlds": WORLDS, "warmup": 0} | kwargs)
    sim = make_simulator(ds, WORLDS, SPLIT, "random", seed, profile="serving", params=params)
    assert isinstance(sim, ServingSimulator)
    obs = sim.reset()
    worlds = spec_worlds(sim, topology, params)
    policy = policy_class(sim, seed=seed)
    seen = {"queue": [], "batch": 0, "kv_share": 0.0, "requests": 0, "overtakes_refused": 0, "traps": 0,
            "admission": 0.0}
    capacity = sim.perf.kv_capacity.tolist()
    for n in range(decisions):
        for g, world in enumerate(worlds):
            where = f"decision {n}, world {g}"
            w = world.pending()
            assert w is not None, where
            wf = world.slots[w]
            assert (int(sim.episode[g]), int(sim.step_idx[g])) == (world.episode(wf), wf.k), where
            assert close(float(obs.now_ms[g]), wf.now), f"{where}: decision time {float(obs.now_ms[g])} != {wf.now}"
            assert sim.queue_length()[g].tolist() == world.queue_lengths(), f"{where}: queue lengths"
            assert sim.running_batch()[g].tolist() == world.running_batches(), f"{where}: running batches"
            assert sim.hidden_reserved_kv()[g].tolist() == world.reserved_kv(), f"{where}: reserved KV"
            free = [c - used for c, used in zip(capacity, world.used_kv())]
            assert sim.free_kv_tokens()[g].tolist() == free, f"{where}: free KV"
            assert sim.outstanding_tokens()[g].tolist() == world.outstanding_tokens(), f"{where}: outstanding tokens"
            # what TopoFreeRL's remaining_tokens reads: each running request's expected rest at its tokens so far
            rest = [sum(float(sim.expected_rest_tokens(torch.tensor(r.generated))) for r in e.running)
                    for e in world.engines]
            got_rest = sim.expected_remaining_tokens()[g].tolist()
            assert all(close(a, b) for a, b in zip(got_rest, rest)), f"{where}: expected remaining tokens"
        actions = policy.act(sim, obs)
        obs, reward, done, info = sim.step(actions)
        got = {(int(info["episode"][i]), int(info["step"][i])): {k: v[i].item() for k, v in info.items()}
               | {"reward": reward[i].tolist()} for i in range(len(done))}
        want = {}
        for g, world in enumerate(worlds):
            for r in world.decide(int(actions[g])):
                want[(r["episode"], r["step"])] = r
        assert got.keys() == want.keys(), f"decision {n}: completed {sorted(got)} != spec {sorted(want)}"
        for key, row in got.items():
            r, where = want[key], f"decision {n}, episode {key[0]} step {key[1]}"
            for name in COUNTS:
                assert row[name] == r[name], f"{where}: {name} {row[name]} != {r[name]}"
            for name in TIMES:
                assert close(row[name], r[name]), f"{where}: {name} {row[name]} != {r[name]}"
            want_reward = request_rewards(r, params.slo_ttft_ms, params.slo_tpot_ms)
            assert all(close(a, b) for a, b in zip(row["reward"], want_reward)), f"{where}: reward"
            # the request's own clock: admitted, first token and end, from the simulator's latency split
            t0 = row["end_ms"] - row["latency"] + row["admission_ms"]
            assert close(t0, r["t0"]) and close(row["end_ms"] - row["compute_ms"], r["admit"]), where
            assert close(t0 + row["ttft_ms"] - row["admission_ms"], r["first"]), f"{where}: first token"
            assert row["queue_ms"] >= 0 and row["admission_ms"] >= 0 and row["compute_ms"] > 0, where
            seen["queue"].append(r["admit"] - r["arrive"])
            seen["traps"] += r["trap_hit"]
            seen["admission"] = max(seen["admission"], r["admission_ms"])
        seen["requests"] += len(got)
        for world in worlds:
            seen["batch"] = max([seen["batch"]] + [e.max_batch_seen for e in world.engines])
            seen["kv_share"] = max([seen["kv_share"]] + [e.reserved / c for e, c in zip(world.engines, capacity)])
    seen["overtakes_refused"] = sum(e.overtakes_refused for world in worlds for e in world.engines)
    # the time-weighted state of the measured period, integrated event by event in the spec
    got, spec = sim.serving_stats(), {k: sum(w.stats[k] for w in worlds) for k in worlds[0].stats}
    server_ms = sim.n_valid * spec["time"]
    assert spec["time"] > 0 and close(got["measured_ms"], spec["time"]), (got["measured_ms"], spec["time"])
    for name, want in (("busy_share", spec["busy"] / server_ms), ("mean_running_batch", spec["batch"] / spec["busy"]),
                       ("kv_occupancy", spec["kv"] / server_ms), ("mean_queue_length", spec["queue"] / server_ms)):
        assert close(got[name], want), f"{name}: {got[name]} != spec {want}"
    return seen


@pytest.mark.parametrize("policy_class", [RandomPolicy, LeastLoadedPolicy, RoundRobinPolicy])
def test_worlds_match_the_spec_at_low_and_high_load(datasets, policy_class):
    ds, topology = datasets["tiny"]
    low = play(ds, topology, policy_class, seed=3, load=LOW, max_batch=4)
    high = play(ds, topology, policy_class, seed=4, load=HIGH, max_batch=4)
    assert low["requests"] > 20 and high["requests"] > 20
    assert high["batch"] == 4, "the high load never filled a batch"
    mean = {name: sum(run["queue"]) / len(run["queue"]) for name, run in (("low", low), ("high", high))}
    assert mean["high"] > 100.0 and mean["high"] > mean["low"], f"the high load formed no queues: {mean}"


def test_kv_blocking_matches_the_spec(datasets):
    """Long and short requests on engines whose KV budget binds before max_batch: heads that do not fit
    block their queues, and the same requests wait in both."""
    ds, topology = datasets["one"]
    trace = datasets["root"] / "kv_tokens.csv"
    trace.write_text("ContextTokens,GeneratedTokens\n3800,290\n40,12\n2500,1500\n120,3\n3000,60\n")
    seen = play(ds, topology, RoundRobinPolicy, seed=6, decisions=120, slots=40, arrival_rate=20.0, max_batch=64,
                token_trace=str(trace))
    assert seen["kv_share"] > 0.9, f"the KV budget never bound: fullest reservation {seen['kv_share']:.2f}"
    assert seen["overtakes_refused"] > 0 and seen["batch"] < 64, "no head that did not fit held back one that did"
    assert max(seen["queue"]) > 0.0


def test_trace_arrivals_traps_and_slot_waits_match_the_spec(datasets):
    """Bursty trace arrivals with few slots, so workflows wait for a free slot; hops that hit a trap pay its delay;
    the measured period starts with a workflow that waited for its slot (warm-up 5 > 3 slots)."""
    ds, topology = datasets["tiny"]
    trace = datasets["root"] / "burst.csv"
    trace.write_text("Timestamp\n" + "\n".join(str(t) for t in (0, 0.1, 0.15, 2.0, 2.01, 2.02, 5.0, 9.5)) + "\n")
    seen = play(ds, topology, RandomPolicy, seed=7, slots=3, load=1.2, max_batch=4, arrival_trace=str(trace),
                trap_loss=0.8, trap_max_attempts=6, trap_surcharge_scale=2.5, warmup=5)
    assert seen["admission"] > 0.0 and seen["traps"] > 0, "no workflow waited for a slot, or no hop hit a trap"
