"""Evaluate a trained PFAPPO checkpoint (deterministic, masked argmax); same outputs as
Heuristics/inference.py.

    python PFAPPO/inference.py --data data1 --region Server1_Trap \
        --model results/PFAPPO/latest/checkpoints/final.pt
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PFAPPO.agent import PFPPOAgent  # noqa: E402
from schedkit.inference import inference_main  # noqa: E402

if __name__ == "__main__":
    inference_main(PFPPOAgent, __doc__)
