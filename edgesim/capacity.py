"""How many workflows per second a cluster of typed servers can finish: the bound behind `--load`.

Each step of a workflow needs a server hosting its model type. Summing every server's rate ignores that:
on Server1_Trap a third of the requests need a type that only 60 of the 500 servers host, and those
60 saturate at about half the rate the sum promises. The fluid bound is exact for any routing: if λ
workflows arrive per second and a workflow makes demand[t] requests of type t on average, the
requests can be split among the servers without any server s receiving more than rate[s] per second
if and only if, for every set S of types, λ · demand(S) <= rate(servers hosting a type in S)
(the supply-demand theorem for bipartite flows, Gale 1957). So

    λ* = min over non-empty sets S of demanded types of  rate(hosts of S) / demand(S).
"""
from __future__ import annotations

import numpy as np

MAX_TYPES = 16  # 2**16 sets of types: the enumeration stays well under a second


class CapacityError(ValueError):
    """A cluster whose bound cannot be computed; the message says which part and what to give instead."""


def saturation_rate(valid: np.ndarray, rate: np.ndarray, demand: np.ndarray) -> float:
    """λ* (module docstring): `valid` (T, N) whether server n hosts type t, `rate` (N,) requests per second
    server n finishes when saturated, `demand` (T,) requests of each type per workflow."""
    types = np.flatnonzero(demand > 0)
    if len(types) > MAX_TYPES:
        raise CapacityError(f"serving capacity: expected at most {MAX_TYPES} model types with requests, got "
                            f"{len(types)}; give serving.arrival_rate instead of serving.load")
    bits = np.int64(1) << np.arange(len(types), dtype=np.int64)
    hosts = (valid[types].T.astype(np.int64) * bits).sum(1)  # (N,) which demanded types each server hosts
    kinds, kind_of = np.unique(hosts, return_inverse=True)
    kind_rate = np.bincount(kind_of, weights=rate, minlength=len(kinds))
    sets = np.arange(1, 1 << len(types), dtype=np.int64)
    supply = ((sets[:, None] & kinds[None, :]) != 0) @ kind_rate
    need = ((sets[:, None] & bits[None, :]) != 0) @ demand[types]
    bound = float((supply / need).min())
    if not bound > 0:
        raise CapacityError("serving capacity: a model type with requests has no server with a positive rate")
    return bound
