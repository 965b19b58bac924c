"""Multi-Digits: the embedded, offline default dataset (two 8×8 digits side by side).

Built from scikit-learn's bundled handwritten digits (``sklearn.datasets.load_digits``:
1,797 images of 8×8 pixels with grey levels 0–16, ten classes; no download). Each example is
a left and a right digit concatenated along the width into an ``(1, 8, 16)`` image; the two
tasks are the digit labels (10 classes each). Construction and the two shift protocols
(``"biased"``: GMTL setting with a user-given test ``q``; ``"pairs"``: MT-CRL C.1's 3:1:1 split
of the 100 label pairs) are described in :mod:`causalmtl.data._two_digit`.

``meta["causal_blocks"]`` are the flat pixel indices (C-order over ``(1, 8, 16)``) of the
left half (task ``left``) and the right half (task ``right``).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._common import SeedLike, as_generator
from ._two_digit import Protocol, biased_joint, compose_two_digit_splits, stratified_pools
from .base import DatasetSplits

__all__ = ["biased_joint", "load_digit_images", "make_multi_digits"]


def _bundled_csv() -> Path | None:
    spec = importlib.util.find_spec("sklearn")
    if spec is None or spec.origin is None:  # pragma: no cover - sklearn is a dependency
        return None
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
    return path if path.is_file() else None


@lru_cache(maxsize=1)
def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    # Read scikit-learn's bundled CSV directly (what load_digits reads): importing
    # sklearn.datasets costs seconds, the file itself a fraction of one.
    path = _bundled_csv()
    if path is not None:
        data = np.loadtxt(path, delimiter=",", dtype=np.float64)
        images = data[:, :-1].reshape(-1, 8, 8).astype(np.uint8)
        labels = data[:, -1].astype(np.int64)
    else:  # pragma: no cover - layout of an unusual scikit-learn build
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images = np.asarray(bunch.images, dtype=np.uint8)
        labels = np.asarray(bunch.target, dtype=np.int64)
    if images.shape != (1797, 8, 8) or labels.min() != 0 or labels.max() != 9:
        raise ValueError(f"scikit-learn's digits data has an unexpected layout: images {images.shape}")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """The 1,797 scikit-learn digit images ``(1797, 8, 8)`` uint8 (0–16) and labels ``(1797,)``."""
    return _load_digits()


def make_multi_digits(
    protocol: Protocol = "biased",
    n_train: int = 10_000,
    n_valid: int = 2_000,
    n_test: int = 2_000,
    m: float = 0.9,
    train_joint: npt.ArrayLike | None = None,
    valid_joint: npt.ArrayLike | None = None,
    test_joint: npt.ArrayLike | None = None,
    pool_sizes: Sequence[float] | Sequence[int] = (0.6, 0.2, 0.2),
    pair_ratios: Sequence[float] = (3, 1, 1),
    dtype: str = "float32",
    seed: SeedLike = 0,
    valid_pairs: str = "own",
) -> DatasetSplits:
    """Multi-Digits train/valid/test splits (offline; generated in well under a second).

    Parameters
    ----------
    protocol : ``"biased"`` or ``"pairs"``
        ``"biased"``: train (and valid) labels from ``p(y, y') = (1/10)[m·1{y'=y} + (1−m)/10]``
        or from ``train_joint``; test labels from ``test_joint`` (default uniform).
        ``"pairs"``: MT-CRL's protocol — the 100 label pairs are shuffled and split by
        ``pair_ratios`` (3:1:1 → 60/20/20 pairs), so no test pair occurs in training.
    n_train, n_valid, n_test : int
        Number of two-digit examples per split.
    m : float in [0, 1]
        Agreement strength of the biased train table (``"biased"`` only).
    train_joint, valid_joint, test_joint : array ``(10, 10)`` or ``(100,)``, optional
        Joint label tables ``p(y, y')`` (``"biased"`` only). ``valid_joint`` defaults to the
        train table (in-distribution validation), ``test_joint`` to uniform.
    pool_sizes : 3 fractions or 3 ints
        Size of each split's disjoint pool of source images, as fractions of the 1,797 images
        (default 60/20/20 %) or as image counts; stratified by class.
    pair_ratios : 3 numbers
        Ratios of the label-pair split for ``"pairs"``.
    dtype : ``"float32"`` (pixels in [0, 1]) or ``"uint8"`` (grey levels 0–16)
    valid_pairs : ``"own"`` (valid has its own pair set) or ``"train"`` (valid draws from the
        training pairs: no shift between MT-CRL's two environments); ``"pairs"`` only
    seed : int or Generator
        Same seed, same data.

    Returns
    -------
    DatasetSplits
        Inputs ``(N, 1, 8, 16)``; targets int64 ``(N, 2)`` (``left``, ``right``); env ids train
        0, valid 1, test 2. ``meta``: ``"causal_blocks"``, ``"true_joint"`` (per split),
        ``"pools"`` and ``"source_index"`` (indices into :func:`load_digit_images`),
        ``"protocol"``, and ``"pairs"`` (protocol ``"pairs"``) or ``"m"``.

    Examples
    --------
    >>> splits = make_multi_digits("pairs", n_train=600, n_valid=200, n_test=200, seed=0)
    >>> splits.train.inputs.shape, len(splits.meta["pairs"]["test"])
    ((600, 1, 8, 16), 20)
    """
    images, labels = _load_digits()
    rng = as_generator(seed)
    if len(pool_sizes) != 3:
        raise ValueError(f"pool_sizes must give 3 values (train, valid, test), got {pool_sizes!r}")
    pools = stratified_pools(labels, dict(zip(("train", "valid", "test"), pool_sizes)), rng, "sklearn digits")
    return compose_two_digit_splits(
        images,
        labels,
        pools,
        {"train": n_train, "valid": n_valid, "test": n_test},
        protocol,
        rng,
        name="multi-digits",
        source="sklearn digits",
        m=m,
        train_joint=train_joint,
        valid_joint=valid_joint,
        test_joint=test_joint,
        pair_ratios=pair_ratios,
        dtype=dtype,
        valid_pairs=valid_pairs,
        scale=16.0,
    )
