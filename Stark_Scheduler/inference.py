"""Evaluate a trained STARK checkpoint (argmax over its candidate servers); same outputs as
Heuristics/inference.py.

    python Stark_Scheduler/inference.py --data data1 --region Server1_Trap \
        --model results/STARK/latest/checkpoints/final.pt
"""
from __future__ import annotations

from schedkit.inference import inference_main
from Stark_Scheduler.model import StarkAgent

if __name__ == "__main__":
    inference_main(StarkAgent, __doc__)
