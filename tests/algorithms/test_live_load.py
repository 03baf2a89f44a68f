"""The shared `live_load` key (live per-server queue waits as inputs under contention) and
TopoFreeRL's ablation switches, on agents built in-process; one tiny shell run with every switch off.

The published inputs stay reproducible: paper-profile features, initial weights and logits on the
default dataset are pinned by digests taken before the key existed (so are the contention ones
with `live_load: false` for PPO, PF-PPO and STARK, and TopoFreeRL's with its default).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import ROOT, run_script
from data.make_published_inputs import orthogonal_heads, weights_digest

from edgesim.contention import Contention
from edgesim.registry import make_simulator
from PFAPPO.agent import PFPPOAgent
from PPO_algorithm.agent import PPOAgent
from schedkit.config import ConfigError, resolve, upgrade
from schedkit.runs import load_checkpoint
from schedkit.trainer import train
from Stark_Scheduler.model import SERVER_FEATURES, StarkAgent
from TopoFreeRL.agent import REFERENCE_STATE_DIM, TopoFreeAgent

AGENTS = {"TopoFreeRL": TopoFreeAgent, "PPO_algorithm": PPOAgent, "PFAPPO": PFPPOAgent, "Stark_Scheduler": StarkAgent}
WEIGHTS = torch.tensor([0.45, 0.4, 0.15])
SMALL = ["contention.worlds=3", "contention.max_in_flight=6", "contention.warmup=2", "contention.arrival_rate=8"]
CPU = torch.device("cpu")


def config(folder: str, profile: str = "contention", sets: tuple[str, ...] = ()) -> dict:
    sets = list(sets) + (SMALL if profile == "contention" else [])
    return resolve(ROOT / folder / "config.yaml", sets=sets, flags={"profile": profile},
                   choices=getattr(AGENTS[folder], "config_choices", None))


def agent_for(folder: str, ds, cfg: dict, seed: int = 0):
    torch.manual_seed(seed)
    return AGENTS[folder](ds, cfg, CPU)


def loaded_pair(agent, ds) -> tuple[dict, dict]:
    """The agent's features at one contention state with every queue empty, then with every server
    busy, for 3 s (even ones) or 1 s (odd ones), once every world's workflow has a previous server."""
    sim = make_simulator(ds, 3, "train", "random", 1, profile="contention",
                         params=Contention(arrival_rate=8.0, worlds=3, max_in_flight=6))
    obs = sim.reset(1)
    while not (obs.prev_server >= 0).all():
        obs, *_ = sim.step(sim.valid_mask().float().argmax(1))
    sim.busy.zero_()
    empty = agent.features(sim, obs, WEIGHTS)
    sim.busy[:] = sim.now[:, None] + 1000.0
    sim.busy[:, ::2] += 2000.0
    return empty, agent.features(sim, obs, WEIGHTS)


def changed(a: dict, b: dict) -> set[str]:
    return {k for k in a if not torch.equal(a[k], b[k])}


def shapes(agent) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in agent.state_dict().items()}


# ---------------------------------------------------------------- live_load

@pytest.mark.parametrize("folder, key", [("PPO_algorithm", "load"), ("PFAPPO", "load"), ("Stark_Scheduler", "servers")])
def test_live_load_gives_the_baselines_each_servers_queue_wait(small_ds, folder, key):
    live = agent_for(folder, small_ds, config(folder))
    assert live.live_load
    empty, loaded = loaded_pair(live, small_ds)
    assert changed(empty, loaded) == {key}
    if folder == "Stark_Scheduler":  # the queue is the server token's last feature, the other 7 as before
        assert empty["servers"].shape[-1] == SERVER_FEATURES + 1
        assert torch.equal(empty["servers"][..., :-1], loaded["servers"][..., :-1])
        assert (empty["servers"][..., -1] == 0).all() and (loaded["servers"][..., -1] > 0).all()
    else:
        assert (empty["load"] == 0).all() and (loaded["load"] > 0).all()
    with torch.no_grad():
        assert not torch.equal(live(empty)[0], live(loaded)[0])  # the networks read it

    static = agent_for(folder, small_ds, config(folder, sets=("live_load=false",)))
    assert not static.live_load and not changed(*loaded_pair(static, small_ds))


