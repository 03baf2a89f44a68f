"""The capacity behind `--load` (edgesim/capacity.py): the saturation throughput of the best routing, with
each request on a server hosting its model type, checked by hand and through a loaded world."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from tiny import INSTANCES, write_tiny

from edgesim.capacity import MAX_TYPES, CapacityError, saturation_rate
from edgesim.dataset import load_dataset
from edgesim.registry import make_simulator
from edgesim.serving import Serving
from Heuristics.inference import make_policy


@pytest.mark.parametrize("valid, rate, demand, expected", [
    # one type everywhere: the servers' rates add up, a workflow makes 2 requests
    ([[1, 1]], [10.0, 30.0], [2.0], 20.0),
    # type 1 only on server 0: its 10 requests/s serve at most 10 workflows/s, though the pair serves 20
    ([[1, 1], [1, 0]], [10.0, 30.0], [1.0, 1.0], 10.0),
    # a type no workflow needs does not count; the other needs 3 per workflow on server 1
    ([[1, 0], [0, 1]], [10.0, 30.0], [0.0, 3.0], 10.0),
    # each set alone fits; all three types together share 20 requests/s among 3 requests per workflow
    ([[1, 0], [0, 1], [1, 1]], [10.0, 10.0], [1.0, 1.0, 1.0], 20.0 / 3),
])
def test_saturation_rate_by_hand(valid, rate, demand, expected):
    got = saturation_rate(np.array(valid, dtype=bool), np.array(rate), np.array(demand))
    assert got == pytest.approx(expected)


def test_saturation_rate_names_what_it_cannot_compute():
    many = MAX_TYPES + 1
    with pytest.raises(CapacityError, match=f"at most {MAX_TYPES} model types with requests, got {many}; give "
                                            "serving.arrival_rate"):
        saturation_rate(np.eye(many, dtype=bool), np.ones(many), np.ones(many))
    with pytest.raises(CapacityError, match="has no server with a positive rate"):
        saturation_rate(np.array([[1, 0], [0, 1]], dtype=bool), np.array([1.0, 0.0]), np.array([1.0, 1.0]))


def test_a_stable_policy_measures_the_load_where_one_server_hosts_a_type(tmp_path):
    """GPT-4 only on T_b: a test workflow needs 1 GPT-4 and 1.5 ChatGPT requests, so T_b bounds the rate.
    Summing all four servers' rates would offer T_b more than it serves and its queue would grow."""
    gpt4_on_b = "\n".join(line for line in INSTANCES.splitlines() if "T_d,GPT-4" not in line) + "\n"
    write_tiny(tmp_path / "tiny", **{"model_instances.csv": gpt4_on_b})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tiny region's one-step task is skipped
        ds = load_dataset(tmp_path, "tiny")
    sim = make_simulator(ds, batch_size=4, split="test", seed=0, profile="serving",
                         params=Serving(load=0.6, worlds=4, warmup=120, max_in_flight=128))
    rate = 1000.0 / sim.perf.share_ms(torch.arange(4)[:, None], torch.tensor([[1150.0]]), torch.tensor([[210.0]]))
    assert sim.capacity_per_s < 0.8 * float(rate.sum()) / 2.5  # the type binds
    obs = sim.reset(0)
    policy = make_policy("least_loaded", sim, 0, 0.6)
    for _ in range(1500):
        obs, *_ = sim.step(policy.act(sim, obs))
    stats = sim.serving_stats()
    assert stats["utilisation"] == pytest.approx(0.6, abs=0.05)
    assert stats["mean_queue_length"] < 1.0
