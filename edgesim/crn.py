"""Common random numbers without a stream: every draw is a counter-based hash of (seed, keys...).

A world's arrivals, tasks, token counts and network draws are keyed by (seed, world, arrival index,
step, purpose), so two schedulers run from one seed meet the same arrivals and draws whatever they
decide: their paired difference is paired on the same workflow. Used by the `contention` and
`serving` profiles.
"""
from __future__ import annotations

import torch

# Purposes of the draws (the last key): NETWORK .. NETWORK + 3 are a hop's four uniforms.
GAP, TASK, PROMPT, OUTPUT, TOKEN_ROW, TRACE_START, NETWORK = range(7)

MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """(x * c) mod 2**32 for x in [0, 2**32) on int64, in 16-bit halves so no product exceeds 2**49."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & MASK32


def mix32(x: torch.Tensor) -> torch.Tensor:
    """A 32-bit integer finaliser (lowbias32, C. Wellons): every input bit flips about half the output bits."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def crn_hash(seed: int | torch.Tensor, *keys: torch.Tensor | int) -> torch.Tensor:
    """A 32-bit hash in [0, 2**32) of (seed, keys...), keys (and seed) integers in [0, 2**32) (broadcast),
    as int64."""
    h = mix32((torch.as_tensor(seed, dtype=torch.long) & MASK32) ^ 0x2545F491)
    for key in keys:
        k = torch.as_tensor(key, dtype=torch.long)
        h = mix32(((h.to(k.device) ^ (k & MASK32)) + 0x9E3779B9) & MASK32)
    return h


def crn_uniform(seed: int | torch.Tensor, *keys: torch.Tensor | int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """A uniform draw in (0, 1) that depends only on (seed, keys...): common random numbers without a stream."""
    return (crn_hash(seed, *keys).to(dtype) + 0.5) / 2.0 ** 32


def draw_key(world: torch.Tensor | int, step: torch.Tensor | int, purpose: torch.Tensor | int) -> torch.Tensor:
    """One 32-bit key of (world < 2**16, step < 2**8, purpose < 2**8): with the arrival index, a draw's identity."""
    return (torch.as_tensor(world, dtype=torch.long) << 16) | ((torch.as_tensor(step, dtype=torch.long) & 0xFF) << 8) \
        | torch.as_tensor(purpose, dtype=torch.long)
