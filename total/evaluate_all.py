"""Evaluate every finished run under results/, and every heuristic and the oracle, on the same
tasks and evaluation seeds. All seeds of every run are included, never a hand-picked subset.

    python total/evaluate_all.py --data data1 --region Server1_Trap [--eval-seeds 0 1 2 3 4]
    python total/evaluate_all.py --profile contention --arrival-rate 16      # -> results/eval/<region>_contention_r16
    python total/evaluate_all.py --profile contention --arrival-rate 8 --arrival-trace T.csv   # -> ..._contention_r8_T
    python total/evaluate_all.py --profile serving --load 0.9            # -> results/eval/<region>_serving_u0.9

Writes results/eval/<region>/episodes.csv: one tidy row per (algo, train seed, eval seed,
episode), with the run folder and every metric. Also writes summary.csv: per algorithm, the
mean and 95% CI of reward, latency and cost, plus the IQM of reward, p99 latency (with
its CI), decision time and the units of each level of the CI (n_train_seeds, n_eval_seeds,
n_tasks); under --profile serving requests.csv: one row per measured request (TTFT, TPOT, its
server and times), led by the same (algo, train seed, eval seed, run) columns; and config.yaml: the
resolved arguments, the checkpoints evaluated and skipped, and the git commit. Training seeds are the
unit of replication: two runs of one (algo, seed, regions, profile) count once: of runs trained alike the newest final.pt is
evaluated and the others listed as skipped, and runs trained with different settings are refused,
naming what differs, until --runs or --run-newest picks one; runs of a sweep's `variants`
(total/sweep.py) are rows of their own, <Algo>@<variant> (e.g. TopoFreeRL@x4 of
sweeps/trap_severity.yaml); and a CI is a t-interval over a learned method's runs (`ci_unit`
"runs"), the evaluation seeds and the test tasks shared by every scheduler, each task's episodes one
cluster; with one run (a heuristic, or one seed) it is over the eval seeds and tasks only (`ci_unit`
"episodes"). See schedkit/stats.py. The default --data and --results are the repository's data1/ and results/,
whatever the current directory.
Runs whose checkpoint was trained on another dataset or under another profile are listed and
skipped; with --zero-shot, a size-agnostic checkpoint of another dataset is evaluated as
<Algo>_zeroshot (e.g. the 500-server TopoFreeRL on the 1000-server Server2_Trap). A corrupted
checkpoint stops the evaluation with its path. Under `--profile contention` every scheduler
meets the same arrival process and load, and summary.csv also holds the oracle's reward upper
bound (`reward_upper_bound`, its queue-free plan value) and each row's simulator steps (`sim_steps`,
averaged over runs: evaluation seeds run side by side share them), to read against --max-steps.
Under `--profile serving` summary.csv adds `slo_attainment` (the share of workflows whose every request met
both SLOs) with its CI like the other means' (cut to [0, 1]), and as point values per row, averaged over
the evaluation seeds (and runs), the keys of each evaluation's summary.json: goodput_per_s, ttft_p50_ms, ttft_p99_ms,
tpot_p50_ms, tpot_p99_ms, utilisation, mean_batch_size, kv_occupancy, mean_queue_length,
mean_queue_wait_ms and the SLO thresholds slo_ttft_ms and slo_tpot_ms (docs/evaluation.md, "Serving metrics").
Every evaluated checkpoint whose guidance prior is greedy_queue's score (TopoFreeRL's
`guidance.prior: greedy_queue`, at `guidance.latency_weight` W) gets its matched control: greedy_queue
at that W, one row per distinct W, named greedy_queue_prior_w<W> ("greedy_queue (prior W=0.9)"), so
that a comparison with the learned method also holds the rule its prior carries; where greedy_queue's
tuned W is the prior's W, its tuned row is that control and no second row is evaluated. `--skip NAME` leaves
out NAME's tuned row too, and `--skip greedy_queue` its prior rows.
A tuned row whose W is the rule's default is the rule's own evaluation relabelled (the same policy, seeds and
draws give the same rows), not evaluated twice.
`--max-steps N` bounds every evaluation, so a scheduler that overloads the servers still ends: the
episode rows then say whether each workflow `finished` (an unfinished one's sums are its steps so far:
latency a lower bound, reward an upper one), and a summary row with `unfinished` > 0 is unstable at
this load; total/make_table.py and total/compare.py report it so and compare nothing with it.
A stopped evaluation resumes: each scheduler's evaluation is kept in <folder>/finished/ as soon as it is done,
and a re-run with the same settings takes it from there instead of evaluating it again (the same rows;
total/finished_evaluations.py); --overwrite starts afresh. Under contention and serving, the rules that may share a
simulator (`Scheduler.shares_a_simulator`), and under serving the learned runs, are evaluated side by side in one
(schedkit.evaluation.evaluate_side_by_side: each one's rows are those of its own run, for a fraction of the time; a
learned run's networks decide its own rows only; its decision_ms is its time per decision at that batch). `--workers
N` evaluates N units at once (those schedulers split over the workers, each other one alone), each in a forked
process that puts its evaluations there; the files are then written in the usual order, the same rows. Ctrl-C or
SIGTERM stops the workers with it.
"""
from __future__ import annotations

