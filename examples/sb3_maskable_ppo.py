"""sb3-contrib's MaskablePPO on the simulator, evaluated with the project's protocol.

    pip install -r requirements-rl-libs.txt
    python examples/sb3_maskable_ppo.py                      # 100,000 steps, seed 0, default dataset
    python examples/sb3_maskable_ppo.py --num-envs 16        # 16 episodes per step, as one SB3 VecEnv

SB3's default MaskablePPO settings ("MultiInputPolicy") on `gym.make("EdgeMoE-v0")`: the masks come
from the env's `action_masks()`. With `--num-envs N > 1` the batched simulator steps N episodes at
once through `edgesim.sb3_vec_env.EdgeMoESB3VecEnv`. Afterwards the trained policy is evaluated
deterministically on the test split with `schedkit.gym_eval.evaluate_policy` (every scheduler's
protocol: same tasks, same draws) and printed beside the oracle. Writes OUT/model.zip,
OUT/episodes.csv, OUT/summary.json and OUT/config.json.
"""
from __future__ import annotations

import gymnasium as gym
import torch
from sb3_contrib import MaskablePPO
from shared import dataset, evaluate_and_report, output_folder, parser
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecMonitor
from tqdm import tqdm

import edgesim  # noqa: F401  (registers EdgeMoE-v0)
from edgesim.gym_wrappers import EdgeMoEVectorEnv
from edgesim.sb3_vec_env import EdgeMoESB3VecEnv


class ProgressBar(BaseCallback):
    """A tqdm bar over the environment steps (SB3's own bar needs the `rich` package)."""

    def __init__(self, total: int, enabled: bool):
        super().__init__()
        self.bar = tqdm(total=total, unit="step", desc="MaskablePPO", disable=not enabled)

    def _on_step(self) -> bool:
        self.bar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.bar.close()


def main(argv: list[str] | None = None) -> dict:
    p = parser(__doc__, "sb3_maskable_ppo")
    p.add_argument("--timesteps", type=int, default=100_000, help="environment steps (default 100,000)")
    p.add_argument("--num-envs", type=int, default=1, help="episodes stepped at once (default 1)")
    p.add_argument("--n-steps", type=int, default=2048,
                   help="steps per env per rollout (default 2048, SB3's; a rollout is never cut short)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    out = output_folder(args, "sb3_maskable_ppo", "model.zip")
    out.mkdir(parents=True, exist_ok=True)

    ds = dataset(args)
    if args.num_envs == 1:
        env = gym.make("EdgeMoE-v0", data=ds)  # SB3 adds its Monitor and DummyVecEnv
    else:
        env = VecMonitor(EdgeMoESB3VecEnv(EdgeMoEVectorEnv(ds, args.num_envs)))
    model = MaskablePPO("MultiInputPolicy", env, n_steps=args.n_steps, seed=args.seed, device="cpu", verbose=0)
    model.set_logger(Logger(None, []))  # SB3's default logger makes an SB3-<date> folder in the temp dir for every run
    model.learn(args.timesteps, callback=ProgressBar(args.timesteps, not args.no_progress))
    model.save(out / "model.zip")

    def predict(obs, mask):
        return model.predict(obs, action_masks=mask, deterministic=True)[0]

    return evaluate_and_report(args, ds, out, "sb3_maskable_ppo", "MaskablePPO", predict)


if __name__ == "__main__":
    main()
