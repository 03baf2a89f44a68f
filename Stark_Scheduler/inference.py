"""Evaluate a trained STARK checkpoint (argmax over its candidate servers); same outputs as
Heuristics/inference.py.

    python Stark_Scheduler/inference.py --data data1 --region Server1_Trap \
        --model results/Stark/latest/checkpoints/final.pt
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schedkit.inference import inference_main  # noqa: E402
from Stark_Scheduler.model import StarkAgent  # noqa: E402

if __name__ == "__main__":
    inference_main(StarkAgent, __doc__)
