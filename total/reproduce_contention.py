"""The contention study (`python total/reproduce.py --study contention`): train every learned scheduler on 5 seeds, tune the
greedy family on the train split, evaluate everything on the test split at every load and arrival
pattern, then write the tables, paired comparisons, load curve, latency CDF and latency-cost Pareto plot.

    python total/reproduce_contention.py --workers 2    # the same as total/reproduce.py --study contention
    python total/reproduce_contention.py --workers 2 --arrival-trace conv.csv code.csv   # + real traces at 8/s
    python total/reproduce_contention.py --workers 2 --zero-shot-region Server2_Trap     # + 1000 servers, zero-shot
    python total/reproduce_contention.py --workers 2 --trap-surcharge-scales 0 4 16      # + trap severity at 8/s
    python total/reproduce_contention.py --quick                                           # tiny, about 2 minutes

The protocol (docs/evaluation.md, "Protocol of the contention study"), declared in total/studies.yaml
(contention.protocol and margins) and checked here:
- Training: the runs of sweeps/contention.yaml (every learned algorithm, seeds 42-46, 8 workflows/s
  per world, Poisson, train split) through the sweep machinery, so finished runs are skipped and
  interrupted ones resume.
- Validation setting (every tuning decision): the train split at --tune-rate (8/s), Poisson, its own
  evaluation seed (protocol.validation_seed). There Heuristics/tune.py chooses the latency weight W of
  greedy_queue, least_loaded and p2c (six W, ten passes over the train tasks) and, on its own, of the
  lookahead planner (three W, two passes: at 10-25 ms a decision it is most of the tuning's time);
  Heuristics/load_rates.py finds the loaded settings' rates (protocol.loaded: least_loaded's
  utilisation 0.6 and 0.9 with 4096 slots per world); data1/generate.py makes the confirmation topology.
  All four run beside the trainings, one at a time; a re-run reuses what was made with the same settings.
- Matched controls: each rule at its tuned W (`<name>_tuned`); greedy_queue at the W that TopoFreeRL's
  prior carries (`greedy_queue_prior_w<W>`, added by total/evaluate_all.py unless the tuned W is that W,
  when greedy_queue_tuned is the control).
- Reported: the test split, 2000 workflows after warm-up, protocol.eval_seeds (five, side by side), at
  every --rates value (Poisson), every --arrival-trace at --trace-rate, every trap severity, the loaded
  settings, and --zero-shot-region; the lookahead planner at the validation rate only. Each setting is
  one total/evaluate_all.py call (every scheduler meets the same arrivals, tasks and draws), run
  --workers at a time. Then the confirmation setting, once: the fresh topology with
  protocol.confirmation.eval_seeds, the W carried over, the size-agnostic checkpoints zero-shot.
- Tables and figures: the steps total/studies.yaml lists: total/make_table.py (t-intervals over training
  runs, evaluation seeds and task clusters; paired differences against greedy_queue at its tuned W with
  verdicts against the margins), total/verdicts.py (every setting's verdicts side by side, the
  confirmation beside them), the load curve, and the latency CDF and Pareto plot at 8/s. This module
  holds what is the study's alone: its flags, the protocol, the settings and the overview table.

Figures and tables go to <results>/figures/ (--figures DIR, or --update-committed-figures for
total/figures/); <figures>/reproduce_contention.yaml records the arguments, the settings, the
wall time of each stage and the git commit.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import yaml

from edgesim.contention import CONTENTION, Contention, contention_tag
from schedkit.cli import (
    arrival_rate_arg,
    load_or_exit,
    region_name,
    seed_arg,
    surcharge_scale_arg,
)
from schedkit.registry import heuristics
from schedkit.simulators import default_eval_episodes
from total.common import (
    add_output_flags,
    figures_dir,
    inputs,
    paths,
    provenance,
    report_written,
    write_output,
    write_outputs,
    writing,
)
from total.reproduce import (
    Backend,
    Prepared,
    Study,
    add_run_flags,
    check_backend,
    overview,
    prepare,
    protocol_field,
    region_command,
    run_evaluations,
    run_steps,
    studies_or_exit,
    train,
)
from total.sweep import CHILDREN, load_sweep, stop_children_on_signal

TUNED_POLICIES = ("greedy_queue", "least_loaded", "p2c")  # greedy_switch is greedy_queue on one region
WEIGHTS = ("0.5", "0.6", "0.7", "0.8", "0.9", "1.0")
# lookahead (10-25 ms a decision) is tuned on its own, over fewer weights and two passes over the train tasks
LOOKAHEAD_WEIGHTS, LOOKAHEAD_PASSES = ("0.6", "0.8", "1.0"), 2
QUICK: dict[str, Any] = {"epochs": 2, "episodes": 16, "eval_episodes": 20, "eval_worlds": 2,
         "weights": ("0.6", "0.9"), "eval_seeds": 2,  # and the sweep's first two seeds
         "loaded": {"max_in_flight": 64, "warmup": 4, "max_steps": 2000}, "probes": 3, "confirmation_servers": 80}
CONFIRMATION_REGION = "Confirm_Trap"
LOAD_BLIND = ("lookahead", "oracle", "greedy", "maxcompute")  # left out where queues are long (and the slow planner)
REFERENCE = "greedy_queue_tuned"  # every paired table's reference: the tuned one-step rule (docs/evaluation.md)
SCORES = (("reward", "Reward", 4), ("latency_ms", "Mean latency (ms)", 0), ("p99_latency_ms", "P99 latency (ms)", 0))


@dataclass(frozen=True)
class Protocol:
    """The study's settings fixed before its runs (total/studies.yaml, contention.protocol)."""

    eval_seeds: tuple[int, ...]          # the test split's evaluation seeds, a level of every CI
    validation_seed: int                 # the validation setting: the train split at --tune-rate, this eval seed
    loaded_utilisation: tuple[float, ...]  # loads found on the train split as loaded_policy's utilisation
    loaded_policy: str
    loaded_max_in_flight: int
    loaded_warmup: int
    loaded_max_steps: int                # every loaded evaluation's step bound: an overloading scheduler is unstable
    confirmation_seed: int               # the generator seed of the confirmation topology, used nowhere else
    confirmation_servers: int
    confirmation_eval_seeds: tuple[int, ...]

    @classmethod
    def from_study(cls, study: Study) -> "Protocol":
        """The protocol of `study`; a missing or bad field is one line naming total/studies.yaml and the field."""
        where = f"total/studies.yaml: {study.name}.protocol"

        def get(path: str, check, expected: str):
            return protocol_field(study.protocol, where, path, check, expected)

        def seeds(v: Any) -> bool:
            return isinstance(v, list) and len(v) >= 1 and all(isinstance(x, int) and not isinstance(x, bool)
                                                               and 0 <= x < 2**31 for x in v)

        def count(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 1

        test, confirm = get("eval_seeds", seeds, "a list of seeds"), get("confirmation.eval_seeds", seeds, "a list of seeds")
        validation = get("validation_seed", lambda v: seeds([v]), "a seed")
        if set(test) & (set(confirm) | {validation}) or validation in confirm:
            sys.exit(f"error: {where}: the test, validation and confirmation evaluation seeds must differ")
        return cls(tuple(test), validation,
                   tuple(float(u) for u in get("loaded.utilisation", lambda v: isinstance(v, list) and all(
                       isinstance(u, float) and 0 < u < 1 for u in v), "a list of utilisations in (0, 1)")),
                   get("loaded.policy", lambda v: v in heuristics(), "a registered heuristic"),
                   get("loaded.max_in_flight", count, "a positive integer"),
                   get("loaded.warmup", count, "a positive integer"),
                   get("loaded.max_steps", count, "a positive integer"),
                   get("confirmation.generator_seed", lambda v: seeds([v]), "a seed"),
                   get("confirmation.servers", count, "a positive integer"), tuple(confirm))
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
    add_run_flags(p)
    p.add_argument("--quick", action="store_true", help=f"a tiny budget end to end: {QUICK}")
    p.add_argument("--tables-only", action="store_true",
                   help="redraw the tables and figures from the evaluations already under --results (no training, "
                        "tuning or evaluation)")
    add_output_flags(p, results=None, results_help=f"default: {paths.RESULTS}; {QUICK_RESULTS} with --quick")
    args = p.parse_args(argv)
    check_backend(p, args)
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
             ["--arrival-rate", f"{args.tune_rate:g}", "--trap-surcharge-scale", f"{x:g}", "--skip", *LOAD_BLIND])
            for x in args.trap_surcharge_scales if x != 1]
    return out


