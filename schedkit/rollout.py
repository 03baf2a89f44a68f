"""One batched rollout loop for every learned scheduler.

All episodes of an epoch step together through the vectorised simulator. An agent provides
`features(sim, obs, weights) -> dict of (B, ...) tensors` and `forward(features) -> (logits, value)`
with masked logits already set to MASK_VALUE (one per server, or per shortlisted server: see
`chosen_servers`); the loop stores features, actions (logit columns), log-probs,
values and reward vectors, and hands back flat samples ready for GAE and the PPO update.
Each decision gets the outcome whose (episode, step) is its own: the same step's row under `paper`
and `contention`, the request's completion some steps later under `serving` (delayed credit).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from edgesim.physics import EVAL_WEIGHTS
from edgesim.simulator import Observation, Simulator

from .ppo import Evaluate, gae

MASK_VALUE = -1e9  # finite, so masked entries get probability exactly 0 and p * log p stays 0


class Agent(Protocol):
    """What the rollout needs of an agent (schedkit.agent_base.MaskedAgent writes the whole contract)."""

    def features(self, sim: Simulator, obs: Observation, weights: torch.Tensor) -> dict[str, torch.Tensor]: ...

    def __call__(self, features: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]: ...

    def networks(self) -> list[torch.nn.Module]: ...  # gradient norms are clipped per network

    def reward_bonus(self, actions: torch.Tensor) -> torch.Tensor: ...  # (B,); zeros unless overridden

    prior_kl_coef: float  # > 0: the update adds this times KL(policy || prior_log_probs' policy)

    def prior_log_probs(self, features: dict[str, torch.Tensor]) -> torch.Tensor: ...  # (B, N) the prior's policy


def chosen_servers(features: dict[str, torch.Tensor], choices: torch.Tensor) -> torch.Tensor:
    """(B,) server indices of the chosen logit columns: the columns themselves, unless the agent
    scored a shortlist (`features["shortlist"]`, (B, K) server indices; TopoFreeRL's `shortlist: K`)."""
    short = features.get("shortlist")
    return choices if short is None else short.gather(1, choices[:, None]).squeeze(1)


def masked_log_probs(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log-probabilities, entropy) of a categorical whose masked logits are MASK_VALUE."""
    logp = torch.log_softmax(logits, -1)
    entropy = -(logp.exp() * logp).sum(-1)
    return logp, entropy


def update_evaluator(agent: Agent, actions: torch.Tensor, features: dict[str, torch.Tensor]) -> Evaluate:
    """The PPO update's view of a rollout's samples under the agent's current weights (schedkit/ppo.py
    `Evaluate`): the stored actions' log-probabilities, the entropies, the values, and, for an agent that
    keeps training near its prior (`prior_kl_coef` > 0: TopoFreeRL's `guidance.kl`), KL(policy || prior)."""
    def evaluate(idx: torch.Tensor):
        feats = {k: v[idx] for k, v in features.items()}
        logits, value = agent(feats)
        logp, entropy = masked_log_probs(logits)
        prior_kl = None
        if agent.prior_kl_coef > 0:  # masked servers: probability exactly 0, so they add nothing
            prior_kl = (logp.exp() * (logp - agent.prior_log_probs(feats))).sum(-1)
        return logp.gather(1, actions[idx, None]).squeeze(1), entropy, value, prior_kl
    return evaluate


@dataclass
class Rollout:
    """Flat samples (T*B rows, only the epoch's own episodes) plus epoch statistics."""

    features: dict[str, torch.Tensor]
    actions: torch.Tensor
    logp: torch.Tensor
    advantages: torch.Tensor
    returns: torch.Tensor
    stats: dict[str, float]
    losses: np.ndarray  # mean per-step (-rL, -rC, -rS): the DWA signal


def episode_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, column: torch.Tensor,
                step: torch.Tensor, columns: int, max_steps: int, gamma: float, lam: float):
    """GAE of episode segments from flat transitions labelled (column, step), in their given order.

    The transitions are laid out on a (max_steps, columns) grid, one column per episode, so GAE runs
    along each episode even when a batch row interleaves several (the contention profile). Grid
    cells outside a segment are marked done and never reach a real step. A segment may start after
    step 0 (a workflow begun in an earlier epoch: its advantages need only what follows). A segment
    cut before its episode ends carries one extra transition after its last step with reward =
    value = the bootstrap value and done, so the last real step bootstraps from it."""
    grid = (max_steps, columns)
    cell = step * columns + column

    def lay(x, fill):
        return torch.full(grid, fill, dtype=x.dtype, device=x.device).reshape(-1).index_put((cell,), x).reshape(grid)

    adv, ret = gae(lay(rewards, 0.0), lay(values, 0.0), lay(dones, True),
                   torch.zeros(columns, dtype=values.dtype, device=values.device), gamma, lam)
    return adv.reshape(-1)[cell], ret.reshape(-1)[cell]


