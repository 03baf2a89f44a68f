"""Learned schedulers under `serving`: every agent reads the profile's five live inputs per server
(schedkit/agent_base.py `live_inputs`) where it reads the queue wait under contention, they follow a
server's batch as it fills, they never depend on hidden output lengths, each algorithm trains and
evaluates from its shell scripts, and a checkpoint is refused under a profile offering another number
of live inputs."""
from __future__ import annotations

import pandas as pd
import pytest
import torch
from conftest import ROOT, one_line_error, run_script
from test_serving_rules import BUSY

from edgesim.contention import Contention
from edgesim.registry import get_profile, make_simulator
from edgesim.serving import Serving
from Heuristics.policies import QueueGreedyPolicy
from PFAPPO.agent import PFPPOAgent
from PPO_algorithm.agent import PPOAgent
from schedkit.agent_base import LiveInputError, live_input_problem, live_inputs, live_width
from schedkit.config import resolve
from Stark_Scheduler.model import SERVER_FEATURES, StarkAgent
from TopoFreeRL.agent import SERVER_FEATURES as TOPOFREE_FEATURES
from TopoFreeRL.agent import SERVING_FEATURES, TopoFreeAgent

AGENTS = {"TopoFreeRL": TopoFreeAgent, "PPO_algorithm": PPOAgent, "PFAPPO": PFPPOAgent, "Stark_Scheduler": StarkAgent}
# (folder, extra config) of every agent variant that reads live inputs differently
VARIANTS = [("TopoFreeRL", ("actor=dense",)), ("TopoFreeRL", ("actor=per_server",)),
            ("TopoFreeRL", ("actor=per_server", "shortlist=2")),
            ("TopoFreeRL", ("actor=per_server", "remaining_tokens=true")), ("PPO_algorithm", ()), ("PFAPPO", ()),
            ("Stark_Scheduler", ())]
WEIGHTS = torch.tensor([0.45, 0.4, 0.15])
F = len(get_profile("serving").live_inputs)


def config(folder: str, profile: str = "serving", sets: tuple[str, ...] = ()) -> dict:
    return resolve(ROOT / folder / "config.yaml", sets=list(sets), flags={"profile": profile},
                   choices=getattr(AGENTS[folder], "config_choices", None))


def agent_for(folder: str, ds, sets: tuple[str, ...] = (), profile: str = "serving"):
    torch.manual_seed(0)
    return AGENTS[folder](ds, config(folder, profile, sets), torch.device("cpu"))


def live_part(folder: str, agent, feats: dict) -> torch.Tensor:
    """The live inputs besides the wait, as the agent's features hold them: (B, N or K, 4)."""
    if folder == "Stark_Scheduler":
        return feats["servers"][..., -(F - 1):]
    if "servers" in feats:  # TopoFreeRL's per-server scorer: appended after its own features
        return feats["servers"][..., len(TOPOFREE_FEATURES):len(TOPOFREE_FEATURES) + F - 1]
    return feats["live"]


def test_serving_widens_each_agents_input_by_four_per_server(tiny_ds):
    n = tiny_ds.n_servers
    assert live_width(config("PPO_algorithm")) == F == 5 and live_width(config("PPO_algorithm", "contention")) == 1
    assert live_width(config("PPO_algorithm", sets=("live_load=false",))) == 0
    for folder, sets, name, contention, serving in [
            ("PPO_algorithm", (), "actor.server_in.weight", (256, n), (256, 5 * n)),
            ("PFAPPO", (), "actor.server_in.weight", (256, 3 * n), (256, 7 * n)),
            ("Stark_Scheduler", (), "net.server_embed.weight", (64, SERVER_FEATURES + 1), (64, SERVER_FEATURES + 5)),
            ("TopoFreeRL", ("actor=dense",), "net.actor.server_in.weight", (256, n), (256, 5 * n)),
            ("TopoFreeRL", ("actor=per_server",), "net.server_proj.weight", (16, len(TOPOFREE_FEATURES)),
             (16, len(TOPOFREE_FEATURES) + len(SERVING_FEATURES)))]:
        assert tuple(agent_for(folder, tiny_ds, sets, "contention").state_dict()[name].shape) == contention, folder
        assert tuple(agent_for(folder, tiny_ds, sets).state_dict()[name].shape) == serving, folder
        # live_load false under serving: the inputs of live_load false under contention
        off = {k: v.shape for k, v in agent_for(folder, tiny_ds, (*sets, "live_load=false")).state_dict().items()}
        assert off == {k: v.shape for k, v in
                       agent_for(folder, tiny_ds, (*sets, "live_load=false"), "contention").state_dict().items()}


