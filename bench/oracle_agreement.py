"""Where does a learned scheduler deviate from the oracle? Per model type and step, how many of
its decisions match the oracle's, and which servers each one uses most.

    python bench/oracle_agreement.py --model results/TopoFreeRL/latest/checkpoints/final.pt

Both act on the same states: the test split in file order, one episode per task, the oracle's
action applied, so every decision compares like with like.
"""
from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

import torch

from edgesim.simulator import Simulator
from Heuristics.policies import OraclePolicy
from schedkit import paths
from schedkit.cli import load_or_exit
from schedkit.inference import policy_from_checkpoint
from schedkit.runs import CheckpointError, check_dataset, load_checkpoint
from total.common import agent_factory

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="a checkpoint of any learned scheduler")
    p.add_argument("--data", default=str(paths.DATA), help=f"data root (default: {paths.DATA})")
    p.add_argument("--region", nargs="+", default=["Server1_Trap"])
    p.add_argument("--split", default="test", choices=["train", "test"])
    args = p.parse_args(argv)
    ds = load_or_exit(args.data, args.region)
    try:
        state = load_checkpoint(args.model)
        check_dataset(state, ds, args.model)
        learned = policy_from_checkpoint(state, ds, agent_factory(state["config"]["algo"]), torch.device("cpu"))
    except CheckpointError as e:
        sys.exit(f"error: {e}")
    sim = Simulator(ds, batch_size=len(ds.tasks[args.split]), split=args.split, order="sequential", seed=0)
    oracle = OraclePolicy(sim)
    agree: collections.Counter[str] = collections.Counter()  # per model type
    total: collections.Counter[str] = collections.Counter()
    used: dict[str, collections.defaultdict[str, collections.Counter[int]]] = {
        "learned": collections.defaultdict(collections.Counter), "oracle": collections.defaultdict(collections.Counter)}
    obs = sim.reset()
    for _ in range(sim.tasks.max_steps):
        live = obs.step < obs.n_steps
        a, o = learned.act(sim, obs), oracle.act(sim, obs)
        for b in live.nonzero().squeeze(1).tolist():
            t = ds.type_names[int(obs.required_type[b])]
            total[t] += 1
            agree[t] += int(a[b] == o[b])
            used["learned"][t][int(a[b])] += 1
            used["oracle"][t][int(o[b])] += 1
        obs, _, done, _ = sim.step(o)
        if bool(done.all()):
            break
    print(f"decisions matching the oracle: {sum(agree.values())} of {sum(total.values())}")
    for t in total:
        top = {who: ", ".join(f"{ds.server_ids[s]} x{c}" for s, c in used[who][t].most_common(2)) for who in used}
        print(f"  {t:<8} {agree[t]:>4} of {total[t]:<4} learned: {top['learned']:<32} oracle: {top['oracle']}")
    return {"agree": dict(agree), "total": dict(total)}


if __name__ == "__main__":
    main()
