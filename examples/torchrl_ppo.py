"""TorchRL PPO with a masked categorical policy on the simulator's Gymnasium vector env.

    pip install -r requirements-rl-libs.txt
    python examples/torchrl_ppo.py                   # 100,000 steps, 8 envs, seed 0

TorchRL's own pieces, as in its PPO tutorial: `GymWrapper` around `EdgeMoEVectorEnv` (the batched
simulator; autoreset DISABLED, the mode TorchRL prefers: its collector resets finished envs through
`reset_mask`), a `ProbabilisticActor` whose `MaskedCategorical` samples only valid servers (the
observation's "action_mask"), a `ValueOperator`, `Collector`, `GAE` and `ClipPPOLoss`.
Hyper-parameters follow CleanRL's ppo.py defaults (8 envs x 128 steps a batch, 4 epochs of 4
minibatches, lr 2.5e-4). Then a deterministic (argmax) evaluation on the test split with
`schedkit.gym_eval.evaluate_policy`, printed beside the oracle; OUT gets actor.pt, episodes.csv,
summary.json and config.json.
"""
from __future__ import annotations

import torch
from gymnasium.vector import AutoresetMode
from shared import dataset, evaluate_and_report, output_folder, parser
from tensordict.nn import TensorDictModule
from torch import nn
from torchrl.collectors import Collector
from torchrl.data import LazyTensorStorage, ReplayBuffer
from torchrl.data.replay_buffers.samplers import SamplerWithoutReplacement
from torchrl.envs import GymWrapper
from torchrl.modules import MaskedCategorical, ProbabilisticActor, ValueOperator
from torchrl.objectives import ClipPPOLoss
from torchrl.objectives.value import GAE
from tqdm import tqdm

from edgesim.gym_wrappers import EdgeMoEVectorEnv


class MaskedLogits(nn.Module):
    """Logits of every server and the bool mask MaskedCategorical reads (the env's mask is int8)."""

    def __init__(self, state_dim: int, n_servers: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(state_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                 nn.Linear(64, n_servers))

    def forward(self, state: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(state), mask.bool()


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "torchrl_ppo")
    p.add_argument("--total-timesteps", type=int, default=100_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--num-steps", type=int, default=128, help="steps per env per batch")
    p.add_argument("--learning-rate", type=float, default=2.5e-4)
    p.add_argument("--update-epochs", type=int, default=4)
    p.add_argument("--num-minibatches", type=int, default=4)
    args = p.parse_args(argv)
    out = output_folder(args, "torchrl_ppo", "actor.pt")
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    ds = dataset(args)
    env = GymWrapper(EdgeMoEVectorEnv(ds, args.num_envs, autoreset_mode=AutoresetMode.DISABLED),
                     categorical_action_encoding=True)
    env.set_seed(args.seed)
    state_dim = env.observation_spec["observation"].shape[-1]
    logits = MaskedLogits(state_dim, ds.n_servers)
    actor = ProbabilisticActor(TensorDictModule(logits, in_keys=["observation", "action_mask"],
                                                out_keys=["logits", "mask"]),
                               in_keys=["logits", "mask"], distribution_class=MaskedCategorical,
                               spec=env.action_spec, return_log_prob=True)
    critic = ValueOperator(nn.Sequential(nn.Linear(state_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                         nn.Linear(64, 1)), in_keys=["observation"])
    frames = args.num_envs * args.num_steps
    collector = Collector(env, actor, frames_per_batch=frames, total_frames=args.total_timesteps // frames * frames,
                          auto_register_policy_transforms=False)  # the policy keeps no recurrent state
    advantage = GAE(gamma=0.99, lmbda=0.95, value_network=critic, average_gae=True)
    loss_fn = ClipPPOLoss(actor, critic, clip_epsilon=0.2, entropy_coeff=0.01, critic_coeff=0.5)
    optimizer = torch.optim.Adam(loss_fn.parameters(), lr=args.learning_rate, eps=1e-5)
    buffer = ReplayBuffer(storage=LazyTensorStorage(frames), sampler=SamplerWithoutReplacement(),
                          batch_size=frames // args.num_minibatches)

    bar = tqdm(total=collector.total_frames, unit="step", desc="TorchRL PPO", disable=args.no_progress)
    for batch in collector:
        for _ in range(args.update_epochs):
            with torch.no_grad():
                advantage(batch)
            buffer.extend(batch.reshape(-1))
            for _ in range(args.num_minibatches):
                losses = loss_fn(buffer.sample())
                loss = losses["loss_objective"] + losses["loss_critic"] + losses["loss_entropy"]
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(loss_fn.parameters(), 0.5)
                optimizer.step()
        collector.update_policy_weights_()
        bar.update(batch.numel())
    bar.close()
    collector.shutdown()
    out.mkdir(parents=True, exist_ok=True)
    torch.save(logits.state_dict(), out / "actor.pt")

    @torch.no_grad()
    def predict(obs, mask):  # deterministic: the most likely valid server
        scores, _ = logits(torch.tensor(obs["state"]), torch.tensor(mask))
        return scores.masked_fill(~torch.tensor(mask), -torch.inf).argmax(1).numpy()

    return evaluate_and_report(args, ds, out, "torchrl_ppo", "TorchRL PPO", predict)


if __name__ == "__main__":
    main()