@pytest.mark.parametrize("folder, sets", VARIANTS)
def test_each_agent_reads_the_live_inputs_as_a_servers_batch_fills(tiny_ds, folder, sets):
    agent = agent_for(folder, tiny_ds, sets)
    sim = make_simulator(tiny_ds, BUSY.worlds, "train", "random", 0, profile="serving", params=BUSY)
    obs = sim.observe()
    idle = agent.features(sim, obs, WEIGHTS)  # every engine idle: batch 0, all KV free
    assert (live_part(folder, agent, idle)[..., 1] == 0).all() and (live_part(folder, agent, idle)[..., 2] == 1).all()
    batches = set()
    for _ in range(30):  # every row routes to its lowest valid server, so one engine's batch fills
        first = torch.where(sim.valid_mask(), torch.arange(sim.n_servers), sim.n_servers).argmin(1)
        obs = sim.step(first)[0]
        feats = agent.features(sim, obs, WEIGHTS)
        live = live_inputs(sim)  # (B, N, 5)
        servers = feats.get("shortlist", feats.get("cands", torch.arange(sim.n_servers).expand(sim.batch_size, -1)))
        at = servers.clamp_max(sim.n_servers - 1)
        expected = live.gather(1, at[..., None].expand(-1, -1, F))[..., 1:]
        got = live_part(folder, agent, feats)
        keep = servers < sim.n_servers  # STARK's padded candidates scatter to a dropped column
        torch.testing.assert_close(got[keep], expected[keep], rtol=0, atol=0)
        batch = sim.running_batch()
        torch.testing.assert_close(live[..., 2], batch.float() / BUSY.max_batch)
        batches |= set(batch.flatten().tolist())
        if max(batches) >= 2 and (live_part(folder, agent, feats)[..., 1] > 0).any():
            break
    assert max(batches) >= 2  # a batch filled
    # the networks read them: the same decision with the idle engines' live inputs scores otherwise
    swapped = dict(feats)
    if folder in ("PPO_algorithm", "PFAPPO") or (folder == "TopoFreeRL" and "servers" not in feats):
        swapped["live"] = torch.zeros_like(feats["live"])
    elif folder == "Stark_Scheduler":
        swapped["servers"] = torch.cat([feats["servers"][..., :-(F - 1)], torch.zeros_like(got)], -1)
    else:  # TopoFreeRL's own features, the live inputs zeroed, then what follows them (remaining_tokens)
        own = len(TOPOFREE_FEATURES)
        swapped["servers"] = torch.cat([feats["servers"][..., :own], torch.zeros_like(got),
                                        feats["servers"][..., own + F - 1:]], -1)
    with torch.no_grad():
        logits, swapped_logits = agent(feats)[0], agent(swapped)[0]
    assert not torch.equal(logits, swapped_logits)