import argparse
import inspect
import json
import multiprocessing
import signal
import sys
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from edgesim.inputs import InputError, MiB, read_text
from edgesim.paper import Profile
from edgesim.registry import get_profile
from Heuristics.inference import make_policy
from Heuristics.policies import OraclePolicy
from schedkit.cli import (
    add_profile_flags,
    add_threads_flag,
    device_name,
    episodes_arg,
    load_or_exit,
    profile_params,
    region_name,
    resolve_device,
    seed_arg,
    set_threads,
    user_errors,
    workers_arg,
)
from schedkit.config import differing_settings
from schedkit.evaluation import (
    REQUEST_COLUMNS,
    BlockDeciding,
    Evaluation,
    evaluate_seeds,
    evaluate_side_by_side,
    holds_blocks,
    serving_summary,
    unfinished,
)
from schedkit.inference import policy_from_checkpoint
from schedkit.io import interrupts_held, write_csv, write_csv_or_remove, write_yaml
from schedkit.outputs import claim_output
from schedkit.registry import get, heuristics, learned
from schedkit.runs import CheckpointError, RunError, load_checkpoint
from schedkit.simulators import default_eval_episodes, profile_meta
from schedkit.stats import (
    ci_unit,
    hierarchical_bootstrap_ci,
    hierarchical_bootstrap_percentile_ci,
    iqm,
    runs_array,
    task_clusters,
)
from total.common import (
    SWEEP_VARIANT,
    TUNED,
    ZERO_SHOT,
    agent_factory,
    eval_dir,
    final_checkpoints,
    label,
    paths,
    prior_row,
    provenance,
    run_variant,
    sort_algos,
)
from total.finished_evaluations import Finished, FinishedEvaluations

METRICS = ("reward", "latency_ms", "cost")
EVAL_SEEDS = (0, 1, 2, 3, 4)  # the test split's evaluation seeds: validation and confirmation settings use others
LOAD_KEYS = ("utilisation", "mean_queue_wait_ms")
# serving evaluations' summary.json keys (schedkit.evaluation.serving_summary) put in summary.csv as point values
SERVING_KEYS = ("goodput_per_s", "ttft_p50_ms", "ttft_p99_ms", "tpot_p50_ms", "tpot_p99_ms", "utilisation",
                "mean_batch_size", "kv_occupancy", "mean_queue_length", "slo_ttft_ms", "slo_tpot_ms")
# requests.csv: serving evaluations only; claimed always, so a stale one never outlives its folder's evaluation
OUTPUTS = ("episodes.csv", "requests.csv", "summary.csv", "config.yaml")
MAX_TUNING_BYTES = 16 * MiB


def summarize_runs(episodes: pd.DataFrame, n_servers: int,
                   loads: dict[str, list[dict[str, float]]] | None = None) -> pd.DataFrame:
    """One row per scheduler. The CIs are t-intervals over training runs (when there are >= 2; `ci_unit`
    "runs", else "episodes"), evaluation seeds and the shared test tasks as clusters (schedkit.stats);
    n_train_seeds, n_eval_seeds and n_tasks count each level's units. Episodes with `slo_met` (the serving
    profile) add `slo_attainment`, the share of workflows that met their SLOs, with the same CI cut to
    [0, 1] (a t-interval over few tasks can reach past the bounds a share cannot leave). `loads`:
    per scheduler, each evaluation's measures (`measures`: utilisation, queue wait and, under serving,
    goodput, TTFT/TPOT percentiles, batch, KV and queue length), averaged into its row as point values:
    they are measured per evaluation, not per episode, so they have no CI."""
    loads = loads or {}
    rows = []
    for algo in sort_algos(episodes["algo"].unique()):
        d = episodes[episodes["algo"] == algo]
        n_runs, n_eval = int(d["run"].fillna("").nunique()), int(d["eval_seed"].nunique())
        clusters = task_clusters(d)
        row = {"algo": algo, "label": label(algo), "train_seeds": int(d["train_seed"].nunique()),
               "eval_seeds": n_eval, "episodes": len(d), "n_servers": n_servers,
               "n_train_seeds": int(d["train_seed"].nunique()), "n_eval_seeds": n_eval,
               "n_tasks": int(clusters.max()) + 1}
        for m in METRICS:
            row[m], row[f"{m}_lo"], row[f"{m}_hi"] = hierarchical_bootstrap_ci(runs_array(d, m), clusters=clusters)
        row["reward_iqm"] = iqm(d["reward"].to_numpy())
        row["p99_latency_ms"], row["p99_latency_ms_lo"], row["p99_latency_ms_hi"] = hierarchical_bootstrap_percentile_ci(
            runs_array(d, "latency_ms"), 99, clusters=clusters)
        if "switches" in episodes and episodes["switches"].any():  # region switches: only on multi-region data
            row["switches"], row["switches_lo"], row["switches_hi"] = hierarchical_bootstrap_ci(runs_array(d, "switches"),
                                                                                          clusters=clusters)
        if "slo_met" in d:  # serving: whether each workflow met its SLOs; a share, so its CI is cut to [0, 1]
            share, lo, hi = hierarchical_bootstrap_ci(runs_array(d, "slo_met"), clusters=clusters)
            row["slo_attainment"], row["slo_attainment_lo"], row["slo_attainment_hi"] = share, max(lo, 0.0), min(hi, 1.0)
        row["decision_ms"] = float(d["decision_ms"].mean())
        measured = [m for m in loads.get(algo, []) if m]
        if measured:  # workflows arriving over time: how loaded the servers were, averaged over runs and seeds
            row |= {k: float(np.mean([m[k] for m in measured])) for k in measured[0]}
        if "finished" in d:  # a bounded evaluation (--max-steps): its censored episodes make the row unstable
            row["unfinished"] = unfinished(d)
        row["runs"], row["ci_unit"] = n_runs, ci_unit(n_runs, n_eval)
        rows.append(row)
    return pd.DataFrame(rows)


