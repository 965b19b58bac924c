"""Bring-your-own table: a multi-task dataset from a CSV or Parquet file (or a DataFrame).

The table has one row per example, named numeric **feature** columns and several **label**
columns. Classification label columns hold integer class ids ``0 … C_t − 1``; an empty cell
(NaN) is a missing label (stored as ``-1``, DESIGN.md label contract). Label columns listed in
``regression`` hold float targets (NaN = missing).

Splits come either from a ``split_column`` whose values are ``train`` / ``valid`` / ``test``, or
from a seeded random split by ``split_fractions``. Environment ids are train 0, valid 1, test 2
unless an ``env_column`` of integer ids is named.

Bad input raises ``ValueError`` naming the column, the row (0-based, as in the file after the
header) and the value: a missing column, non-numeric or missing features, label values that
are not integers, or lie outside the declared classes, an unknown split name.

Examples
--------
>>> import pandas as pd
>>> df = pd.DataFrame({"f1": [0.1, 0.2, 0.3, 0.4, 0.5], "a": [0, 1, 1, 0, None], "b": [2, 0, 1, 2, 0]})
>>> splits = load_table(df, labels=["a", "b"], n_classes={"b": 3}, split_fractions=(0.6, 0.2, 0.2))
>>> splits.train.n_classes, splits.meta["feature_names"]
((2, 3), ['f1'])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ._common import SPLIT_ENV, SeedLike, as_generator
from .base import DatasetSplits, MultiTaskDataset, Task

PathLike = str | os.PathLike[str]


def read_table(path: PathLike) -> pd.DataFrame:
    """Read a ``.csv`` / ``.csv.gz`` / ``.tsv`` or ``.parquet`` / ``.pq`` file into a DataFrame."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"table file {str(p)!r} does not exist")
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")):
        try:
            return pd.read_parquet(p)
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ImportError(
                "reading Parquet needs pyarrow: pip install 'causalmtl[parquet]' (or pyarrow)"
            ) from exc
    if name.endswith((".csv", ".csv.gz", ".txt")):
        return pd.read_csv(p)
    if name.endswith((".tsv", ".tsv.gz")):
        return pd.read_csv(p, sep="\t")
    raise ValueError(f"path {str(p)!r}: unknown table format; expected .csv, .csv.gz, .tsv or .parquet")


