"""The serving study's validation setting (total/studies.yaml, serving.protocol), for benchmarks that measure
on it: its generated region, written to a temporary folder, and its simulator parameters and seeds."""
from __future__ import annotations

import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgesim.dataset import Dataset
from edgesim.serving import Serving
from schedkit.cli import load_or_exit
from total.reproduce import Margins, region_command, studies_or_exit
from total.reproduce_serving import REGION, Protocol

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class ValidationSetting:
    protocol: Protocol
    margins: Margins
    ds: Dataset              # the train split of it is evaluated
    params: Serving          # the validation load, the protocol's worlds, warm-up and SLOs
    seeds: list[int]         # the validation seed and the four after it, side by side (total/decide.py's)

    def record(self) -> dict:
        """What a benchmark's JSON record says of the setting."""
        p = self.protocol
        return {"region_seed": p.region_seed, "servers": p.region_servers, "load": p.validation_load,
                "eval_seeds": self.seeds, "worlds": p.worlds, "warmup": p.warmup, "episodes": p.episodes,
                "max_steps": p.max_steps}


def validation_setting() -> ValidationSetting:
    study = studies_or_exit()["serving"]
    protocol = Protocol.from_study(study)
    data = Path(tempfile.mkdtemp(prefix="serving_validation_"))
    subprocess.run([sys.executable, *region_command(data / REGION, protocol.region_seed, protocol.region_servers)],
                   cwd=ROOT, check=True, capture_output=True)
    params = Serving(load=protocol.validation_load, worlds=protocol.worlds, warmup=protocol.warmup,
                     slo_ttft_ms=protocol.slo_ttft_ms, slo_tpot_ms=protocol.slo_tpot_ms)
    seeds = list(range(protocol.validation_seed, protocol.validation_seed + 5))
    return ValidationSetting(protocol, study.margins, load_or_exit(data, [REGION]), params, seeds)
