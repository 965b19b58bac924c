"""Small helpers shared by the dataset modules (seeds, probability checks, joint tables)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._validation import check_probability_vector

SeedLike = int | np.random.Generator | None

#: Environment ids of the three splits (DatasetSplits convention).
SPLIT_ENV: dict[str, int] = {"train": 0, "valid": 1, "test": 2}


def as_generator(seed: SeedLike, name: str = "seed") -> np.random.Generator:
    """Return a ``numpy.random.Generator`` from an int seed, a Generator or None.

    A Generator is used as is (its state advances); an int creates a fresh PCG64 stream;
    the global NumPy RNG is never touched.
    """
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or isinstance(seed, (int, np.integer)):
        if seed is not None and int(seed) < 0:
            raise ValueError(f"{name} must be a non-negative int, a numpy Generator or None, got {seed!r}")
        return np.random.default_rng(None if seed is None else int(seed))
    raise ValueError(f"{name} must be an int, a numpy.random.Generator or None, got {type(seed).__name__}")


def check_unit_interval(value: Any, name: str) -> float:
    """Validate a probability-like scalar in [0, 1] (nothing is clipped)."""
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}") from exc
    if not np.isfinite(v) or v < 0.0 or v > 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def check_positive_int(value: Any, name: str, minimum: int = 1) -> int:
    """Validate an int >= ``minimum`` (bools and non-integral floats are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_joint_table(q: npt.ArrayLike, n_classes: Sequence[int], name: str) -> np.ndarray:
    """Validate a joint label distribution of shape ``n_classes`` (or its C-order flattening).

    Returns a float64 array of shape ``n_classes`` that sums to 1. A table over the wrong
    classes (wrong shape or size) raises a ``ValueError`` naming the expected shape.
    """
    shape = tuple(int(c) for c in n_classes)
    arr = np.asarray(q, dtype=np.float64)
    if arr.shape != shape and arr.shape != (int(np.prod(shape)),):
        raise ValueError(
            f"{name} must be a joint table over the classes {shape} (shape {shape} or "
            f"({int(np.prod(shape))},) in C-order), got shape {arr.shape}"
        )
    arr = check_probability_vector(arr, name)
    return arr.reshape(shape)


def sample_joint_labels(
    table: np.ndarray, n: int, rng: np.random.Generator
) -> np.ndarray:
    """Draw ``n`` label tuples from a joint table of shape ``n_classes``; returns ``(n, T)`` int64."""
    flat = table.reshape(-1)
    idx = rng.choice(flat.size, size=n, p=flat / flat.sum())
    return np.stack(np.unravel_index(idx, table.shape), axis=1).astype(np.int64)
