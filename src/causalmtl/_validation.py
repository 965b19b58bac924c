"""Shared input checks.

Every public function validates its inputs with these helpers so that bad input raises a
``ValueError`` whose message names the argument, the offending value or position, and what
was expected (DESIGN.md, "Errors"). Nothing is silently clipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:  # torch is imported lazily at run time (a numpy-only caller never loads it)
    import torch

_T = TypeVar("_T")

#: what :func:`check_seed` returns: a validated int seed, a numpy generator, or None
Seed = int | np.random.Generator | np.random.RandomState | None


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def as_numpy(x: Any) -> np.ndarray:
    """Return ``x`` as a numpy array (a torch tensor is detached and copied to the host)."""
    if _is_torch(x):
        host: np.ndarray = x.detach().cpu().numpy()
        return host
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
        if np.isinf(arr).any():
            r, t = np.argwhere(np.isinf(arr))[0]
            raise ValueError(
                f"{name}[{r}, {t}] = {arr[r, t]!r} is not a class label; expected an int in "
                f"[-1, {n_classes[t]}) for task {t} (-1 or NaN = missing)"
            )
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
    atol = as_float(atol, "atol", low=0)
    raw = np.asarray(as_numpy(p))
    if raw.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be a numeric probability table, got dtype {raw.dtype} ({p!r:.60})")
    arr = raw.astype(np.float64)
    if size is not None and arr.size != size:
        raise ValueError(f"{name} has {arr.size} entries (shape {arr.shape}) but {size} were expected")
    if not np.all(np.isfinite(arr)):
        i = tuple(int(j) for j in np.argwhere(~np.isfinite(arr))[0])
        raise ValueError(f"{name} contains non-finite values (NaN or inf): {arr[i]!r} at index {i}; expected probabilities in [0, 1]")
    if (arr < 0).any():
        at = np.unravel_index(int(np.argmin(arr)), arr.shape)
        raise ValueError(f"{name} has a negative entry {arr[at]!r} at index {tuple(int(j) for j in at)}")
    total = float(arr.sum())
    if abs(total - 1.0) > atol:
        raise ValueError(f"{name} must sum to 1 (within {atol}), sums to {total!r}")
    return arr


def check_alpha(alpha: Any, name: str = "alpha") -> np.ndarray:
    """Validate one α or a 1-D grid of α values, each in [0, 1]. Returns a float64 1-D array."""
    raw = np.asarray(as_numpy(alpha))
    if raw.dtype.kind not in "iuf" or (raw.dtype.kind == "b"):
        raise TypeError(f"{name} must be a number in [0, 1] or a sequence of them, got {alpha!r}")
    arr = np.atleast_1d(raw.astype(np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a number or a non-empty 1-D sequence, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | (arr < 0) | (arr > 1)
    if bad.any():
        raise ValueError(f"{name} must lie in [0, 1], got {float(arr[bad][0])!r}")
    return arr


def check_nonnegative(value: float, name: str) -> float:
    """Validate a finite, non-negative scalar (a regularisation weight, a pseudocount, …)."""
    return as_float(value, name, low=0)


# --- scalars -------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    """True for a real number (Python, numpy or a 0-d array/tensor), False for bool/str/None."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, float, np.integer, np.floating)):
        return True
    if _is_torch(value) or isinstance(value, np.ndarray):
        return getattr(value, "ndim", 1) == 0 and np.asarray(as_numpy(value)).dtype.kind in "iuf"
    return False


def _bounds_text(low: float | None, high: float | None, low_open: bool) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        parts.append(f"<= {high:g}")
    return " and ".join(parts)


