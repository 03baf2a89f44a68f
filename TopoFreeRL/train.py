"""Train TopoFreeRL (PPO with spatiotemporal state, SE-gated actor, telemetry prior and DWA).

    python TopoFreeRL/train.py --data data1 --regions Server1_Trap --epochs 100 --device cuda

Writes results/TopoFreeRL/<region>_seed<S>_<time>/ (config.yaml, metrics.csv, checkpoints/) and
points results/TopoFreeRL/latest at it. --resume RUN_DIR continues an interrupted run.
"""
from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from schedkit.trainer import train_main  # noqa: E402
from TopoFreeRL.agent import TopoFreeAgent  # noqa: E402

if __name__ == "__main__":
    train_main(HERE / "config.yaml", TopoFreeAgent, __doc__)
