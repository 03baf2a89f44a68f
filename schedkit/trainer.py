"""The epoch loop and `train.py` command line shared by every PPO-style scheduler.

An epoch: DWA picks the scalarisation weights from the previous epoch's losses -> one batched
rollout of `episodes` training tasks -> GAE -> PPO update -> a metrics row, and a checkpoint every
`checkpoint_every` epochs. Every random stream is re-seeded from (seed, epoch), so a run resumed
from a checkpoint finishes with exactly the weights of an uninterrupted run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn
from tqdm import tqdm

from edgesim.dataset import Dataset
from edgesim.simulator import PROFILES
from .cli import add_contention_flags, contention_flags, load_or_exit, resolve_device
from .config import ConfigError, resolve
from .dwa import DWA
from .ppo import PPOConfig, ppo_update
from .profiles import contention_or_exit, profile_simulator
from .rollout import collect, masked_log_probs
from .runs import (CheckpointError, MetricsLog, dataset_identity, load_checkpoint, new_run_dir, point_latest,
                   save_checkpoint, write_config)

AgentFactory = Callable[[Dataset, dict, torch.device], nn.Module]
SHOWN = ("return", "latency_ms", "cost", "loss", "val_reward", "val_latency_ms")  # in the closing line


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def lr_scale(epoch: int, epochs: int) -> float:
    return 1.0 - 0.8 * epoch / epochs


def entropy_coef(cfg: dict, epoch: int, epochs: int) -> float:
    e = cfg["entropy"]
    return max(e["end"], e["start"] - (e["start"] - e["end"]) * epoch / (e["decay_frac"] * epochs))


def train(cfg: dict, ds: Dataset, make_agent: AgentFactory, run: Path, resume: dict | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train (or continue) one run in `run`; returns the final metrics row."""
    device = resolve_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    agent = make_agent(ds, cfg, device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg["lr"])
    ppo = PPOConfig(**cfg["ppo"])
    epochs, episodes = cfg["epochs"], cfg["episodes"]
    dwa = DWA(epochs=epochs, start=cfg["dwa"]["start"], frac_end=cfg["dwa"]["frac_end"])
    start, prev_losses = 0, None
    if resume is not None:
        agent.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        dwa.load_state_dict(resume["dwa"])
        start, prev_losses = resume["epoch"], resume["prev_losses"]
    log = MetricsLog(run / "metrics.csv", keep_until_epoch=start)
    sim = profile_simulator(ds, cfg["profile"], contention_or_exit(cfg.get("contention")), "train", "random", cfg["seed"],
                            device, episodes)

    def checkpoint(name: str, next_epoch: int) -> None:
        save_checkpoint(run / "checkpoints" / name, {
            "algo": cfg["algo"], "epoch": next_epoch, "model": agent.state_dict(), "optimizer": optimizer.state_dict(),
            "dwa": dwa.state_dict(), "prev_losses": prev_losses, "config": cfg, "dataset": dataset_identity(ds)})

    bar = tqdm(range(start, epochs), initial=start, total=epochs, desc=cfg["algo"], unit="epoch", disable=not progress)
    row: dict[str, Any] = {}
    for epoch in bar:
        if cfg["dwa"]["enabled"] and prev_losses is not None:
            dwa.update(epoch, prev_losses)
        weights = torch.tensor(dwa.weights, dtype=sim.dtype, device=device)
        for group in optimizer.param_groups:
            group["lr"] = cfg["lr"] * lr_scale(epoch, epochs)
        seed = epoch_seed(cfg["seed"], epoch)
        t0 = time.perf_counter()
        batch = collect(sim, agent, weights, episodes, seed, ppo.gamma, ppo.lam)
        t1 = time.perf_counter()

        def evaluate(idx: torch.Tensor):
            logits, value = agent({k: v[idx] for k, v in batch.features.items()})
            logp, entropy = masked_log_probs(logits)
            return logp.gather(1, batch.actions[idx, None]).squeeze(1), entropy, value

        losses = ppo_update(evaluate, batch.logp, batch.advantages, batch.returns, optimizer, agent.networks(), ppo,
                            entropy_coef(cfg, epoch, epochs), torch.Generator(device).manual_seed(seed))
        t2 = time.perf_counter()
        prev_losses = batch.losses
        row = {"epoch": epoch, **batch.stats, "w_latency": float(weights[0]), "w_cost": float(weights[1]),
               "w_switch": float(weights[2]), **losses, "lr": optimizer.param_groups[0]["lr"],
               "rollout_s": t1 - t0, "update_s": t2 - t1, "steps_per_s": batch.stats["env_steps"] / (t2 - t0)}
        log.append(row)
        if (epoch + 1) % cfg["checkpoint_every"] == 0:
            checkpoint(f"epoch_{epoch + 1:04d}.pt", epoch + 1)
        bar.set_postfix(ret=f"{row['return']:.3f}", lat=f"{row['latency_ms']:.0f}", cost=f"{row['cost']:.4f}",
                        sps=f"{row['steps_per_s']:.0f}")
    checkpoint("final.pt", epochs)
    return row


