"""bench/host_syncs.py counts every host read of a tensor's value, by the project line that asked."""
from __future__ import annotations

import torch

from bench.host_syncs import counting_reads, main


def test_every_kind_of_host_read_is_counted_at_its_line():
    x = torch.arange(4.0)
    with counting_reads() as counts:
        a = x.sum().item()
        b = bool(x.any())
        c = int(x[1])
        d = x.tolist()
    assert (a, b, c, d) == (6.0, True, 1, [0.0, 1.0, 2.0, 3.0])
    assert sum(counts.values()) == 4
    assert {name for name, _ in counts} == {"item", "__bool__", "__int__", "tolist"}
    assert all(where.startswith("tests/test_host_syncs.py:") for _, where in counts)
    assert torch.Tensor.item is not None and x.sum().item() == 6.0  # the methods are restored


def test_one_epoch_reports_reads_per_step_and_their_sites():
    [row] = main(["--algos", "PPO", "--profiles", "contention", "--episodes", "8", "--json"])
    assert row["steps"] > 0 and row["reads"] >= row["steps"]
    assert abs(row["reads_per_step"] - row["reads"] / row["steps"]) < 1e-12
    assert any(site["where"].startswith("schedkit/rollout.py:") for site in row["sites"])