def test_no_agent_depends_on_hidden_output_lengths(tiny_root, tiny_ds):
    """Two worlds differing only in hidden output lengths give every agent identical features at every
    decision before the first request completes. Their token traces hold the same two pairs in swapped
    rows: the same workload (so the same expected output length, which planners may read), but each
    request's own output length differs."""
    def run(outputs: tuple[int, int]) -> tuple[list[list[dict]], torch.Tensor]:
        trace = tiny_root / f"hidden_{outputs[0]}.csv"
        trace.write_text("ContextTokens,GeneratedTokens\n" + "".join(f"300,{o}\n" for o in outputs))
        params = Serving(arrival_rate=40.0, token_trace=str(trace), max_in_flight=16, worlds=3, warmup=0)
        sim = make_simulator(tiny_ds, 3, "train", "sequential", 0, profile="serving", params=params)
        agents = [agent_for(folder, tiny_ds, sets) for folder, sets in VARIANTS]
        obs, seen = sim.observe(), []
        for _ in range(60):
            seen.append([agent.features(sim, obs, WEIGHTS) for agent in agents])
            # each row's least-loaded valid server by the live inputs: batches and queues build up
            score = live_inputs(sim)[..., 0] + live_inputs(sim)[..., 2]
            obs, _, done, _ = sim.step(score.masked_fill(~sim.valid_mask(), torch.inf).argmin(1))
            if len(done):
                break
        return seen, sim.hidden_output.clone()  # the test's own check that the worlds differ

    (short, hidden_a), (long, hidden_b) = run((30, 2000)), run((2000, 30))
    assert len(short) >= 5 and not torch.equal(hidden_a, hidden_b)  # several decisions before the first completion
    for a, b in zip(short, long):
        for feats_a, feats_b in zip(a, b):
            assert feats_a.keys() == feats_b.keys()
            for k in feats_a:
                assert torch.equal(feats_a[k], feats_b[k]), k


def test_the_expected_rest_of_an_output_is_read_off_the_distribution(tiny_root, tiny_ds):
    """With a token trace of outputs 30 and 2,000 (equally likely), a request g tokens in expects
    E[o - g | o > g]: the mean of both until g = 30, then 2,000 - g, then 1 (none is longer)."""
    trace = tiny_root / "rest.csv"
    trace.write_text("ContextTokens,GeneratedTokens\n300,30\n300,2000\n")
    sim = make_simulator(tiny_ds, 1, "train", "random", 0, profile="serving",
                         params=Serving(arrival_rate=1.0, token_trace=str(trace), worlds=1, warmup=0))
    g = torch.tensor([0, 1, 29, 30, 31, 1999, 2000, 4000])
    want = [1015.0, 1014.0, 986.0, 1970.0, 1969.0, 1.0, 1.0, 1.0]
    assert sim.expected_rest_tokens(g).tolist() == want
    assert sim.expected_rest_tokens(torch.tensor([0])).item() == sim.expected_tokens()[1]


def test_remaining_tokens_adds_each_servers_expected_rest_of_its_running_outputs(tiny_ds):
    """TopoFreeRL's `remaining_tokens` input: log(1 + expected_remaining_tokens / 4096), 0 on an idle server,
    and on a busy one a sum of batch-many expected rests (each at least 1, at most the longest expected rest);
    one more input than the plain per-server scorer; refused in one line where there are no serving inputs."""
    sets = ("actor=per_server", "remaining_tokens=true")
    agent, plain = agent_for("TopoFreeRL", tiny_ds, sets), agent_for("TopoFreeRL", tiny_ds, sets[:1])
    assert agent.state_dict()["net.server_proj.weight"].shape[1] == plain.state_dict()["net.server_proj.weight"].shape[1] + 1
    sim = make_simulator(tiny_ds, BUSY.worlds, "train", "random", 0, profile="serving", params=BUSY)
    longest = float(sim.expected_rest_tokens(torch.arange(4097)).max())
    obs, seen = sim.observe(), 0
    for _ in range(40):
        rest, batch = sim.expected_remaining_tokens(), sim.running_batch().double()
        column = agent.features(sim, obs, WEIGHTS)["servers"][..., -1]
        torch.testing.assert_close(column, torch.log1p(rest.float() / 4096), rtol=0, atol=0)
        assert (rest[batch == 0] == 0).all()
        assert ((rest >= batch) & (rest <= batch * longest)).all()
        seen += int((batch > 0).sum())
        obs = sim.step(QueueGreedyPolicy(sim).act(sim, obs))[0]
    assert seen > 0  # engines ran requests at the decisions checked
    for profile, extra in (("contention", ()), ("serving", ("live_load=false",)), ("serving", ("actor=dense",))):
        with pytest.raises(Exception, match="remaining_tokens.*needs profile: serving") as e:
            agent_for("TopoFreeRL", tiny_ds, (*sets, *extra), profile)
        assert "\n" not in str(e.value)