def measures(result: Evaluation) -> dict[str, float]:
    """One evaluation's load measures (contention, serving) with its simulator steps (`sim_steps`, to read a
    bounded run against --max-steps) and, under serving, the point values of its summary.json
    (SERVING_KEYS); empty for a profile without load."""
    found = {k: float(result.stats[k]) for k in LOAD_KEYS if k in result.stats}
    if found:
        found["sim_steps"] = float(result.steps)
    if result.requests is not None:
        summary = serving_summary(result)
        found |= {k: float(summary[k]) for k in SERVING_KEYS}
    return found


Found = tuple[Path, dict, str]  # a finished run: its final.pt, the loaded checkpoint, its sweep variant ('' for none)


def newest_per_seed(found: list[Found], chosen: list[Path] | None = None,
                    newest: bool = False) -> tuple[list[Found], list[str]]:
    """Two runs of one (algo, training seed, regions, profile, sweep variant) are one seed, not two.
    Runs trained alike (a re-run) are interchangeable: the newest final.pt (by mtime) is kept and the
    others named with the reason. Runs trained with different settings are not: which one is "the"
    seed is the user's choice, so they are refused unless `chosen` names one run folder of the group
    (--runs) or `newest` keeps the newest (--run-newest). Runs of different sweep variants are
    different methods (evaluated as <Algo>@<variant>), never pooled or de-duplicated."""
    groups: dict[tuple, list[Found]] = {}
    for run in found:
        ckpt, state, variant = run
        cfg = state["config"]
        key = (cfg["algo"], cfg["seed"], tuple(state["dataset"]["regions"]), cfg["profile"], variant)
        groups.setdefault(key, []).append(run)
    picked = {p.resolve() for p in chosen or []}
    unknown = picked - {ckpt.parents[1].resolve() for ckpt, _, _ in found}
    if unknown:
        raise RunError(f"--runs {sorted(map(str, unknown))[0]}: not a finished run evaluated here "
                       "(results/<Algo>/<run> with checkpoints/final.pt, trained on this dataset and profile)")
    kept, skipped = [], []
    for (algo, seed, _, _, _), runs in groups.items():
        runs.sort(key=lambda r: r[0].stat().st_mtime, reverse=True)
        named = [r for r in runs if r[0].parents[1].resolve() in picked]
        if len(runs) > 1 and not named and not newest:
            check_trained_alike(algo, seed, runs)
        first = named[0] if len(named) == 1 else runs[0]
        if len(named) > 1:
            raise RunError(f"--runs names {len(named)} runs of {algo} seed {seed} "
                           f"({', '.join(str(r[0].parents[1]) for r in named)}); name one")
        kept.append(first)
        skipped += [f"{ckpt} (another run of {algo} seed {seed}; {first[0]} is evaluated: one seed counts once)"
                    for ckpt, _, _ in runs if ckpt != first[0]]
    return kept, skipped


