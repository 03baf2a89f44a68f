"""The contention study (`python total/reproduce.py --study contention`): train every learned scheduler on 5 seeds, tune the
greedy family on the train split, evaluate everything on the test split at every load and arrival
pattern, then write the tables, paired comparisons, load curve, latency CDF and latency-cost Pareto plot.

    python total/reproduce_contention.py --workers 2    # the same as total/reproduce.py --study contention
    python total/reproduce_contention.py --workers 2 --arrival-trace conv.csv code.csv   # + real traces at 8/s
    python total/reproduce_contention.py --workers 2 --zero-shot-region Server2_Trap     # + 1000 servers, zero-shot
    python total/reproduce_contention.py --workers 2 --trap-surcharge-scales 0 4 16      # + trap severity at 8/s
    python total/reproduce_contention.py --quick                                           # tiny, about 2 minutes

The protocol, fixed before any result was seen:
- Training: the runs of sweeps/contention.yaml (every learned algorithm, seeds 42-46, 8 workflows/s
  per world, Poisson, train split) through the sweep machinery, so finished runs are skipped and
  interrupted ones resume. Nothing is selected on test numbers.
- Tuning (the validation setting): the latency weight W of greedy_queue, least_loaded, p2c and
  the lookahead planner (its planning weights' latency share) is chosen by Heuristics/tune.py on the
  *train* split at --tune-rate (8/s), Poisson, ten passes over its tasks (10,000 workflows), eval
  seed 0; the tuned variants are evaluated as `<name>_tuned` beside the defaults (lookahead_tuned,
  like lookahead, at the validation setting's rate only). lookahead, at 10-25 ms a decision, is most
  of the tuning's time: 8-21 min per W on one core (about 50,000 decisions), 1-2 h for the six W, run
  beside the trainings. A re-run reuses a tuning made with the same settings.
- Matched control: TopoFreeRL's recipe (TopoFreeRL/contention.yaml) carries greedy_queue's score at
  W = 0.9 as its guidance prior, so every evaluation also holds greedy_queue at that W, as
  `greedy_queue_prior_w0.9` (total/evaluate_all.py adds it for every prior W of the evaluated runs).
- Reported: the test split, 2000 workflows after warm-up, eval seed 0, at every --rates value
  (Poisson) and for every --arrival-trace at --trace-rate. Each setting is one
  total/evaluate_all.py call (every scheduler meets the same tasks and draws; Poisson arrival times
  differ between schedulers, docs/simulator.md section 5), run --workers at a time; then the tables
  and figures that total/studies.yaml lists for the study: total/make_table.py (CIs over training
  seeds and shared tasks, and paired differences against greedy_queue), total/plot_load_curve.py,
  and the latency CDF and the latency-cost Pareto plot at 8/s. This module holds what is the
  study's alone: its flags, the settings, the tuning and the overview table.

Figures and tables go to <results>/figures/ (--figures DIR, or --update-committed-figures for
total/figures/); <figures>/reproduce_contention.yaml records the arguments, the settings, the
wall time of each stage and the git commit.
"""
from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import yaml

from edgesim.contention import CONTENTION, contention_tag
from schedkit.cli import (
    arrival_rate_arg,
    load_or_exit,
    region_name,
    seed_arg,
    surcharge_scale_arg,
    workers_arg,
)
from schedkit.config import ConfigError, load_yaml
from schedkit.simulators import default_eval_episodes
from total.common import (
    add_output_flags,
    eval_dir,
    figures_dir,
    inputs,
    label,
    paths,
    provenance,
    read_summary,
    report_written,
    sort_algos,
    write_output,
    write_outputs,
    writing,
)
from total.reproduce import Study, child, run_evaluations, run_steps, studies_or_exit, train
from total.sweep import CHILDREN, load_sweep, stop_children_on_signal