def test_live_load_widens_only_the_per_server_input(small_ds):
    n = small_ds.n_servers
    for folder, name, published, live in [("PPO_algorithm", "actor.server_in.weight", None, (256, n)),
                                          ("PFAPPO", "actor.server_in.weight", (256, 2 * n), (256, 3 * n)),
                                          ("Stark_Scheduler", "net.server_embed.weight", (64, 7), (64, 8))]:
        on = shapes(agent_for(folder, small_ds, config(folder)))
        off = shapes(agent_for(folder, small_ds, config(folder, sets=("live_load=false",))))
        paper = shapes(agent_for(folder, small_ds, config(folder, "paper")))
        assert off == paper and paper.get(name) == published  # live_load false: the published networks
        own_logit = {"load_weight": ()} if folder != "Stark_Scheduler" else {}  # load_logit, PPO family only
        assert on[name] == live and {k: v for k, v in on.items() if k != name and "server_in" not in k} == \
            {k: v for k, v in off.items() if k != name and "server_in" not in k} | own_logit
        # the paper profile never adds the input, whatever the key says
        assert shapes(agent_for(folder, small_ds, config(folder, "paper", ("live_load=true",)))) == paper


@pytest.mark.parametrize("folder", ["PPO_algorithm", "PFAPPO"])
def test_load_logit_adds_each_servers_own_queue_to_its_own_logit(small_ds, folder):
    """With the MLP's head zeroed the dense input cannot move the logits: what moves them is the
    learned weight (initially -1) times each server's own queue feature."""
    on = agent_for(folder, small_ds, config(folder))
    off = agent_for(folder, small_ds, config(folder, sets=("load_logit=false",)))
    assert on.load_logit and not off.load_logit and "load_weight" not in off.state_dict()
    for agent in (on, off):
        torch.nn.init.zeros_(agent.actor.head.weight)
    empty, loaded = loaded_pair(on, small_ds)
    valid = empty["mask"]
    with torch.no_grad():
        moved = on(loaded)[0] - on(empty)[0]
        assert torch.allclose(moved[valid], -(loaded["load"] - empty["load"])[valid], atol=1e-6)
        assert torch.equal(off(loaded)[0], off(empty)[0])
        assert (moved[valid] < 0).all()  # every server is busy in `loaded`: every valid logit drops
    # a config saved before the key (the first live-load study), upgraded, keeps the dense-only network
    saved = {k: v for k, v in config(folder).items() if k != "load_logit"}
    assert not agent_for(folder, small_ds, upgrade(saved)).load_logit


@pytest.mark.parametrize("actor", ["dense", "per_server"])
def test_topofreerl_live_load_false_is_static_telemetry(small_ds, actor):
    live = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(f"actor={actor}",)))
    empty, loaded = loaded_pair(live, small_ds)
    assert {"telemetry", "state"} <= changed(empty, loaded)  # live telemetry and the neighbours' queue summary
    assert ("servers" in changed(empty, loaded)) == (actor == "per_server")
    static_cfg = config("TopoFreeRL", sets=(f"actor={actor}", "live_load=false"))
    static = agent_for("TopoFreeRL", small_ds, static_cfg)
    empty, loaded = loaded_pair(static, small_ds)
    assert not changed(empty, loaded) and "telemetry" not in loaded  # the static telemetry vector
    assert (loaded["state"][:, REFERENCE_STATE_DIM - 3] == 0).all()
    assert shapes(static) == shapes(live)  # the same network: only the values differ


@pytest.mark.parametrize("folder", list(AGENTS))
def test_checkpoints_saved_before_the_key_keep_their_inputs(small_ds, folder):
    cfg = config(folder)
    old = {k: v for k, v in cfg.items() if k != "live_load"}
    agent = agent_for(folder, small_ds, upgrade(old))
    # TopoFreeRL read live load before the key existed; the baselines read none
    assert agent.live_load == (folder == "TopoFreeRL")
    want = "true" if folder == "TopoFreeRL" else "false"
    assert shapes(agent) == shapes(agent_for(folder, small_ds, config(folder, sets=(f"live_load={want}",))))


def test_live_load_is_a_checked_shared_key():
    for folder in AGENTS:
        assert config(folder)["live_load"] is True and config(folder, sets=("live_load=false",))["live_load"] is False
        with pytest.raises(ConfigError, match="live_load"):
            config(folder, sets=("live_load=maybe",))


