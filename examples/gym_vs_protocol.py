"""Why evaluate with the protocol: a trained CleanRL-example agent scored three ways on the test split.

    python examples/cleanrl_ppo.py --seed 1          # trains results/examples/cleanrl_ppo_seed1/agent.pt
    python examples/gym_vs_protocol.py               # that agent; env seeds 0 1 2

1. `schedkit.gym_eval.evaluate_policy`: every test task once, the protocol's draws;
2. episodes played through `gym.make("EdgeMoE-v0", split="test")`, tasks drawn at random (the default);
3. the same with `order="sequential"`: every test task once, the env's own channel draws.
Prints the mean reward of each and the difference to the protocol's.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from cleanrl_ppo import MASKED, Agent

from edgesim.gym_wrappers import resolve_dataset
from schedkit.gym_eval import evaluate_policy
from schedkit.paths import RESULTS


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agent", type=Path, default=RESULTS / "examples" / "cleanrl_ppo_seed1" / "agent.pt",
                   help="agent.pt of examples/cleanrl_ppo.py (default: its seed-1 run)")
    p.add_argument("--data", default="data1")
    p.add_argument("--region", nargs="+", default=["Server1_Trap"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="env seeds of the Gym runs")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if not args.agent.exists():
        raise SystemExit(f"error: {args.agent} not found; train it with python examples/cleanrl_ppo.py --seed 1")
    ds = resolve_dataset(args.data, args.region)
    state = torch.load(args.agent, weights_only=True)  # tensors only: no code runs
    agent = Agent(state["actor.0.weight"].shape[1], ds.n_servers)
    agent.load_state_dict(state)

    @torch.no_grad()
    def predict(obs, mask):
        return agent.actor(torch.tensor(obs["state"])).masked_fill(~torch.tensor(mask), MASKED).argmax(-1).numpy()

    protocol = evaluate_policy(predict, data=ds, progress=False)
    n = protocol["episodes"]
    out = {"protocol": protocol["mean_reward"]}
    print(f"protocol ({n} episodes): {out['protocol']:.4f}")
    for order in ("random", "sequential"):
        for seed in args.seeds:
            env = gym.make("EdgeMoE-v0", data=ds, split="test", order=order)
            returns = []
            for episode in range(n):
                obs, _ = env.reset(seed=seed if episode == 0 else None)
                total, done = 0.0, False
                while not done:
                    action = predict({k: v[None] for k, v in obs.items()}, obs["action_mask"][None].astype(bool))[0]
                    obs, reward, done, _, _ = env.step(int(action))
                    total += reward
                returns.append(total)
            out[f"{order}_seed{seed}"] = mean = float(np.mean(returns))
            print(f"gym, {order} order, env seed {seed}: {mean:.4f} "
                  f"({100 * (mean - out['protocol']) / abs(out['protocol']):+.2f}%)")
    return out


if __name__ == "__main__":
    main()
