"""Evaluate a trained PPO checkpoint (deterministic, masked argmax); same outputs as
Heuristics/inference.py.

    python PPO_algorithm/inference.py --data data1 --region Server1_Trap \
        --model results/PPO/latest/checkpoints/final.pt
"""
from __future__ import annotations

from PPO_algorithm.agent import PPOAgent
from schedkit.inference import inference_main

if __name__ == "__main__":
    inference_main(PPOAgent, __doc__)
