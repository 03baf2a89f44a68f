"""How often TopoFreeRL's shortlist keeps the exact one-step best server, and what missing it costs.

    python bench/shortlist_recall.py                       # 500 and 10,000 servers, K = 8, 16, 32, 64
    python bench/shortlist_recall.py --sizes 500 --ks 32 --json

For each decision of `--episodes` train-split episodes played with random valid actions (paper
profile, seed 0), the exact one-step value of every valid server is the expected weighted reward the
oracle and lookahead use (`Heuristics.policies.expected_reward`, evaluation weights). Reported: the
share of decisions whose best server is in the shortlist (TopoFreeRL/shortlist.py, same weights), and
the mean and largest regret, best value minus the best shortlisted value (0 when it is kept).
A step's reward is about -0.5, so a regret of 1e-3 is 0.2% of one step.
"""
from __future__ import annotations

import argparse
import json

import torch

from bench.scale import locate
from edgesim.dataset import Dataset
from edgesim.expectation import ChannelTable
from edgesim.physics import EVAL_WEIGHTS
from edgesim.registry import make_simulator
from Heuristics.policies import expected_reward
from TopoFreeRL.shortlist import Shortlist


def recall(ds: Dataset, k: int, episodes: int) -> dict:
    """Best-kept share and regrets over every decision of `episodes` train-split episodes (one per row)."""
    servers = ds.n_servers
    sim = make_simulator(ds, episodes, "train", "random", 0, "cpu", "paper")
    shortlist, table = Shortlist(ds, k, torch.device("cpu")), ChannelTable.shared("cpu")
    gen = torch.Generator().manual_seed(0)
    obs = sim.reset(0)
    hits, regrets = [], []
    for _ in range(sim.tasks.max_steps):
        lon, lat, region = sim.hop_source()
        mask = sim.valid_mask()
        value = expected_reward(sim, table, EVAL_WEIGHTS, (lon[:, None], lat[:, None], region[:, None]),
                                obs.prev_server[:, None], obs.tokens[:, None], obs.required_type[:, None],
                                torch.arange(servers)[None]).masked_fill(~mask, -torch.inf)
        short = shortlist(sim, obs, torch.tensor(EVAL_WEIGHTS), mask, None)
        hits.append((short == value.argmax(1, keepdim=True)).any(1))
        regrets.append(value.amax(1) - value.gather(1, short).amax(1))
        obs, *_ = sim.step(sim.sample_valid(gen))
    hit, regret = torch.cat(hits).float(), torch.cat(regrets)
    return {"servers": servers, "k": k, "decisions": len(hit), "best_kept": float(hit.mean()),
            "mean_regret": float(regret.mean()), "max_regret": float(regret.max())}


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[500, 10000], help="server counts (default 500 10000)")
    p.add_argument("--ks", type=int, nargs="+", default=[8, 16, 32, 64], help="shortlist sizes (default 8 16 32 64)")
    p.add_argument("--episodes", type=int, default=200, help="episodes played, all their decisions (default 200)")
    p.add_argument("--json", action="store_true", help="print one JSON list instead of the table")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    rows = [recall(locate(n)[2], k, args.episodes) for n in args.sizes for k in args.ks]
    if args.json:
        print(json.dumps(rows))
        return rows
    print(f"{'servers':>8} {'K':>4} {'decisions':>9} {'best kept':>10} {'mean regret':>12} {'max regret':>11}")
    for r in rows:
        print(f"{r['servers']:>8,} {r['k']:>4} {r['decisions']:>9} {r['best_kept']:>10.3f} "
              f"{r['mean_regret']:>12.5f} {r['max_regret']:>11.4f}")
    return rows


if __name__ == "__main__":
    main()
