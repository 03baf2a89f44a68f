"""The epoch loop and `train.py` command line shared by every PPO-style scheduler.

An epoch: DWA picks the scalarisation weights from the previous epoch's losses -> one batched
rollout of `episodes` training tasks -> GAE -> PPO update -> a metrics row, and a checkpoint every
`checkpoint_every` epochs. Every random stream is re-seeded from (seed, epoch), so a run resumed
from a checkpoint finishes with exactly the weights of an uninterrupted run.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from edgesim.dataset import Dataset
from edgesim.registry import PROFILES

from .agent_base import MaskedAgent
from .checkpoints import restore_optimizer, restore_weights
from .cli import (
    Doing,
    add_profile_flags,
    add_threads_flag,
    config_arg,
    device_name,
    epochs_arg,
    exit_interrupted,
    flags_by_profile,
    load_or_exit,
    profile_flags,
    region_name,
    resolve_device,
    seed_arg,
    set_threads,
    user_errors,
)
from .config import NO_RECIPE, ConfigError, differing_settings, load_yaml, recipe_path, resolve, upgrade
from .dwa import DWA
from .io import remove_stale_temps
from .paths import RESULTS, checkpoint_dir, data_root, final_checkpoint, metrics_file, tensorboard_dir
from .ppo import PPOConfig, ppo_update
from .rollout import collect, update_evaluator
from .runs import (
    CheckpointError,
    MetricsLog,
    RunError,
    RunLock,
    check_same_data,
    claim_run_dir,
    dataset_identity,
    epoch_checkpoints,
    is_locked,
    latest_checkpoint,
    load_checkpoint,
    point_latest,
    save_checkpoint,
    save_epoch_checkpoint,
    write_config,
)
from .simulators import config_profile, profile_simulator, resume_carry, start_worlds, train_params
from .tensorboard import EventLog, wanted

AgentFactory = type[MaskedAgent]  # an agent class: built as cls(ds, cfg, device)
SHOWN = ("return", "latency_ms", "cost", "loss", "val_reward", "val_latency_ms")  # in the closing line


def epoch_seed(seed: int, epoch: int) -> int:
    return seed * 1_000_003 + epoch


def lr_scale(epoch: int, epochs: int) -> float:
    return 1.0 - 0.8 * epoch / epochs


def entropy_coef(cfg: dict, epoch: int, epochs: int) -> float:
    e = cfg["entropy"]
    return max(e["end"], e["start"] - (e["start"] - e["end"]) * epoch / (e["decay_frac"] * epochs))


def run_epochs(cfg: dict, run: Path, start: int, log: MetricsLog, one_epoch: Callable[[int], dict[str, Any]],
               state: Callable[[int], dict[str, Any]], progress: bool = True,
               postfix: Callable[[dict[str, Any]], dict[str, str]] | None = None) -> dict[str, Any]:
    """The epoch loop every trainer shares: `one_epoch(epoch)` does the algorithm's work and returns its
    metrics row; the row goes to metrics.csv (and, with config `tensorboard`, to <run>/tensorboard/),
    and every `checkpoint_every` epochs `state(next_epoch)` to an epoch checkpoint (resume). Returns
    the last row; the final checkpoint is the trainer's."""
    bar = tqdm(range(start, cfg["epochs"]), initial=start, total=cfg["epochs"], desc=cfg["algo"], unit="epoch",
               disable=not progress)
    row: dict[str, Any] = {}
    with EventLog(run, start, cfg["tensorboard"]) as events:
        for epoch in bar:
            row = one_epoch(epoch)
            log.append(row)
            events.append(epoch, row)
            if (epoch + 1) % cfg["checkpoint_every"] == 0:
                save_epoch_checkpoint(run, epoch + 1, state(epoch + 1),
                                      cfg["keep_checkpoints"])
            if postfix is not None:
                bar.set_postfix(**postfix(row))
    return row


