"""Train PF-PPO (PPO with per-server compute/cost inputs and a proportional-fairness reward bonus).

    python PFAPPO/train.py --data data1 --regions Server1_Trap --epochs 100

Same flags, run directory layout and checkpoints as TopoFreeRL/train.py (see the README).
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from PFAPPO.agent import PFPPOAgent  # noqa: E402
from schedkit.trainer import train_main  # noqa: E402

if __name__ == "__main__":
    train_main(HERE / "config.yaml", PFPPOAgent, __doc__)
