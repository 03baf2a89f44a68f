"""A CleanRL-style single-file PPO with invalid-action masking on the simulator's Gymnasium vector env.

    pip install -r requirements-rl-libs.txt          # only for the TensorBoard events; the rest is core
    python examples/cleanrl_ppo.py                   # 100,000 steps, 8 envs, seed 0
    tensorboard --logdir results/examples            # charts/episodic_return, losses/*, ...

Read it top to bottom like CleanRL's ppo.py: `gym.make_vec("EdgeMoE-v0", ...)` (the batched
simulator behind Gymnasium's VectorEnv API, same-step autoreset) wrapped in Gymnasium's
RecordEpisodeStatistics; an MLP actor-critic on the normalised state whose logits are masked to the
valid servers (obs["action_mask"]); GAE; clipped PPO updates. Hyper-parameters are CleanRL's ppo.py
defaults except `--num-envs 8`. Then a deterministic (argmax) evaluation on the test split with
`schedkit.gym_eval.evaluate_policy`, printed beside the oracle; OUT gets agent.pt, episodes.csv,
summary.json, config.json and (with tensorboard installed) tensorboard/.
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from shared import dataset, evaluate_and_report, output_folder, parser
from torch import nn
from torch.distributions import Categorical
from tqdm import tqdm

import edgesim  # noqa: F401  (registers EdgeMoE-v0)

MASKED = -1e8


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = parser(__doc__, "cleanrl_ppo")
    p.add_argument("--total-timesteps", type=int, default=100_000)
    p.add_argument("--learning-rate", type=float, default=2.5e-4)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=128, help="steps per env per rollout")
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--gae-lambda", type=float, default=0.95)
    p.add_argument("--num-minibatches", type=int, default=4)
    p.add_argument("--update-epochs", type=int, default=4)
    p.add_argument("--clip-coef", type=float, default=0.2)
    p.add_argument("--ent-coef", type=float, default=0.01)
    p.add_argument("--vf-coef", type=float, default=0.5)
    p.add_argument("--max-grad-norm", type=float, default=0.5)
    return p.parse_args(argv)


def layer(i: int, o: int, std: float = np.sqrt(2)) -> nn.Linear:
    lin = nn.Linear(i, o)
    nn.init.orthogonal_(lin.weight, std)
    nn.init.constant_(lin.bias, 0.0)
    return lin


class Agent(nn.Module):
    def __init__(self, state_dim: int, n_servers: int):
        super().__init__()
        self.critic = nn.Sequential(layer(state_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, 1, 1.0))
        self.actor = nn.Sequential(layer(state_dim, 64), nn.Tanh(), layer(64, 64), nn.Tanh(), layer(64, n_servers, 0.01))

    def get_value(self, state: torch.Tensor) -> torch.Tensor:
        return self.critic(state)

    def get_action_and_value(self, state, mask, action=None):
        logits = self.actor(state).masked_fill(~mask, MASKED)  # invalid servers are never sampled
        probs = Categorical(logits=logits)
        if action is None:
            action = probs.sample()
        return action, probs.log_prob(action), probs.entropy(), self.critic(state)


def tensorboard_writer(folder: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional: requirements-rl-libs.txt
        return None
    return SummaryWriter(str(folder))


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    out = output_folder(args, "cleanrl_ppo", "agent.pt")
    batch_size = args.num_envs * args.num_steps
    minibatch_size = batch_size // args.num_minibatches
    iterations = args.total_timesteps // batch_size
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.set_num_threads(1)

    ds = dataset(args)
    envs = gym.wrappers.vector.RecordEpisodeStatistics(
        gym.make_vec("EdgeMoE-v0", num_envs=args.num_envs, vectorization_mode="vector_entry_point", data=ds))
    state_dim = envs.single_observation_space["state"].shape[0]
    agent = Agent(state_dim, ds.n_servers)
    optimizer = torch.optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5)
    writer = tensorboard_writer(out / "tensorboard")

    states = torch.zeros((args.num_steps, args.num_envs, state_dim))
    masks = torch.zeros((args.num_steps, args.num_envs, ds.n_servers), dtype=torch.bool)
    actions = torch.zeros((args.num_steps, args.num_envs), dtype=torch.long)
    logprobs, rewards, dones, values = (torch.zeros((args.num_steps, args.num_envs)) for _ in range(4))

    global_step, start = 0, time.time()
    obs, _ = envs.reset(seed=args.seed)
    next_state, next_mask = torch.tensor(obs["state"]), torch.tensor(obs["action_mask"], dtype=torch.bool)
    next_done = torch.zeros(args.num_envs)
    for iteration in tqdm(range(1, iterations + 1), desc="PPO", unit="iter", disable=args.no_progress):
        for g in optimizer.param_groups:  # linear annealing
            g["lr"] = (1.0 - (iteration - 1.0) / iterations) * args.learning_rate
        for step in range(args.num_steps):
            global_step += args.num_envs
            states[step], masks[step], dones[step] = next_state, next_mask, next_done
            with torch.no_grad():
                action, logprob, _, value = agent.get_action_and_value(next_state, next_mask)
            values[step], actions[step], logprobs[step] = value.flatten(), action, logprob
            obs, reward, terminated, truncated, infos = envs.step(action.numpy())
            rewards[step] = torch.tensor(reward, dtype=torch.float32)
            next_state, next_mask = torch.tensor(obs["state"]), torch.tensor(obs["action_mask"], dtype=torch.bool)
            next_done = torch.tensor(terminated | truncated, dtype=torch.float32)
            if "episode" in infos and writer is not None:
                ended = infos["_episode"]
                writer.add_scalar("charts/episodic_return", infos["episode"]["r"][ended].mean(), global_step)
                writer.add_scalar("charts/episodic_length", infos["episode"]["l"][ended].mean(), global_step)

        with torch.no_grad():  # GAE; same-step autoreset: a done step's successor is a new episode
            next_value = agent.get_value(next_state).flatten()
            advantages = torch.zeros_like(rewards)
            lastgaelam = torch.zeros(args.num_envs)
            for t in reversed(range(args.num_steps)):
                nextnonterminal = 1.0 - (next_done if t == args.num_steps - 1 else dones[t + 1])
                nextvalues = next_value if t == args.num_steps - 1 else values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        b_states, b_masks = states.reshape(batch_size, state_dim), masks.reshape(batch_size, ds.n_servers)
        b_actions, b_logprobs = actions.reshape(-1), logprobs.reshape(-1)
        b_advantages, b_returns, b_values = advantages.reshape(-1), returns.reshape(-1), values.reshape(-1)
        b_inds = np.arange(batch_size)
        clipfracs = []
        for _ in range(args.update_epochs):
            rng.shuffle(b_inds)
            for lo in range(0, batch_size, minibatch_size):
                mb = b_inds[lo:lo + minibatch_size]
                _, newlogprob, entropy, newvalue = agent.get_action_and_value(b_states[mb], b_masks[mb], b_actions[mb])
                logratio = newlogprob - b_logprobs[mb]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs.append(((ratio - 1.0).abs() > args.clip_coef).float().mean().item())
                mb_adv = b_advantages[mb]
                mb_adv = (mb_adv - mb_adv.mean()) / (mb_adv.std() + 1e-8)
                pg_loss = torch.max(-mb_adv * ratio,
                                    -mb_adv * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)).mean()
                newvalue = newvalue.view(-1)
                v_clipped = b_values[mb] + torch.clamp(newvalue - b_values[mb], -args.clip_coef, args.clip_coef)
                v_loss = 0.5 * torch.max((newvalue - b_returns[mb]) ** 2, (v_clipped - b_returns[mb]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

        if writer is not None:
            writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
            writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
            writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
            writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
            writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
            writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
            writer.add_scalar("charts/SPS", global_step / (time.time() - start), global_step)
    envs.close()
    if writer is not None:
        writer.close()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(agent.state_dict(), out / "agent.pt")

    @torch.no_grad()
    def predict(obs, mask):  # deterministic: the most likely valid server
        return agent.actor(torch.tensor(obs["state"])).masked_fill(~torch.tensor(mask), MASKED).argmax(1).numpy()

    return evaluate_and_report(args, ds, out, "cleanrl_ppo", "CleanRL PPO", predict)


if __name__ == "__main__":
    main()
