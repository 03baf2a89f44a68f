"""Train TopoFreeRL (PPO with spatiotemporal state, SE-gated actor, telemetry prior and DWA).

    python TopoFreeRL/train.py --data data1 --regions Server1_Trap --epochs 100 --device cuda

Writes results/TopoFreeRL/<region>_seed<S>_<time>/ (config.yaml, metrics.csv, checkpoints/) and
points results/TopoFreeRL/latest at it. --resume RUN_DIR continues an interrupted run.
"""
from __future__ import annotations

from pathlib import Path

from schedkit.trainer import train_main
from TopoFreeRL.agent import TopoFreeAgent

HERE = Path(__file__).resolve().parent

if __name__ == "__main__":
    train_main(HERE / "config.yaml", TopoFreeAgent, __doc__)