def check_trained_alike(algo: str, seed: int, runs: list[Found]) -> None:
    """Refuse runs of one seed trained with different settings, naming the run folders and the settings."""
    folders = {str(ckpt.parents[1]): state["config"] for ckpt, state, _ in runs}
    differ = differing_settings(folders)
    if not differ:
        return
    names = {folder: Path(folder).name for folder in folders}
    shown = "; ".join(f"{key} " + ", ".join(f"{v!r} in {names[f]}" for f, v in values.items())
                      for key, values in list(differ.items())[:4])
    more = f" and {len(differ) - 4} more" if len(differ) > 4 else ""
    raise RunError(f"{len(runs)} runs of {algo} seed {seed} were trained with different settings "
                   f"({', '.join(folders)}): {shown}{more}; choose one with --runs DIR, "
                   "or evaluate the newest with --run-newest")


def read_tuning(path: Path, ds, transfer: bool = False) -> dict[str, float]:
    """{policy: chosen latency weight} of a Heuristics/tune.py tuning.json, which must come from the
    train split of this dataset (of any dataset with `transfer`: a confirmation setting evaluates the
    weights chosen on the study's own data); anything else is a one-line error."""
    try:
        t = json.loads(read_text(path, "tuning.json", max_bytes=MAX_TUNING_BYTES))
        chosen, split, fingerprint = t["chosen_latency_weight"], t["split"], t["dataset_fingerprint"]
    except InputError as e:
        sys.exit(f"error: {e}")
    except (ValueError, KeyError, TypeError, RecursionError) as e:
        sys.exit(f"error: {path}: not a tuning.json of Heuristics/tune.py ({type(e).__name__}: {e})")
    if split != "train":
        sys.exit(f"error: {path}: tuned on the {split!r} split; only weights chosen on the train split are used")
    if fingerprint != ds.fingerprint and not transfer:
        sys.exit(f"error: {path}: tuned on another dataset (fingerprint {fingerprint} != {ds.fingerprint})")
    if not isinstance(chosen, dict) or not all(isinstance(w, (int, float)) and 0 <= w <= 1 for w in chosen.values()):
        sys.exit(f"error: {path}: 'chosen_latency_weight' must map policy names to weights in [0, 1]")
    unknown = sorted(set(chosen) - set(heuristics()))
    if unknown:
        sys.exit(f"error: {path}: unknown policies {unknown}")
    return {k: float(v) for k, v in chosen.items()}


def default_latency_weight(name: str) -> float | None:
    """The latency weight W a registered heuristic runs with when none is given (None: it takes none)."""
    parameter = inspect.signature(get(name).load()).parameters.get("latency_weight")
    return None if parameter is None else float(parameter.default)


def prior_weights(found: list[Found]) -> list[float]:
    """The distinct latency weights, ascending, of the greedy_queue guidance priors of the runs to evaluate
    (`guidance.prior: greedy_queue` with guidance enabled): each gets greedy_queue at that W as its control."""
    weights = set()
    for _, state, _ in found:
        guidance = state["config"].get("guidance")
        if isinstance(guidance, dict) and guidance.get("enabled", True) and guidance.get("prior") == "greedy_queue":
            weights.add(float(guidance["latency_weight"]))
    return sorted(weights)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=paths.DATA, help=f"data root (default: {paths.DATA})")
    p.add_argument("--region", nargs="+", type=region_name, default=["Server1_Trap"])
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--episodes", type=episodes_arg, help="episodes per evaluation (default: every task of the split; "
                                                "ten passes under contention)")
    p.add_argument("--max-steps", type=episodes_arg,
                   help="end each scheduler's evaluation after this many steps (default: once its measured workflows "
                        "have all finished): one that overloads the servers then leaves some unfinished, its rows say "
                        "which (`finished`), and its summary row counts them (`unfinished`) and is judged unstable")
    p.add_argument("--eval-seeds", type=seed_arg, nargs="+", default=list(EVAL_SEEDS),
                   help="evaluation seeds, a level of the CIs (default: " + " ".join(map(str, EVAL_SEEDS)) + ")")
    p.add_argument("--results", type=Path, default=paths.RESULTS, help=f"results root (default: {paths.RESULTS})")
    p.add_argument("--device", default="cpu", type=device_name)
    add_profile_flags(p, default_profile="paper")
    p.add_argument("--skip", nargs="+", default=[], choices=heuristics() + learned(), metavar="NAME",
                   help="heuristics not to evaluate, their tuned and prior-matched rows included (e.g. the slow "
                        "lookahead at settings where it is not reported), or learned schedulers whose runs are "
                        "left out (listed as skipped in config.yaml)")
    p.add_argument("--tuning", type=Path, nargs="+", default=[], metavar="TUNING_JSON",
                   help="also evaluate each heuristic taking a latency weight (the greedy family, lookahead) at the W "
                        "Heuristics/tune.py chose (its tuning.json, made on the train split), as <name>_tuned; "
                        "several files: each policy's W from the last file that tunes it")
    p.add_argument("--tuning-transfer", action="store_true",
                   help="accept a --tuning made on another dataset's train split (a confirmation setting: the W chosen "
                        "on the study's data, evaluated on a fresh topology)")
    p.add_argument("--zero-shot", action="store_true",
                   help="also evaluate size-agnostic checkpoints trained on another dataset (TopoFreeRL's per_server "
                        "actor), as <Algo>_zeroshot beside the runs trained on this one")
    p.add_argument("--runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="where one seed has runs trained with different settings, evaluate these run folders "
                        "(default: refuse such seeds)")
    p.add_argument("--run-newest", action="store_true",
                   help="where one seed has runs trained with different settings, evaluate the newest")
    p.add_argument("--only-runs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="evaluate these run folders (under --results) and no other learned run: a candidate decision "
                        "evaluates its own sweep's runs (total/decide.py); default: every finished run")
    p.add_argument("--workers", type=workers_arg, default=1,
                   help="schedulers evaluated at once, each in its own process (default 1); the rows are the same")
    add_threads_flag(p)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an evaluation folder made with other settings (default: refuse)")
    args = p.parse_args(argv)
    set_threads(args.threads)
    with user_errors():
        return evaluate_all(args)


