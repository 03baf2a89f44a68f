"""Train the STARK-style transformer scheduler by imitation of the greedy expert.

    python Stark_Scheduler/train.py --data data1 --regions Server1_Trap --epochs 100

Each epoch the vectorised simulator plays `episodes` training tasks with the greedy expert. Every
decision becomes a labelled example (the expert's server among the candidates), and the model
trains on them with masked cross-entropy (AdamW, cosine learning-rate schedule over epochs).
Model selection uses a held-out slice of the *train* split (`val_fraction`, the last tasks in
file order), never the test split, every `val_every`-th epoch and the last. final.pt holds the
epoch with the best validation reward (each validation, and the expert's validation labels, bounded by
`val_max_steps`; an epoch that leaves workflows unfinished there is selected only when every validated
epoch does, then the fewest).
metrics.csv logs loss, accuracy, validation accuracy, latency and reward per epoch. Same flags,
run directory and --resume as TopoFreeRL/train.py. Under a profile with queues (`--profile contention`
or `serving`) the expert is greedy_queue (greedy plus each server's live queue wait), since the
load-blind rule ignores queues.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from edgesim.dataset import Dataset
from edgesim.physics import EVAL_WEIGHTS
from edgesim.simulator import Simulator
from Heuristics.policies import GreedyPolicy, QueueGreedyPolicy
from schedkit.checkpoints import CheckpointError, restore_optimizer, restore_weights
from schedkit.cli import resolve_device
from schedkit.evaluation import run_evaluation, unfinished
from schedkit.inference import GreedyAgentPolicy
from schedkit.paths import final_checkpoint, metrics_file
from schedkit.rollout import FinishCount
from schedkit.runs import MetricsLog, dataset_identity, save_checkpoint
from schedkit.simulators import config_params, config_profile, profile_simulator, start_worlds, train_params
from schedkit.trainer import AgentFactory, epoch_seed, run_epochs, train_main
from Stark_Scheduler.model import StarkAgent

HERE = Path(__file__).resolve().parent

WEIGHTS = torch.tensor(EVAL_WEIGHTS)


@torch.inference_mode()
def demonstrations(sim: Simulator, agent: StarkAgent, expert: GreedyPolicy, episodes: int, seed: int,
                   continuing: bool = False, max_steps: int | None = None):
    """Features and expert labels of every decision of `episodes` expert-played episodes (`continuing`:
    every measured decision until `episodes` workflows finish, the worlds going on from where the
    last epoch left them, as in `schedkit.rollout.collect`). `max_steps` ends the run there: the
    validation labels, bounded as each validation is (under serving the expert would otherwise play on
    until the last held-out workflow finishes behind the ones arriving after it, minutes a run).

    Returns (features, labels, coverage): labels index the candidate list; decisions whose expert
    choice is not a candidate are dropped and counted in `coverage` (the share kept)."""
    obs = sim.reseed(seed) if continuing else sim.reset(seed)
    feats, labels, in_set = [], [], []
    finished = FinishCount.of_epoch(sim, episodes, continuing)
    while not finished.reached() and (max_steps is None or finished.steps < max_steps):
        f = agent.features(sim, obs, WEIGHTS)
        a = expert.act(sim, obs)
        hit = f["cands"] == a[:, None]
        measured = None if continuing else episodes
        # kept by the deciding workflow: under serving a step's outcomes are the requests completed meanwhile
        keep = sim.measured(sim.episode, measured)[0]
        obs, _, done, info = sim.step(a)
        finished.add((done & sim.measured(info["episode"], measured)[0]).sum())
        feats.append({k: v[keep] for k, v in f.items()})
        labels.append(hit.float().argmax(1)[keep])
        in_set.append(hit.any(1)[keep])
    found = torch.cat(in_set)
    features = {k: torch.cat([f[k] for f in feats])[found] for k in feats[0]}
    return features, torch.cat(labels)[found], float(found.float().mean())


def accuracy(agent: StarkAgent, feats: dict, labels: torch.Tensor) -> float:
    with torch.no_grad():
        return float((agent.net(feats["task"], feats["servers"], feats["pad"]).argmax(1) == labels).float().mean())


def train_imitation(cfg: dict, ds: Dataset, make_agent: AgentFactory, run: Path, resume: dict | None = None,
                    progress: bool = True) -> dict:
    device = resolve_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    agent = make_agent(ds, cfg, device)
    if not isinstance(agent, StarkAgent):
        raise TypeError(f"imitation training needs a StarkAgent, got {type(agent).__name__}")
    opt = torch.optim.AdamW(agent.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    epochs, episodes, batch = cfg["epochs"], cfg["episodes"], cfg["minibatch"]
    n_tasks = len(ds.tasks["train"])
    n_val = max(1, math.ceil(cfg["val_fraction"] * n_tasks))
    if n_val >= n_tasks:
        raise SystemExit(f"error: val_fraction {cfg['val_fraction']} leaves no training tasks of {n_tasks}")
    train_idx, val_idx = np.arange(n_tasks - n_val), np.arange(n_tasks - n_val, n_tasks)
    profile = config_profile(cfg)
    # demonstrations come from the training world (train_env); model selection validates in the run's own
    sim = profile_simulator(ds, profile, train_params(cfg), "train", "random", cfg["seed"], device, episodes,
                            task_subset=train_idx)
    val_sim = profile_simulator(ds, profile, config_params(cfg), "train", "sequential", cfg["seed"], device, n_val,
                                task_subset=val_idx)
    # greedy_queue where servers keep queues; without queues it is greedy
    expert_cls = QueueGreedyPolicy if profile.queues else GreedyPolicy
    expert = expert_cls(sim)
    val_feats, val_labels, _ = demonstrations(val_sim, agent, expert_cls(val_sim), n_val, cfg["seed"],
                                              max_steps=cfg["val_max_steps"] or None)
    start = 0
    best: dict[str, Any] = {"reward": -math.inf, "epoch": -1, "model": None}  # the validation-selected epoch
    if resume is not None:
        if "best" not in resume:
            raise CheckpointError("it has no field 'best' (the validation-selected epoch), which imitation "
                                  "training resumes")
        restore_weights(agent, resume["model"], cfg["algo"])
        restore_optimizer(opt, resume.get("optimizer"))
        start, best = resume["epoch"], resume["best"]
    continuing = start_worlds(sim, cfg, resume, epoch_seed(cfg["seed"], -1))
    log = MetricsLog(metrics_file(run), keep_until_epoch=start)

    identity = dataset_identity(ds)

    def state(next_epoch: int, model_state: dict) -> dict:
        return {"algo": cfg["algo"], "epoch": next_epoch, "model": model_state, "optimizer": opt.state_dict(),
                "best": best, "dwa": None, "prev_losses": None,
                "config": cfg, "dataset": identity} | ({"worlds": sim.world_state()} if continuing else {})

    def one_epoch(epoch: int) -> dict:
        nonlocal best
        seed = epoch_seed(cfg["seed"], epoch)
        lr = cfg["lr"] * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        for g in opt.param_groups:
            g["lr"] = lr
        t0 = time.perf_counter()
        agent.train()
        feats, labels, coverage = demonstrations(sim, agent, expert, episodes, seed, continuing)
        gen = torch.Generator(device).manual_seed(seed)
        losses, hits = [], torch.zeros((), device=device)
        for n in range(cfg["passes"]):
            perm = torch.randperm(len(labels), generator=gen, device=device)
            for i in range(0, len(labels), batch):
                idx = perm[i:i + batch]
                scores = agent.net(feats["task"][idx], feats["servers"][idx], feats["pad"][idx])
                if n == 0:  # accuracy on states the model has not trained on yet: each before its update
                    hits += (scores.detach().argmax(1) == labels[idx]).sum()
                loss = F.cross_entropy(scores, labels[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(agent.parameters(), cfg["max_grad_norm"])
                opt.step()
                losses.append(loss.item())
        t1 = time.perf_counter()
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "accuracy": float(hits) / max(len(labels), 1),
               "val_accuracy": accuracy(agent, val_feats, val_labels), "coverage": coverage, "decisions": len(labels),
               "lr": lr, "train_s": t1 - t0}
        if (epoch + 1) % cfg["val_every"] == 0 or epoch + 1 == epochs:
            val = run_evaluation(val_sim, GreedyAgentPolicy(cfg["algo"], agent, WEIGHTS), n_val, progress=False,
                                 max_steps=cfg["val_max_steps"] or None).episodes
            row |= {"val_latency_ms": float(val.latency_ms.mean()), "val_reward": float(val.reward.mean()),
                    "val_cost": float(val.cost.mean()),
                    "val_unfinished": unfinished(val)}
        row["val_s"] = time.perf_counter() - t1
        # an unstable epoch's censored reward flatters it: the epochs that finish their workflows come first
        if "val_reward" in row and (-row["val_unfinished"], row["val_reward"]) > (-best.get("unfinished", 0),
                                                                                  best["reward"]):
            best = {"reward": row["val_reward"], "unfinished": row["val_unfinished"], "epoch": epoch,
                    "model": {k: v.detach().clone() for k, v in agent.state_dict().items()}}
        return row

    row = run_epochs(cfg, run, start, log, one_epoch, lambda next_epoch: state(next_epoch, agent.state_dict()),
                     progress)
    save_checkpoint(final_checkpoint(run),
                    state(epochs, best["model"] if best["model"] is not None else agent.state_dict()))
    return row | {"selected_epoch": best["epoch"]}


if __name__ == "__main__":
    train_main(HERE / "config.yaml", StarkAgent, __doc__, train_fn=train_imitation)
