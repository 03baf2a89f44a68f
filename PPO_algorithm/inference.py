"""Evaluate a trained PPO checkpoint (deterministic, masked argmax); same outputs as
Heuristics/inference.py.

    python PPO_algorithm/inference.py --data data1 --region Server1_Trap \
        --model results/PPO/latest/checkpoints/final.pt
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PPO_algorithm.agent import PPOAgent  # noqa: E402
from schedkit.inference import inference_main  # noqa: E402

if __name__ == "__main__":
    inference_main(PPOAgent, __doc__)