def as_float(
    value: Any,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """Validate a finite real scalar (optionally bounded); a str, None or bool is refused.

    >>> as_float(0.5, "tolerance", low=0)
    0.5
    >>> as_float("0.5", "tolerance", low=0)
    Traceback (most recent call last):
    ...
    TypeError: tolerance must be a finite number >= 0, got the str '0.5'
    """
    expected = "a finite number" + (f" {_bounds_text(low, high, low_open)}" if low is not None or high is not None else "")
    if not _is_number(value):
        raise TypeError(f"{name} must be {expected}, got the {type(value).__name__} {value!r}")
    v = float(value)
    if (
        not np.isfinite(v)
        or (low is not None and (v <= low if low_open else v < low))
        or (high is not None and v > high)
    ):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return v


def as_int(value: Any, name: str, *, low: int | None = None) -> int:
    """Validate an integer scalar (an integral float such as ``3.0`` is accepted), ``>= low``.

    >>> as_int(3, "main_task", low=0)
    3
    >>> as_int("a", "main_task", low=0)
    Traceback (most recent call last):
    ...
    TypeError: main_task must be an int >= 0, got the str 'a'
    """
    expected = "an int" + (f" >= {low}" if low is not None else "")
    if not _is_number(value):
        raise TypeError(f"{name} must be {expected}, got the {type(value).__name__} {value!r}")
    v = float(value)
    if not np.isfinite(v) or v != np.round(v) or (low is not None and v < low):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return int(v)


def check_bool(value: Any, name: str) -> bool:
    """Validate a flag: ``True``/``False`` (numpy bools too); ``"no"``, ``0`` or None are refused."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got the {type(value).__name__} {value!r}")
    return bool(value)


def check_seed(seed: Any, name: str = "seed", allow_none: bool = True) -> Seed:
    """Validate a seed: an int >= 0, a numpy ``Generator``/``RandomState`` (or None if allowed)."""
    if seed is None and allow_none:
        return None
    if isinstance(seed, (np.random.Generator, np.random.RandomState)):
        return seed
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, (bool, np.bool_)) and seed >= 0:
        return int(seed)
    expected = "an int >= 0 or a numpy Generator" + (" (or None)" if allow_none else "")
    raise (ValueError if isinstance(seed, (int, np.integer)) else TypeError)(
        f"{name} must be {expected}, got the {type(seed).__name__} {seed!r}"
    )


def check_memory_mb(memory_mb: Any, name: str = "memory_mb") -> float:
    """Validate a working-memory budget in MiB: a finite number > 0."""
    return as_float(memory_mb, name, low=0, low_open=True)


#: Largest joint table (Π_t C_t cells) a dense :class:`~causalmtl.gmtl.JointPrior` is built
#: for: 2**24 = 16,777,216 cells, 128 MiB per float64 table (fitting holds about three).
#: Beyond it use :class:`~causalmtl.gmtl.TreePrior` (docs/many_tasks.md).
MAX_JOINT_CELLS = 2**24


def check_joint_size(n_classes: Sequence[int], max_cells: int = MAX_JOINT_CELLS, name: str = "n_classes") -> int:
    """Refuse a dense joint table larger than ``max_cells`` before anything is allocated.

    Returns K = Π_t C_t (computed with Python ints, so it never overflows).
    """
    import math

    K = math.prod(int(c) for c in n_classes)
    limit = as_int(max_cells, "max_cells", low=1)
    if K > limit:
        raise ValueError(
            f"{name}={tuple(n_classes)} needs a dense joint table of Π C_t = {K:,} cells "
            f"({K * 8 / 2**30:,.1f} GiB per float64 copy), more than max_cells={limit:,}; "
            "use causalmtl.gmtl.TreePrior (or fit_prior(..., structure='auto')) for many tasks, "
            "or raise max_cells if you have the memory"
        )
    return K


def check_decode_args(
    log_probs: Any, *, memory_mb: Any, normalized: Any, return_scores: Any = False, **flags: Any
) -> None:
    """The argument checks of the decoder, made once in ``gmtl_decode``'s single entry point
    (so the deprecated ``decode`` and ``decode_structured`` are checked the same way).

    Refuses a non-numeric ``log_probs`` (a str, None, an array of strings), a ``memory_mb``
    that is not a finite number > 0, and non-bool ``normalized`` / ``return_scores`` / any
    other boolean option passed by keyword (its name is the one in the message).
    """
    items = log_probs if isinstance(log_probs, (list, tuple)) else [log_probs]
    for i, x in enumerate(items):
        where = f"log_probs[{i}]" if isinstance(log_probs, (list, tuple)) else "log_probs"
        if x is None or isinstance(x, (str, bytes, dict)):
            raise TypeError(f"{where} must be an array of log-probabilities, got the {type(x).__name__} {x!r:.60}")
        if not _is_torch(x):
            kind = np.asarray(x).dtype.kind
            if kind not in "iuf":
                raise TypeError(f"{where} must be a numeric array of log-probabilities, got dtype {np.asarray(x).dtype}")
    check_memory_mb(memory_mb)
    check_bool(normalized, "normalized")
    check_bool(return_scores, "return_scores")
    for name, value in flags.items():
        check_bool(value, name)


def make_rng(seed: Any, name: str = "seed") -> np.random.Generator:
    """``numpy.random.default_rng`` after :func:`check_seed` (a Generator is used as is)."""
    checked = check_seed(seed, name)
    if isinstance(checked, np.random.Generator):
        return checked
    return np.random.default_rng(checked)


def require_number(value: _T, name: str, expected: str = "a finite number") -> _T:
    """Raise ``TypeError`` naming ``name`` unless ``value`` is a real scalar (no str/None/bool)."""
    if not _is_number(value):
        raise TypeError(f"{name} must be {expected}, got the {type(value).__name__} {value!r}")
    return value


def check_device(device: Any, name: str = "device") -> torch.device:
    """Validate a torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device``)."""
    import torch

    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"{name} must be a torch device such as 'cpu' or 'cuda', got {device!r}") from exc