def eval_tag(profile_tag: str, split: str) -> str:
    """The evaluation folder's tag: the profile's (none for the default) and the split unless it is test,
    so a train-split evaluation never replaces the test one (results/eval/<regions>[_<profile tag>][_train])."""
    return "_".join(t for t in (profile_tag, "" if split == "test" else split) if t)


def evaluate_all(args: argparse.Namespace) -> pd.DataFrame:
    results, device = args.results, resolve_device(args.device)
    profile = get_profile(args.profile)
    params = profile_params(args, profile)
    tag = eval_tag(profile.tag(params), args.split)  # contention's profile tag names its load
    ds = load_or_exit(args.data, args.region)
    tuned = {k: w for path in args.tuning for k, w in read_tuning(path, ds, args.tuning_transfer).items()}
    episodes = args.episodes or default_eval_episodes(ds, args.split, profile)
    settings = {"data": str(args.data.resolve()), "region": args.region, "split": args.split, "episodes": episodes,
                "eval_seeds": args.eval_seeds, "max_steps": args.max_steps, "profile": args.profile,
                **profile_meta(profile, params),
                "skip": sorted(args.skip), "tuned_latency_weights": tuned, "zero_shot": args.zero_shot,
                **({"only_runs": sorted(str(p.resolve()) for p in args.only_runs)} if args.only_runs else {}),
                "dataset_fingerprint": ds.fingerprint}
    found, skipped = finished_runs(args, ds, device)  # every input is read before the output folder is claimed
    with claim_output(eval_dir(results, args.region, tag), dict.fromkeys(OUTPUTS, settings), args.overwrite,
                      hint="--results") as claim:
        store = FinishedEvaluations(claim.folder, settings, fresh=args.overwrite)
        summary = evaluate_into(args, ds, device, profile, params, tag, episodes, tuned, found, skipped, store)
        store.remove()
        return summary


def finished_runs(args: argparse.Namespace, ds, device) -> tuple[list[Found], list[str]]:
    """The finished runs to evaluate (newest per seed) and the skipped ones, each with its reason."""
    found, skipped = [], []
    checkpoints = final_checkpoints(args.results)
    if args.only_runs is not None:
        wanted = {p.resolve() for p in args.only_runs}
        runs = {c.parents[1].resolve(): c for c in checkpoints}  # <run>/checkpoints/final.pt, in their order
        missing = wanted - runs.keys()
        if missing:
            sys.exit(f"error: --only-runs {sorted(map(str, missing))[0]}: not a finished run under {args.results} "
                     "(<results>/<Algo>/<run>/checkpoints/final.pt)")
        checkpoints = [c for run, c in runs.items() if run in wanted]
    for ckpt in checkpoints:
        algo = ckpt.parents[2].name  # results/<Algo>/<run>/checkpoints/final.pt
        if algo in args.skip:
            skipped.append(f"{ckpt} (--skip {algo})")
            continue
        try:
            state = load_checkpoint(ckpt, map_location=device, algo=algo)
        except CheckpointError as e:
            sys.exit(f"error: {e}")
        cfg = state["config"]
        if state["dataset"]["fingerprint"] != ds.fingerprint and not (
                args.zero_shot and agent_factory(algo).size_agnostic(cfg)):
            skipped.append(f"{ckpt} (trained on {state['dataset']['regions']}"
                           + (", not size-agnostic)" if args.zero_shot else ")"))
            continue
        if cfg["profile"] != args.profile:
            skipped.append(f"{ckpt} (trained under the {cfg['profile']} profile)")
            continue
        found.append((ckpt, state, run_variant(ckpt.parents[1])))
    found, duplicates = newest_per_seed(found, args.runs, args.run_newest)
    return found, skipped + duplicates


