"""Every scheduler the study scripts know, learned and non-learned, in one place.

`total/evaluate_all.py`, the tables and figures, `total/sweep.py`, `Heuristics/inference.py`,
`Heuristics/tune.py` and `bench/` all read this registry, so adding a scheduler is its folder (a
learned one: agent, train.py, inference.py, config.yaml) or its policy class (a non-learned one),
plus one `Scheduler(...)` line below; docs/extending.md walks through both. Classes are named as
"module:Class" strings and imported on first use, so importing the registry imports no scheduler.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgesim.paper import Profile


@dataclass(frozen=True)
class Scheduler:
    name: str  # the `algo` column of every table; results/<name>/ holds a learned one's runs
    target: str  # "module:Class": the agent of a learned scheduler, the policy of a non-learned one
    color: str  # one fixed colour across every figure
    label: str = ""  # display name, default `name`
    folder: str = ""  # learned only: the folder holding train.py, inference.py and config.yaml
    queue_aware: bool = False  # non-learned: evaluated by total/ only under a profile with queues (contention, serving)
    profiles: tuple[str, ...] = ()  # non-learned: evaluated by total/ and `--policy all` only under these (empty: any)
    multi_region: bool = False  # non-learned: evaluated by total/ only on data of several regions (else another rule)
    linestyle: str = "-"  # with `marker`, tells curves apart where colours are close or curves overlap
    marker: str = "o"

    @property
    def learned(self) -> bool:
        return bool(self.folder)

    @property
    def display(self) -> str:
        return self.label or self.name

    def runs_under(self, profile: Profile) -> bool:
        """Whether `--policy all` includes it under `profile`: a rule made for one profile's engine state
        (the serving rules) is left out elsewhere; asked for by name, it runs or refuses with one line."""
        return not self.profiles or profile.name in self.profiles

    def evaluated_under(self, profile: Profile, n_regions: int = 1) -> bool:
        """Whether total/evaluate_all.py evaluates it under `profile` on data of `n_regions` regions: also leaves
        the queue-aware rules out where servers keep no queues (there they are greedy or the oracle, or have
        nothing to balance), and a switch-aware rule out on one region (where it is greedy_queue)."""
        return self.runs_under(profile) and (profile.queues or not self.queue_aware) and (
            n_regions > 1 or not self.multi_region)

    def shares_a_simulator(self) -> bool:
        """Whether this rule may be evaluated side by side with other rules (`evaluate_side_by_side`): not if it
        draws random numbers for the whole batch (its rows would depend on the batch it runs in), nor if its
        decision's cost grows with the rows (a planner would plan every rule's rows)."""
        rule = self.load()
        return not (getattr(rule, "draws_for_the_batch", False) or getattr(rule, "plans_each_row", False))

    def load(self) -> type:
        """The agent or policy class (imported now)."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)


SCHEDULERS: dict[str, Scheduler] = {}


def register(scheduler: Scheduler) -> Scheduler:
    """Add (or replace) a scheduler; the order of registration is the order of every table."""
    SCHEDULERS[scheduler.name] = scheduler
    return scheduler


# Names a scheduler had in older versions: saved configs and checkpoints carrying one load under the
# current name (schedkit/config.py upgrade); a results/<old>/ folder is reported by `old_results_folders`.
RENAMED = {"Stark": "STARK"}


def current_name(name: str) -> str:
    """A scheduler's name as this version spells it (an older spelling mapped through RENAMED)."""
    return RENAMED.get(name, name)


def old_results_folders(results: Path) -> list[str]:
    """One line per results/<old name>/ folder (the older layout), saying what to rename it to: the study
    scripts look for runs under results/<name>/ only."""
    return [f"{results / old}: runs under the older name {old}; rename the folder to {results / new}"
            for old, new in RENAMED.items() if (results / old).is_dir() and not (results / new).exists()]


def learned() -> list[str]:
    return [name for name, s in SCHEDULERS.items() if s.learned]


def heuristics() -> list[str]:
    return [name for name, s in SCHEDULERS.items() if not s.learned]


def get(name: str) -> Scheduler:
    try:
        return SCHEDULERS[name]
    except KeyError:
        raise KeyError(f"unknown scheduler {name!r}; known: {', '.join(SCHEDULERS)}") from None


# Colours: the Okabe-Ito colour-blind-safe palette; its 8 colours are taken, so the newer heuristics
# use Paul Tol's (muted scheme). Lines: learned methods solid, heuristics dashed or dotted, every
# scheduler its own marker (TopoFreeRL, greedy and greedy_queue are three oranges/yellows).
# Queue-aware heuristics are evaluated only where servers keep queues: without queues greedy_queue and
# least_loaded are greedy and lookahead is the oracle; p2c and telemetry are contention baselines, and
# greedy_switch is greedy_queue's control for the switch penalty (greedy on one region).
# The serving rules route on engine state (Heuristics/serving_rules.py) and are evaluated under serving only.
H = "Heuristics.policies"
R = "Heuristics.serving_rules"
for _s in (
    Scheduler("TopoFreeRL", "TopoFreeRL.agent:TopoFreeAgent", "#D55E00", folder="TopoFreeRL"),
    Scheduler("PPO", "PPO_algorithm.agent:PPOAgent", "#0072B2", folder="PPO_algorithm", marker="s"),
    Scheduler("PFAPPO", "PFAPPO.agent:PFPPOAgent", "#009E73", label="PF-PPO", folder="PFAPPO", marker="^"),
    Scheduler("STARK", "Stark_Scheduler.model:StarkAgent", "#CC79A7", folder="Stark_Scheduler", marker="D"),
    Scheduler("oracle", f"{H}:OraclePolicy", "#000000", linestyle=":", marker="*"),
    Scheduler("lookahead", f"{H}:LookaheadPolicy", "#117733", queue_aware=True, linestyle="--", marker="p"),
    Scheduler("greedy", f"{H}:GreedyPolicy", "#E69F00", linestyle="--", marker="v"),
    Scheduler("greedy_queue", f"{H}:QueueGreedyPolicy", "#F0E442", queue_aware=True, linestyle="-.", marker="P"),
    Scheduler("greedy_switch", f"{H}:SwitchGreedyPolicy", "#DDCC77", queue_aware=True, multi_region=True, linestyle=":",
              marker="4"),
    Scheduler("least_loaded", f"{H}:LeastLoadedPolicy", "#332288", queue_aware=True, linestyle="-.", marker="h"),
    Scheduler("p2c", f"{H}:PowerOfTwoPolicy", "#882255", queue_aware=True, linestyle=":", marker="d"),
    Scheduler("telemetry", f"{H}:TelemetryPolicy", "#AA4499", queue_aware=True, linestyle="-.", marker="8"),
    Scheduler("maxcompute", f"{H}:MaxComputePolicy", "#56B4E9", linestyle="--", marker="<"),
    Scheduler("random", f"{H}:RandomPolicy", "#999999", linestyle=":", marker="X"),
    Scheduler("round_robin", f"{R}:RoundRobinPolicy", "#44AA99", profiles=("serving",), linestyle="--", marker=">"),
    Scheduler("jsq", f"{R}:JoinShortestQueuePolicy", "#88CCEE", profiles=("serving",), linestyle="-.", marker="1"),
    Scheduler("token_jsq", f"{R}:TokenJSQPolicy", "#999933", label="token JSQ", profiles=("serving",),
              linestyle=":", marker="2"),
    Scheduler("kv_jsq", f"{R}:KVJSQPolicy", "#CC6677", label="KV JSQ", profiles=("serving",), linestyle="--",
              marker="3"),
):
    register(_s)
