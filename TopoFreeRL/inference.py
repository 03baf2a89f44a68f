"""Evaluate a trained TopoFreeRL checkpoint on a dataset split (deterministic, masked argmax).

    python TopoFreeRL/inference.py --data data1 --region Server1_Trap \
        --model results/TopoFreeRL/latest/checkpoints/final.pt --episodes 500

Writes episodes.csv and summary.json (same columns and keys as Heuristics/inference.py) to --out,
by default <run dir>/eval_<split>_seed<seed>/.
"""
from __future__ import annotations

from schedkit.inference import inference_main
from TopoFreeRL.agent import TopoFreeAgent

if __name__ == "__main__":
    inference_main(TopoFreeAgent, __doc__)
