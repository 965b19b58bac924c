"""Yeast: a real multi-label table (Elisseeff & Weston, NIPS 2001).

2,417 genes, 103 numeric features (micro-array expression and phylogenetic profile,
``Att1..Att103``) and 14 binary functional classes (``Class1..Class14``), each a binary
classification task. The file is a CSV (optionally gzip-compressed) with that header, one row
per gene, labels 0/1.

Split (documented, seeded): the rows are permuted with
``numpy.random.default_rng(seed).permutation(N)``; the first ``round(test_fraction * N)``
permuted rows are the test split, the next ``round(valid_fraction * N)`` the valid split and the
rest train (each split keeps file order). Environment ids: train 0, valid 1, test 2.
With the defaults (``seed=0``, 20 % / 20 %) on 2,417 rows: 1,451 / 483 / 483.

Features are standardised with the train split's mean and standard deviation when
``standardize=True`` (the default; a constant train feature is only centred).
"""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ._sources import (
    check_fraction,
    check_no_empty_task,
    data_root,
    find_line,
    missing_data_error,
    seeded_fraction_split,
)
from .base import DatasetSplits, MultiTaskDataset, Task

logger = logging.getLogger(__name__)

__all__ = ["N_FEATURES", "N_LABELS", "YEAST_LABELS", "load_yeast", "read_yeast"]

N_FEATURES = 103
N_LABELS = 14
YEAST_FEATURES: tuple[str, ...] = tuple(f"Att{i}" for i in range(1, N_FEATURES + 1))
YEAST_LABELS: tuple[str, ...] = tuple(f"Class{i}" for i in range(1, N_LABELS + 1))
FILENAMES = ("yeast.csv.gz", "yeast.csv")
SOURCE = (
    "the Mulan multi-label repository (https://mulan.sourceforge.net/datasets-mlc.html, "
    "yeast.arff) or OpenML dataset 40597, converted to a CSV with header Att1..Att103,"
    "Class1..Class14; a ready CSV ships as yeast.csv inside the BSD-3 'river' package "
    "(river/datasets/yeast.csv.gz)"
)


def _find_file(path: str | os.PathLike[str] | None) -> Path:
    root = data_root(path)
    if root is not None and root.is_file():
        return root
    if root is not None and root.suffix in (".csv", ".gz"):  # a file path that does not exist
        raise missing_data_error("Yeast", root.name, [root.parent], SOURCE)
    dirs = [] if root is None else [root, root / "yeast"]
    for d in dirs:
        for name in FILENAMES:
            if (d / name).is_file():
                return d / name
    raise missing_data_error("Yeast", FILENAMES[0], dirs, SOURCE, root_given=root is not None)


