"""Shared RL machinery against hand-computed values: GAE, the clipped PPO loss, DWA."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from schedkit.dwa import DWA
from schedkit.ppo import PPOConfig, gae, ppo_loss, ppo_update


def test_gae_by_hand():
    # gamma = lam = 0.5; the episode ends at t=1, so t=1 does not bootstrap and t=2 starts a new one
    r = torch.tensor([[1.0], [2.0], [3.0]])
    v = torch.tensor([[0.5], [1.0], [1.5]])
    d = torch.tensor([[False], [True], [False]])
    adv, ret = gae(r, v, d, last_value=torch.tensor([2.0]), gamma=0.5, lam=0.5)
    # t=2: 3 + 0.5*2 - 1.5 = 2.5 | t=1: 2 - 1 = 1 | t=0: (1 + 0.5*1 - 0.5) + 0.25*1 = 1.25
    assert adv.squeeze(1).tolist() == [1.25, 1.0, 2.5]
    assert ret.squeeze(1).tolist() == [1.75, 2.0, 4.0]


def test_ppo_loss_by_hand():
    logp = torch.log(torch.tensor([0.6, 0.2]))
    old = torch.log(torch.tensor([0.4, 0.4]))
    adv = torch.tensor([1.0, -1.0])
    # ratios 1.5 and 0.5: clipped to 1.2 (adv > 0) and 0.8 (adv < 0) -> surrogate -(1.2 - 0.8)/2 = -0.2
    loss, stats = ppo_loss(logp, old, adv, value=torch.tensor([1.0, 2.0]), returns=torch.zeros(2),
                           entropy=torch.tensor([0.3, 0.5]), clip=0.2, vf_coef=0.5, ent_coef=0.01)
    assert stats["policy_loss"] == pytest.approx(-0.2)
    assert stats["value_loss"] == pytest.approx(2.5)
    assert float(loss) == pytest.approx(-0.2 + 0.5 * 2.5 - 0.01 * 0.4)
    assert stats["clip_frac"] == 1.0


def test_dwa_worked_example():
    dwa = DWA(epochs=10)
    assert dwa.update(2, np.array([0.5, 0.2, 0.1])).tolist() == [0.45, 0.40, 0.15]  # not active yet
    losses = np.array([0.5, 0.2, 0.0])
    # epoch 3: m = L + 1e-6; q = clip(L/m) = (0.999998, 0.999995, 0.7)
    q = [min(max(loss / (loss + 1e-6), 0.7), 1.3) for loss in losses]
    e = [math.exp(x / 3) for x in q]
    inner = [3 * x / sum(e) for x in e]
    f = [math.exp(x) for x in inner]
    w_new = [x / sum(f) for x in f]
    w = [min(max(0.3 * a + 0.7 * b, 0.15), 0.7) for a, b in zip(w_new, [0.45, 0.40, 0.15])]
    expect = [x / sum(w) for x in w]
    got = dwa.update(3, losses)
    assert got == pytest.approx(expect, abs=1e-12)
    assert got == pytest.approx([0.41822, 0.38322, 0.19856], abs=1e-5)
    # epoch 4: m <- 0.15 L + 0.85 m; from the same state, a rising latency loss earns more weight
    # than a flat one (both drift towards uniform: softmax(3 softmax(q/3)) stays near 1/3 each)
    flat = DWA(epochs=10)
    flat.load_state_dict(dwa.state_dict())
    got = dwa.update(4, np.array([1.0, 0.2, 0.0]))
    assert got[0] > flat.update(4, np.array([0.5, 0.2, 0.0]))[0]
    assert got.sum() == pytest.approx(1.0) and got.min() >= 0.15 - 1e-12 and got.max() <= 0.7 + 1e-12
    frozen = dwa.update(8, np.array([5.0, 0.0, 0.0]))  # 8 >= 0.8 * 10: frozen
    assert frozen.tolist() == got.tolist()
    clone = DWA(epochs=10)
    clone.load_state_dict(dwa.state_dict())
    assert clone.update(5, np.array([1.0, 0.3, 0.1])).tolist() == dwa.update(5, np.array([1.0, 0.3, 0.1])).tolist()


def test_ppo_update_moves_a_bandit_towards_the_better_arm():
    torch.manual_seed(0)
    logits = torch.nn.Linear(1, 2)
    critic = torch.nn.Linear(1, 1)
    opt = torch.optim.Adam([*logits.parameters(), *critic.parameters()], lr=0.05)
    x = torch.ones(512, 1)
    gen = torch.Generator().manual_seed(0)
    dist = torch.distributions.Categorical(logits=logits(x))
    actions = dist.sample()
    rewards = actions.float()  # arm 1 pays 1, arm 0 pays 0
    old_logp = dist.log_prob(actions).detach()
    values = critic(x).squeeze(1).detach()
    p_before = float(torch.softmax(logits(x[:1]), 1)[0, 1].detach())

    def evaluate(idx):
        d = torch.distributions.Categorical(logits=logits(x[idx]))
        return d.log_prob(actions[idx]), d.entropy(), critic(x[idx]).squeeze(1), None

    stats = ppo_update(evaluate, old_logp, rewards - values, rewards, opt, [logits, critic],
                       PPOConfig(update_epochs=4, minibatch=128), ent_coef=0.0, generator=gen)
    p_after = float(torch.softmax(logits(x[:1]), 1)[0, 1].detach())
    assert p_after > p_before + 0.05 and stats["value_loss"] >= 0


def test_stratified_bootstrap_ci_against_a_known_distribution():
    from schedkit.stats import stratified_bootstrap_ci
    rng = np.random.default_rng(0)
    covered = 0
    for trial in range(40):
        groups = [rng.normal(5.0, 2.0, 200) for _ in range(3)]  # true mean 5, se of the mean 2/sqrt(600)
        mean, lo, hi = stratified_bootstrap_ci(groups, n_boot=1000, seed=trial)
        covered += lo <= 5.0 <= hi
        assert mean == pytest.approx(np.mean([g.mean() for g in groups]))
        assert hi - lo == pytest.approx(2 * 1.96 * 2.0 / np.sqrt(600), rel=0.2)
    assert covered >= 34  # 95% nominal: 38 of 40 expected