class FinishCount:
    """Whether `target` episodes have finished, counted on the device and read on the host only at a
    step where the target can have been reached: at most `per_step` (the batch's rows) finish a step,
    so after reading a count c the next `ceil((target - c) / per_step) - 1` steps cannot reach it.
    `reached()` answers exactly what a read every step would, with a few dozen reads an epoch; with
    `known` steps (the epoch's length, when known up front) it reads nothing.

    Host reads kept off the per-step path let a CUDA rollout run ahead of the device."""

    def __init__(self, target: int, per_step: int, device: torch.device, known: int | None = None):
        self.target, self.per_step, self.known = target, per_step, known
        self.count = torch.zeros((), dtype=torch.long, device=device)
        self.steps = self.next_read = 0

    @classmethod
    def of_epoch(cls, sim: Simulator, episodes: int, continuing: bool) -> "FinishCount":
        """The end of an epoch of `episodes` measured episodes: a fresh epoch whose rows hold all of
        them knows its length (`Simulator.steps_until_done`); worlds that run on count finishes."""
        return cls(episodes, sim.finishes_per_step, sim.device, None if continuing else sim.steps_until_done(episodes))

    def add(self, finished: torch.Tensor) -> None:
        """One step's number of finished episodes (a 0-d tensor, at most `per_step`)."""
        self.count += finished
        self.steps += 1

    def reached(self) -> bool:
        if self.known is not None:
            return self.steps >= self.known
        if self.steps < self.next_read:
            return False
        left = self.target - int(self.count)
        self.next_read = self.steps + -(-left // self.per_step)
        return left <= 0


PARTS = ("latency", "queue_ms", "cost", "trap_hit", "fallback")  # the outcome columns the epoch statistics read


def epoch_stats(returns: torch.Tensor, reward_vec: torch.Tensor, outcome: dict[str, torch.Tensor],
                workflows: float) -> dict[str, float]:
    """What an epoch logs of its n trained decisions (`returns` (n,), `reward_vec` (n, 3), `outcome`'s PARTS
    (n,)): per workflow (sums / `workflows`) the training return, the evaluation-weighted reward, latency, queue
    wait and cost; per decision the trap-hit and fallback rates."""
    dtype, n = reward_vec.dtype, len(returns)
    eval_w = torch.tensor(EVAL_WEIGHTS, dtype=dtype, device=reward_vec.device)

    def per_workflow(x: torch.Tensor) -> float:
        return float(x.to(dtype).sum()) / workflows

    return {"return": per_workflow(returns), "reward": per_workflow(reward_vec @ eval_w),
            **{name: per_workflow(outcome[part]) for name, part in (("latency_ms", "latency"),
                                                                     ("queue_ms", "queue_ms"), ("cost", "cost"))},
            "trap_hit_rate": float(outcome["trap_hit"].to(dtype).sum()) / n,
            "fallback_rate": float(outcome["fallback"].to(dtype).sum()) / n, "env_steps": n}


def _outcomes_of(outcomes: list[dict], episode: torch.Tensor, step: torch.Tensor, max_steps: int) -> dict:
    """The outcome (reward, done, PARTS) of each decision (episode, step), matched by that key.

    A step's outcomes are the rows its `sim.step` returned: under `paper` and `contention` the
    decisions just made, in row order; under `serving` the requests that completed during the step,
    each the outcome of a decision made in some earlier step. Every decision asked for must have
    completed (a measured workflow's decisions once it has finished)."""
    key = torch.cat([o["episode"] for o in outcomes]) * max_steps + torch.cat([o["step"] for o in outcomes])
    order = torch.argsort(key)
    wanted = episode * max_steps + step
    at = torch.searchsorted(key[order], wanted).clamp_max(max(len(key) - 1, 0))
    if len(key) == 0 or not bool((key[order][at] == wanted).all()):
        raise RuntimeError("a kept decision has no outcome: the epoch ended before one of its workflows finished")
    rows = order[at]
    columns = [k for k in outcomes[0] if k not in ("episode", "step")]
    return {k: torch.cat([o[k] for o in outcomes]).index_select(0, rows) for k in columns}


def _bootstrap(sim: Simulator, agent: Agent, weights: torch.Tensor, running: torch.Tensor):
    """(episode ids, next step, value) of the workflows in `running` still in flight: the critic's
    value at each one's pending decision, for GAE across the end of an epoch (contention only)."""
    with sim.every_slot() as obs:
        value = agent(agent.features(sim, obs, weights))[1]
        episode, step = sim.episode.clone(), sim.step_idx.clone()
    cut = torch.isin(episode, running)
    return episode[cut], step[cut], value[cut].float()


DECISION_KEYS = ("action", "logp", "value", "bonus", "episode", "step")  # a decision besides its features
FEATURE = "feat."  # prefix of a carried decision's features


@dataclass
class Carry:
    """Decisions a continuing rollout with delayed outcomes (serving) moves to the next epoch: each
    in-flight workflow's last decision (flat tensors: its features under FEATURE + name, and
    DECISION_KEYS), and the outcome rows of those already completed. Checkpoints hold `state_dict()`,
    so a resumed run trains on exactly what an uninterrupted one would."""

    decisions: dict[str, torch.Tensor] = field(default_factory=dict)
    outcomes: dict[str, torch.Tensor] = field(default_factory=dict)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {f"decisions.{k}": v for k, v in self.decisions.items()} | \
            {f"outcomes.{k}": v for k, v in self.outcomes.items()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor], device: torch.device) -> "Carry":
        """The carry of `state_dict()` (a checkpoint's `carry`), on `device`; a malformed one raises ValueError."""
        parts: dict[str, dict[str, torch.Tensor]] = {"decisions": {}, "outcomes": {}}
        for key, value in state.items():
            part, _, name = key.partition(".")
            if part not in parts or not name or not isinstance(value, torch.Tensor) or value.dim() == 0:
                raise ValueError(f"carry: expected 'decisions.<name>' or 'outcomes.<name>' tensors, got {key!r}")
            parts[part][name] = value.to(device)
        for part, tensors in parts.items():
            needed = DECISION_KEYS if part == "decisions" else ("episode", "step", "reward", "done")
            if tensors and (any(k not in tensors for k in needed) or len({len(v) for v in tensors.values()}) != 1):
                raise ValueError(f"carry: its {part} need {', '.join(needed)} and one row count for every tensor")
        return cls(parts["decisions"], parts["outcomes"])


