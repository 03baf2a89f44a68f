"""Train PF-PPO (PPO with per-server compute/cost inputs and a proportional-fairness reward bonus).

    python PFAPPO/train.py --data data1 --regions Server1_Trap --epochs 100

Same flags, run directory layout and checkpoints as TopoFreeRL/train.py (see the README).
"""
from __future__ import annotations

from pathlib import Path

from PFAPPO.agent import PFPPOAgent
from schedkit.trainer import train_main

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    train_main(HERE / "config.yaml", PFPPOAgent, __doc__)