TUNED_POLICIES = ("greedy_queue", "least_loaded", "p2c", "lookahead")
WEIGHTS = ("0.5", "0.6", "0.7", "0.8", "0.9", "1.0")
QUICK: dict[str, Any] = {"epochs": 2, "episodes": 16, "eval_episodes": 40, "eval_worlds": 2,
         "weights": ("0.6", "0.9")}  # and the sweep's first two seeds
QUICK_RESULTS = paths.RESULTS / "quick_contention"


def parse_args(argv: list[str] | None, study: Study) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if len(study.sweeps) != 1:
        sys.exit(f"error: total/studies.yaml: contention.sweeps: expected one training sweep, got {len(study.sweeps)}")
    sweep = study.sweeps[0]
    p.add_argument("--sweep", type=Path, default=sweep, help=f"the training sweep (default: {sweep})")
    p.add_argument("--rates", type=arrival_rate_arg, nargs="+", default=[2, 4, 8, 12, 16],
                   help="Poisson arrival rates (workflows/s per world) to evaluate at (default: 2 4 8 12 16)")
    p.add_argument("--arrival-trace", type=Path, nargs="*", default=[], metavar="CSV",
                   help="request traces (Azure TIMESTAMP or BurstGPT Timestamp column) whose arrival pattern is "
                        "also evaluated, each at --trace-rate")
    p.add_argument("--trace-rate", type=arrival_rate_arg, default=8.0,
                   help="mean rate of the trace evaluations (default: 8)")
    p.add_argument("--tune-rate", type=arrival_rate_arg, default=8.0,
                   help="the validation setting's rate: W is tuned on the train split there (default: 8)")
    p.add_argument("--trap-surcharge-scales", type=surcharge_scale_arg, nargs="*", default=[], metavar="X",
                   help="trap severity: also evaluate at --tune-rate with the flat trap delay times each X "
                        "(e.g. 0 4 16; every model was trained at 1), and draw total/plot_trap_severity.py's figure")
    p.add_argument("--zero-shot-region", type=region_name, metavar="REGION",
                   help="also evaluate on this region of the sweep's data (e.g. Server2_Trap, 1000 servers) at "
                        "--tune-rate: the size-agnostic checkpoints zero-shot, beside the heuristics; its tables go "
                        "to <figures>/<REGION>/")
    p.add_argument("--seeds", type=seed_arg, nargs="+", help="training seeds (default: the sweep's, 42-46)")
    p.add_argument("--workers", type=workers_arg, default=1, help="trainings and evaluations at once (default 1)")
    p.add_argument("--quick", action="store_true", help=f"a tiny budget end to end: {QUICK}")
    add_output_flags(p, results=None, results_help=f"default: {paths.RESULTS}; {QUICK_RESULTS} with --quick")
    args = p.parse_args(argv)
    if args.results is None:
        args.results = QUICK_RESULTS if args.quick else paths.RESULTS
    missing = [str(t) for t in args.arrival_trace if not t.is_file()]
    if missing:
        p.error(f"arrival trace(s) not found: {', '.join(missing)}")
    return args


def settings(args: argparse.Namespace) -> list[tuple[str, list[str]]]:
    """(tag, evaluate_all flags) of every reported setting. The lookahead planner (about 10-25 ms a
    decision) is evaluated at the validation setting's rate only, Poisson arrivals, default traps."""
    def skip(rate: float) -> list[str]:
        return [] if rate == args.tune_rate else ["--skip", "lookahead"]
    out = [(contention_tag(r), ["--arrival-rate", f"{r:g}", *skip(r)]) for r in args.rates]
    out += [(contention_tag(args.trace_rate, str(t)), ["--arrival-rate", f"{args.trace_rate:g}",
                                                        "--arrival-trace", str(t.resolve()), "--skip", "lookahead"])
            for t in args.arrival_trace]
    # the load-blind rules collapse under contention at any trap delay: left out of the severity settings
    out += [(contention_tag(args.tune_rate, surcharge=x),
             ["--arrival-rate", f"{args.tune_rate:g}", "--trap-surcharge-scale", f"{x:g}",
              "--skip", "lookahead", "oracle", "greedy", "maxcompute"])
            for x in args.trap_surcharge_scales if x != 1]
    return out


