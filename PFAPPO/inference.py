"""Evaluate a trained PFAPPO checkpoint (deterministic, masked argmax); same outputs as
Heuristics/inference.py.

    python PFAPPO/inference.py --data data1 --region Server1_Trap \
        --model results/PFAPPO/latest/checkpoints/final.pt
"""
from __future__ import annotations

from PFAPPO.agent import PFPPOAgent
from schedkit.inference import inference_main

if __name__ == "__main__":
    inference_main(PFPPOAgent, __doc__)
