"""Two-digit images (left digit, right digit side by side) with a controlled label relationship.

Shared by Multi-Digits (:mod:`causalmtl.data.digits`) and Multi-MNIST
(:mod:`causalmtl.data.mnist`). An example is ``X = [F_left, F_right]`` (MT-CRL App. C.1):
two single-digit images of shape ``(h, w)`` concatenated along the width into ``(1, h, 2w)``;
the tasks are the two digit labels.

The source images are first divided into **disjoint pools**, one per split; every example of a
split takes both its digits from that split's pool (drawn uniformly, with replacement, among the
pool's images of the required class), so no source image appears in two splits.

The label relationship of each split is a joint table ``p(y, y')`` over ``C × C`` classes:

* protocol ``"biased"`` (GMTL setting): train (and, by default, valid) use
  ``p(y, y') = (1/C) [m · 1{y' = y} + (1 − m)/C]`` — "``y' = y`` with probability ``m``, else
  uniform" — or a table the user gives; test uses any ``q(y, y')`` the user gives (default
  uniform);
* protocol ``"pairs"`` (MT-CRL C.1/C.2): the ``C²`` label pairs are shuffled and split
  3:1:1 (configurable) into train/valid/test pair sets; each split draws its pairs uniformly
  from its own set, so no test pair occurs in training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._common import (
    SPLIT_ENV,
    check_joint_table,
    check_positive_int,
    check_unit_interval,
    sample_joint_labels,
)
from .base import DatasetSplits, MultiTaskDataset, Task

Protocol = Literal["biased", "pairs"]
SPLITS = ("train", "valid", "test")


def biased_joint(n_classes: int, m: float) -> np.ndarray:
    """``p(y, y') = (1/C)[m·1{y'=y} + (1−m)/C]``: ``y`` uniform, ``y' = y`` w.p. ``m`` else uniform."""
    m = check_unit_interval(m, "m")
    c = int(n_classes)
    return (m * np.eye(c) + (1.0 - m) / c) / c