def parse_train_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="data root holding region folders (config: data)")
    p.add_argument("--regions", nargs="+", help="region folder(s) to train on together (config: regions)")
    p.add_argument("--epochs", type=int, help="training epochs (config: epochs, default 100)")
    p.add_argument("--episodes", type=int, help="episodes per epoch (config: episodes, default 200)")
    p.add_argument("--seed", type=int, help="training seed (config: seed, default 42)")
    p.add_argument("--device", help="cpu or cuda; cuda falls back to cpu with a warning (config: device)")
    add_contention_flags(p)
    p.add_argument("--no-mask", action="store_true",
                   help="do not mask invalid servers in training (the reference behaviour; evaluation always masks)")
    p.add_argument("--config", help="YAML file overriding the algorithm's config.yaml defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set ppo.clip=0.1 (repeatable)")
    p.add_argument("--out", help="run directory to write (default: results/<Algo>/<region>_seed<S>_<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint")
    p.add_argument("--results", default="results", help="results root for new runs (default: results)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def latest_checkpoint(run: Path) -> Path | None:
    ckpts = sorted((run / "checkpoints").glob("epoch_*.pt"))
    final = run / "checkpoints" / "final.pt"
    return final if final.exists() else (ckpts[-1] if ckpts else None)


def train_main(defaults_file: Path, make_agent: AgentFactory, description: str, argv: list[str] | None = None,
               train_fn: Callable[..., dict[str, Any]] = train) -> Path:
    """Shared `train.py`: resolve the config, make or resume a run directory, train, point `latest`.
    `train_fn` (default: the PPO loop) has the signature of `train`."""
    args = parse_train_args(description, argv)
    resume_state = None
    try:
        if args.resume:
            run = Path(args.resume)
            ckpt = latest_checkpoint(run)
            if ckpt is None:
                sys.exit(f"error: {run}: no checkpoint to resume from")
            resume_state = load_checkpoint(ckpt)
            cfg = resume_state["config"]
            if resume_state["epoch"] >= cfg["epochs"]:
                final = run / "checkpoints" / "final.pt"
                if not final.exists():  # killed between the last epoch checkpoint and final.pt
                    save_checkpoint(final, resume_state)
                    point_latest(run)
                print(f"{run} already finished ({cfg['epochs']} epochs)")
                return run
            print(f"resuming {run} from {ckpt.name} (epoch {resume_state['epoch']})")
        else:
            flags = {"data": args.data, "regions": args.regions, "epochs": args.epochs, "episodes": args.episodes,
                     "seed": args.seed, "device": args.device, "profile": args.profile,
                     "mask": False if args.no_mask else None,
                     "contention": {k: v for k, v in contention_flags(args).items() if v is not None} or None}
            cfg = resolve(defaults_file, args.config, args.set, flags)
            run = Path(args.out) if args.out else new_run_dir(args.results, cfg["algo"], cfg["regions"], cfg["seed"])
            if (run / "checkpoints").exists() and any((run / "checkpoints").iterdir()):
                sys.exit(f"error: {run} already holds checkpoints; use --resume {run} or another --out")
    except (ConfigError, CheckpointError) as e:
        sys.exit(f"error: {e}")
    for key, low in (("epochs", 1), ("episodes", 1), ("checkpoint_every", 1)):
        if not isinstance(cfg[key], int) or cfg[key] < low:
            sys.exit(f"error: config '{key}' must be an integer >= {low}, got {cfg[key]!r}")
    if cfg["profile"] not in PROFILES:
        sys.exit(f"error: config 'profile' must be one of {PROFILES}, got {cfg['profile']!r}")
    contention_or_exit(cfg.get("contention"))
    ds = load_or_exit(cfg["data"], cfg["regions"])
    run.mkdir(parents=True, exist_ok=True)
    write_config(run, cfg)
    print(f"{cfg['algo']}: {ds.summary()} -> {run}")
    t0 = time.perf_counter()
    final = train_fn(cfg, ds, make_agent, run, resume_state, progress=not args.no_progress)
    point_latest(run)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k in SHOWN)
    print(f"done in {time.perf_counter() - t0:.1f} s: {shown}; final checkpoint {run / 'checkpoints' / 'final.pt'}")
    return run