def overview(results: Path, region: str, tags: list[str]) -> str:
    """One Markdown table per metric, a column per setting: every scheduler's mean [95% CI] (the
    per-setting tables and paired comparisons hold the rest)."""
    summaries = {t: read_summary(eval_dir(results, [region], t) / "summary.csv").set_index("algo") for t in tags}
    algos = sort_algos({a for s in summaries.values() for a in s.index})
    parts = []
    for metric, name, digits in (("reward", "Reward", 4), ("latency_ms", "Mean latency (ms)", 0),
                                 ("p99_latency_ms", "P99 latency (ms)", 0)):
        rows = [f"| {name} | " + " | ".join(t.removeprefix("contention_") for t in tags) + " |",
                "|---|" + "---|" * len(tags)]
        for a in algos:
            cells = []
            for t in tags:
                r = summaries[t].loc[a] if a in summaries[t].index else None
                cells.append("" if r is None else
                             f"{r[metric]:,.{digits}f} [{r[metric + '_lo']:,.{digits}f}, {r[metric + '_hi']:,.{digits}f}]")
            rows.append(f"| {label(a)} | " + " | ".join(cells) + " |")
        parts.append("\n".join(rows))
    return "\n\n".join(parts) + "\n"


def severity_scales(args: argparse.Namespace) -> list[str]:
    """The trap-severity figure's scales (none without --trap-surcharge-scales): scale 1 is the plain
    evaluation at the tuning rate, so it is drawn when that rate is evaluated."""
    if not args.trap_surcharge_scales:
        return []
    default = {1.0} if args.tune_rate in args.rates else set()
    return [f"{x:g}" for x in sorted({x for x in args.trap_surcharge_scales if x != 1} | default)]


def tuning_done(folder: Path, want: dict) -> bool:
    """Whether `folder` already holds a tuning made with exactly these settings (Heuristics/tune.py
    records them in its config.yaml), so that a re-run of the study reuses it instead of redoing it."""
    try:
        have = load_yaml(folder / "config.yaml", "tuning config")
    except ConfigError:
        return False
    return (folder / "tuning.json").is_file() and isinstance(have, dict) and all(have.get(k) == v
                                                                                 for k, v in want.items())


def main(argv: list[str] | None = None, study: Study | None = None) -> int:
    study = study or studies_or_exit()["contention"]
    args = parse_args(argv, study)
    with writing(args):
        return reproduce(args, study)