def loaded_settings(rates: dict[str, float], protocol: Protocol) -> list[tuple[str, list[str]]]:
    """(tag, evaluate_all flags) of the loaded settings: the rates at which protocol.loaded_policy measured each
    utilisation on the train split, with the protocol's slots, warm-up and step bound. Every scheduler but the
    slow lookahead planner is evaluated there. With 4096 slots a scheduler that overloads the servers queues
    minutes of work, and unbounded its evaluation ran as long (the load-blind rules took most of an hour a
    setting, STARK over 30 minutes for one checkpoint at 75.66/s); bounded, it ends at the protocol's
    `max_steps` and its row is reported unstable (total/evaluate_all.py --max-steps)."""
    c = protocol
    return [(CONTENTION.tag(Contention(arrival_rate=rate, max_in_flight=c.loaded_max_in_flight, warmup=c.loaded_warmup)),
             ["--arrival-rate", f"{rate:.6g}", "--max-in-flight", str(c.loaded_max_in_flight),
              "--warmup", str(c.loaded_warmup), "--max-steps", str(c.loaded_max_steps), "--skip", "lookahead"])
            for rate in dict.fromkeys(rates.values())]


def read_rates(folder: Path) -> dict[str, float]:
    """{utilisation: rate} of a Heuristics/load_rates.py folder."""
    return {u: float(r) for u, r in json.loads((folder / "load_rates.json").read_text())["chosen_rate"].items()}


