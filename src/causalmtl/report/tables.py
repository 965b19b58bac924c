"""Tables from the long metrics frame of the results database (mean ± std over seeds)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

from .blocks import mean_std


def metric_values(
    frame: pd.DataFrame, name: str, split: str | None = "test", task: str | None = None, **eq: Any
) -> pd.DataFrame:
    """Rows of ``frame`` for metric ``name`` (and ``split`` / ``task`` / column == value)."""
    sel = frame["name"] == name
    if split is not None:
        sel &= frame["split"] == split
    if task is not None:
        sel &= frame["task"] == task
    for col, val in eq.items():
        sel &= frame[col] == val
    return frame[sel]


def seed_mean(frame: pd.DataFrame, name: str, split: str | None = "test", task: str | None = None, **eq: Any) -> tuple[float, float, int]:
    """(mean, sample std, number of seeds) of a metric; the value is first averaged per seed."""
    rows = metric_values(frame, name, split, task, **eq)
    if rows.empty:
        return float("nan"), float("nan"), 0
    per_seed = rows.groupby("seed")["value"].mean().to_numpy(dtype=np.float64)
    std = float(per_seed.std(ddof=1)) if per_seed.size > 1 else 0.0
    return float(per_seed.mean()), std, int(per_seed.size)


def summary_table(
    frame: pd.DataFrame,
    rows: str = "method",
    split: str | None = "test",
    metrics: Sequence[str] | None = None,
    row_order: Sequence[str] | None = None,
    digits: int = 3,
) -> pd.DataFrame:
    """A wide table: one row per ``rows`` value, one column per (metric, task), ``mean ± std``."""
    import pandas as pd

    sel = frame if split is None else frame[frame["split"] == split]
    if metrics is not None:
        sel = sel[sel["name"].isin(list(metrics))]
    if sel.empty:
        return pd.DataFrame()
    sel = sel.assign(column=[f"{n}[{t}]" if t else n for n, t in zip(sel["name"], sel["task"])])
    cols = list(dict.fromkeys(sel["column"]))
    keys = list(dict.fromkeys(sel[rows])) if row_order is None else [r for r in row_order if r in set(sel[rows])]
    out = []
    for key in keys:
        grp = sel[sel[rows] == key]
        rec = {rows: key}
        for c in cols:
            vals = grp[grp["column"] == c].groupby("seed")["value"].mean().to_numpy()
            rec[c] = mean_std(vals, digits)
        rec["seeds"] = int(grp["seed"].nunique())
        out.append(rec)
    return pd.DataFrame(out)


__all__ = ["metric_values", "seed_mean", "summary_table"]