def test_one_epoch_with_live_load_false_trains_the_published_networks(small_root, small_ds, tmp_path):
    n = small_ds.n_servers
    for folder, name, width in [("PPO_algorithm", "actor.state_in.weight", None), ("PFAPPO", "actor.server_in.weight",
                                                                                  2 * n)]:
        cfg = config(folder, sets=("live_load=false", "epochs=1", "episodes=8", "ppo.update_epochs=1"))
        run = tmp_path / folder
        run.mkdir()
        train(cfg, small_ds, AGENTS[folder], run, progress=False)
        state = load_checkpoint(run / "checkpoints" / "final.pt")
        assert state["config"]["live_load"] is False and len(pd.read_csv(run / "metrics.csv")) == 1
        if width is None:
            assert not any("server_in" in k for k in state["model"])
        else:
            assert tuple(state["model"][name].shape) == (256, width)


# ---------------------------------------------------------------- the published inputs, reproduced

# tests/data/published_inputs.npz was written by tests/data/make_published_inputs.py with the code
# before `live_load` and the ablation keys existed: per case the SHA-256 of the initial weights (torch
# seed 0; the dense actors' orthogonal heads by shape, since their QR decomposition rounds the last bits
# by CPU), then the features, logits and values of 12 decisions on data1 (4 rows, seed 5). The other
# weights must match exactly; computed values within float32 round-off, since another CPU's matrix
# kernels may round the last bits differently.
PUBLISHED = np.load(Path(__file__).parents[1] / "data" / "published_inputs.npz")
CASES = [(folder, actor, profile) for folder, actor in (("TopoFreeRL", "dense"), ("TopoFreeRL", "per_server"),
                                                        ("PPO_algorithm", None), ("PFAPPO", None),
                                                        ("Stark_Scheduler", None))
         for profile in ("paper", "contention")]


