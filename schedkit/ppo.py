"""One copy of the PPO machinery (docs/schedulers.md): GAE and the clipped update.

Rollouts are (T, B) tensors from the batched simulator with same-step autoreset: `dones[t]` marks
the last step of an episode, so the value after it is not bootstrapped (episodes terminate, they
are never truncated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn


@dataclass
class PPOConfig:
    gamma: float = 0.99
    lam: float = 0.95
    clip: float = 0.2
    update_epochs: int = 10
    minibatch: int = 1024
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5  # per network
    critic_warmup: int = 0  # the first epochs whose update trains the critic alone (the policy stays as it started)


def gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
        gamma: float = 0.99, lam: float = 0.95) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) of (T, B) rollouts; `last_value` (B,) bootstraps unfinished episodes."""
    adv = torch.zeros_like(rewards)
    next_value, next_adv = last_value, torch.zeros_like(last_value)
    for t in range(rewards.shape[0] - 1, -1, -1):
        live = 1.0 - dones[t].to(rewards.dtype)
        delta = rewards[t] + gamma * next_value * live - values[t]
        next_adv = delta + gamma * lam * live * next_adv
        adv[t] = next_adv
        next_value = values[t]
    return adv, adv + values


# evaluate(idx): (log-prob of the stored action, entropy, value, KL to the agent's prior policy or None) of samples idx
Evaluate = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]]


def ppo_loss(logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, value: torch.Tensor,
             returns: torch.Tensor, entropy: torch.Tensor, clip: float, vf_coef: float,
             ent_coef: float, prior_kl: torch.Tensor | None = None,
             kl_coef: float = 0.0, policy: bool = True) -> tuple[torch.Tensor, dict[str, float]]:
    """Clipped surrogate + vf_coef * value MSE - ent_coef * entropy (+ kl_coef * KL(policy || prior policy)
    where the agent has a prior to stay near), with diagnostics; `policy=False`: the value term alone."""
    ratio = torch.exp(logp - old_logp)
    policy_loss = -torch.minimum(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv).mean()
    value_loss = ((value - returns) ** 2).mean()
    ent = entropy.mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * ent if policy else vf_coef * value_loss
    if prior_kl is not None and policy:
        loss = loss + kl_coef * prior_kl.mean()
    with torch.no_grad():
        stats = {"policy_loss": float(policy_loss), "value_loss": float(value_loss), "entropy": float(ent),
                 "approx_kl": float(((ratio - 1) - (logp - old_logp)).mean()),
                 "clip_frac": float(((ratio - 1).abs() > clip).float().mean())}
        if prior_kl is not None:
            stats["prior_kl"] = float(prior_kl.mean())
    return loss, stats


def ppo_update(evaluate: Evaluate, old_logp: torch.Tensor, advantages: torch.Tensor, returns: torch.Tensor,
               optimizer: torch.optim.Optimizer, networks: list[nn.Module], cfg: PPOConfig, ent_coef: float,
               generator: torch.Generator | None = None, kl_coef: float = 0.0,
               policy: bool = True) -> dict[str, float]:
    """`cfg.update_epochs` passes of shuffled minibatches over flat samples.

    `evaluate(idx)` returns (log-prob of the stored action, entropy, value, KL to the prior policy or
    None) for samples `idx` under the current parameters, so each algorithm keeps its own observation layout.
    Advantages are normalised over the whole batch once; gradients are clipped per network.
    `policy=False` (a `critic_warmup` epoch) trains the value alone: the actor's parameters get no
    gradient, so the optimiser leaves them as they are, and the critic learns the values of a policy
    that holds still before the policy gradient reads its advantages.
    """
    n = old_logp.shape[0]
    adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    totals: dict[str, float] = {}
    count = 0
    for _ in range(cfg.update_epochs):
        perm = torch.randperm(n, generator=generator, device=old_logp.device)
        for start in range(0, n, cfg.minibatch):
            idx = perm[start:start + cfg.minibatch]
            logp, entropy, value, prior_kl = evaluate(idx)
            loss, stats = ppo_loss(logp, old_logp[idx], adv[idx], value, returns[idx], entropy,
                                   cfg.clip, cfg.vf_coef, ent_coef, prior_kl, kl_coef, policy)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            for net in networks:
                nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
            optimizer.step()
            for k, v in stats.items():
                totals[k] = totals.get(k, 0.0) + v
            count += 1
    return {k: v / count for k, v in totals.items()}