def _check_columns(df: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise ValueError(f"{what} column(s) {missing} not in the table; its columns are {list(df.columns)}")


def _label_column(col: pd.Series, name: str, n_classes: int | None) -> tuple[np.ndarray, int]:
    """Integer labels with -1 for missing; validates integrality and the declared classes."""
    values = pd.to_numeric(col, errors="coerce")
    bad_type = values.isna() & col.notna()
    if bad_type.any():
        r = int(np.flatnonzero(bad_type.to_numpy())[0])
        raise ValueError(f"label column {name!r}, row {r}: value {col.iloc[r]!r} is not an integer class label")
    arr = values.to_numpy(dtype=np.float64)
    present = ~np.isnan(arr)
    nonint = present & (arr != np.round(arr))
    if nonint.any():
        r = int(np.flatnonzero(nonint)[0])
        raise ValueError(f"label column {name!r}, row {r}: value {float(arr[r])!r} is not an integer class label")
    if not present.any():
        raise ValueError(f"label column {name!r} has no label at all (every row is missing)")
    if n_classes is None:
        n_classes = max(int(arr[present].max()) + 1, 2)
    outside = present & ((arr < 0) | (arr >= n_classes))
    if outside.any():
        r = int(np.flatnonzero(outside)[0])
        raise ValueError(
            f"label column {name!r}, row {r}: value {int(arr[r])} is outside the declared classes "
            f"[0, {n_classes}) (empty cell = missing label)"
        )
    return np.where(present, arr, -1).astype(np.int64), int(n_classes)


def load_table(
    source: PathLike | pd.DataFrame,
    labels: Sequence[str],
    features: Sequence[str] | None = None,
    n_classes: Mapping[str, int] | Sequence[int] | None = None,
    regression: Sequence[str] = (),
    split_column: str | None = None,
    split_fractions: Sequence[float] = (0.6, 0.2, 0.2),
    env_column: str | None = None,
    seed: SeedLike = 0,
    name: str | None = None,
) -> DatasetSplits:
    """A :class:`DatasetSplits` from a CSV/Parquet file or a DataFrame.

    Parameters
    ----------
    source : path or DataFrame
    labels : label column names, one task each (in this order)
    features : feature column names; default every column that is not a label, split or
        environment column
    n_classes : declared classes per classification label (a mapping ``{column: C}`` or a
        sequence aligned with the classification labels); undeclared: ``max label + 1``
    regression : label columns that are regression targets (float, NaN = missing)
    split_column : column with values ``train`` / ``valid`` / ``test``; if None, rows are split
        at random by ``split_fractions`` with ``seed``
    env_column : column of integer environment ids (default: train 0, valid 1, test 2)
    name : dataset name (default: the file stem, or ``"table"``)

    Returns
    -------
    DatasetSplits
        Inputs float32 ``(N, F)``; ``meta`` holds ``"feature_names"``, ``"label_names"``,
        ``"row_index"`` (each split's 0-based row numbers in the table).
    """
    df = source if isinstance(source, pd.DataFrame) else read_table(source)
    if name is None:
        name = "table" if isinstance(source, pd.DataFrame) else Path(source).name.split(".")[0]
    labels = list(labels)
    if not labels:
        raise ValueError("labels must name at least one label column, got an empty list")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels contains duplicates: {labels}")
    _check_columns(df, labels, "label")
    regression = list(regression)
    unknown_reg = [c for c in regression if c not in labels]
    if unknown_reg:
        raise ValueError(f"regression column(s) {unknown_reg} are not among the labels {labels}")
    special = [c for c in (split_column, env_column) if c is not None]
    _check_columns(df, special, "split/env")
    if features is None:
        features = [c for c in df.columns if c not in labels and c not in special]
    features = list(features)
    if not features:
        raise ValueError("the table has no feature column (every column is a label, split or env column)")
    _check_columns(df, features, "feature")
    overlap = sorted(set(features) & set(labels))
    if overlap:
        raise ValueError(f"column(s) {overlap} are both features and labels")

    # features: numeric, no missing values
    x = np.empty((len(df), len(features)), dtype=np.float32)
    for j, c in enumerate(features):
        v = pd.to_numeric(df[c], errors="coerce")
        bad = v.isna().to_numpy()
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"feature column {c!r}, row {r}: value {df[c].iloc[r]!r} is missing or not numeric "
                "(features must be numbers; impute or drop such rows first)"
            )
        x[:, j] = v.to_numpy(dtype=np.float64)

    class_labels = [c for c in labels if c not in regression]
    if n_classes is None:
        declared: dict[str, int] = {}
    elif isinstance(n_classes, Mapping):
        extra = [c for c in n_classes if c not in class_labels]
        if extra:
            raise ValueError(f"n_classes names column(s) {extra} that are not classification labels {class_labels}")
        declared = {c: int(v) for c, v in n_classes.items()}
    else:
        seq = list(n_classes)
        if len(seq) != len(class_labels):
            raise ValueError(
                f"n_classes has {len(seq)} entries but there are {len(class_labels)} classification labels {class_labels}"
            )
        declared = dict(zip(class_labels, (int(v) for v in seq)))
    for c, k in declared.items():
        if k < 2:
            raise ValueError(f"n_classes[{c!r}] must be an int >= 2, got {k}")

    tasks: list[Task] = []
    cols: list[np.ndarray] = []
    for c in labels:
        if c in regression:
            v = pd.to_numeric(df[c], errors="coerce")
            bad = (v.isna() & df[c].notna()).to_numpy()
            if bad.any():
                r = int(np.flatnonzero(bad)[0])
                raise ValueError(f"regression column {c!r}, row {r}: value {df[c].iloc[r]!r} is not a number")
            cols.append(v.to_numpy(dtype=np.float64))
            tasks.append(Task(c, kind="regression"))
        else:
            lab, k = _label_column(df[c], c, declared.get(c))
            cols.append(lab)
            tasks.append(Task(c, n_classes=k))
    if regression:
        targets = np.stack([np.where(col == -1, np.nan, col) if t.kind == "classification" else col
                            for col, t in zip(cols, tasks)], axis=1).astype(np.float64)
    else:
        targets = np.stack(cols, axis=1)

    # splits
    n = len(df)
    if split_column is not None:
        raw = df[split_column].astype(str).str.strip().str.lower().to_numpy()
        bad = ~np.isin(raw, list(SPLIT_ENV))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"split column {split_column!r}, row {r}: value {df[split_column].iloc[r]!r} is not one of train, valid, test"
            )
        rows = {k: np.flatnonzero(raw == k) for k in SPLIT_ENV}
    else:
        fr = np.asarray(split_fractions, dtype=np.float64)
        if fr.shape != (3,) or not np.all(np.isfinite(fr)) or (fr <= 0).any() or abs(fr.sum() - 1) > 1e-9:
            raise ValueError(f"split_fractions must be 3 positive numbers summing to 1, got {split_fractions!r}")
        perm = as_generator(seed).permutation(n)
        n_tr, n_va = int(round(fr[0] * n)), int(round(fr[1] * n))
        rows = {"train": np.sort(perm[:n_tr]), "valid": np.sort(perm[n_tr : n_tr + n_va]), "test": np.sort(perm[n_tr + n_va :])}
    for split, at in rows.items():
        if at.size == 0:
            raise ValueError(f"the {split} split is empty ({n} rows in the table); give more rows or other split settings")
    if env_column is not None:
        env_all = pd.to_numeric(df[env_column], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(env_all) | (env_all != np.round(env_all))
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            raise ValueError(f"env column {env_column!r}, row {r}: value {df[env_column].iloc[r]!r} is not an integer id")
        env_all = env_all.astype(np.int64)
    parts: dict[str, MultiTaskDataset] = {}
    for split, at in rows.items():
        env = env_all[at] if env_column is not None else np.full(at.size, SPLIT_ENV[split], dtype=np.int64)
        parts[split] = MultiTaskDataset(inputs=x[at], targets=targets[at], tasks=tuple(tasks), env=env,
                                        name=f"{name}/{split}")
    return DatasetSplits(
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        name=name,
        meta={"feature_names": features, "label_names": labels, "row_index": rows},
    )