@dataclass
class Job:
    """One row name's evaluation: how each evaluation seed gets its policy, the training seed and run folder, and
    for a learned run its checkpoint (part of its identity in the finished store). `same_as` names a rule whose
    rows these are, relabelled (a tuned row at the rule's default W), evaluated no second time. `alone`: a rule that
    may not share a simulator (`Scheduler.shares_a_simulator`), or a learned run, unless it can decide its own rows alone
    (`BlockDeciding`) under a profile where sharing pays (`Profile.shares_learned_runs`); the others share one
    (`evaluation_units`)."""

    name: str
    policy_for_seed: Callable | None
    train_seed: float
    run: str
    checkpoint: Path | None = None
    same_as: str | None = None
    alone: bool = True  # evaluated in a simulator of its own, never side by side with others

    def identity(self) -> dict:
        found = {"name": self.name, "train_seed": None if pd.isna(self.train_seed) else int(self.train_seed),
                 "run": self.run}
        if self.checkpoint is not None:
            stat = self.checkpoint.stat()
            found |= {"checkpoint": str(self.checkpoint.resolve()), "size": stat.st_size,
                      "mtime_ns": stat.st_mtime_ns}
        return found


def plan(args: argparse.Namespace, ds, device, profile: Profile, tuned: dict[str, float],
         found: list[Found]) -> tuple[list[Job], list[float]]:
    """Every evaluation of the setting, in the order of its rows: the learned runs, each heuristic at its default
    parameters, the tuned rows, the prior-matched controls; and the priors' W."""
    jobs = []
    for ckpt, state, variant in found:
        cfg = state["config"]
        try:
            policy = policy_from_checkpoint(state, ds, agent_factory(ckpt.parents[2].name), device, profile=profile)
        except CheckpointError as e:
            sys.exit(f"error: {ckpt}: {e}")
        zero_shot = state["dataset"]["fingerprint"] != ds.fingerprint
        name = cfg["algo"] + (SWEEP_VARIANT + variant if variant else "") + (ZERO_SHOT if zero_shot else "")
        jobs.append(Job(name, lambda sim, es, policy=policy: policy, cfg["seed"], ckpt.parent.parent.name, ckpt,
                        alone=not (profile.shares_learned_runs and isinstance(policy, BlockDeciding))))
    oracle_plans: dict = {}
    defaults = set()
    for name in heuristics():
        if not get(name).evaluated_under(profile, len(ds.regions)) or name in args.skip:
            continue  # a queue-aware rule without queues, or a rule made for another profile's engine state

        def make(sim, es, name=name):
            policy = get(name).load()(sim, seed=es)
            if isinstance(policy, OraclePolicy):
                policy.cache = oracle_plans  # plans depend on the task only: share them across seeds
            return policy
        jobs.append(Job(name, make, np.nan, "", alone=not get(name).shares_a_simulator()))
        defaults.add(name)
    for name, w in tuned.items():
        if name in args.skip:
            continue
        if name in defaults and w == default_latency_weight(name):  # the same policy, seeds and draws: the same rows
            jobs.append(Job(name + TUNED, None, np.nan, "", same_as=name))
            continue
        jobs.append(Job(name + TUNED, lambda sim, es, name=name, w=w: make_policy(name, sim, es, w), np.nan, "",
                        alone=not get(name).shares_a_simulator()))
    priors = [] if "greedy_queue" in args.skip else prior_weights(found)
    for w in priors:
        if "greedy_queue" in tuned and w == tuned["greedy_queue"]:
            continue  # greedy_queue_tuned is this evaluation already: the matched control
        jobs.append(Job(prior_row(w), lambda sim, es, w=w: make_policy("greedy_queue", sim, es, w), np.nan, "",
                        alone=not get("greedy_queue").shares_a_simulator()))
    return jobs, priors


def evaluation_units(jobs: list[Job], pending: list[int], side_by_side: bool, workers: int) -> list[list[int]]:
    """The pending jobs grouped as simulators evaluate them: where the profile holds several worlds' blocks in one
    simulator (`side_by_side`), the jobs that need no simulator of their own (not `alone`) side by side
    (`evaluate_side_by_side`), split evenly over the workers; every other job alone."""
    together = [i for i in pending if side_by_side and not jobs[i].alone]
    units = [list(map(int, u)) for u in np.array_split(together, min(workers, len(together)))] if together else []
    return units + [[i] for i in pending if i not in together]


Evaluate = Callable[[list[Job]], list[Finished]]  # the jobs of one unit (`evaluation_units`), in one simulator
_PARALLEL: tuple[list[Job], list[list[int]], Evaluate, FinishedEvaluations] | None = None  # what forked workers read