def _carried_rollout(sim: Simulator, weights: torch.Tensor, steps: list[dict], outcomes: list[dict], carry: Carry,
                     gamma: float, lam: float) -> Rollout:
    """The samples of a continuing epoch whose outcomes arrive late (serving): the carried decisions of
    the epochs before and this epoch's measured ones, each matched to its request's outcome.

    A finished workflow's decisions all train. A workflow still in flight keeps its last decision for
    the next epoch (its request may still run, and the transition after it is not known); its earlier
    decisions train now, their GAE cut after them and bootstrapped from that decision's value. Every
    other decision has completed: a workflow's next step is decided only when its last request is
    done. A carried decision trains with the log-probability and value it was taken with, so PPO's
    ratio compares the current policy with the one that acted (one or more updates old)."""
    max_steps = sim.tasks.max_steps
    new = {FEATURE + k: torch.cat([s["feats"][k][s["keep"]] for s in steps]) for k in steps[0]["feats"]} | \
        {k: torch.cat([s[k][s["keep"]] for s in steps]) for k in DECISION_KEYS}
    if carry.decisions and set(carry.decisions) != set(new):
        raise ValueError("carry: the carried decisions do not fit this agent's features (another algorithm or "
                         "configuration)")
    dec = {k: torch.cat([carry.decisions[k], v]) if carry.decisions else v for k, v in new.items()}
    rows = ([carry.outcomes] if carry.outcomes else []) + outcomes
    columns = [k for k in rows[0] if k not in ("episode", "step")] if rows else []
    out = {k: torch.cat([r[k] for r in rows]) for k in ("episode", "step", *columns)} if rows else {}
    key = dec["episode"] * max_steps + dec["step"]
    out_key = out["episode"] * max_steps + out["step"] if rows else key[:0]
    finished = torch.isin(dec["episode"], out["episode"][out["done"]]) if rows else torch.zeros_like(key, dtype=torch.bool)
    workflow, at = torch.unique(dec["episode"], return_inverse=True)
    last = torch.full((len(workflow),), -1, dtype=torch.long, device=key.device).scatter_reduce_(
        0, at, dec["step"], "amax")
    carried = ~finished & (dec["step"] == last[at])
    train = ~carried
    if not bool(torch.isin(key[train], out_key).all()):
        raise RuntimeError("a decision that is not its workflow's last has no outcome")
    keep = carried.nonzero().squeeze(1)
    carry.decisions = {k: v.index_select(0, keep) for k, v in dec.items()}
    held = torch.isin(out_key, key[carried])
    carry.outcomes = {k: v[held] for k, v in out.items()} if rows else {}
    t = train.nonzero().squeeze(1)
    n = len(t)
    if n == 0:
        raise RuntimeError("a continuing epoch finished no decision to train on")
    episode, step = dec["episode"][t], dec["step"][t]
    outcome = _outcomes_of([out], episode, step, max_steps)
    reward_vec = outcome["reward"]
    rewards = (reward_vec @ weights.to(reward_vec.dtype)).float() + dec["bonus"][t].float()
    values, dones = dec["value"][t].float(), outcome["done"]
    cut_value = carry.decisions["value"].float()
    episode, step = torch.cat([episode, carry.decisions["episode"]]), torch.cat([step, carry.decisions["step"]])
    rewards, values = torch.cat([rewards, cut_value]), torch.cat([values, cut_value])
    dones = torch.cat([dones, torch.ones_like(cut_value, dtype=torch.bool)])
    ids, column = torch.unique(episode, return_inverse=True)
    adv, ret = episode_gae(rewards, values, dones, column, step, len(ids), max_steps, gamma, lam)
    adv, ret = adv[:n], ret[:n]
    workflows = n / float(sim.tasks.n_steps.to(reward_vec.dtype).mean())  # decisions x the mean workflow length
    stats = epoch_stats(rewards[:n], reward_vec, outcome, workflows)
    features = {k[len(FEATURE):]: v[t] for k, v in dec.items() if k.startswith(FEATURE)}
    return Rollout(features=features, actions=dec["action"][t], logp=dec["logp"][t], advantages=adv, returns=ret,
                   stats=stats, losses=(-reward_vec.sum(0) / n).cpu().numpy())