def split_label_pairs(
    n_classes: int, ratios: Sequence[float], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Shuffle the ``C²`` label pairs and cut them into train/valid/test sets by ``ratios``.

    Returns ``{split: (k, 2) int64 array}``; sizes are ``floor(C² · r / Σr)`` for valid and
    test and the rest for train (3:1:1 over 100 pairs gives 60/20/20). Every split gets at
    least one pair.
    """
    r = np.asarray(ratios, dtype=np.float64)
    if r.shape != (3,) or not np.all(np.isfinite(r)) or (r <= 0).any():
        raise ValueError(f"pair_ratios must be 3 positive numbers (train, valid, test), got {ratios!r}")
    total = n_classes * n_classes
    n_valid = int(np.floor(total * r[1] / r.sum()))
    n_test = int(np.floor(total * r[2] / r.sum()))
    n_train = total - n_valid - n_test
    if min(n_train, n_valid, n_test) < 1:
        raise ValueError(
            f"pair_ratios {tuple(r.tolist())} leave a split without label pairs "
            f"({n_train}/{n_valid}/{n_test} of {total})"
        )
    perm = rng.permutation(total)
    cuts = {"train": perm[:n_train], "valid": perm[n_train : n_train + n_valid], "test": perm[n_train + n_valid :]}
    return {k: np.stack(np.unravel_index(np.sort(v), (n_classes, n_classes)), axis=1).astype(np.int64) for k, v in cuts.items()}


def pairs_joint(pairs: np.ndarray, n_classes: int) -> np.ndarray:
    """Uniform joint table over a set of label pairs."""
    table = np.zeros((n_classes, n_classes))
    table[pairs[:, 0], pairs[:, 1]] = 1.0
    result: np.ndarray = table / table.sum()
    return result


def stratified_pools(
    labels: np.ndarray,
    sizes: Mapping[str, int | float],
    rng: np.random.Generator,
    source: str,
) -> dict[str, np.ndarray]:
    """Divide image indices into disjoint per-split pools, stratified by class.

    ``sizes`` maps each split name (in order) to its pool as a fraction of all images (floats,
    summing to at most 1) or as a number of images (ints). Within every class the images are
    shuffled and cut in the same proportions, so pool sizes given as counts are met up to
    per-class rounding.

    Raises
    ------
    ValueError
        When the requested pools need more images than ``source`` holds.
    """
    n = len(labels)
    names = list(sizes)
    vals = {k: sizes[k] for k in names}
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in vals.values()):
        counts = {k: int(v) for k, v in vals.items()}
        if min(counts.values()) < 1:
            raise ValueError(f"pool sizes must be >= 1 image, got {counts}")
        if sum(counts.values()) > n:
            raise ValueError(
                f"too few images to fill the requested pools: {counts} need {sum(counts.values())} "
                f"images but {source} has {n}"
            )
        frac = {k: c / n for k, c in counts.items()}
    else:
        frac = {k: float(v) for k, v in vals.items()}
        if any(not np.isfinite(f) or f <= 0 for f in frac.values()) or sum(frac.values()) > 1 + 1e-9:
            raise ValueError(
                f"pool fractions must be > 0 and sum to at most 1, got {frac} (sum {sum(frac.values())})"
            )
    perm = rng.permutation(n)
    order = perm[np.argsort(labels[perm], kind="stable")]  # grouped by class, shuffled within
    sorted_labels = labels[order]
    class_start = np.searchsorted(sorted_labels, sorted_labels, side="left")
    class_count = np.bincount(sorted_labels)[sorted_labels]
    rank = (np.arange(n) - class_start) / class_count  # position within class in [0, 1)
    edges = np.cumsum([0.0] + [frac[k] for k in names])
    pools = {}
    for i, k in enumerate(names):
        pools[k] = np.sort(order[(rank >= edges[i] - 1e-12) & (rank < edges[i + 1] - 1e-12)])
    return pools


def _draw_images(
    pool: np.ndarray, labels: np.ndarray, wanted: np.ndarray, rng: np.random.Generator, n_classes: int, split: str, source: str
) -> np.ndarray:
    """For each wanted class, one uniformly drawn pool image of that class (vectorised)."""
    pool_sorted = pool[np.argsort(labels[pool], kind="stable")]
    counts = np.bincount(labels[pool_sorted], minlength=n_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    need = np.unique(wanted)
    empty = need[counts[need] == 0]
    if empty.size:
        raise ValueError(
            f"too few images to fill the requested pools: the {split} pool of {source} has no "
            f"image of class {int(empty[0])} (pool size {len(pool)}); enlarge the pool"
        )
    pos = starts[wanted] + np.floor(rng.random(len(wanted)) * counts[wanted]).astype(np.int64)
    result: np.ndarray = pool_sorted[pos]
    return result


def compose_two_digit_splits(
    images: np.ndarray,
    labels: np.ndarray,
    pools: Mapping[str, np.ndarray],
    sizes: Mapping[str, int],
    protocol: Protocol,
    rng: np.random.Generator,
    name: str,
    source: str,
    m: float = 0.9,
    train_joint: npt.ArrayLike | None = None,
    valid_joint: npt.ArrayLike | None = None,
    test_joint: npt.ArrayLike | None = None,
    pair_ratios: Sequence[float] = (3, 1, 1),
    dtype: str = "float32",
    scale: float = 1.0,
    n_classes: int = 10,
    valid_pairs: str = "own",
) -> DatasetSplits:
    """Build train/valid/test two-digit splits from single-digit ``images`` ``(M, h, w)``.

    See the module docstring for the protocols. ``scale`` is the maximum grey level of the
    source (16 for scikit-learn digits, 255 for MNIST): ``dtype="float32"`` returns
    ``images / scale`` in [0, 1]; ``dtype="uint8"`` returns the raw grey levels. Labels lie in
    ``[0, n_classes)``. ``valid_pairs`` (protocol ``"pairs"``): ``"own"`` gives the valid
    split its own pair set, disjoint from train's (a label shift between the two environments
    MT-CRL trains on); ``"train"`` draws valid from the training pairs (no shift; the valid
    pair set is then left unused, and test pairs stay unseen).
    """
    if valid_pairs not in ("own", "train"):
        raise ValueError(f"valid_pairs must be 'own' (a disjoint pair set) or 'train' (the training pairs), "
                         f"got {valid_pairs!r}")
    if int(labels.max()) >= n_classes or int(labels.min()) < 0:
        raise ValueError(f"{source} labels must lie in [0, {n_classes}), found [{labels.min()}, {labels.max()}]")
    if dtype not in ("float32", "uint8"):
        raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
    ns = {k: check_positive_int(sizes[k], f"n_{k}") for k in SPLITS}
    m = check_unit_interval(m, "m")
    meta: dict[str, Any] = {"protocol": protocol}
    if protocol == "biased":
        if train_joint is None:
            tables = {"train": biased_joint(n_classes, m)}
            meta["m"] = float(m)
        else:
            tables = {"train": check_joint_table(train_joint, (n_classes, n_classes), "train_joint")}
        tables["valid"] = tables["train"] if valid_joint is None else check_joint_table(
            valid_joint, (n_classes, n_classes), "valid_joint"
        )
        tables["test"] = (
            np.full((n_classes, n_classes), 1.0 / n_classes**2)
            if test_joint is None
            else check_joint_table(test_joint, (n_classes, n_classes), "test_joint")
        )
    elif protocol == "pairs":
        for arg, val in (("train_joint", train_joint), ("valid_joint", valid_joint), ("test_joint", test_joint)):
            if val is not None:
                raise ValueError(f"{arg} is only used by protocol='biased'; protocol='pairs' fixes the tables")
        pairs = split_label_pairs(n_classes, pair_ratios, rng)
        if valid_pairs == "train":
            pairs["valid"] = pairs["train"]
        tables = {k: pairs_joint(pairs[k], n_classes) for k in SPLITS}
        meta["pairs"] = pairs
        meta["valid_pairs"] = valid_pairs
    else:
        raise ValueError(f"protocol must be 'biased' or 'pairs', got {protocol!r}")

    h, w = images.shape[1:]
    tasks = (Task("left", n_classes=n_classes), Task("right", n_classes=n_classes))
    parts: dict[str, MultiTaskDataset] = {}
    sources: dict[str, np.ndarray] = {}
    for split in SPLITS:
        y = sample_joint_labels(tables[split], ns[split], rng)
        left = _draw_images(pools[split], labels, y[:, 0], rng, n_classes, split, source)
        right = _draw_images(pools[split], labels, y[:, 1], rng, n_classes, split, source)
        x = np.concatenate([images[left], images[right]], axis=2)[:, None]  # (n, 1, h, 2w)
        x = (x.astype(np.float32) / np.float32(scale)) if dtype == "float32" else x.astype(np.uint8)
        sources[split] = np.stack([left, right], axis=1)
        parts[split] = MultiTaskDataset(
            inputs=x, targets=y, tasks=tasks, env=np.full(ns[split], SPLIT_ENV[split], dtype=np.int64),
            name=f"{name}/{split}",
        )
    cols = np.arange(h * 2 * w) % (2 * w)
    meta.update(
        {
            "causal_blocks": [np.flatnonzero(cols < w), np.flatnonzero(cols >= w)],
            "image_shape": (1, h, 2 * w),
            "true_joint": tables,
            "pools": dict(pools),
            "source_index": sources,
        }
    )
    return DatasetSplits(train=parts["train"], valid=parts["valid"], test=parts["test"], name=name, meta=meta)