def reproduce(args: argparse.Namespace, study: Study) -> int:
    results, figures = args.results.resolve(), figures_dir(args).resolve()
    sweep = load_sweep(args.sweep)
    data = str(Path(sweep["data"]) if Path(sweep["data"]).is_absolute() else paths.REPO / sweep["data"])
    region = sweep["regions"][0][0]
    budget = {k: QUICK[k] for k in ("epochs", "episodes")} if args.quick else sweep["budget"]
    seeds = args.seeds or (sweep["seeds"][:2] if args.quick else sweep["seeds"])
    # quick: fewer episodes, in 2 worlds (a quarter of the default 8's warm-up workflows)
    episodes = ["--episodes", str(QUICK["eval_episodes"]), "--worlds", str(QUICK["eval_worlds"])] if args.quick else []
    logs, wall = results / "contention_study", {}
    tuning = logs / "tuning"
    ds = load_or_exit(data, [region])
    tune_episodes = QUICK["eval_episodes"] if args.quick else default_eval_episodes(ds, "train", CONTENTION)
    weights = QUICK["weights"] if args.quick else WEIGHTS
    want = {"policy": list(TUNED_POLICIES), "weights": [float(w) for w in weights], "region": [region],
            "split": "train", "episodes": tune_episodes, "seed": 0, "profile": "contention",
            "arrival_rate": args.tune_rate, "arrival_trace": None, "dataset_fingerprint": ds.fingerprint,
            "worlds": QUICK["eval_worlds"] if args.quick else None}
    t0 = time.perf_counter()
    with stop_children_on_signal(), ThreadPoolExecutor(max_workers=1) as beside:
        # the tuning (one process) runs beside the trainings, so the core a finishing training frees is
        # never idle; it needs no checkpoint
        if tuning_done(tuning, want):
            print(f"tuning on the train split: reusing {tuning} (made with the same settings)")
            tuned = None
        else:
            tuned = beside.submit(child, [
                "Heuristics/tune.py", "--data", data, "--region", region, "--profile", "contention",
                "--arrival-rate", f"{args.tune_rate:g}", "--split", "train", "--policy", *TUNED_POLICIES,
                "--weights", *weights, "--episodes", str(tune_episodes), "--out", str(tuning), "--no-progress",
                "--overwrite",  # the study's own tuning folder, made with other settings: redone (tuning_done)
                *(["--worlds", str(QUICK["eval_worlds"])] if args.quick else [])],
                logs / "tune.log", "tuning on the train split")
        try:
            train(sweep | {"data": data, "results": str(results), "budget": budget, "seeds": seeds}, args.workers)
            wall["train_s"] = time.perf_counter() - t0
            if tuned is not None:
                tuned.result()
        except BaseException:
            CHILDREN.stop()  # a failed training or tuning ends the study: nothing keeps running unseen
            raise
        wall["train_and_tune_s"] = time.perf_counter() - t0

        t1 = time.perf_counter()
        tags = settings(args)
        jobs = [{"region": region, "tag": tag, "flags": [*flags, "--tuning", str(tuning / "tuning.json")]}
                for tag, flags in tags]
        tune_tag = contention_tag(args.tune_rate)  # the validation setting's rate, Poisson
        if args.zero_shot_region:  # W was tuned on the sweep's region: no tuned rows on another one
            jobs.append({"region": args.zero_shot_region, "tag": tune_tag,
                         "flags": ["--arrival-rate", f"{args.tune_rate:g}", "--skip", "lookahead", "--zero-shot"]})
        # the one setting that evaluates the slow lookahead planner (no `--skip lookahead`) first, so the
        # last evaluations end together
        jobs.sort(key=lambda job: "lookahead" in job["flags"])
        values: dict[str, Any] = {
            "data": data, "region": region, "results": str(results), "figures": str(figures), "jobs": jobs,
            "episodes": episodes, "overwrite": ["--overwrite"] if args.overwrite else [],
            "tags": [t for t, _ in tags], "rates": [f"{r:g}" for r in args.rates], "tune_tag": tune_tag,
            "tune_rate": f"{args.tune_rate:g}", "tune_rate_evaluated": args.tune_rate in args.rates,
            "zero_shot_region": args.zero_shot_region or "", "severity_scales": severity_scales(args)}
        run_evaluations(study, values, args.workers, logs)
        wall["evaluate_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    run_steps(study, values)
    text = overview(results, region, [t for t, _ in tags])
    print(text)
    report_written(write_outputs({figures / "contention_overview.md": text},
                                 inputs(results, [region], tags=[t for t, _ in tags])))
    wall["figures_s"] = time.perf_counter() - t2
    wall["total_s"] = time.perf_counter() - t0
    record = write_output(figures / "reproduce_contention.yaml", yaml.safe_dump(provenance(
        args, figures=figures, budget=budget, seeds=seeds, settings=[f"{job['region']} {job['tag']}" for job in jobs],
        tuning=str(tuning / "tuning.json"), wall_s={k: round(v, 1) for k, v in wall.items()}), sort_keys=False),
        inputs(results, [region]))
    print(f"wrote {record}\ndone in {wall['total_s'] / 60:.1f} min: tables and figures in {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
