"""The serving study (`python total/reproduce.py --study serving`): does learned scheduling beat the best
rules where scheduling matters? Every learned scheduler is trained under the `serving` profile, the
greedy family is tuned on the train split, and everything is evaluated on the test split at every load
and with both Azure traces, then tables, paired verdicts and the serving figures are drawn.

    python total/reproduce_serving.py --workers 2       # the same as total/reproduce.py --study serving
    python total/reproduce_serving.py --quick           # tiny, a few minutes
    python total/reproduce_serving.py --workers 2 --data data1 --region Server1_Trap   # the 500-server scale
    python total/reproduce_serving.py --backend ray --address auto   # the trainings as tasks on a Ray cluster

The protocol (docs/evaluation.md, "Protocol of the serving study"), declared in total/studies.yaml
(serving.protocol and margins) before its runs and checked here:
- Region: by default a generated one (protocol.region: data1/generate.py at its servers and generator
  seed), sized so the whole study runs on a 2-core CPU; `--data/--region` names another (Server1_Trap
  needs about 20,000 warm-up workflows a world to reach steady state at 0.9, most of an hour of one
  core for one scheduler's evaluation: docs/performance.md, serving_load_server1).
- Training: the runs of sweeps/serving.yaml (every learned algorithm, seeds 42-46, the validation load,
  Poisson, train split, live per-server inputs) through the sweep machinery: finished runs are skipped,
  interrupted ones resume.
- Validation setting (every tuning decision): the train split at protocol.validation.load, its own
  evaluation seed. There Heuristics/tune.py chooses the latency weight W of greedy_queue, least_loaded and
  p2c among protocol.weights, each evaluation bounded by protocol.evaluation.max_steps (a W that leaves
  workflows unfinished is chosen last). The reference of every paired table is the rule with the best
  validation reward at its tuned W, `<rule>_tuned`: the best tuned rule, chosen before any test run.
- Reported: the test split at every protocol.loads value (Poisson), and at the validation load with each
  --trace's arrival pattern and token counts; protocol.eval_seeds side by side; each evaluation bounded by
  max_steps, so a scheduler whose queues outgrow it is reported unstable. Then the confirmation setting,
  once: a fresh generated topology with its own evaluation seeds, the W carried over, the size-agnostic
  checkpoints zero-shot. Last, at the validation load, the engines' timeline of the reference rule and of
  the first TopoFreeRL run (when that run is stable there).
- Tables and figures: the steps total/studies.yaml lists (tables with SLO attainment, goodput and load,
  paired differences against the reference with verdicts against the margins, SLO attainment and goodput
  against load, TTFT/TPOT CDFs, SLO attainment against the SLO scale, the latency-cost Pareto plot, the
  timeline, every verdict side by side).

Training runs are skipped once finished and resume when interrupted (the sweep machinery), and an evaluation
that finished with the same arguments and runs is not run again (<results>/serving_study/evaluations_done.json;
--overwrite redoes them), so a stopped study goes on where it was. Figures and tables go to
<results>/figures/ (--figures DIR); <figures>/reproduce_serving.yaml records the arguments, the protocol,
the reference, the settings, the wall time of each stage and the git commit.
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

from edgesim.serving import SERVING, Serving
from schedkit.cli import load_or_exit, region_name, seed_arg
from schedkit.paths import final_checkpoint
from total.common import (
    add_output_flags,
    eval_dir,
    figures_dir,
    inputs,
    paths,
    provenance,
    read_summary,
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
    child,
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

TUNED_POLICIES = ("greedy_queue", "least_loaded", "p2c")
REGION, CONFIRMATION_REGION = "Serving_Trap", "ServingConfirm_Trap"
TRACES = [paths.DATA / "traces" / f"AzureLLMInferenceTrace_{name}.csv" for name in ("conv", "code")]
# quick evaluates the tuned rules, one serving system's rule of each kind (round robin, KV JSQ) and the learned runs
QUICK: dict[str, Any] = {"epochs": 2, "episodes": 16, "eval_seeds": 2,
                         "skip": ("oracle", "greedy", "telemetry", "maxcompute", "random", "jsq", "token_jsq"),
                         "protocol": {"region_servers": 10, "confirmation_servers": 10, "weights": (0.6, 1.0),
                                      "loads": (0.5, 0.9), "worlds": 1, "warmup": 2, "episodes": 4, "max_steps": 400}}
QUICK_RESULTS = paths.RESULTS / "quick_serving"
SCORES = (("slo_attainment", "SLO attainment", 3), ("goodput_per_s", "Goodput (/s)", 3),
          ("reward", "Reward", 4), ("p99_latency_ms", "P99 latency (ms)", 0))


@dataclass(frozen=True)
class Protocol:
    """The study's settings fixed before its runs (total/studies.yaml, serving.protocol)."""

    region_servers: int                  # the generated region's size and generator seed (used nowhere else)
    region_seed: int
    loads: tuple[float, ...]             # the test split's offered loads
    validation_load: float               # the validation setting: the train split at this load and seed
    validation_seed: int
    eval_seeds: tuple[int, ...]
    weights: tuple[float, ...]           # the latency weights tuned
    worlds: int                          # every evaluation's worlds per eval seed, warm-up workflows a world,
    warmup: int                          # measured workflows per eval seed and step bound
    episodes: int
    max_steps: int
    slo_ttft_ms: float                   # the objectives every run is trained and judged by
    slo_tpot_ms: float
    confirmation_seed: int
    confirmation_servers: int
    confirmation_eval_seeds: tuple[int, ...]

    def slo_flags(self) -> list[str]:
        """The objectives as the flags of the scripts the study runs (tuning, evaluations, timelines)."""
        return ["--slo-ttft-ms", f"{self.slo_ttft_ms:g}", "--slo-tpot-ms", f"{self.slo_tpot_ms:g}"]

    @classmethod
    def from_study(cls, study: Study) -> "Protocol":
        """The protocol of `study`; a missing or bad field is one line naming total/studies.yaml and the field."""
        where = f"total/studies.yaml: {study.name}.protocol"

        def get(path: str, check, expected: str) -> Any:
            return protocol_field(study.protocol, where, path, check, expected)

        def count(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and v >= 1

        def seed(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**31

        def seeds(v: Any) -> bool:
            return isinstance(v, list) and len(v) >= 1 and all(seed(x) for x in v)

        def load(v: Any) -> bool:
            return isinstance(v, float) and 0 < v <= 1.2

        def objective(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 86_400_000

        test, confirm = get("eval_seeds", seeds, "a list of seeds"), get("confirmation.eval_seeds", seeds, "a list of seeds")
        validation = get("validation.seed", seed, "a seed")
        if set(test) & (set(confirm) | {validation}) or validation in confirm:
            sys.exit(f"error: {where}: the test, validation and confirmation evaluation seeds must differ")
        return cls(get("region.servers", count, "a positive integer"), get("region.generator_seed", seed, "a seed"),
                   tuple(get("loads", lambda v: isinstance(v, list) and len(v) >= 1 and all(load(u) for u in v),
                             "a list of loads in (0, 1.2]")),
                   get("validation.load", load, "a load in (0, 1.2]"), validation, tuple(test),
                   tuple(get("weights", lambda v: isinstance(v, list) and len(v) >= 1 and all(
                       isinstance(w, float) and 0 <= w <= 1 for w in v), "a list of weights in [0, 1]")),
                   get("evaluation.worlds", count, "a positive integer"),
                   get("evaluation.warmup", count, "a positive integer"),
                   get("evaluation.episodes", count, "a positive integer"),
                   get("evaluation.max_steps", count, "a positive integer"),
                   float(get("slo.ttft_ms", objective, "milliseconds > 0")),
                   float(get("slo.tpot_ms", objective, "milliseconds > 0")),
                   get("confirmation.generator_seed", seed, "a seed"),
                   get("confirmation.servers", count, "a positive integer"), tuple(confirm))


def parse_args(argv: list[str] | None, study: Study) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    if len(study.sweeps) != 1:
        sys.exit(f"error: total/studies.yaml: serving.sweeps: expected one training sweep, got {len(study.sweeps)}")
    sweep = study.sweeps[0]
    p.add_argument("--sweep", type=Path, default=sweep, help=f"the training sweep (default: {sweep})")
    p.add_argument("--data", type=Path, help="data root of --region (default: the protocol's generated region)")
    p.add_argument("--region", type=region_name, help="train and evaluate on this region of --data instead")
    p.add_argument("--trace", type=Path, nargs="*", default=[t for t in TRACES if t.is_file()], metavar="CSV",
                   help="request traces whose arrival pattern and token counts are also evaluated, each at the "
                        "validation load (default: both Azure traces of data1/traces)")
    p.add_argument("--seeds", type=seed_arg, nargs="+", help="training seeds (default: the sweep's, 42-46)")
    add_run_flags(p)
    p.add_argument("--quick", action="store_true", help=f"a tiny budget end to end: {QUICK}")
    p.add_argument("--tables-only", action="store_true",
                   help="redraw the tables and figures from the evaluations already under --results")
    add_output_flags(p, results=None, results_help=f"default: {paths.RESULTS}; {QUICK_RESULTS} with --quick")
    args = p.parse_args(argv)
    check_backend(p, args)
    if (args.data is None) != (args.region is None):
        p.error("--data and --region go together (neither: the protocol's generated region)")
    if args.results is None:
        args.results = QUICK_RESULTS if args.quick else paths.RESULTS
    missing = [str(t) for t in args.trace if not t.is_file()]
    if missing:
        p.error(f"trace(s) not found: {', '.join(missing)}")
    return args


def tag(load: float, trace: Path | None = None) -> str:
    """total/evaluate_all.py's tag of a serving evaluation at `load`, with `trace`'s arrivals and tokens."""
    t = str(trace) if trace else None
    return SERVING.tag(Serving(load=load, arrival_trace=t, token_trace=t))


def best_rule(tuning: Path) -> str:
    """The tuned rule with the best validation reward among the W that finished: the paired tables' reference."""
    table = json.loads(tuning.read_text())
    rows = [r for r in table["table"] if r["latency_weight"] == table["chosen_latency_weight"][r["policy"]]]
    return max(rows, key=lambda r: (-r.get("unfinished", 0), r["mean_reward"]))["policy"] + "_tuned"


def stable(results: Path, region: str, tag_: str, algo: str) -> bool:
    """Whether `algo` left no workflow unfinished in that evaluation."""
    summary = read_summary(eval_dir(results, [region], tag_) / "summary.csv").set_index("algo")
    return algo in summary.index and not summary.loc[algo].get("unfinished", 0) > 0


def main(argv: list[str] | None = None, study: Study | None = None) -> int:
    study = study or studies_or_exit()["serving"]
    args = parse_args(argv, study)
    with writing(args):
        return reproduce(args, study)


def reproduce(args: argparse.Namespace, study: Study) -> int:
    protocol = Protocol.from_study(study)
    if args.quick:
        protocol = replace(protocol, **QUICK["protocol"])
    results, figures = args.results.resolve(), figures_dir(args).resolve()
    logs, wall = results / "serving_study", {}
    sweep = load_sweep(args.sweep)
    budget = {k: QUICK[k] for k in ("epochs", "episodes")} if args.quick else sweep["budget"]
    seeds = args.seeds or (sweep["seeds"][:2] if args.quick else sweep["seeds"])
    n_seeds = QUICK["eval_seeds"] if args.quick else None
    eval_seeds, confirm_seeds = protocol.eval_seeds[:n_seeds], protocol.confirmation_eval_seeds[:n_seeds]
    regions, confirm_root = logs / "regions", logs / "confirmation"
    generated = [("the study's region", regions / REGION, protocol.region_seed, protocol.region_servers)] \
        if args.region is None else []
    generated.append(("the confirmation topology", confirm_root / CONFIRMATION_REGION, protocol.confirmation_seed,
                      protocol.confirmation_servers))
    for what, out, seed, servers in generated:  # before training: the sweep trains on the first
        prepare(Prepared(what, out, {"generator_seed": seed, "servers": servers}, region_command(out, seed, servers),
                         record=out.parent / f"{out.name}_generator.yaml"), logs)
    data, region = (str(args.data.resolve()), args.region) if args.region else (str(regions), REGION)
    ds = load_or_exit(data, [region])
    bounded = ["--worlds", str(protocol.worlds), "--warmup", str(protocol.warmup), "--max-steps",
               str(protocol.max_steps), *protocol.slo_flags()]
    tuning = logs / "tuning"
    tune = Prepared(
        "tuning on the train split", tuning / "tuning.json",
        {"region": [region], "split": "train", "seed": protocol.validation_seed, "profile": "serving",
         "dataset_fingerprint": ds.fingerprint, "policy": list(TUNED_POLICIES), "weights": list(protocol.weights),
         "episodes": protocol.episodes, "max_steps": protocol.max_steps, "load": protocol.validation_load,
         "worlds": protocol.worlds, "warmup": protocol.warmup, "slo_ttft_ms": protocol.slo_ttft_ms,
         "slo_tpot_ms": protocol.slo_tpot_ms},
        ["Heuristics/tune.py", "--data", data, "--region", region, "--profile", "serving", "--split", "train",
         "--seed", str(protocol.validation_seed), "--load", f"{protocol.validation_load:g}", *bounded,
         "--episodes", str(protocol.episodes), "--policy", *TUNED_POLICIES, "--weights", *map(str, protocol.weights),
         "--out", str(tuning), "--no-progress", "--overwrite"])

    t0 = time.perf_counter()
    if not args.tables_only:
        with stop_children_on_signal(), ThreadPoolExecutor(max_workers=1) as beside:
            pending = beside.submit(prepare, tune, logs)
            try:
                train(sweep | {"data": data, "regions": [[region]], "results": str(results), "budget": budget,
                               "seeds": seeds, "overrides": trained_with_slo(sweep, protocol)}, args.workers,
                      backend=Backend.of(args))
                wall["train_s"] = time.perf_counter() - t0
                pending.result()
            except BaseException:
                CHILDREN.stop()
                raise
        wall["train_and_tune_s"] = time.perf_counter() - t0

    t1 = time.perf_counter()
    if not (tuning / "tuning.json").is_file():
        sys.exit(f"error: {tuning / 'tuning.json'}: missing; run the study without --tables-only first")
    reference = best_rule(tuning / "tuning.json")
    main_tag = tag(protocol.validation_load)
    settings = [(tag(u), ["--load", f"{u:g}"]) for u in protocol.loads]
    settings += [(tag(protocol.validation_load, t), ["--load", f"{protocol.validation_load:g}", "--arrival-trace",
                                                     str(t.resolve()), "--token-trace", str(t.resolve())])
                 for t in args.trace]
    skip = ["lookahead", *(QUICK["skip"] if args.quick else ())]
    common = [*bounded, "--episodes", str(protocol.episodes), "--skip", *skip, "--tuning", str(tuning / "tuning.json")]
    test_seeds = ["--eval-seeds", *map(str, eval_seeds)]
    jobs = [{"data": data, "region": region, "tag": t, "flags": [*flags, *common, *test_seeds]} for t, flags in settings]
    jobs.append({"data": str(confirm_root), "region": CONFIRMATION_REGION, "tag": main_tag,
                 "flags": ["--load", f"{protocol.validation_load:g}", *common, "--zero-shot", "--tuning-transfer",
                           "--eval-seeds", *map(str, confirm_seeds)]})
    timeline_root = logs / "timeline"
    values: dict[str, Any] = {
        "region": region, "results": str(results), "figures": str(figures), "jobs": jobs,
        "overwrite": ["--overwrite"] if args.overwrite else [],
        "loads": [f"{u:g}" for u in protocol.loads], "main_tag": main_tag, "reference": reference,
        "confirmation_region": CONFIRMATION_REGION}
    if not args.tables_only:
        with stop_children_on_signal():
            done = logs / "evaluations_done.json"  # a re-run skips what finished with the same arguments and runs
            if args.overwrite:
                done.unlink(missing_ok=True)
            run_evaluations(study, values, args.workers, logs, done)
            timelines(protocol, data, region, reference, tuning / "tuning.json", results, seeds, eval_seeds[0],
                      timeline_root, logs)
        wall["evaluate_s"] = time.perf_counter() - t1
    # a setting where the reference left workflows unfinished gets its results table only (no pairing with it)
    tags = [t for t, _ in settings]
    paired = [t for t in tags if stable(results, region, t, reference)]
    confirmation_paired = stable(results, CONFIRMATION_REGION, main_tag, reference)
    values |= {"paired_tags": paired, "unpaired_tags": [t for t in tags if t not in paired],
               "confirmation_paired": confirmation_paired,
               "paired_tables": [f"results_table_{t}_paired.csv" for t in paired]
               + ([f"confirmation/results_table_{main_tag}_paired.csv"] if confirmation_paired else []),
               # Heuristics/inference.py writes its policy's evaluation one folder down
               "timelines": [str(f.parent) for f in sorted(timeline_root.rglob("timeline.csv"))]}

    t2 = time.perf_counter()
    run_steps(study, values)
    text = overview(results, region, tags, SCORES, "serving_")
    print(text)
    report_written(write_outputs({figures / "serving_overview.md": text},
                                 inputs(results, [region], tags=tags)))
    wall["figures_s"] = time.perf_counter() - t2
    wall["total_s"] = time.perf_counter() - t0
    if args.tables_only:
        print(f"redrew the tables and figures in {wall['total_s']:.0f} s: {figures}")
        return 0
    record = write_output(figures / "reproduce_serving.yaml", yaml.safe_dump(provenance(
        args, figures=figures, budget=budget, seeds=seeds, protocol=asdict(protocol), region=region, data=data,
        reference=reference, unpaired=values["unpaired_tags"], settings=[f"{job['region']} {job['tag']}" for job in jobs],
        tuning=str(tuning / "tuning.json"), wall_s={k: round(v, 1) for k, v in wall.items()}), sort_keys=False),
        inputs(results, [region]))
    print(f"wrote {record}\ndone in {wall['total_s'] / 60:.1f} min: tables and figures in {figures}")
    return 0


def trained_with_slo(sweep: dict, protocol: Protocol) -> dict[str, list[str]]:
    """The sweep's `overrides` with the protocol's objectives for every algorithm: the reward a learned scheduler
    trains on scores each request against them, so it trains for the objectives it is judged by."""
    overrides = dict(sweep.get("overrides") or {})
    overrides["all"] = [*(overrides.get("all") or []), f"serving.slo_ttft_ms={protocol.slo_ttft_ms:g}",
                        f"serving.slo_tpot_ms={protocol.slo_tpot_ms:g}"]
    return overrides


def timelines(protocol: Protocol, data: str, region: str, reference: str, tuning: Path, results: Path,
              seeds: list[int], eval_seed: int, root: Path, logs: Path) -> None:
    """The engines over time at the validation load (test split, the first eval seed) of the reference rule at
    its tuned W and of the first TopoFreeRL run, each with --timeline; a scheduler unstable there is left out
    (its evaluation would run to no end without a step bound)."""
    main_tag = tag(protocol.validation_load)
    setting = ["--data", data, "--region", region, "--profile", "serving", "--load", f"{protocol.validation_load:g}",
               "--worlds", str(protocol.worlds), "--warmup", str(protocol.warmup), "--episodes",
               str(protocol.episodes), "--seed", str(eval_seed), *protocol.slo_flags(), "--timeline", "--no-progress",
               "--overwrite"]
    rule = reference.removesuffix("_tuned")
    weight = json.loads(tuning.read_text())["chosen_latency_weight"][rule]
    runs = [(reference, ["Heuristics/inference.py", "--policy", rule, "--latency-weight", f"{weight:g}"])]
    checkpoint = final_checkpoint(results / "TopoFreeRL" / f"{region}_serving_seed{seeds[0]}")
    if checkpoint.is_file():
        runs.append(("TopoFreeRL", ["TopoFreeRL/inference.py", "--model", str(checkpoint)]))
    for name, argv in runs:
        if not stable(results, region, main_tag, name):
            print(f"timeline: {name} is unstable at load {protocol.validation_load:g}; left out")
            continue
        child([*argv, *setting, "--out", str(root / name)], logs / f"timeline_{name}.log", f"timeline of {name}")


if __name__ == "__main__":
    sys.exit(main())
