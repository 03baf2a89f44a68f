"""TopoFreeRL's edge-cloud MoE simulator: the public face of the `edgesim` package.

    from env import load_dataset, Simulator
    ds = load_dataset("data1", ["Server1_Trap"])
    sim = Simulator(ds, batch_size=256, split="train", seed=0)         # device="cuda" works too
    obs = sim.reset()
    obs, reward, done, info = sim.step(actions)    # reward: (B, 3) = latency, cost, switch terms

`EdgeMoEEnv` / `EdgeMoEVectorEnv` wrap it for Gymnasium-based RL libraries.
"""
from edgesim.dataset import Dataset, DatasetError, TaskTable, cost_multiplier, load_dataset
from edgesim.gym_wrappers import EdgeMoEEnv, EdgeMoEVectorEnv
from edgesim.physics import EVAL_WEIGHTS
from edgesim.registry import PROFILES, get_profile, make_simulator
from edgesim.simulator import Observation, Simulator, Topology

__all__ = ["Dataset", "DatasetError", "TaskTable", "cost_multiplier", "load_dataset", "Simulator", "Topology",
           "Observation", "PROFILES", "get_profile", "make_simulator", "EVAL_WEIGHTS", "EdgeMoEEnv", "EdgeMoEVectorEnv"]
