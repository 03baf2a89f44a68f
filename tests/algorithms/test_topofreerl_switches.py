"""The candidates of sweeps/candidates.yaml, each a TopoFreeRL config switch.

`critic: pooled`: the per-server actor's critic also reads a mean/max pool of the servers'
features. It changes only the critic, sees the servers (valid ones only), stays size-agnostic, and
trains and schedules another topology through the shell scripts.
`guidance.prior: greedy_queue`: the prior is greedy_queue's score at `guidance.latency_weight`, so
its argmax is that rule's decision. `guidance.kl`: the update's KL penalty towards the prior's own policy."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import ROOT, run_script
from test_live_load import WEIGHTS, agent_for, config, loaded_pair, shapes
from test_serving_rules import BUSY as SERVING_BUSY

from edgesim.contention import Contention
from edgesim.registry import PROFILES, make_simulator
from Heuristics.policies import GreedyPolicy, QueueGreedyPolicy
from schedkit.config import ConfigError
from schedkit.ppo import PPOConfig, ppo_update
from schedkit.rollout import masked_log_probs, update_evaluator
from TopoFreeRL.agent import TopoFreeAgent

PER_SERVER = "actor=per_server"


def test_pooled_changes_only_the_critic(small_ds):
    plain = shapes(agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(PER_SERVER,))))
    pooled = shapes(agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(PER_SERVER, "critic=pooled"))))
    assert {k: v for k, v in pooled.items() if not k.startswith("net.critic.")} == \
        {k: v for k, v in plain.items() if not k.startswith("net.critic.")}
    assert "net.critic.embed.0.weight" in pooled and "net.critic.embed.0.weight" not in plain
    assert not any(small_ds.n_servers in s for s in pooled.values())  # size-agnostic: no weight has N entries
    assert TopoFreeAgent.size_agnostic(config("TopoFreeRL", sets=(PER_SERVER, "critic=pooled")))


def test_the_pooled_value_reads_the_valid_servers_and_only_them(small_ds):
    agent = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(PER_SERVER, "critic=pooled")))
    plain = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(PER_SERVER,)))
    empty, loaded = loaded_pair(agent, small_ds)
    same_state = loaded | {"state": empty["state"]}  # only the servers' features (their queues) differ
    with torch.no_grad():
        assert not torch.allclose(agent(empty)[1], agent(same_state)[1])
        assert torch.equal(plain(empty)[1], plain(same_state)[1])  # the state-only critic cannot see them
        invalid = ~empty["mask"]
        assert invalid.any()
        noisy = empty["servers"].clone()
        noisy[invalid] += 7.0
        assert torch.equal(agent(empty)[1], agent(empty | {"servers": noisy})[1])


@pytest.mark.parametrize(("option", "key"), [("critic=pooled", "critic"), ("shortlist=8", "shortlist"),
                                             ("guidance.prior=greedy_queue", "guidance.prior")])
def test_a_dense_actor_refuses_the_per_server_only_options(tmp_path, option, key):
    proc = run_script("TopoFreeRL/train.py", "--set", option, "--epochs", "1", "--out", str(tmp_path / "r"), check=False)
    assert proc.returncode != 0
    assert key in proc.stderr and "per_server" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.slow
def test_a_pooled_critic_run_trains_under_contention_and_schedules_another_topology(tmp_path, small_root):
    run = tmp_path / "run"
    run_script("TopoFreeRL/train.py", "--profile", "contention", "--epochs", "2", "--episodes", "16", "--no-progress",
               "--set", PER_SERVER, "--set", "critic=pooled", "--set", "contention.worlds=2", "--out", str(run))
    assert "critic: pooled" in (run / "config.yaml").read_text()
    proc = run_script("TopoFreeRL/inference.py", "--model", str(run / "checkpoints" / "final.pt"), "--data",
                      str(small_root), "--region", "Small_Trap", "--episodes", "20", "--no-progress",
                      "--out", str(tmp_path / "eval"), cwd=ROOT)
    assert "zero-shot" in proc.stdout
    s = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert s["zero_shot"] is True and s["episodes"] == 20


# a busy setting of every registered profile: queues and running batches fill within the test's decisions
BUSY = {"paper": None, "contention": Contention(arrival_rate=40.0, worlds=3, max_in_flight=6), "serving": SERVING_BUSY}


@pytest.mark.parametrize("w", [0.6, 0.9])
@pytest.mark.parametrize("profile", list(PROFILES))
def test_the_greedy_queue_prior_ranks_servers_as_greedy_queue_does_under_every_profile(small_ds, profile, w):
    """The prior claims to be greedy_queue's score, so under every registered profile its argmax is that rule's
    decision, checked in states where the live queues and engines change the rule's scores (a prior that charged
    idle engines under serving went unseen while only contention was checked)."""
    assert profile in BUSY, f"give the new profile {profile!r} a busy setting in BUSY"
    sets = (PER_SERVER, "guidance.prior=greedy_queue", f"guidance.latency_weight={w}")
    agent = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", profile, sets=sets)).evaluation()
    sim = make_simulator(small_ds, 3, "train", "random", 2, profile=profile, params=BUSY[profile])
    rule, blind = QueueGreedyPolicy(sim, latency_weight=w), GreedyPolicy(sim, latency_weight=w)
    obs, live = sim.reset(2), 0
    for i in range(60):
        feats, choice = agent.features(sim, obs, WEIGHTS), rule.act(sim, obs)
        prior = feats["prior"]
        assert torch.equal(prior.masked_fill(~feats["mask"], -torch.inf).argmax(1), choice), i
        assert not prior[~feats["mask"]].any()  # a z-score over the valid servers only
        live += int((rule.scores(sim, obs) != blind.scores(sim, obs)).any(1).sum())
        obs, *_ = sim.step(choice if i % 2 else sim.sample_valid(torch.Generator().manual_seed(i)))
    assert (live > 0) == sim.profile.queues  # the live state moved the rule's scores wherever servers keep queues


def test_the_greedy_queue_prior_is_checked(small_ds):
    with pytest.raises(ConfigError, match="latency_weight"):
        config("TopoFreeRL", sets=(PER_SERVER, "guidance.latency_weight=1.5"))
    with pytest.raises(ConfigError, match="prior"):
        config("TopoFreeRL", sets=(PER_SERVER, "guidance.prior=oracle"))


def prior_kl_setup(small_ds, kl: float):
    """A per-server TopoFreeRL with greedy_queue's prior and `guidance.kl` = kl, its actor pushed far from the
    prior, and the features of 40 loaded contention decisions."""
    agent = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(
        PER_SERVER, "guidance.prior=greedy_queue", f"guidance.kl={kl}")))
    with torch.no_grad():  # the scorer's output layer: logits of a few units, far from the prior's
        head = agent.net.scorer[-1].weight
        head.add_(3 * torch.randn(head.shape, generator=torch.Generator().manual_seed(1)))
    sim = make_simulator(small_ds, 4, "train", "random", 3, profile="contention",
                         params=Contention(arrival_rate=40.0, worlds=4, max_in_flight=6))
    obs, rows = sim.reset(3), []
    for i in range(10):
        rows.append(agent.features(sim, obs, WEIGHTS))
        obs, *_ = sim.step(sim.sample_valid(torch.Generator().manual_seed(i)))
    feats = {k: torch.cat([r[k] for r in rows]) for k in rows[0]}
    return agent, feats


def test_the_prior_kl_is_the_kl_to_the_priors_own_policy_over_the_valid_servers(small_ds):
    agent, feats = prior_kl_setup(small_ds, 1.0)
    actions = feats["mask"].float().argmax(1)
    _, _, _, kl = update_evaluator(agent, actions, feats)(torch.arange(len(actions)))
    logits, _ = agent(feats)
    prior = agent.prior_term(feats).masked_fill(~feats["mask"], -torch.inf)
    expected = torch.distributions.kl_divergence(torch.distributions.Categorical(logits=logits),
                                                 torch.distributions.Categorical(logits=prior))
    assert torch.allclose(kl, expected, rtol=1e-4, atol=1e-4) and (kl > 0.01).all()
    without = agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(PER_SERVER, "guidance.prior=greedy_queue")))
    assert update_evaluator(without, actions, feats)(torch.arange(len(actions)))[3] is None


@pytest.mark.parametrize("kl", [0.0, 5.0])
def test_the_prior_kl_pulls_the_policy_back_to_the_prior_and_only_with_a_weight(small_ds, kl):
    agent, feats = prior_kl_setup(small_ds, kl)
    n = len(feats["mask"])
    actions = feats["mask"].float().argmax(1)
    with torch.no_grad():
        logp = masked_log_probs(agent(feats)[0])[0].gather(1, actions[:, None]).squeeze(1)

    def distance() -> float:
        with torch.no_grad():
            logits = agent(feats)[0]
            return float((logits.softmax(-1) * (masked_log_probs(logits)[0] - agent.prior_log_probs(feats)))
                         .sum(-1).mean())
    before = distance()
    opt = torch.optim.Adam(agent.parameters(), lr=3e-3)
    ppo_update(update_evaluator(agent, actions, feats), logp, torch.zeros(n), torch.zeros(n), opt, agent.networks(),
               PPOConfig(update_epochs=30, minibatch=n), 0.0, torch.Generator().manual_seed(0), agent.prior_kl_coef)
    after = distance()
    # zero advantages and no entropy bonus: only the KL term can move the policy
    assert after < 0.5 * before if kl else after == pytest.approx(before, rel=1e-6)


def test_the_prior_kl_needs_the_prior_in_the_logits(small_ds):
    with pytest.raises(ConfigError, match="guidance.kl"):
        agent_for("TopoFreeRL", small_ds, config("TopoFreeRL", sets=(PER_SERVER, "guidance.kl=1",
                                                                     "guidance.enabled=false")))
    with pytest.raises(ConfigError, match="guidance.kl"):
        config("TopoFreeRL", sets=("guidance.kl=-1",))
