"""Write `published_inputs.npz`: what each learned agent computes with its published inputs.

Run against a checkout of the code *before* the `live_load` key and the ablation switches existed
(commit 8499d03), from that checkout's root:

    python /path/to/tests/data/make_published_inputs.py /path/to/tests/data/published_inputs.npz

For every (algorithm, actor, profile) it stores the SHA-256 of the initial weights (torch seed 0;
`weights_digest`) and the features, logits and values of 12 decisions on data1
(4 rows, seed 5), so `tests/algorithms/test_live_load.py` can check the current code against
them within float32 round-off instead of by a digest that one last-bit difference breaks.
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path.cwd()))

from edgesim.contention import Contention

try:
    from edgesim.registry import make_simulator  # noqa: E402
except ImportError:  # the checkout of 8499d03, before simulator profiles were objects
    from edgesim.contention import make_simulator  # noqa: E402
from env import load_dataset  # noqa: E402
from PFAPPO.agent import PFPPOAgent  # noqa: E402
from PPO_algorithm.agent import PPOAgent  # noqa: E402
from schedkit.config import resolve  # noqa: E402
from Stark_Scheduler.model import StarkAgent  # noqa: E402
from TopoFreeRL.agent import TopoFreeAgent  # noqa: E402

AGENTS = {"TopoFreeRL": TopoFreeAgent, "PPO_algorithm": PPOAgent, "PFAPPO": PFPPOAgent, "Stark_Scheduler": StarkAgent}
CASES = [("TopoFreeRL", "dense"), ("TopoFreeRL", "per_server"), ("PPO_algorithm", None), ("PFAPPO", None),
         ("Stark_Scheduler", None)]
WEIGHTS = torch.tensor([0.45, 0.4, 0.15])
DECISIONS = 12


def orthogonal_heads(state: dict[str, torch.Tensor]) -> list[str]:
    """The dense actors' output heads (`nn.init.orthogonal_`, more than one row). Their init runs a QR
    decomposition whose last bits depend on the CPU's LAPACK kernels, so they are digested by shape and
    checked by value through the logits."""
    return [k for k, v in state.items() if k.endswith("head.weight") and v.shape[0] > 1]


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 of the initial weights: every tensor's bytes (initialisation is exact on any CPU), the
    orthogonal heads' shapes."""
    heads = set(orthogonal_heads(state))
    h = hashlib.sha256()
    for k, v in state.items():
        h.update(k.encode())
        h.update(bytes(str(tuple(v.shape)), "ascii") if k in heads else v.detach().contiguous().numpy().tobytes())
    return h.hexdigest()


def record(ds, folder: str, actor: str | None, profile: str, out: dict, extra_sets: tuple[str, ...] = ()) -> None:
    sets = ([f"actor={actor}"] if actor else []) + list(extra_sets)
    cfg = resolve(Path(folder) / "config.yaml", sets=sets, flags={"profile": profile})
    torch.manual_seed(0)
    agent = AGENTS[folder](ds, cfg, torch.device("cpu"))
    key = f"{folder}|{actor}|{profile}"
    out[f"{key}|weights_sha256"] = np.array(weights_digest(agent.state_dict()))
    sim = make_simulator(ds, 4, "train", "random", 5, "cpu", profile,  # positional: the keyword was renamed
                         Contention(arrival_rate=8.0, worlds=4, max_in_flight=8) if profile == "contention" else None)
    obs = sim.reset(5)
    for i in range(DECISIONS):
        f = agent.features(sim, obs, WEIGHTS)
        with torch.no_grad():
            logits, value = agent(f)
        for name, x in [*((f"feature:{k}", f[k]) for k in sorted(f)), ("logits", logits), ("value", value)]:
            out[f"{key}|{i}|{name}"] = x.detach().numpy()
        obs, *_ = sim.step(sim.valid_mask().float().argmax(1) if i % 2 else logits.argmax(1))


def main(path: str) -> None:
    torch.set_num_threads(1)
    ds = load_dataset("data1", ["Server1_Trap"])
    out: dict = {}
    for folder, actor in CASES:
        for profile in ("paper", "contention"):
            record(ds, folder, actor, profile, out)
    np.savez_compressed(path, **out)
    print(f"{path}: {len(out)} arrays")


if __name__ == "__main__":
    main(sys.argv[1])
