"""The request-routing rules of LLM serving systems, for the serving profile (docs/simulator.md §6):
round_robin, jsq, token_jsq and kv_jsq.

Each is a policy with `act(sim, obs) -> (B,) server indices`, always a valid server of the world's
active decision. They read only the servers that host the step's model type and, except round_robin,
one of the serving simulator's live per-server inputs (never a `hidden_*` member, so never an output
length). Unlike the greedy family they use no latency or cost model: these systems route on engine
state alone, so the rules are reproduced as the systems run them.

Ties go to the lowest server index, as a router's `min` over its instance list does; least_loaded
(Heuristics/policies.py) is the variant that breaks ties by the greedy score.

A rule whose live input a simulator does not offer (the paper and contention profiles keep no engine
state) refuses to start with a one-line error naming the input; the registry's `profiles` field keeps
all four out of the other profiles' tables.
"""
from __future__ import annotations

import torch

from edgesim.inputs import InputError
from edgesim.serving import ServingSimulator
from edgesim.simulator import Observation, Simulator


def require_live(sim: Simulator, policy: str, *inputs: str) -> None:
    """Refuse, in one line, a simulator that does not offer the live inputs `policy` reads."""
    missing = [name for name in inputs if not callable(getattr(sim, name, None))]
    if missing:
        raise InputError(f"policy {policy}: reads the live input {', '.join(m + '()' for m in missing)}, which the "
                         f"{sim.profile.name} profile does not offer; run it with --profile serving")


def lowest_valid(sim: Simulator, key: torch.Tensor) -> torch.Tensor:
    """(B,) the valid server with the smallest `key` (B, N); the lowest index among equal keys."""
    return key.masked_fill(~sim.valid_mask(), torch.inf).argmin(1)


class RoundRobinPolicy:
    """Round robin: in each world and for each model type, the next server in a fixed order (ascending
    index over the servers hosting the type), wrapping around: the vLLM production-stack router's
    round-robin routing (its default) and Llumnix's `rr` dispatch baseline. It reads no live input, so
    it runs under every profile; in the paper profile a row is one episode, so there it cycles within
    each episode."""

    name = "round_robin"

    def __init__(self, sim: Simulator, seed: int = 0):
        self.turn = torch.zeros((sim.batch_size, sim.net.valid.shape[0]), dtype=torch.long, device=sim.device)
        self.rows = torch.arange(sim.batch_size, device=sim.device)

    def act(self, sim: Simulator, obs: Observation) -> torch.Tensor:
        req = sim.required_type()
        slot = self.turn[self.rows, req] % sim.net.valid_count[req]
        self.turn[self.rows, req] = slot + 1
        return sim.net.valid_list[req, slot]


class JoinShortestQueuePolicy:
    """Join the shortest queue: the valid server with the fewest requests, queued plus running
    (`queue_length() + running_batch()`), as SplitwiseSim's JSQScheduler counts a machine's requests."""

    name = "jsq"

    def __init__(self, sim: Simulator, seed: int = 0):
        require_live(sim, self.name, "queue_length", "running_batch")

    def act(self, sim: ServingSimulator, obs: Observation) -> torch.Tensor:
        return lowest_valid(sim, (sim.queue_length() + sim.running_batch()).to(sim.dtype))


class TokenJSQPolicy:
    """Token-based JSQ: the valid server with the fewest outstanding tokens (`outstanding_tokens()`: the
    prompt tokens it has still to prefill, queued or in the running prefill), as SplitwiseSim's
    TokenJSQScheduler counts a machine's pending prompt tokens."""

    name = "token_jsq"

    def __init__(self, sim: Simulator, seed: int = 0):
        require_live(sim, self.name, "outstanding_tokens")

    def act(self, sim: ServingSimulator, obs: Observation) -> torch.Tensor:
        return lowest_valid(sim, sim.outstanding_tokens())


class KVJSQPolicy:
    """KV-aware JSQ: the valid server with the most free KV-cache tokens (`free_kv_tokens()`: capacity
    minus the prompts and generated tokens of its running requests): the memory criterion of KV-aware
    dispatch, close to Llumnix's `load` dispatch (which ranks instances by free KV-cache memory, scaled by
    their batch). Large engines have more KV, so under light load this prefers them."""

    name = "kv_jsq"

    def __init__(self, sim: Simulator, seed: int = 0):
        require_live(sim, self.name, "free_kv_tokens")

    def act(self, sim: ServingSimulator, obs: Observation) -> torch.Tensor:
        return lowest_valid(sim, -sim.free_kv_tokens())