@pytest.fixture
def one_thread():
    """Initial weights and matrix products depend on the intra-op thread count; the file used one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("folder, actor, profile", CASES)
def test_default_inputs_weights_and_logits_match_the_published_ones(default_ds, one_thread, folder, actor, profile):
    sets = [f"actor={actor}"] if actor else []
    if profile == "contention":  # the published inputs: no live load for the baselines, TopoFreeRL's first scale
        sets.append("live_load=false" if folder != "TopoFreeRL" else "telemetry_queue_ms=200")
    cfg = resolve(ROOT / folder / "config.yaml", sets=sets, flags={"profile": profile},
                  choices=getattr(AGENTS[folder], "config_choices", None))
    agent = agent_for(folder, default_ds, cfg)
    key = f"{folder}|{actor}|{profile}"
    state = agent.state_dict()
    assert weights_digest(state) == str(PUBLISHED[f"{key}|weights_sha256"])
    for k in orthogonal_heads(state):  # orthogonal rows (or columns, if more rows) of norm 0.01, whatever the CPU
        w = state[k].double()
        gram = w.T @ w if w.shape[0] > w.shape[1] else w @ w.T
        torch.testing.assert_close(gram, 1e-4 * torch.eye(len(gram), dtype=torch.float64), rtol=0, atol=1e-9)
    sim = make_simulator(default_ds, 4, "train", "random", 5, profile=profile,
                         params=Contention(arrival_rate=8.0, worlds=4, max_in_flight=8) if profile == "contention"
                         else None)
    obs = sim.reset(5)
    # The contention worlds draw their arrivals, tasks and step noise as common random numbers (keyed by
    # seed, world and arrival) since 2026-12-05, so the published records, made on the stream-drawn worlds,
    # describe other worlds: there only the weights and the features' names are compared.
    decisions = 12 if profile == "paper" else 0
    if profile == "contention":
        names = {f"feature:{k}" for k in agent.features(sim, obs, WEIGHTS)} | {"logits", "value"}
        assert {n.split("|", 4)[4] for n in PUBLISHED.files if n.startswith(f"{key}|0|")} == names
    for i in range(decisions):
        f = agent.features(sim, obs, WEIGHTS)
        with torch.no_grad():
            logits, value = agent(f)
        names = [f"feature:{k}" for k in sorted(f)] + ["logits", "value"]
        assert sorted(n for n in PUBLISHED.files if n.startswith(f"{key}|{i}|")) == sorted(f"{key}|{i}|{n}"
                                                                                          for n in names)
        for name, x in zip(names, [f[k] for k in sorted(f)] + [logits, value]):
            np.testing.assert_allclose(x.detach().numpy(), PUBLISHED[f"{key}|{i}|{name}"], rtol=1e-5, atol=1e-5,
                                       err_msg=f"{key}, decision {i}, {name}")
        obs, *_ = sim.step(sim.valid_mask().float().argmax(1) if i % 2 else logits.argmax(1))


# ---------------------------------------------------------------- TopoFreeRL ablation switches

@pytest.mark.parametrize("actor, gate", [("dense", ("net.actor.gate.",)),
                                         ("per_server", ("net.trunk.2.", "net.actor.0.2."))])  # actor[0] is the trunk
def test_se_gate_false_removes_the_gate(small_ds, actor, gate):
    full = shapes(agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", "paper", (f"actor={actor}",))))
    cut = shapes(agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", "paper", (f"actor={actor}", "se_gate=false"))))
    assert any(k.startswith(gate) for k in full) and not any(k.startswith(gate) for k in cut)
    assert cut == {k: v for k, v in full.items() if not k.startswith(gate)}


@pytest.mark.parametrize("actor", ["dense", "per_server"])
def test_guidance_disabled_removes_the_prior_term(small_ds, actor):
    full = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(f"actor={actor}",)))
    cut = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(f"actor={actor}", "guidance.enabled=false")))
    assert shapes(cut) == shapes(full)
    cut.load_state_dict(full.state_dict())
    feats = loaded_pair(full, small_ds)[1]
    with torch.no_grad():
        with_prior, without = full(feats)[0], cut(feats)[0]
        raw = full.net(feats["state"], feats["servers"] if actor == "per_server" else feats["telemetry"])[0]
    valid = feats["mask"]
    assert torch.equal(without[valid], raw[valid]) and not torch.equal(with_prior[valid], raw[valid])


@pytest.mark.parametrize("actor", ["dense", "per_server"])
def test_state_base_is_the_seven_base_features(small_ds, actor):
    agent = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(f"actor={actor}", "state=base")))
    sim = make_simulator(small_ds, 3, "train", "random", 1, profile="contention", params=Contention(worlds=3))
    obs = sim.reset(1)
    obs, *_ = sim.step(sim.valid_mask().float().argmax(1))
    feats = agent.features(sim, obs, WEIGHTS)
    assert torch.equal(feats["state"], agent.base_state(sim, obs, WEIGHTS)) and feats["state"].shape[1] == 7
    first = "net.trunk.0.weight" if actor == "per_server" else "net.actor.state_in.weight"
    assert agent.state_dict()[first].shape[1] == 7
    assert TopoFreeAgent.size_agnostic({"actor": "per_server", "state": "base"})
    with pytest.raises(ConfigError, match="state"):
        config("TopoFreeRL", sets=("state=none",))


def test_dense_and_per_server_actors_are_different_networks(small_ds):
    dense = shapes(agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=("actor=dense",))))
    per_server = shapes(agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=("actor=per_server",))))
    assert dense["net.actor.head.weight"] == (small_ds.n_servers, 128) and "net.scorer.3.weight" in per_server
    assert not any(small_ds.n_servers in s for s in per_server.values())


def test_dwa_disabled_keeps_the_weights_fixed(small_ds, tmp_path):
    for enabled in (True, False):
        cfg = config("TopoFreeRL", "paper", (f"dwa.enabled={str(enabled).lower()}", "dwa.start=1", "epochs=3",
                                              "episodes=8", "ppo.update_epochs=1"))
        run = tmp_path / str(enabled)
        run.mkdir()
        train(cfg, small_ds, TopoFreeAgent, run, progress=False)
        w = pd.read_csv(run / "metrics.csv")[["w_latency", "w_cost", "w_switch"]]
        assert (w.nunique() == 1).all() != enabled
        if not enabled:
            assert w.iloc[0].tolist() == [0.45, 0.4, 0.15]


@pytest.mark.parametrize("algo,agent", [("TopoFreeRL", TopoFreeAgent), ("PPO_algorithm", PPOAgent)])
def test_the_training_objective_is_a_config_key(algo, agent, small_ds, tmp_path):
    """`dwa.initial` sets the weights DWA starts from, and with DWA off the weights every epoch trains on;
    the checkpoint keeps them, so the policy's state input at evaluation is the trained one."""
    cfg = config(algo, "contention", ("dwa.enabled=false", "dwa.initial=[0.75, 0.10, 0.15]", "epochs=2",
                                      "episodes=8", "ppo.update_epochs=1"))
    train(cfg, small_ds, agent, tmp_path, progress=False)
    w = pd.read_csv(tmp_path / "metrics.csv")[["w_latency", "w_cost", "w_switch"]]
    assert (w.to_numpy() == [0.75, 0.10, 0.15]).all()
    assert load_checkpoint(tmp_path / "checkpoints" / "final.pt")["dwa"]["weights"] == [0.75, 0.10, 0.15]


