"""edgesim.expectation.HopTable / expected_hop: the per-pair table the planners and TopoFreeRL's
per-server features read must give exactly expected_step's numbers, on every decision of a run."""
from __future__ import annotations

import pytest
import torch

from edgesim import physics as P
from edgesim.contention import Contention
from edgesim.expectation import ChannelTable, HopTable, expected_hop, expected_step
from edgesim.registry import make_simulator
from Heuristics.policies import QueueGreedyPolicy


def _direct(sim, table, obs, servers):
    """expected_step and the hop's distance and link latency, computed the way they were before the table."""
    lon, lat, region = sim.hop_source()
    e = expected_step(sim.net, table, lon[:, None], lat[:, None], region[:, None], obs.prev_server[:, None],
                      obs.tokens[:, None], obs.required_type[:, None], servers, with_reward=False,
                      traps=sim.profile.trap_model(sim.params))
    cols = servers.expand(len(lon), -1)
    return e | {"km": P.haversine_km(lon[:, None], lat[:, None], sim.net.lon[cols], sim.net.lat[cols]).float(),
                "link": sim.net.link_lookup(obs.prev_server[:, None], cols)[0].float()}


@pytest.mark.parametrize("profile,params", [("paper", None), ("contention", Contention(arrival_rate=8)),
                                            ("contention", Contention(arrival_rate=8, trap_surcharge_scale=4.0))])
@pytest.mark.parametrize("cached", [True, False])
def test_expected_hop_is_expected_step_bit_for_bit(default_ds, profile, params, cached, monkeypatch):
    if not cached:  # above the table's size limit it computes every hop directly: the same numbers
        monkeypatch.setattr(HopTable, "MAX_PAIRS", 0)
    sim = make_simulator(default_ds, 16, "test", "sequential", 0, profile=profile, params=params)
    table, policy = ChannelTable.shared(), QueueGreedyPolicy(sim)
    gen = torch.Generator().manual_seed(0)
    obs, first, later = sim.observe(), 0, 0
    for _ in range(40):
        shortlist = torch.randint(0, sim.n_servers, (sim.batch_size, 5), generator=gen)
        for servers in (torch.arange(sim.n_servers)[None], shortlist):
            got = expected_hop(sim, obs, table, servers)
            want = _direct(sim, table, obs, servers)
            for k in ("latency", "cost", "km", "link"):
                assert torch.equal(got[k], want[k]), k
        first, later = first + int((obs.prev_server < 0).sum()), later + int((obs.prev_server >= 0).sum())
        obs, *_ = sim.step(policy.act(sim, obs))
    assert first > 0 and later > 0  # both kinds of hop were checked
    assert (HopTable.of(sim, table) is not None) == cached


def test_one_table_per_simulator_and_trap_model(default_ds):
    """Each simulator has its own table (its tasks are hop sources), kept across calls; a scaled trap
    delay makes another one, with larger expected trap delays."""
    def sim(scale: float):
        return make_simulator(default_ds, 4, "test", "sequential", 0, profile="contention",
                              params=Contention(arrival_rate=8, trap_surcharge_scale=scale))
    table, a, b, scaled = ChannelTable.shared(), sim(1.0), sim(1.0), sim(4.0)
    ta = HopTable.of(a, table)
    assert HopTable.of(a, table) is ta and HopTable.of(b, table) is not ta
    assert ta.fixed_ms.shape == (a.n_servers + a.tasks.k, a.n_servers)
    ts = HopTable.of(scaled, table)
    assert bool((ts.trap_ms >= ta.trap_ms).all()) and bool((ts.trap_ms > ta.trap_ms).any())