def train(cfg: dict, ds: Dataset, make_agent: AgentFactory, run: Path, resume: dict | None = None,
          progress: bool = True) -> dict[str, Any]:
    """Train (or continue) one run in `run`; returns the final metrics row."""
    device = resolve_device(cfg["device"])
    torch.manual_seed(cfg["seed"])
    agent = make_agent(ds, cfg, device)
    optimizer = torch.optim.Adam(agent.parameters(), lr=cfg["lr"])
    ppo = PPOConfig(**cfg["ppo"])
    epochs, episodes = cfg["epochs"], cfg["episodes"]
    dwa = DWA(epochs=epochs, weights=np.array(cfg["dwa"]["initial"]), start=cfg["dwa"]["start"],
              frac_end=cfg["dwa"]["frac_end"])
    start, prev_losses = 0, None
    if resume is not None:
        restore_weights(agent, resume["model"], cfg["algo"])
        restore_optimizer(optimizer, resume.get("optimizer"))
        dwa.load_state_dict(resume["dwa"])
        start = resume["epoch"]
        prev_losses = None if resume["prev_losses"] is None else np.array(resume["prev_losses"])
    log = MetricsLog(metrics_file(run), keep_until_epoch=start)
    sim = profile_simulator(ds, config_profile(cfg), train_params(cfg), "train",
                            "random", cfg["seed"], device, episodes)
    continuing = start_worlds(sim, cfg, resume, epoch_seed(cfg["seed"], -1))
    carry = resume_carry(sim, continuing, resume)

    identity = dataset_identity(ds)

    def state(next_epoch: int) -> dict[str, Any]:
        return {"algo": cfg["algo"], "epoch": next_epoch, "model": agent.state_dict(),
                "optimizer": optimizer.state_dict(), "dwa": dwa.state_dict(), "config": cfg, "dataset": identity,
                "prev_losses": None if prev_losses is None else [float(x) for x in prev_losses]} | \
            ({"worlds": sim.world_state()} if continuing else {}) | \
            ({"carry": carry.state_dict()} if carry is not None else {})

    def one_epoch(epoch: int) -> dict[str, Any]:
        nonlocal prev_losses
        if cfg["dwa"]["enabled"] and prev_losses is not None:
            dwa.update(epoch, prev_losses)
        weights = torch.tensor(dwa.weights, dtype=sim.dtype, device=device)
        for group in optimizer.param_groups:
            group["lr"] = cfg["lr"] * lr_scale(epoch, epochs)
        seed = epoch_seed(cfg["seed"], epoch)
        t0 = time.perf_counter()
        batch = collect(sim, agent, weights, episodes, seed, ppo.gamma, ppo.lam, continuing, carry)
        t1 = time.perf_counter()

        policy = epoch >= ppo.critic_warmup  # else the critic alone trains
        losses = ppo_update(update_evaluator(agent, batch.actions, batch.features), batch.logp, batch.advantages,
                            batch.returns, optimizer, agent.networks(), ppo, entropy_coef(cfg, epoch, epochs),
                            torch.Generator(device).manual_seed(seed), agent.prior_kl_coef, policy=policy)
        t2 = time.perf_counter()
        prev_losses = batch.losses
        return {"epoch": epoch, **batch.stats, "policy_trained": int(policy),
                "w_latency": float(weights[0]), "w_cost": float(weights[1]), "w_switch": float(weights[2]),
                **losses, "lr": optimizer.param_groups[0]["lr"],
                "rollout_s": t1 - t0, "update_s": t2 - t1, "steps_per_s": batch.stats["env_steps"] / (t2 - t0)}

    row = run_epochs(cfg, run, start, log, one_epoch, state, progress,
                     lambda r: {"ret": f"{r['return']:.3f}", "lat": f"{r['latency_ms']:.0f}",
                                "cost": f"{r['cost']:.4f}", "sps": f"{r['steps_per_s']:.0f}"})
    save_checkpoint(final_checkpoint(run), state(epochs))
    return row


