"""Relative improvement over a baseline (MT-CRL, Hu et al. 2022, Table 2 and §4).

For task t with metric value ``m_t`` of a method and ``b_t`` of the baseline (vanilla MTL),

    Δ_t = (m_t − b_t) / |b_t|      if higher is better,
    Δ_t = (b_t − m_t) / |b_t|      if lower is better (the sign is flipped),

and the relative improvement of the method is the average over tasks ``Δ = (1/T) Σ_t Δ_t``
("we calculate the relative performance improvement of each method compared to vanilla MTL,
and then average the relative improvement for all tasks of each dataset"). For the positive
metrics of the paper ``|b_t| = b_t``, so this is exactly its formula; the absolute value keeps
the sign meaning "better" for a negative baseline. Over seeds we report mean ± standard
deviation (sample std, ddof = 1; 0 for one seed).

With metrics as a dict (``{"seg/miou": 19.81, "depth/rel_err": 0.585, ...}``),
:func:`relative_improvement_from_metrics` takes each metric's direction from
:func:`causalmtl.metrics.direction.metric_direction` (mIoU, pixel accuracy, ``within_t`` up;
errors, angles, losses down) unless given, and averages Δ over the dict's entries: pass one
metric per task (MT-CRL Table 9: mIoU, Rel Err, mean angle) to get the paper's Δ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .direction import metric_direction


def per_task_relative_improvement(
    ours: Sequence[float] | np.ndarray,
    base: Sequence[float] | np.ndarray,
    higher_is_better: Sequence[bool] | np.ndarray | bool,
) -> np.ndarray:
    """Δ_t for every task (see the module docstring), shape ``(..., T)``.

    Parameters
    ----------
    ours, base : metric values, broadcastable arrays whose last axis is the task axis
    higher_is_better : one bool per task (or one for all)

    Raises
    ------
    ValueError
        When a baseline value is 0 or not finite (Δ_t is undefined), or shapes disagree.
    """
    m = np.asarray(ours, dtype=np.float64)
    b = np.asarray(base, dtype=np.float64)
    try:
        m, b = np.broadcast_arrays(m, b)
    except ValueError:
        raise ValueError(f"ours has shape {np.shape(ours)} but base has shape {np.shape(base)}") from None
    if m.ndim == 0:
        m, b = m[None], b[None]
    hib = np.asarray(higher_is_better, dtype=bool)
    if hib.ndim == 0:
        hib = np.full(m.shape[-1], bool(hib))
    if hib.shape != (m.shape[-1],):
        raise ValueError(
            f"higher_is_better must have one entry per task ({m.shape[-1]}), got shape {hib.shape}"
        )
    bad = (b == 0) | ~np.isfinite(b)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"base[{idx}] = {b[idx]!r}: relative improvement needs a finite, non-zero baseline")
    sign = np.where(hib, 1.0, -1.0)
    return sign * (m - b) / np.abs(b)


def relative_improvement(
    ours: Sequence[float] | np.ndarray,
    base: Sequence[float] | np.ndarray,
    higher_is_better: Sequence[bool] | np.ndarray | bool,
) -> np.ndarray | float:
    """Δ = mean over tasks of Δ_t (MT-CRL Table 2); a float for 1-D input.

    Examples
    --------
    >>> round(relative_improvement([0.9, 0.8], [0.8, 1.0], [True, False]), 6)  # (0.125 + 0.2) / 2
    0.1625
    """
    out = per_task_relative_improvement(ours, base, higher_is_better).mean(axis=-1)
    return float(out) if np.ndim(out) == 0 else out


def _direction_of(name: str, directions: Mapping[str, Any] | None) -> bool:
    """True when higher is better for metric ``name`` (``directions`` first, then the table)."""
    if directions is not None and name in directions:
        d = directions[name]
        if isinstance(d, (bool, np.bool_)):
            return bool(d)
        if d in (1, -1):
            return bool(d == 1)
        raise ValueError(f"directions[{name!r}] must be +1, -1, True or False, got {d!r}")
    return metric_direction(name) == 1


def per_metric_relative_improvement(
    ours: Mapping[str, float],
    base: Mapping[str, float],
    directions: Mapping[str, Any] | None = None,
) -> dict[str, float]:
    """Δ_m for every metric of a dict (same keys in ``ours`` and ``base``), in ``base``'s order.

    The direction of metric ``m`` is ``directions[m]`` (+1 / True: higher is better; −1 / False:
    lower is better) when given, else :func:`~causalmtl.metrics.direction.metric_direction`.

    Raises
    ------
    ValueError
        When the keys differ, a direction is unknown, or a baseline value is 0 / not finite.
    """
    if not isinstance(ours, Mapping) or not isinstance(base, Mapping):
        raise TypeError(
            f"ours and base must be dicts of metric values, got {type(ours).__name__} and "
            f"{type(base).__name__}"
        )
    if set(ours) != set(base):
        raise ValueError(
            f"ours and base must hold the same metrics; only in ours: {sorted(set(ours) - set(base))}, "
            f"only in base: {sorted(set(base) - set(ours))}"
        )
    if not base:
        raise ValueError("ours and base are empty: no metric to compare")
    names = list(base)
    hib = [_direction_of(k, directions) for k in names]
    delta = per_task_relative_improvement([ours[k] for k in names], [base[k] for k in names], hib)
    return {k: float(v) for k, v in zip(names, delta)}


def relative_improvement_from_metrics(
    ours: Mapping[str, float],
    base: Mapping[str, float],
    directions: Mapping[str, Any] | None = None,
) -> float:
    """Δ = mean over the dict's metrics of Δ_m (MT-CRL Table 2), directions from the names.

    Examples
    --------
    >>> ours = {"seg/miou": 0.9, "depth/rel_err": 0.8}
    >>> base = {"seg/miou": 0.8, "depth/rel_err": 1.0}
    >>> round(relative_improvement_from_metrics(ours, base), 6)  # (0.125 + 0.2) / 2
    0.1625
    """
    return float(np.mean(list(per_metric_relative_improvement(ours, base, directions).values())))


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def relative_improvement_table(
    frame: Any,
    base_method: str,
    method_col: str = "method",
    seed_col: str = "seed",
    task_col: str = "task",
    value_col: str = "value",
    direction_col: str = "higher_is_better",
    pair_seeds: bool = True,
) -> Any:
    """Relative improvement of every method over ``base_method``, mean ± std over seeds.

    ``frame`` is a long table (pandas) with one row per (method, seed, task) holding one
    metric value and its direction. For each method and seed, Δ is averaged over tasks; when
    ``pair_seeds`` and the baseline has the same seed, that seed's baseline values are used
    (same data, paired comparison), otherwise the baseline's mean over its seeds. Returns a
    DataFrame with columns ``method, mean, std, n_seeds`` (the baseline itself is included,
    at 0 when paired).
    """
    import pandas as pd

    need = {method_col, seed_col, task_col, value_col, direction_col}
    missing = need - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}; it has {list(frame.columns)}")
    if base_method not in set(frame[method_col]):
        raise ValueError(
            f"base_method {base_method!r} has no rows; methods present: {sorted(set(frame[method_col]))}"
        )
    dup = frame.duplicated([method_col, seed_col, task_col])
    if dup.any():
        r = frame[dup].iloc[0]
        raise ValueError(
            f"frame has several rows for method={r[method_col]!r}, seed={r[seed_col]!r}, "
            f"task={r[task_col]!r}; filter it to one metric first"
        )
    base = frame[frame[method_col] == base_method]
    tasks = sorted(set(base[task_col]))
    base_wide = base.pivot(index=seed_col, columns=task_col, values=value_col)[tasks]
    base_mean = base_wide.mean(axis=0).to_numpy()
    direction = base.groupby(task_col)[direction_col].first()[tasks].astype(bool).to_numpy()
    rows = []
    for method, grp in frame.groupby(method_col, sort=False):
        wide = grp.pivot(index=seed_col, columns=task_col, values=value_col)
        absent = [t for t in tasks if t not in wide.columns]
        if absent:
            raise ValueError(f"method {method!r} lacks tasks {absent} that the baseline has")
        vals = []
        for seed, row in wide[tasks].iterrows():
            ref = base_wide.loc[seed].to_numpy() if pair_seeds and seed in base_wide.index else base_mean
            vals.append(relative_improvement(row.to_numpy(), ref, direction))
        v = np.asarray(vals, dtype=np.float64)
        rows.append({"method": method, "mean": float(v.mean()), "std": _std(v), "n_seeds": len(v)})
    return pd.DataFrame(rows)


__all__ = [
    "per_metric_relative_improvement",
    "per_task_relative_improvement",
    "relative_improvement",
    "relative_improvement_from_metrics",
    "relative_improvement_table",
]