def read_yeast(path: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Features ``float64 (N, 103)`` and labels ``int64 (N, 14)`` of the Yeast CSV.

    ``path``: the CSV file, a directory holding ``yeast.csv.gz`` / ``yeast.csv`` (or a
    ``yeast/`` sub-directory with it); ``None`` uses ``$CAUSALMTL_DATA``.
    """
    import pandas as pd

    file = _find_file(path)
    expected = [*YEAST_FEATURES, *YEAST_LABELS]
    opener = gzip.open if file.suffix == ".gz" else open
    with opener(file, "rt", encoding="utf-8", errors="replace") as fh:
        header = fh.readline().rstrip("\r\n").split(",")
    if header != expected:
        extra = sorted(set(header) - set(expected))[:5]
        absent = sorted(set(expected) - set(header))[:5]
        raise ValueError(
            f"{file}, line 1: the header must be Att1..Att103 followed by Class1..Class14 "
            f"({len(expected)} columns); got {len(header)} columns"
            + (f", unexpected {extra}" if extra else "")
            + (f", missing {absent}" if absent else "")
        )
    dtypes = dict.fromkeys(YEAST_FEATURES, "float64") | dict.fromkeys(YEAST_LABELS, "float64")
    try:
        df = pd.read_csv(file, dtype=dtypes, engine="c", skip_blank_lines=False)
        if df.isna().to_numpy().any():
            raise ValueError("missing value")
    except (ValueError, pd.errors.ParserError) as exc:

        def bad(text: str) -> bool:
            fields = text.split(",")
            if len(fields) != len(expected):
                return True
            try:
                vals = [float(f) for f in fields]
            except ValueError:
                return True
            return any(v != v for v in vals)  # NaN

        line, text = find_line(file, bad, skip=1)
        if line:
            raise ValueError(
                f"{file}, line {line}: malformed row ({len(text.split(','))} fields, expected "
                f"{len(expected)} numbers: 103 features then 14 labels): {text[:80]!r}..."
            ) from None
        raise ValueError(f"{file}: could not be read as the Yeast CSV: {exc}") from exc
    x = df[list(YEAST_FEATURES)].to_numpy(np.float64)
    y = df[list(YEAST_LABELS)].to_numpy(np.float64)
    if not np.isfinite(x).all():
        r = int(np.argwhere(~np.isfinite(x))[0, 0])
        raise ValueError(f"{file}, line {r + 2}: a feature is not finite")
    ok = (y == 0) | (y == 1)
    if not ok.all():
        r, c = (int(v) for v in np.argwhere(~ok)[0])
        raise ValueError(
            f"{file}, line {r + 2}: label {YEAST_LABELS[c]} = {float(y[r, c])!r}; labels must be 0 or 1"
        )
    return x, y.astype(np.int64)


def _select(labels: Sequence[str | int] | None) -> list[int]:
    if labels is None:
        return list(range(N_LABELS))
    out = []
    for lab in labels:
        if isinstance(lab, str):
            if lab not in YEAST_LABELS:
                raise ValueError(
                    f"labels: unknown label {lab!r}; valid labels are {list(YEAST_LABELS)}"
                )
            out.append(YEAST_LABELS.index(lab))
        else:
            if not 0 <= int(lab) < N_LABELS:
                raise ValueError(f"labels: index {lab!r} outside [0, {N_LABELS})")
            out.append(int(lab))
    if not out or len(set(out)) != len(out):
        raise ValueError(f"labels must name at least one label, each once; got {labels!r}")
    return out


def load_yeast(
    path: str | os.PathLike[str] | None = None,
    *,
    labels: Sequence[str | int] | None = None,
    seed: int = 0,
    valid_fraction: float = 0.2,
    test_fraction: float = 0.2,
    standardize: bool = True,
) -> DatasetSplits:
    """Yeast as binary classification tasks with a seeded train/valid/test split.

    Parameters
    ----------
    path : the CSV file or a directory holding it; ``None`` uses ``$CAUSALMTL_DATA``.
    labels : the tasks, names ``"Class1".."Class14"`` or indices; ``None`` = all 14.
    seed, valid_fraction, test_fraction : the split (module docstring).
    standardize : z-score the features with the train statistics.

    Returns
    -------
    DatasetSplits
        Inputs ``float32 (N, 103)``; targets ``int64 (N, T)`` in {0, 1}. ``meta``: ``file``,
        ``seed``, ``indices`` (dict split -> file row indices), ``mean``/``std`` (the
        standardisation, or ``None``).
    """
    check_fraction(valid_fraction, "valid_fraction")
    check_fraction(test_fraction, "test_fraction")
    if valid_fraction + test_fraction >= 1:
        raise ValueError(
            f"valid_fraction + test_fraction must be < 1, got {valid_fraction} + {test_fraction}"
        )
    cols = _select(labels)
    x, y = read_yeast(path)
    test, valid, train = seeded_fraction_split(
        len(x), [test_fraction, valid_fraction, 1 - test_fraction - valid_fraction], seed
    )
    for name, idx in (("train", train), ("valid", valid), ("test", test)):
        if len(idx) == 0:
            raise ValueError(
                f"yeast: the {name} split is empty ({len(x)} rows with valid_fraction="
                f"{valid_fraction}, test_fraction={test_fraction}); use more data or larger fractions"
            )
    mean = std = None
    if standardize:
        mean = x[train].mean(axis=0)
        std = x[train].std(axis=0)
        std = np.where(std > 0, std, 1.0)
        x = (x - mean) / std
    x = x.astype(np.float32)
    tasks = tuple(Task(YEAST_LABELS[c], "classification", 2) for c in cols)
    parts = {}
    for env, (name, idx) in enumerate((("train", train), ("valid", valid), ("test", test))):
        parts[name] = MultiTaskDataset(
            inputs=x[idx], targets=y[idx][:, cols], tasks=tasks,
            env=np.full(len(idx), env, dtype=np.int64), name=f"yeast/{name}",
        )  # fmt: skip
    splits = DatasetSplits(
        parts["train"], parts["valid"], parts["test"], name="yeast",
        meta={"seed": seed, "indices": {"train": train, "valid": valid, "test": test},
              "mean": mean, "std": std},
    )  # fmt: skip
    check_no_empty_task(splits)
    logger.info("yeast: %s", splits.summary())
    return splits