def parse_train_args(description: str, argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="data root holding region folders (config: data; a relative path is looked up "
                                  "in the current directory, then in the repository)")
    p.add_argument("--regions", nargs="+", type=region_name,
                   help="region folder(s) to train on together (config: regions)")
    p.add_argument("--epochs", type=epochs_arg, help="training epochs (config: epochs, default 100)")
    p.add_argument("--episodes", type=config_arg("episodes"), help="episodes per epoch (config: episodes, default 200)")
    p.add_argument("--seed", type=seed_arg, help="training seed (config: seed, default 42)")
    p.add_argument("--device", type=device_name, help="cpu or cuda; cuda falls back to cpu with a warning "
                                                     "(config: device)")
    add_profile_flags(p, unset="config: profile; the algorithm's recipe for the profile, e.g. "
                            "TopoFreeRL/contention.yaml, the settings the study adopted, applies over config.yaml")
    p.add_argument("--no-recipe", action="store_true",
                   help="train config.yaml's plain defaults under the profile, without its recipe")
    p.add_argument("--no-mask", action="store_true",
                   help="do not mask invalid servers in training (the reference behaviour; evaluation always masks)")
    p.add_argument("--config", help="YAML file overriding the algorithm's config.yaml defaults")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set ppo.clip=0.1 (repeatable)")
    p.add_argument("--out", help="run directory to write (default: <results>/<Algo>/<region>_seed<S>_<time>)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run from its last checkpoint, "
                                                       "with its saved config")
    p.add_argument("--results", default=str(RESULTS),
                   help="results root for new runs; <results>/<Algo>/latest points at the newest (default: the "
                        "repository's results/)")
    p.add_argument("--tensorboard", action=argparse.BooleanOptionalAction,
                   help="also log each epoch's metrics as TensorBoard scalars in RUN_DIR/tensorboard/ (config: "
                        "tensorboard, default auto: on when the tensorboard package is installed; allowed with "
                        "--resume)")
    add_threads_flag(p)
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


# flags that define a run: --resume continues the saved config, so giving one of these is an error
RUN_FLAGS = ("data", "regions", "epochs", "episodes", "seed", "profile",
             *dict.fromkeys(flag.key for profile in PROFILES.values() for flag in profile.flags),
             "no_mask", "no_recipe", "config", "set", "out")


def train_config(defaults_file: Path, args: argparse.Namespace,
                 choices: dict[str, tuple[str, ...]] | None = None) -> dict[str, Any]:
    """The config a fresh run of `train.py` trains with, from its parsed arguments: defaults <- the
    profile's recipe (unless --no-recipe) <- --config <- flags <- --set. Raises ConfigError or InputError."""
    flags = {"data": args.data, "regions": args.regions, "epochs": args.epochs, "episodes": args.episodes,
             "seed": args.seed, "device": args.device, "profile": args.profile,
             "mask": False if args.no_mask else None, "tensorboard": args.tensorboard,
             **flags_by_profile(args, args.profile)}  # each profile's parameters given as flags, into its block
    cfg = resolve(defaults_file, args.config, args.set, flags, choices, recipe=not args.no_recipe)
    profile_flags(args, config_profile(cfg))  # a flag of another profile is refused, not ignored
    return cfg


