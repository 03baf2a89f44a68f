"""Train standard PPO (7-dim state, tanh MLPs, no per-server input).

    python PPO_algorithm/train.py --data data1 --regions Server1_Trap --epochs 100

Same flags, run directory layout and checkpoints as TopoFreeRL/train.py (see the README).
"""
from __future__ import annotations

from pathlib import Path

from PPO_algorithm.agent import PPOAgent
from schedkit.trainer import train_main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    train_main(HERE / "config.yaml", PPOAgent, __doc__)