def severity_scales(args: argparse.Namespace) -> list[str]:
    """The trap-severity figure's scales (none without --trap-surcharge-scales): scale 1 is the plain
    evaluation at the tuning rate, so it is drawn when that rate is evaluated."""
    if not args.trap_surcharge_scales:
        return []
    default = {1.0} if args.tune_rate in args.rates else set()
    return [f"{x:g}" for x in sorted({x for x in args.trap_surcharge_scales if x != 1} | default)]


def main(argv: list[str] | None = None, study: Study | None = None) -> int:
    study = study or studies_or_exit()["contention"]
    args = parse_args(argv, study)
    with writing(args):
        return reproduce(args, study)


def reproduce(args: argparse.Namespace, study: Study) -> int:
    protocol = Protocol.from_study(study)
    if args.quick:
        protocol = replace(protocol, loaded_max_in_flight=QUICK["loaded"]["max_in_flight"],
                           loaded_warmup=QUICK["loaded"]["warmup"], loaded_max_steps=QUICK["loaded"]["max_steps"],
                           confirmation_servers=QUICK["confirmation_servers"])
    results, figures = args.results.resolve(), figures_dir(args).resolve()
    sweep = load_sweep(args.sweep)
    data = str(Path(sweep["data"]) if Path(sweep["data"]).is_absolute() else paths.REPO / sweep["data"])
    region = sweep["regions"][0][0]
    budget = {k: QUICK[k] for k in ("epochs", "episodes")} if args.quick else sweep["budget"]
    seeds = args.seeds or (sweep["seeds"][:2] if args.quick else sweep["seeds"])
    # quick: fewer episodes, in 2 worlds (a quarter of the default 8's warm-up workflows), two eval seeds
    worlds = ["--worlds", str(QUICK["eval_worlds"])] if args.quick else []
    episodes = ["--episodes", str(QUICK["eval_episodes"]), *worlds] if args.quick else []
    n_seeds = QUICK["eval_seeds"] if args.quick else None
    eval_seeds, confirm_seeds = protocol.eval_seeds[:n_seeds], protocol.confirmation_eval_seeds[:n_seeds]
    logs, wall = results / "contention_study", {}
    tuning, lookahead_tuning, loads = logs / "tuning", logs / "tuning_lookahead", logs / "load_rates"
    confirm_root = logs / "confirmation"
    ds = load_or_exit(data, [region])
    tune_episodes = QUICK["eval_episodes"] if args.quick else default_eval_episodes(ds, "train", CONTENTION)
    lookahead_episodes = QUICK["eval_episodes"] if args.quick else LOOKAHEAD_PASSES * len(ds.tasks["train"])
    weights = QUICK["weights"] if args.quick else WEIGHTS
    lookahead_weights = QUICK["weights"] if args.quick else LOOKAHEAD_WEIGHTS
    validation = ["--data", data, "--region", region, "--profile", "contention", "--split", "train",
                  "--seed", str(protocol.validation_seed), "--no-progress",
                  "--overwrite", *worlds]  # the study's own folders, made with other settings: redone
    setting = {"region": [region], "split": "train", "seed": protocol.validation_seed, "profile": "contention",
               "dataset_fingerprint": ds.fingerprint}
    tune_setting = setting | {"arrival_rate": args.tune_rate, "arrival_trace": None,
                              "worlds": QUICK["eval_worlds"] if args.quick else None}
    # Work that needs no checkpoint, one process at a time beside the trainings, so the core a finishing
    # training frees is never idle: (what, folder, the settings a reusable folder records, command)
    prepared = [
        Prepared("tuning on the train split", tuning / "tuning.json",
         tune_setting | {"policy": list(TUNED_POLICIES), "weights": [float(w) for w in weights], "episodes": tune_episodes},
         ["Heuristics/tune.py", *validation, "--arrival-rate", f"{args.tune_rate:g}", "--policy", *TUNED_POLICIES,
          "--weights", *weights, "--episodes", str(tune_episodes), "--out", str(tuning)]),
        Prepared("tuning lookahead on the train split", lookahead_tuning / "tuning.json",
         tune_setting | {"policy": ["lookahead"], "weights": [float(w) for w in lookahead_weights],
                         "episodes": lookahead_episodes},
         ["Heuristics/tune.py", *validation, "--arrival-rate", f"{args.tune_rate:g}", "--policy", "lookahead",
          "--weights", *lookahead_weights, "--episodes", str(lookahead_episodes), "--out", str(lookahead_tuning)]),
        Prepared("the loaded settings' rates on the train split", loads / "load_rates.json",
         {"regions": [region], "split": "train", "seed": protocol.validation_seed, "dataset_fingerprint": ds.fingerprint,
          "policy": protocol.loaded_policy, "utilisation": list(protocol.loaded_utilisation),
                    "max_in_flight": protocol.loaded_max_in_flight, "warmup": protocol.loaded_warmup},
         ["Heuristics/load_rates.py", *validation, "--utilisation", *map(str, protocol.loaded_utilisation),
          "--policy", protocol.loaded_policy, "--max-in-flight", str(protocol.loaded_max_in_flight),
          "--warmup", str(protocol.loaded_warmup),
          *(["--episodes", str(QUICK["eval_episodes"]), "--probes", str(QUICK["probes"])] if args.quick else []),
          "--out", str(loads)]),
        Prepared("the confirmation topology", confirm_root / CONFIRMATION_REGION,
         {"generator_seed": protocol.confirmation_seed, "servers": protocol.confirmation_servers},
         region_command(confirm_root / CONFIRMATION_REGION, protocol.confirmation_seed, protocol.confirmation_servers),
         record=confirm_root / "study_generator.yaml"),
    ]
    t0 = time.perf_counter()
    if not args.tables_only:
        with stop_children_on_signal(), ThreadPoolExecutor(max_workers=1) as beside:
            pending = [beside.submit(prepare, job, logs) for job in prepared]
            try:
                train(sweep | {"data": data, "results": str(results), "budget": budget, "seeds": seeds}, args.workers,
                      backend=Backend.of(args))
                wall["train_s"] = time.perf_counter() - t0
                for job in pending:
                    job.result()
            except BaseException:
                CHILDREN.stop()  # a failed training or tuning ends the study: nothing keeps running unseen
                raise
        wall["train_and_tune_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    if not (loads / "load_rates.json").is_file():
        sys.exit(f"error: {loads / 'load_rates.json'}: missing; run the study without --tables-only first")
    rates = read_rates(loads)
    tags = settings(args) + loaded_settings(rates, protocol)
    tuned = ["--tuning", str(tuning / "tuning.json"), str(lookahead_tuning / "tuning.json")]
    test_seeds = ["--eval-seeds", *map(str, eval_seeds)]
    jobs = [{"data": data, "region": region, "tag": tag, "flags": [*flags, *test_seeds, *tuned]} for tag, flags in tags]
    tune_tag = contention_tag(args.tune_rate)  # the validation setting's rate, Poisson
    elsewhere = ["--arrival-rate", f"{args.tune_rate:g}", "--skip", "lookahead", "--zero-shot", *tuned,
                 "--tuning-transfer"]  # W chosen on the study's region, carried over
    if args.zero_shot_region:
        jobs.append({"data": data, "region": args.zero_shot_region, "tag": tune_tag, "flags": [*elsewhere, *test_seeds]})
    jobs.append({"data": str(confirm_root), "region": CONFIRMATION_REGION, "tag": tune_tag,
                 "flags": [*elsewhere, "--eval-seeds", *map(str, confirm_seeds)]})
    # the one setting that evaluates the slow lookahead planner (no `--skip lookahead`) first, so the
    # last evaluations end together
    jobs.sort(key=lambda job: "lookahead" in job["flags"])
    values: dict[str, Any] = {
        "region": region, "results": str(results), "figures": str(figures), "jobs": jobs,
        "episodes": episodes, "overwrite": ["--overwrite"] if args.overwrite else [],
        "tags": [t for t, _ in tags], "rates": [f"{r:g}" for r in args.rates], "tune_tag": tune_tag,
        "tune_rate": f"{args.tune_rate:g}", "tune_rate_evaluated": args.tune_rate in args.rates,
        "zero_shot_region": args.zero_shot_region or "", "severity_scales": severity_scales(args),
        "confirmation_region": CONFIRMATION_REGION, "reference": REFERENCE,
        "paired_tables": [f"results_table_{t}_paired.csv" for t, _ in tags]
        + ([f"{args.zero_shot_region}/results_table_{tune_tag}_paired.csv"] if args.zero_shot_region else [])
        + [f"confirmation/results_table_{tune_tag}_paired.csv"]}
    if not args.tables_only:
        with stop_children_on_signal():
            run_evaluations(study, values, args.workers, logs)
        wall["evaluate_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    run_steps(study, values)
    text = overview(results, region, [t for t, _ in tags], SCORES, "contention_")
    print(text)
    report_written(write_outputs({figures / "contention_overview.md": text},
                                 inputs(results, [region], tags=[t for t, _ in tags])))
    wall["figures_s"] = time.perf_counter() - t2
    wall["total_s"] = time.perf_counter() - t0
    if args.tables_only:  # the study's record keeps the run that made the evaluations
        print(f"redrew the tables and figures in {wall['total_s']:.0f} s: {figures}")
        return 0
    record = write_output(figures / "reproduce_contention.yaml", yaml.safe_dump(provenance(
        args, figures=figures, budget=budget, seeds=seeds, protocol=asdict(protocol),
        settings=[f"{job['region']} {job['tag']}" for job in jobs], loaded_rates=rates,
        tuning=[str(tuning / "tuning.json"), str(lookahead_tuning / "tuning.json")],
        wall_s={k: round(v, 1) for k, v in wall.items()}), sort_keys=False), inputs(results, [region]))
    print(f"wrote {record}\ndone in {wall['total_s'] / 60:.1f} min: tables and figures in {figures}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
