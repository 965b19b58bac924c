"""Deterministic mini-batch index plans, per environment or pooled.

The order of an epoch is a pure function of ``(seed, epoch, environment)``, so a run resumed
at an epoch boundary draws exactly the batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["epoch_plan", "steps_per_epoch"]


def steps_per_epoch(group_sizes: Sequence[int], batch_size: int) -> int:
    """``ceil(max_e N_e / batch_size)``: one pass over the largest group."""
    return max(1, math.ceil(max(group_sizes) / batch_size))


def _cycled_permutation(rows: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices from ``rows``: successive fresh permutations concatenated."""
    reps = math.ceil(n / len(rows))
    return np.concatenate([rng.permutation(rows) for _ in range(reps)])[:n]


def epoch_plan(
    groups: Sequence[np.ndarray],
    batch_size: int,
    n_steps: int,
    seed: int,
    epoch: int,
) -> list[list[np.ndarray]]:
    """Row indices of every step of one epoch: per group, a list of ``n_steps`` index arrays.

    Each group (environment, or the whole pooled set) is shuffled with
    ``numpy.random.default_rng([seed, epoch, g])``. A group needing more rows than it has in
    the epoch (smaller environments, when steps are set by the largest) cycles through fresh
    permutations; the largest group sees each of its rows once and its last batch may be
    smaller.
    """
    plans = []
    for g, rows in enumerate(groups):
        rng = np.random.default_rng([int(seed), int(epoch), g])
        rows = np.asarray(rows, dtype=np.int64)
        need = n_steps * batch_size
        if len(rows) >= need:
            order = rng.permutation(rows)[:need]
        elif len(rows) > need - batch_size:  # the largest group: one pass, short last batch
            order = rng.permutation(rows)
        else:
            order = _cycled_permutation(rows, need, rng)
        plans.append(np.array_split(order, np.arange(batch_size, len(order), batch_size))[:n_steps])
    return plans
