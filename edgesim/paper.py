"""What a simulator profile is: the `Profile` base class, which is also the `paper` profile.

A profile says what a step means (its `Simulator` class), which parameters it has (a dataclass,
the config block named after the profile, checked by `parse`), and how scripts size it (rows per
batch, the default evaluation length, what a summary records). Scripts, agents and heuristics ask
the profile object (`sim.profile.queues`, `sim.profile.trap_model(sim.params)`, `.simulator(...)`),
never compare a profile's name. A name becomes its object once, where it enters (a command-line flag, a
config's `profile` key, `make_simulator(..., profile=...)`, the Gym constructors: `get_profile`);
everything past that takes the object. Adding a profile is one module (its Simulator subclass,
parameter dataclass and `Profile` subclass) plus one line in `edgesim/registry.py`; docs/extending.md
walks through it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from . import physics as P
from .dataset import Dataset
from .inputs import InputError

if TYPE_CHECKING:
    from .simulator import Simulator

MAX_PAPER_BATCH = 1024
DEFAULT = "paper"  # the profile of a config without one; its runs and evaluations carry no suffix


class ProfileError(InputError):
    """An unknown profile or a bad parameter of one; the message names it."""


@dataclass(frozen=True)
class Flag:
    """A command-line flag of a profile: `name` (e.g. --arrival-rate) overrides its parameter `key`.
    `kind` says how the value is read: text, or a number (positive_float, positive_int, ...) whose
    range is that of the config key `<profile>.<key>` (schedkit/config.py RANGES, schedkit/cli.py flag_type)."""

    name: str
    key: str
    kind: str
    help: str
    metavar: str | None = None


@dataclass(frozen=True)
class TrapModel:
    """What a trap hit costs, as planners expect it (edgesim/expectation.py `trap_outcomes`): the two
    equally likely delays of a trap hit (ms) and, where a hop over an explicit trap link is retried,
    the loss probability of one attempt and the attempts' cap (`max_attempts` None: no retries, every
    trap hit pays the surcharge). Frozen, so tables built for one trap model are cached under it."""

    surcharge_ms: tuple[float, float] = P.TRAP_SURCHARGE_MS
    loss: float = 0.0
    max_attempts: int | None = None


class Profile:
    """The `paper` profile (docs/simulator.md §1-4): one batch row per workflow episode, no queues.
    Subclasses change what differs."""

    name = "paper"
    params_class: type[Any] | None = None  # the parameter dataclass (config block `<name>:`); None: no parameters
    queues = False  # servers keep queues, so live load is a meaningful input and queue-aware rules differ
    worlds_run_on = False  # training may run its worlds on from one epoch to the next (config `rollout`)
    eval_passes = 1  # default evaluation length: passes over the split's tasks
    batches_seeds = False  # its simulator can run several evaluation seeds' worlds side by side (seed_worlds)
    # learned runs are evaluated side by side with the rules, each deciding its own rows: where a step costs
    # much more than a decision, so that sharing steps pays (measured under serving: docs/decisions.md)
    shares_learned_runs = False
    flags: tuple[Flag, ...] = ()  # command-line overrides of its parameters, offered by every script
    # `step` returns the requests that completed during its advance (info `world`, `episode`, `step` say
    # whose), not one outcome per decision: training matches each decision to its request, Gym envs credit
    # each world the rewards of its completed requests
    delayed_outcomes = False
    plan_bounds_reward = False  # True: the oracle's load-blind plan value bounds every scheduler's expected reward
    # the live per-server quantities its simulator's `live_inputs()` returns, in column order; their count is
    # the width of a learned agent's live input (schedkit/agent_base.py live_width): a checkpoint trained under
    # one profile evaluates under another only where the counts agree. Column 0 is always the expected wait.
    live_inputs: tuple[str, ...] = ("expected wait (ms)",)

    def __repr__(self) -> str:
        return f"<profile {self.name}>"

    @property
    def suffix(self) -> str:
        """What run folders and evaluation folders of this profile add to their names (none for paper)."""
        return "" if self.name == DEFAULT else f"_{self.name}"

    def parse(self, block: dict | None, overrides: dict | None = None) -> Any:
        """The parameters of a config block plus the non-None `overrides`, checked (ProfileError);
        None for a profile without parameters."""
        if self.params_class is None:
            return None
        for what, given in ((self.name, block), (f"{self.name} overrides", overrides)):
            if given is not None and not isinstance(given, dict):
                raise ProfileError(f"{what}: expected a mapping of parameters, got {given!r}")
        merged = dict(block or {}) | {k: v for k, v in (overrides or {}).items() if v is not None}
        try:
            return self.params_class.from_dict(merged)
        except ValueError as e:
            raise ProfileError(str(e)) from None

    def simulator(self, ds: Dataset, batch_size: int, split: str = "train", order: str = "random", seed: int = 0,
                  device: str | torch.device = "cpu", params: Any = None, task_subset=None) -> Simulator:
        """The simulator of this profile with `params` (checked); it carries the profile as `sim.profile`."""
        from .simulator import Simulator  # simulator.py builds on this module (a simulator's default profile)
        return Simulator(ds, batch_size, split, order, seed, device, self, task_subset=task_subset)

    def trap_model(self, params: Any) -> TrapModel:
        """The trap model of a simulator of this profile run with `params`, as expected-latency planners
        read it: the paper's flat 100/200 ms surcharge here; a profile with other trap dynamics overrides it."""
        return TrapModel()

    def expected_compute_ms(self, sim: Simulator, tokens: torch.Tensor, servers: torch.Tensor,
                            rows: torch.Tensor | None = None, live: bool = False,
                            current: bool = False) -> torch.Tensor:
        """Expected compute time (ms) of a step of `tokens` on `servers`, as the greedy family, the oracle and
        lookahead plan it (edgesim/expectation.py). Planners ask the profile because what a server's time
        is differs: the paper's compute time here, an engine's prefill and decode under serving.

        `rows` (broadcast with `servers`) are the batch rows the step belongs to; `live`: charge those rows'
        live engine state (their servers' running batch and KV), otherwise idle servers; `current`: the step
        is those rows' active decision, so what a router knows of its request (its prompt) is used. The
        paper's compute time depends on none of them."""
        return P.compute_ms(tokens, sim.net.nc[servers])

    def expected_latency_reward(self, sim: Simulator, step: dict[str, torch.Tensor], servers: torch.Tensor,
                                rows: torch.Tensor | None = None, live: bool = False,
                                current: bool = False) -> torch.Tensor:
        """The latency term of the reward that the oracle and lookahead expect of a step, given `step`, the
        terms of `expected_step` computed with `expected_compute_ms(sim, tokens, servers, rows, live, current)`:
        here the paper's 5,000 ms scale, `step["rL"]` (the clipped reward averaged over the channel's and the
        traps' outcomes). A profile whose reward scores latency otherwise overrides it, so that the planners
        optimise the reward its tables report."""
        return step["rL"]

    def batch_size(self, params: Any, episodes: int) -> int:
        """Rows of a simulator that runs `episodes` evaluation episodes."""
        return min(episodes, MAX_PAPER_BATCH)

    def eval_episodes(self, n_tasks: int) -> int:
        """The default evaluation length of a split of `n_tasks` tasks."""
        return n_tasks * self.eval_passes

    def tag(self, params: Any) -> str:
        """What names an evaluation of these dynamics beside the default one (results/eval/<regions>_<tag>):
        nothing for the default profile, the profile's name otherwise."""
        return self.suffix.removeprefix("_")

    def meta(self, params: Any) -> dict:
        """What an evaluation's summary records about the dynamics (the parameters, by block name)."""
        return {} if self.params_class is None or params is None else {self.name: asdict(params)}


PAPER = Profile()  # the paper profile; a Simulator built without a profile runs it