def test_another_number_of_live_inputs_is_one_line(tiny_ds):
    serving, contention, paper = (get_profile(p) for p in ("serving", "contention", "paper"))
    trained = config("PPO_algorithm")
    problem = live_input_problem(trained, contention)
    assert problem and "'serving'" in problem and "5 live input" in problem and "\n" not in problem
    assert live_input_problem(trained, paper) and live_input_problem(trained, serving) is None
    assert live_input_problem(config("PPO_algorithm", "contention"), serving)
    assert live_input_problem(config("PPO_algorithm", "contention"), paper) is None  # its waits read 0 there
    assert live_input_problem(config("PPO_algorithm", sets=("live_load=false",)), contention) is None
    # an agent asked to decide in a world of another width: one line, not a shape error deep in a network
    agent = agent_for("Stark_Scheduler", tiny_ds)
    sim = make_simulator(tiny_ds, 2, "train", "random", 0, profile="contention", params=Contention(worlds=2))
    with pytest.raises(LiveInputError, match=r"read 5 per server, the 'contention' profile offers 1"):
        agent.features(sim, sim.observe(), WEIGHTS)


@pytest.fixture(scope="module")
def trained(tiny_root, tmp_path_factory):
    """Each algorithm trained for two tiny epochs under serving from its train.py."""
    runs = tmp_path_factory.mktemp("serving_runs")
    world = ["--profile", "serving", "--load", "0.9", "--worlds", "2", "--max-in-flight", "8", "--warmup", "2"]
    out = {}
    for folder in AGENTS:
        run = runs / folder
        run_script(f"{folder}/train.py", "--data", str(tiny_root), "--regions", "tiny", *world, "--no-recipe",
                   "--epochs", "2", "--episodes", "8", "--out", str(run), "--no-progress",
                   *(["--set", "model.candidates=4"] if folder == "Stark_Scheduler" else []))
        out[folder] = run
    return out, world


@pytest.mark.slow
@pytest.mark.parametrize("folder", list(AGENTS))
def test_each_algorithm_trains_and_evaluates_under_serving(trained, tiny_root, tmp_path, folder):
    runs, world = trained
    run = runs[folder]
    metrics = pd.read_csv(run / "metrics.csv")  # STARK imitates greedy_queue: its rows count labelled decisions
    assert len(metrics) == 2 and (metrics["decisions" if folder == "Stark_Scheduler" else "env_steps"] > 0).all()
    run_script(f"{folder}/inference.py", "--data", str(tiny_root), "--region", "tiny", "--model",
               str(run / "checkpoints" / "final.pt"), *world, "--episodes", "8", "--out", str(tmp_path / "eval"),
               "--no-progress")
    summary = pd.read_json(tmp_path / "eval" / "summary.json", typ="series")
    assert summary["profile"] == "serving" and 0.0 <= summary["slo_attainment"] <= 1.0
    assert summary["mean_batch_size"] > 0
    # the serving checkpoint under contention: refused in one line, before any evaluation
    proc = run_script(f"{folder}/inference.py", "--data", str(tiny_root), "--region", "tiny", "--model",
                      str(run / "checkpoints" / "final.pt"), "--profile", "contention", "--worlds", "2",
                      "--episodes", "4", "--out", str(tmp_path / "refused"), "--no-progress", check=False)
    line = one_line_error(proc, "final.pt", "'serving' profile", "'contention' profile offers 1")
    assert "evaluate it under --profile serving" in line and not (tmp_path / "refused").exists()


def test_stark_validation_labels_end_at_the_validation_bound(tiny_ds):
    """Under serving the expert would label the held-out workflows until the last one finishes behind the ones
    arriving after it (minutes a run); bounded as each validation is, the labels are that run cut at the bound."""
    from Stark_Scheduler.train import demonstrations
    agent = agent_for("Stark_Scheduler", tiny_ds)

    def labels(max_steps: int | None) -> torch.Tensor:
        sim = make_simulator(tiny_ds, BUSY.worlds, "train", "sequential", 0, profile="serving", params=BUSY)
        return demonstrations(sim, agent, QueueGreedyPolicy(sim), 12, 0, max_steps=max_steps)[1]

    full, bounded = labels(None), labels(4)
    assert 0 < len(bounded) <= 4 * BUSY.worlds < len(full)
    assert torch.equal(bounded, full[:len(bounded)])
