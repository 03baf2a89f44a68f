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


def test_a_paper_epoch_reads_its_length_once_instead_of_a_finished_count_per_step():
    """The rollout's own reads of a paper epoch are its statistics alone: those of a contention epoch
    less the finished count read there every step. The simulator reads the epoch's length once and,
    on the CPU, checks each step's actions (a device-side assert on CUDA, no host read there)."""
    paper, contention = main(["--algos", "TopoFreeRL", "--profiles", "paper", "contention", "--episodes", "16",
                              "--json"])

    def reads(row, file):
        return sum(s["count"] for s in row["sites"] if s["where"].startswith(file + ":"))

    assert reads(contention, "schedkit/rollout.py") >= contention["steps"]
    assert reads(paper, "schedkit/rollout.py") == reads(contention, "schedkit/rollout.py") - contention["steps"]
    assert reads(paper, "edgesim/simulator.py") == paper["steps"] + 1


def test_the_known_epoch_length_is_when_the_first_episodes_have_all_finished(default_ds):
    from edgesim.profiles import make_simulator
    sim = make_simulator(default_ds, 24, "train", "random", 0, "cpu", "paper")
    gen = torch.Generator().manual_seed(1)
    for episodes in (1, 10, 24):
        sim.reset(3)
        known, finished, steps = sim.steps_until_done(episodes), torch.zeros(episodes, dtype=torch.bool), 0
        while not bool(finished.all()):
            _, _, done, info = sim.step(sim.sample_valid(gen))
            steps += 1
            first = info["episode"] < episodes
            finished[info["episode"][done & first]] = True
        assert known == steps
    assert sim.steps_until_done(25) is None
