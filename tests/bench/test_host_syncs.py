"""bench/host_syncs.py counts every host read of a tensor's value, by the project line that asked."""
from __future__ import annotations

import pytest
import torch

from bench.host_syncs import counting_reads, main
from schedkit.rollout import FinishCount


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
    assert all(where.startswith("tests/bench/test_host_syncs.py:") for _, where in counts)
    assert torch.Tensor.item is not None and x.sum().item() == 6.0  # the methods are restored


def test_one_epoch_reports_reads_per_step_and_their_sites():
    [row] = main(["--algos", "PPO", "--profiles", "contention", "--episodes", "8", "--json"])
    assert row["steps"] > 0 and row["reads"] >= row["steps"]
    assert abs(row["reads_per_step"] - row["reads"] / row["steps"]) < 1e-12
    assert any(site["where"].startswith("schedkit/rollout.py:") for site in row["sites"])


def test_an_epoch_reads_its_end_a_few_times_not_every_step():
    """Paper: the epoch's length once (the simulator), no finished count; contention (worlds running on,
    as in training): the finished count a few dozen times for hundreds of steps. The other reads per
    step are the CPU's action-range check, a device-side assert on CUDA (no host read there)."""
    paper, contention = main(["--algos", "TopoFreeRL", "--profiles", "paper", "contention", "--episodes", "64",
                              "--json"])

    def reads(row, file, kind):
        return sum(s["count"] for s in row["sites"] if s["where"].startswith(file + ":") and s["read"] == kind)

    assert reads(paper, "schedkit/rollout.py", "__int__") == 0
    assert reads(paper, "edgesim/simulator.py", "__int__") == 1
    assert 1 <= reads(contention, "schedkit/rollout.py", "__int__") < contention["steps"] / 4
    for row in (paper, contention):
        assert reads(row, "edgesim/simulator.py", "__bool__") == row["steps"]  # the range check


@pytest.mark.parametrize("per_step, target", [(1, 5), (8, 64), (8, 3), (64, 200)])
def test_a_finish_count_answers_as_a_read_every_step_would(per_step, target):
    gen = torch.Generator().manual_seed(per_step * 1000 + target)
    for _ in range(20):
        count, total, reached = FinishCount(target, per_step, torch.device("cpu")), 0, False
        with counting_reads() as reads:
            while not reached:
                reached = count.reached()
                assert reached == (total >= target)
                n = int(torch.randint(0, per_step + 1, (), generator=gen)) if torch.rand((), generator=gen) < 0.5 else 0
                count.add(torch.tensor(n))
                total += n
        assert sum(n for (_, where), n in reads.items() if where.startswith("schedkit/rollout.py")) <= count.steps


def test_the_known_epoch_length_is_when_the_first_episodes_have_all_finished(default_ds):
    from edgesim.registry import make_simulator
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