def evaluate_unit(jobs: list[Job], unit: list[int], evaluate: Evaluate, store: FinishedEvaluations) -> dict[int, Finished]:
    """Evaluate the jobs of `unit` together and put each one's evaluation into the finished store."""
    done = dict(zip(unit, evaluate([jobs[i] for i in unit])))
    for i, finished in done.items():
        store.save(jobs[i].identity(), finished)
    return done


def _evaluate_unit(u: int) -> str | None:
    """In a forked worker: evaluate unit u into the finished store; the error's line if it fails."""
    assert _PARALLEL is not None
    jobs, units, evaluate, store = _PARALLEL
    try:
        evaluate_unit(jobs, units[u], evaluate, store)
    except BaseException as e:  # noqa: BLE001 -- a worker reports every failure as a line, never hangs the pool
        return f"{' + '.join(jobs[i].name for i in units[u])}: {e}"
    return None


def _worker_signals() -> None:
    """A forked worker leaves Ctrl-C and SIGTERM to the driver, which stops every worker at once
    (`evaluate_in_parallel`); the driver's SIGTERM handler, inherited, would have it report the stop
    as a failed evaluation and take the next job. It was forked with both held (the pool's start): SIGTERM
    must reach it again."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})


def evaluate_in_parallel(jobs: list[Job], units: list[list[int]], evaluate: Evaluate, store: FinishedEvaluations,
                         workers: int, progress: bool) -> None:
    """Evaluate the units of jobs in `workers` forked processes, each job into the store, so that the ordered pass
    after it reads every one back: the rows are those of one process, whatever the order the workers finish in.
    Ctrl-C, SIGTERM or a failed evaluation stops the workers at once (a stopped worker's entry is never complete,
    so it does not count): nothing goes on evaluating after the driver has ended."""
    global _PARALLEL
    _PARALLEL = (jobs, units, evaluate, store)
    pool = ProcessPoolExecutor(min(workers, len(units)), mp_context=multiprocessing.get_context("fork"),
                               initializer=_worker_signals)
    try:
        with interrupts_held():  # the pool starts whole (workers, then their manager thread), or not at all
            futures = {pool.submit(_evaluate_unit, u): u for u in range(len(units))}
        pending = set(futures)
        with tqdm(total=len(futures), desc="evaluations", unit="unit", disable=None if progress else True) as bar:
            while pending:  # a timed wait: a signal that another thread received is handled within a second
                done, pending = wait(pending, timeout=1.0, return_when=FIRST_COMPLETED)
                for future in done:
                    error = future.result()
                    if error is not None:
                        sys.exit(f"error: {error}")
                    bar.update()
    except BrokenProcessPool:
        sys.exit("error: an evaluation worker died (out of memory?); the finished evaluations are kept, run again "
                 "to resume")
    finally:
        stop_workers(pool)
        _PARALLEL = None


def stop_workers(pool: ProcessPoolExecutor, grace_s: float = 10.0) -> None:
    """End the pool's workers now: leaving early, the pool's own shutdown would wait for every queued job (Python
    3.14 names this ProcessPoolExecutor.terminate_workers). SIGTERM first, then SIGKILL for a worker still alive
    after `grace_s`: the driver never waits on a worker that goes on evaluating."""
    workers = list((getattr(pool, "_processes", None) or {}).values())
    for worker in workers:
        worker.terminate()
    for worker in workers:
        worker.join(grace_s)
        if worker.exitcode is None:
            worker.kill()
    pool.shutdown(wait=True, cancel_futures=True)


def evaluate_into(args: argparse.Namespace, ds, device, profile: Profile, params, tag: str, episodes: int,
                  tuned: dict[str, float], found: list[Found], skipped: list[str],
                  store: FinishedEvaluations) -> pd.DataFrame:
    """Evaluate the finished runs and every heuristic (each one's evaluation taken from `store` where a stopped
    run of these settings, or a worker of this one, finished it); write the claimed evaluation folder's files."""
    results = args.results
    frames: list[pd.DataFrame] = []
    request_frames: list[pd.DataFrame] = []
    bounds: list[float] = []
    loads: dict[str, list[dict[str, float]]] = {}

    def add(algo: str, done: Finished) -> None:
        loads.setdefault(algo, []).extend(done.loads)
        frames.append(done.episodes)
        if done.requests is not None:
            request_frames.append(done.requests)
        bounds.extend(done.extra.values())

    def evaluate(unit: list[Job]) -> list[Finished]:
        """The jobs' evaluations: one job's as `evaluate_seeds` runs it, several side by side in one simulator."""
        oracles: dict[str, list] = {job.name: [] for job in unit}

        def maker(job: Job) -> Callable:
            def make(sim, es):
                policy = job.policy_for_seed(sim, es)
                if isinstance(policy, OraclePolicy):
                    oracles[job.name].append((policy, sim))
                return policy
            return make
        progress = not args.no_progress and args.workers == 1
        run = (ds, args.split, episodes, args.eval_seeds, device, profile, params)
        if len(unit) == 1:
            (job,) = unit
            return [finished_of(job, evaluate_seeds(*run, maker(job), progress=progress, max_steps=args.max_steps),
                                oracles[job.name])]
        together = evaluate_side_by_side(*run, {job.name: maker(job) for job in unit}, progress=progress,
                                         max_steps=args.max_steps)
        return [finished_of(job, together[job.name], oracles[job.name]) for job in unit]

    def finished_of(job: Job, runs: list[tuple[int, Evaluation]], oracle: list) -> Finished:
        mine, requests, measured = [], [], []
        for es, result in runs:
            measured.append(measures(result))
            who = {"algo": job.name, "train_seed": job.train_seed, "eval_seed": es, "run": job.run}
            mine.append(pd.concat([pd.DataFrame(who, index=result.episodes.index), result.episodes], axis=1))
            if result.requests is not None:
                requests.append(pd.concat([pd.DataFrame(who, index=result.requests.index),
                                           result.requests[REQUEST_COLUMNS]], axis=1))
        episodes_df = pd.concat(mine, ignore_index=True)
        extra = {}
        if profile.plan_bounds_reward and oracle:  # the oracle is load-blind here; its plan value bounds every scheduler
            policy, sim = oracle[0]
            extra["reward_upper_bound"] = policy.bound(sim, list(episodes_df["task_id"]))
        return Finished(episodes_df, pd.concat(requests, ignore_index=True) if requests else None, measured, extra)

    jobs, priors = plan(args, ds, device, profile, tuned, found)
    pending = [i for i, job in enumerate(jobs) if job.same_as is None and not store.holds(job.identity())]
    side_by_side = holds_blocks(profile, params, episodes)
    units = evaluation_units(jobs, pending, side_by_side, args.workers)
    if args.workers > 1 and units:
        evaluate_in_parallel(jobs, units, evaluate, store, args.workers, not args.no_progress)
    unit_of = {i: unit for unit in units for i in unit}  # in one process: a unit when its first job's turn comes
    by_unit: dict[int, Finished] = {}  # evaluated in this process, with the rest of their unit
    fresh = set(pending)
    done: dict[str, Finished] = {}
    for i, job in enumerate(jobs):
        if job.same_as is not None:
            same = done[job.same_as]
            add(job.name, Finished(same.episodes.assign(algo=job.name), None if same.requests is None
                                   else same.requests.assign(algo=job.name), same.loads, {}))
            print(f"{job.name}: tuned at its default W {default_latency_weight(job.same_as):g}, so its rows are "
                  f"{job.same_as}'s")
            continue
        identity = job.identity()
        finished = by_unit[i] if i in by_unit else store.load(identity)
        if finished is None:
            by_unit |= evaluate_unit(jobs, unit_of.get(i, [i]), evaluate, store)
            finished = by_unit[i]
        elif i not in fresh:
            print(f"resumed {job.name}" + ("" if job.checkpoint is None else f" seed {job.train_seed}")
                  + f": {store.root}")
        add(job.name, finished)
        done[job.name] = finished
        if job.checkpoint is not None:
            print(f"evaluated {job.name} seed {job.train_seed}: {job.checkpoint}")
    evaluated = [str(job.checkpoint.resolve()) for job in jobs if job.checkpoint is not None]
    if not frames:
        sys.exit(f"error: nothing to evaluate: no finished run of this dataset and profile under {results}, and every "
                 "heuristic was skipped")
    table = pd.concat(frames, ignore_index=True)
    out = eval_dir(results, args.region, tag)
    write_csv(out / "episodes.csv", table)
    write_csv_or_remove(out / "requests.csv", pd.concat(request_frames, ignore_index=True) if request_frames else None)
    summary = summarize_runs(table, ds.n_servers, loads)
    summary["profile"] = args.profile
    if bounds:
        summary["reward_upper_bound"] = bounds[0]
    write_csv(out / "summary.csv", summary)
    write_yaml(out / "config.yaml", provenance(
        args, episodes=episodes, **profile.meta(params),
        evaluated=evaluated, skipped=skipped, skipped_names=args.skip,
        tuned_latency_weights=tuned, prior_latency_weights=priors, dataset_fingerprint=ds.fingerprint,
        device=str(device)))
    for s in skipped:
        print(f"skipped {s}")
    cols = ["label", "train_seeds", "episodes", "reward", "reward_lo", "reward_hi", "ci_unit", "latency_ms", "cost",
            *(["slo_attainment", "goodput_per_s"] if "slo_attainment" in summary else [])]
    print(summary[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    written = ["episodes.csv", *(["requests.csv"] if request_frames else []), "summary.csv"]
    print(f"wrote {', '.join(str(out / name) for name in written)} and {out / 'config.yaml'}")
    return summary


if __name__ == "__main__":
    main()
