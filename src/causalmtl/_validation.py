"""Shared input checks.

Every public function validates its inputs with these helpers so that bad input raises a
``ValueError`` whose message names the argument, the offending value or position, and what
was expected (DESIGN.md, "Errors"). Nothing is silently clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def as_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array (a torch tensor is detached and copied to the host)."""
    if _is_torch(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def check_n_classes(n_classes: Sequence[int], name: str = "n_classes") -> tuple[int, ...]:
    """Validate a sequence of per-task class counts (each an int >= 2)."""
    if isinstance(n_classes, (int, np.integer)):
        raise ValueError(f"{name} must be a sequence of ints (one per task), got the int {n_classes}")
    try:
        out = tuple(int(c) for c in n_classes)
    except TypeError as exc:
        raise ValueError(f"{name} must be a sequence of ints, got {n_classes!r}") from exc
    if len(out) == 0:
        raise ValueError(f"{name} must name at least one task, got an empty sequence")
    for t, (c, raw) in enumerate(zip(out, n_classes)):
        if c != raw or c < 2:
            raise ValueError(f"{name}[{t}] must be an int >= 2 (a task needs two classes), got {raw!r}")
    return out


def check_labels(
    labels: Any,
    n_classes: Sequence[int],
    name: str = "labels",
    allow_missing: bool = True,
) -> np.ndarray:
    """Validate an ``(N, T)`` integer label array with ``-1`` for missing labels.

    Returns the labels as ``int64``. Raises ``ValueError`` naming the first offending
    position when a value lies outside ``[-1, C_t)`` (or ``[0, C_t)`` when missing labels
    are not allowed), when the array is not 2-D, is empty, or has the wrong number of tasks.
    """
    arr = as_numpy(labels)
    if arr.ndim == 1 and len(n_classes) == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array of shape (N, T), got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one row is needed")
    if arr.shape[1] != len(n_classes):
        raise ValueError(
            f"{name} has {arr.shape[1]} task columns but n_classes names {len(n_classes)} tasks "
            f"({tuple(n_classes)})"
        )
    if arr.dtype.kind == "f":
        finite = np.where(np.isnan(arr), -1.0, arr)
        if not np.all(finite == np.round(finite)):
            bad = np.argwhere(finite != np.round(finite))[0]
            raise ValueError(
                f"{name} must hold integer class labels, found {arr[tuple(bad)]!r} at row {bad[0]}, task {bad[1]}"
            )
        arr = finite
    elif arr.dtype.kind not in "iub":
        raise ValueError(f"{name} must be an integer array, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    upper = np.asarray(n_classes, dtype=np.int64)[None, :]
    lower = -1 if allow_missing else 0
    bad_mask = (arr < lower) | (arr >= upper)
    if bad_mask.any():
        r, t = np.argwhere(bad_mask)[0]
        expected = f"[{lower}, {n_classes[t]})" + (" (-1 = missing)" if allow_missing else "")
        raise ValueError(
            f"{name}[{r}, {t}] = {arr[r, t]} is outside {expected} for task {t} with "
            f"{n_classes[t]} classes"
        )
    return arr


def check_probability_vector(
    p: Any, name: str, size: int | None = None, atol: float = 1e-6
) -> np.ndarray:
    """Validate a probability table: non-negative, finite, summing to 1 within ``atol``."""
    arr = np.asarray(as_numpy(p), dtype=np.float64)
    if size is not None and arr.size != size:
        raise ValueError(f"{name} has {arr.size} entries (shape {arr.shape}) but {size} were expected")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values (NaN or inf)")
    if (arr < 0).any():
        i = np.unravel_index(int(np.argmin(arr)), arr.shape)
        raise ValueError(f"{name} has a negative entry {arr[i]!r} at index {tuple(int(j) for j in i)}")
    total = float(arr.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (within {atol}), sums to {total!r}")
    return arr


def check_alpha(alpha: Any, name: str = "alpha") -> np.ndarray:
    """Validate one α or a 1-D grid of α values, each in [0, 1]. Returns a float64 1-D array."""
    arr = np.atleast_1d(np.asarray(as_numpy(alpha), dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, 1], got {float(arr[bad][0])!r}")
    return arr


def check_nonnegative(value: float, name: str) -> float:
    """Validate a finite, non-negative scalar (a regularisation weight, a pseudocount, …)."""
    v = float(value)
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return v