def train_main(defaults_file: Path, make_agent: AgentFactory, description: str, argv: list[str] | None = None,
               train_fn: Callable[..., dict[str, Any]] = train) -> Path:
    """Shared `train.py`: resolve and check the config, load the data, claim and lock a run directory
    (or resume one), train, point `latest`. Nothing is written before the config and the data are
    known to be good. `train_fn` (default: the PPO loop) has the signature of `train`."""
    args = parse_train_args(description, argv)
    set_threads(args.threads)
    with user_errors(ConfigError, CheckpointError, RunError) as doing:
        algo = load_yaml(defaults_file)["algo"]
        if args.resume:
            return _resume(args, algo, make_agent, train_fn, doing)
        cfg = train_config(defaults_file, args, make_agent.config_choices)
        cfg["tensorboard"] = wanted(cfg["tensorboard"])  # config.yaml records what `auto` became
        cfg["device"] = str(resolve_device(cfg["device"]))  # and the device the run trains on
        ds = load_or_exit(data_root(cfg["data"]), cfg["regions"])
        for stopped in interrupted_runs(Path(args.results) / cfg["algo"], cfg):
            print(f"note: {stopped} is an interrupted run of these settings; continue it with: "
                  f"python {sys.argv[0]} --resume {stopped}")
        if args.out:
            run = Path(args.out)
            created = not run.exists()
            run.mkdir(parents=True, exist_ok=True)
        else:
            run, created = claim_run_dir(args.results, cfg["algo"], cfg["regions"], cfg["seed"]), True
        with RunLock(run):
            if latest_checkpoint(run) is not None:
                raise RunError(f"{run} already holds checkpoints; use --resume {run} or another --out")
            write_config(run, cfg)
            _say_recipe(cfg, defaults_file)
            _train_in(run, created, cfg, ds, make_agent, train_fn, None, args, doing)
    return run


def interrupted_runs(algo_dir: Path, cfg: dict[str, Any]) -> list[Path]:
    """Run folders under `algo_dir` trained with the settings of `cfg` that stopped before final.pt and
    that no live process holds: running the same command again starts over, when --resume would carry
    on. Reads only each folder's config.yaml and checkpoint names, so it costs nothing noticeable."""
    found = []
    for run in sorted(p for p in algo_dir.glob("*") if p.is_dir() and not p.is_symlink()):
        if not (run / "config.yaml").is_file() or not epoch_checkpoints(run) or final_checkpoint(run).exists():
            continue
        try:
            saved = upgrade(load_yaml(run / "config.yaml"))
        except ConfigError:
            continue  # an unreadable config names no settings to match
        if not differing_settings({"saved": saved, "now": cfg}) and not is_locked(run):
            found.append(run)
    return found


def _say_recipe(cfg: dict[str, Any], defaults_file: Path) -> None:
    """Name the recipe a fresh run trains with: its settings are not on the command line."""
    if cfg["recipe"] != NO_RECIPE:
        print(f"{cfg['algo']}: the {cfg['recipe']} recipe {recipe_path(defaults_file, cfg['recipe'])} applies "
              "(--no-recipe: config.yaml's defaults)")


def _resume(args: argparse.Namespace, algo: str, make_agent: AgentFactory, train_fn: Callable[..., dict[str, Any]],
            doing: Doing) -> Path:
    given = [f"--{k.replace('_', '-')}" for k in RUN_FLAGS if getattr(args, k) not in (None, [], False)]
    run = Path(args.resume)
    if given:
        raise ConfigError(f"--resume continues {run} with its saved config.yaml; {', '.join(given)} cannot change it "
                          "(start a new run for other settings)")
    if not run.is_dir():
        raise RunError(f"{run}: no such run directory")
    with RunLock(run):
        remove_stale_temps(checkpoint_dir(run))  # left by a writer that was killed mid-write
        ckpt = latest_checkpoint(run)
        if ckpt is None:
            raise RunError(f"{run}: no checkpoint to resume from")
        state = load_checkpoint(ckpt, algo=algo)
        check_config_file(run / "config.yaml", state["config"])
        cfg = state["config"] | ({"device": args.device} if args.device else {})
        cfg["device"] = str(resolve_device(cfg["device"]))
        ds = load_or_exit(data_root(cfg["data"]), cfg["regions"])
        check_same_data(state, ds, ckpt)
        if state["epoch"] >= cfg["epochs"]:
            final = final_checkpoint(run)
            if not final.exists():  # killed between the last epoch checkpoint and final.pt
                save_checkpoint(final, state)
            point_latest(run, args.results)
            print(f"{run} already finished ({cfg['epochs']} epochs)")
            return run
        # --tensorboard / --no-tensorboard may change the saved choice
        choice = args.tensorboard if args.tensorboard is not None else cfg["tensorboard"]
        cfg = cfg | {"tensorboard": wanted(choice)}
        print(f"resuming {run} from {ckpt.name} (epoch {state['epoch']})")
        try:
            _train_in(run, False, cfg, ds, make_agent, train_fn, state, args, doing)
        except CheckpointError as e:  # its weights, optimizer or worlds do not fit what the config builds
            raise CheckpointError(f"{ckpt}: {e}") from None
    return run


