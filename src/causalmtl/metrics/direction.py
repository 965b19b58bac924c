"""The direction of a metric: +1 when higher is better, −1 when lower is better.

MT-CRL's relative improvement (Table 2) flips the sign of lower-is-better metrics; this table
names the project's metrics (scalar and dense) so that a dict of results carries its directions.
No torch import: :mod:`causalmtl.metrics.relative` uses it.
"""

from __future__ import annotations

import re

__all__ = ["HIGHER_IS_BETTER", "LOWER_IS_BETTER", "metric_direction"]

HIGHER_IS_BETTER = frozenset({"miou", "pix_acc", "acc", "accuracy", "auc", "exact_match", "f1"})
LOWER_IS_BETTER = frozenset({
    "abs_err", "rel_err", "mse", "rmse", "mae", "ce", "nll", "loss", "l1", "l2",
    "mean_angle", "median_angle", "rho_spur",
})  # fmt: skip
_WITHIN = re.compile(r"within_\d+(\.\d+)?$")


def _base_direction(name: str) -> int | None:
    if name in HIGHER_IS_BETTER or _WITHIN.match(name):
        return 1
    if name in LOWER_IS_BETTER:
        return -1
    return None


def metric_direction(name: str) -> int:
    """``+1`` when a higher value of metric ``name`` is better, ``-1`` when lower is better.

    Up: ``miou``, ``pix_acc``, ``within_<t>``, ``acc``/``accuracy``, ``auc``, ``exact_match``,
    ``f1``. Down: ``abs_err``, ``rel_err``, ``mse``, ``rmse``, ``mae``, ``ce``, ``nll``, ``loss``,
    ``l1``, ``l2``, ``mean_angle``, ``median_angle``, ``rho_spur``. A name qualified by a task,
    ``"<metric>/<task>"`` (the trainer's ``acc/<task>``) or ``"<task>/<metric>"``, takes the
    metric's direction.

    Raises
    ------
    ValueError
        For a name in none of these forms (pass the direction explicitly then).

    Examples
    --------
    >>> metric_direction("miou"), metric_direction("rel_err"), metric_direction("seg/within_22.5")
    (1, -1, 1)
    """
    if not isinstance(name, str):
        raise TypeError(f"metric name must be a string, got {type(name).__name__} {name!r}")
    d = _base_direction(name)
    if d is not None:
        return d
    parts = name.split("/")
    if len(parts) == 2:
        found = {d for p in parts if (d := _base_direction(p)) is not None}
        if len(found) == 1:
            return found.pop()
        if len(found) == 2:
            raise ValueError(
                f"metric {name!r} is ambiguous: {parts[0]!r} and {parts[1]!r} have opposite directions"
            )
    raise ValueError(
        f"metric {name!r} has no known direction; known higher-is-better: "
        f"{sorted(HIGHER_IS_BETTER)} and within_<t>; lower-is-better: {sorted(LOWER_IS_BETTER)} "
        f"(optionally as '<metric>/<task>' or '<task>/<metric>'); give its direction explicitly"
    )