@torch.inference_mode()
def collect(sim: Simulator, agent: Agent, weights: torch.Tensor, episodes: int, seed: int,
            gamma: float, lam: float, continuing: bool = False, carry: Carry | None = None) -> Rollout:
    """Run until `episodes` episodes have finished (tasks and noise drawn from `seed`), then GAE per episode.

    Default: start afresh (`sim.reset(seed)`) and keep exactly the first `episodes` measured
    episodes. `continuing`: go on from the worlds' current state (`sim.reseed(seed)`), keep every
    decision of every measured workflow taken in this epoch, and stop once `episodes` workflows have
    finished in it. Workflows still in flight go on in the next epoch: under `contention` they
    bootstrap from the critic's value at their next decision; under `serving`, whose outcomes come
    when a request completes, each one's last decision moves to the next epoch in `carry` (needed
    there) and the decisions before it bootstrap from its value (`_carried_rollout`).

    Inference mode, not just no_grad: nothing here needs gradients and the simulator's small operations skip
    autograd's bookkeeping (a sixth of a serving rollout's time). The update reads the rollout through
    minibatch indexing, which makes ordinary tensors of it."""
    obs = sim.reseed(seed) if continuing else sim.reset(seed)
    gen = torch.Generator(sim.device).manual_seed(seed)
    measured = None if continuing else episodes
    steps: list[dict] = []
    outcomes: list[dict] = []
    finished = FinishCount.of_epoch(sim, episodes, continuing)
    while not finished.reached():
        feats = agent.features(sim, obs, weights)
        logits, value = agent(feats)
        logp_all, _ = masked_log_probs(logits)
        action = torch.multinomial(logp_all.exp(), 1, generator=gen).squeeze(1)  # a logit column
        server = chosen_servers(feats, action)
        decided = sim.episode.clone(), sim.step_idx.clone()  # whose decision each row makes
        obs, reward, done, info = sim.step(server)
        bonus = agent.reward_bonus(server)
        finished.add((done & sim.measured(info["episode"], measured)[0]).sum())
        steps.append({"feats": feats, "action": action, "logp": logp_all.gather(1, action[:, None]).squeeze(1),
                      "value": value, "bonus": bonus, "episode": decided[0], "step": decided[1],
                      "keep": sim.measured(decided[0], measured)[0]})
        outcomes.append({"reward": reward, "done": done, "episode": info["episode"], "step": info["step"]}
                        | {k: info[k] for k in PARTS})

    if continuing and sim.profile.delayed_outcomes:
        if carry is None:
            raise ValueError("a continuing rollout of a profile with delayed outcomes needs a Carry")
        return _carried_rollout(sim, weights, steps, outcomes, carry, gamma, lam)

    def stack(key):
        return torch.stack([s[key] for s in steps])

    keep = stack("keep")
    flat = keep.reshape(-1).nonzero().squeeze(1)
    episode, step = stack("episode").reshape(-1)[flat], stack("step").reshape(-1)[flat]
    outcome = _outcomes_of(outcomes, episode, step, sim.tasks.max_steps)

    def on_grid(x):  # the kept decisions' outcomes laid on the (T, B) grid of decisions, zero elsewhere
        return torch.zeros(keep.numel(), *x.shape[1:], dtype=x.dtype, device=x.device).index_put((flat,), x) \
            .reshape(*keep.shape, *x.shape[1:])

    reward_vec, done = on_grid(outcome["reward"]), on_grid(outcome["done"])  # (T, B, 3), (T, B)
    scalar = (reward_vec @ weights.to(reward_vec.dtype)).float() + stack("bonus").float()
    rewards, values, dones = scalar.reshape(-1)[flat], stack("value").float().reshape(-1)[flat], done.reshape(-1)[flat]
    n = len(flat)
    # per workflow: over `episodes` whole episodes, or (continuing) per decision x the mean workflow length
    workflows = n / float(sim.tasks.n_steps.to(reward_vec.dtype).mean()) if continuing else episodes
    stats = epoch_stats(rewards, outcome["reward"], outcome, workflows)
    if continuing:
        running = episode[~torch.isin(episode, episode[dones])].unique()
        cut_episode, cut_step, cut_value = _bootstrap(sim, agent, weights, running)
        episode, step = torch.cat([episode, cut_episode]), torch.cat([step, cut_step])
        rewards, values = torch.cat([rewards, cut_value]), torch.cat([values, cut_value])
        dones = torch.cat([dones, torch.ones_like(cut_episode, dtype=torch.bool)])
    ids, column = torch.unique(episode, return_inverse=True)
    adv, ret = episode_gae(rewards, values, dones, column, step, len(ids), sim.tasks.max_steps, gamma, lam)
    adv, ret = adv[:n], ret[:n]
    features = {k: torch.stack([s["feats"][k] for s in steps]).flatten(0, 1)[flat] for k in steps[0]["feats"]}
    kept = keep.to(reward_vec.dtype)
    losses = -(reward_vec * kept[..., None]).sum((0, 1)) / float(kept.sum())
    return Rollout(features=features, actions=stack("action").reshape(-1)[flat], logp=stack("logp").reshape(-1)[flat],
                   advantages=adv, returns=ret, stats=stats, losses=losses.cpu().numpy())