def check_config_file(path: Path, saved: dict[str, Any]) -> None:
    """A run resumes with its checkpoint's config; a config.yaml edited since would be silently ignored,
    so any difference in a training setting (`differing_settings`: --device and --tensorboard may change)
    is refused, naming the keys."""
    if not path.exists() and not path.is_symlink():
        return
    differ = differing_settings({"checkpoint": saved, "config.yaml": upgrade(load_yaml(path))})
    if differ:
        shown = ", ".join(f"{k} (config.yaml {_brief(v['config.yaml'])}, checkpoint {_brief(v['checkpoint'])})"
                          for k, v in list(differ.items())[:3])
        more = f" and {len(differ) - 3} more keys" if len(differ) > 3 else ""
        raise ConfigError(f"{path} differs from the checkpoint's config in {shown}{more}; resume uses the "
                          "checkpoint's settings: restore config.yaml, or start a new run for other settings")


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "..."


def _train_in(run: Path, created: bool, cfg: dict, ds: Dataset, make_agent: AgentFactory,
              train_fn: Callable[..., dict[str, Any]], resume: dict | None, args: argparse.Namespace,
              doing: Doing) -> None:
    """Train in a locked run directory. Ctrl-C or SIGTERM keeps the last checkpoint and says how to
    resume, and so does the line of a disk error (`doing`); a run that fails before its first
    checkpoint leaves no folder describing it."""
    print(f"{cfg['algo']}: {ds.summary()} -> {run}")
    doing.writing, doing.then = run, lambda: _how_to_continue(run)
    t0 = time.perf_counter()
    try:
        final = train_fn(cfg, ds, make_agent, run, resume, progress=not args.no_progress)
    except KeyboardInterrupt:
        if latest_checkpoint(run) is None:
            _discard(run, created)
        exit_interrupted(_how_to_continue(run, "\n  "))
    except BaseException:
        if latest_checkpoint(run) is None:
            _discard(run, created)
        raise
    point_latest(run, args.results)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if k in SHOWN)
    print(f"done in {time.perf_counter() - t0:.1f} s: {shown}; final checkpoint {run / 'checkpoints' / 'final.pt'}")


def _how_to_continue(run: Path, before_command: str = " ") -> str:
    """Where a stopped run stands: its last checkpoint and the command that continues it, or that nothing is kept."""
    last = latest_checkpoint(run)
    if last is None:
        return "no checkpoint was written yet, so nothing is kept"
    return f"the last checkpoint is {last}; continue with:{before_command}python {sys.argv[0]} --resume {run}"


def _discard(run: Path, created: bool) -> None:
    """Remove what this process wrote for a run that never reached a checkpoint."""
    if created:
        shutil.rmtree(run, ignore_errors=True)
        return
    for name in ("config.yaml", "metrics.csv", ".lock"):
        (run / name).unlink(missing_ok=True)
    shutil.rmtree(tensorboard_dir(run), ignore_errors=True)
    if checkpoint_dir(run).is_dir() and not any(checkpoint_dir(run).iterdir()):
        checkpoint_dir(run).rmdir()