@pytest.mark.parametrize("algo,agent", [("TopoFreeRL", TopoFreeAgent), ("PPO_algorithm", PPOAgent)])
def test_the_critics_warmup_epochs_leave_the_policy_as_it_started(algo, agent, small_ds, tmp_path):
    """`ppo.critic_warmup`: the first epochs' updates train the critic alone, so the policy that plays them is
    the initial one (TopoFreeRL's: its guidance prior, the learned part near zero); then both train."""
    cfg = config(algo, "contention", ("ppo.critic_warmup=1", "epochs=2", "episodes=8", "ppo.update_epochs=1",
                                      "checkpoint_every=1"))
    train(cfg, small_ds, agent, tmp_path, progress=False)
    initial = agent_for(algo, small_ds, cfg, seed=cfg["seed"])
    actor = {n for n, _ in initial.networks()[0].named_parameters()}
    warm = load_checkpoint(tmp_path / "checkpoints" / "epoch_0001.pt")["model"]
    final = load_checkpoint(tmp_path / "checkpoints" / "final.pt")["model"]
    start = initial.state_dict()
    owner = "net.actor." if algo == "TopoFreeRL" else "actor."
    moved = {k for k in start if not torch.equal(warm[k], start[k])}
    assert moved and all(not k.startswith(owner) for k in moved)  # the critic learned, the actor held still
    assert any(not torch.equal(final[owner + n], warm[owner + n]) for n in actor)  # then the actor trains
    assert pd.read_csv(tmp_path / "metrics.csv")["policy_trained"].tolist() == [0, 1]


def test_a_warmup_as_long_as_the_training_is_one_line():
    with pytest.raises(ConfigError, match="ppo.critic_warmup") as e:
        config("TopoFreeRL", "contention", ("ppo.critic_warmup=5", "epochs=5"))
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("value,want", [("[0.5, 0.5]", "a list of 3 finite numbers"),
                                        ("[0.6, 0.5, -0.1]", "sum to 1"), ("[0.5, 0.4, 0.2]", "sum to 1"),
                                        ("0.75", "a list of 3 finite numbers")])
def test_a_bad_training_objective_is_one_line(value, want):
    with pytest.raises(ConfigError, match=want) as e:
        config("TopoFreeRL", "contention", (f"dwa.initial={value}",))
    assert "dwa.initial" in str(e.value) and "\n" not in str(e.value)


@pytest.mark.slow
def test_a_tiny_shell_run_with_every_ablation_switch_off(small_root, tmp_path):
    run = tmp_path / "ablated"
    run_script("TopoFreeRL/train.py", "--data", str(small_root), "--regions", "Small_Trap", "--profile", "contention",
               "--no-recipe", "--epochs", "2", "--episodes", "8", "--no-progress", "--out", str(run),
               *(a for s in ["se_gate=false", "dwa.enabled=false", "guidance.enabled=false", "state=base",
                             "live_load=false", "actor=dense", *SMALL] for a in ("--set", s)))
    state = load_checkpoint(run / "checkpoints" / "final.pt")
    cfg = state["config"]
    assert (cfg["se_gate"], cfg["dwa"]["enabled"], cfg["guidance"]["enabled"], cfg["state"], cfg["live_load"]) == \
        (False, False, False, "base", False)
    assert state["model"]["net.actor.state_in.weight"].shape[1] == 7
    assert not any(".gate." in k for k in state["model"])
    assert len(pd.read_csv(run / "metrics.csv")) == 2
    proc = run_script("TopoFreeRL/inference.py", "--data", str(small_root), "--region", "Small_Trap",
                      "--model", str(run / "checkpoints" / "final.pt"), "--episodes", "12", "--no-progress",
                      "--out", str(tmp_path / "eval"))
    assert (tmp_path / "eval" / "summary.json").exists(), proc.stdout
