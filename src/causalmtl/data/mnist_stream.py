"""Paper-scale Multi-MNIST, generated on the fly (MT-CRL App. C.1–C.2: 10,000 images per label pair).

MT-CRL builds its Multi-MNIST from 100 label pairs ``(y_left, y_right)`` with 10,000 images each
(1 M images), the pairs split 3:1:1 into train/valid/test so that no test pair is seen in
training. Materialised as float32 28×56 images that is 6.3 GB; here nothing beyond a batch is
ever built. :class:`StreamedMultiMNIST` is a :class:`~causalmtl.data.streamed.FileSource` over
the MNIST source images (read once from the IDX files, 55 MB) whose row ``i`` is composed when
a batch asks for it:

* row ``i`` of a split belongs to label pair ``pairs[i // per_pair]`` (labels are therefore
  known in memory without composing any image);
* its left and right source images are drawn from the split's disjoint image pool (as in
  :func:`causalmtl.data.make_multi_mnist`: the valid pool is a class-stratified sixth of the
  MNIST training file, the test pool the MNIST test file) by a counter-based hash of
  ``(seed, split, i, side)`` — the same image for the same seed and index, in any process,
  in any order, without a per-row generator.

:meth:`StreamedMultiMNIST.read_batch` composes many rows at once (vectorised gathers);
:meth:`StreamedMultiMNIST.read` is one row, for the streamed trainer's reader.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._common import SPLIT_ENV, check_positive_int
from ._two_digit import SPLITS, split_label_pairs, stratified_pools
from .base import DatasetSplits, MultiTaskDataset, Task
from .streamed import FileSource, Sample

__all__ = ["StreamedMultiMNIST", "make_streamed_multi_mnist", "mix64"]

_SPLIT_ID = {"train": 1, "valid": 2, "test": 3}
_M1, _M2, _GOLD = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def mix64(x: npt.ArrayLike) -> np.ndarray:
    """SplitMix64's finaliser, element-wise on ``uint64`` (a bijection with good avalanche)."""
    u = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        u = (u ^ (u >> np.uint64(30))) * _M1
        u = (u ^ (u >> np.uint64(27))) * _M2
        result: np.ndarray = u ^ (u >> np.uint64(31))
        return result


def _row_hash(seed: int, split: str, rows: np.ndarray, side: int) -> np.ndarray:
    """A 64-bit hash of ``(seed, split, row, side)`` per row (counter-based: no generator state)."""
    with np.errstate(over="ignore"):
        h = mix64(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) * _GOLD + np.uint64(_SPLIT_ID[split]))
        h = mix64(h ^ (np.uint64(side + 1) * _GOLD))
        return mix64(h + rows.astype(np.uint64) * _GOLD)


class StreamedMultiMNIST(FileSource):
    """One split of on-the-fly Multi-MNIST (see the module docstring).

    Parameters
    ----------
    images : ``(M, 28, 28)`` uint8 MNIST source images (train file then test file)
    labels : ``(M,)`` their digit labels
    pool : indices into ``images`` this split may draw from (disjoint across splits)
    pairs : ``(P, 2)`` label pairs of this split
    per_pair : rows per label pair (10,000 in the paper)
    split : ``"train"``, ``"valid"`` or ``"test"`` (enters the hash)
    seed : int; same seed and index, same image
    dtype : ``"float32"`` (pixels / 255) or ``"uint8"``
    """

    def __init__(self, images: np.ndarray, labels: np.ndarray, pool: np.ndarray, pairs: np.ndarray, per_pair: int,
                 split: str, seed: int, dtype: str = "float32") -> None:
        if split not in _SPLIT_ID:
            raise ValueError(f"split must be one of {list(_SPLIT_ID)}, got {split!r}")
        if dtype not in ("float32", "uint8"):
            raise ValueError(f"dtype must be 'float32' or 'uint8', got {dtype!r}")
        self.images = images
        self.per_pair = check_positive_int(per_pair, "per_pair")
        self.pairs = np.asarray(pairs, dtype=np.int64)
        self.split, self.seed, self.dtype = split, int(seed), dtype
        pool = np.asarray(pool, dtype=np.int64)
        self.pool_sorted = pool[np.argsort(labels[pool], kind="stable")]
        self.counts = np.bincount(labels[self.pool_sorted], minlength=10)
        self.starts = np.concatenate([[0], np.cumsum(self.counts)[:-1]])
        empty = np.setdiff1d(np.unique(self.pairs), np.flatnonzero(self.counts))
        if empty.size:
            raise ValueError(f"the {split} pool has no image of digit {int(empty[0])}; it cannot compose its pairs")

    def __len__(self) -> int:
        return len(self.pairs) * self.per_pair

    def labels(self, rows: npt.ArrayLike | None = None) -> np.ndarray:
        """``(n, 2)`` int64 (left, right) labels of ``rows`` (default all), without any image."""
        r = np.arange(len(self)) if rows is None else np.asarray(rows, dtype=np.int64)
        return self.pairs[r // self.per_pair]

    def source_index(self, rows: npt.ArrayLike) -> np.ndarray:
        """``(n, 2)`` indices into ``images`` of each row's left and right digit."""
        r = np.asarray(rows, dtype=np.int64)
        if r.size and (r.min() < 0 or r.max() >= len(self)):
            raise IndexError(f"rows must lie in [0, {len(self)}), got [{r.min()}, {r.max()}]")
        y = self.labels(r)
        out = np.empty((len(r), 2), dtype=np.int64)
        for side in (0, 1):  # two sides, each vectorised over the rows
            c = y[:, side]
            pick = (_row_hash(self.seed, self.split, r, side) % self.counts[c].astype(np.uint64)).astype(np.int64)
            out[:, side] = self.pool_sorted[self.starts[c] + pick]
        return out

    def read_batch(self, rows: np.ndarray) -> np.ndarray:
        """Images of ``rows``: ``(n, 1, 28, 56)``, composed now (float32 in [0, 1] or uint8)."""
        src = self.source_index(rows)
        x = np.concatenate([self.images[src[:, 0]], self.images[src[:, 1]]], axis=2)[:, None]
        return x.astype(np.float32) / np.float32(255.0) if self.dtype == "float32" else x

    def read(self, i: int) -> Sample:
        return Sample(self.read_batch(np.array([i]))[0])

    def describe(self) -> str:
        return f"StreamedMultiMNIST[{self.split}, {len(self.pairs)} pairs × {self.per_pair}]"


def make_streamed_multi_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    per_pair: int = 10_000,
    pair_ratios: Sequence[float] = (3, 1, 1),
    valid_fraction: float = 1 / 6,
    valid_pairs: str = "own",
    seed: int = 0,
    dtype: str = "float32",
    verify_sha256: bool = True,
) -> DatasetSplits:
    """MT-CRL's paper-scale Multi-MNIST as streamed splits (``per_pair`` rows per label pair).

    The 100 label pairs are split by ``pair_ratios`` (3:1:1 → 60/20/20) with the seed's
    generator; at ``per_pair = 10_000`` the splits hold 600,000 / 200,000 / 200,000 rows.
    Targets and environment ids are in memory; images are composed per batch (module
    docstring). ``valid_pairs="train"`` draws valid from the training pairs (no shift between
    MT-CRL's environments). ``meta`` holds ``"pairs"``, ``"true_joint"``, ``"causal_blocks"``
    (left / right pixel halves) and ``"image_shape"``.
    """
    from ._common import as_generator
    from ._two_digit import pairs_joint
    from .mnist import load_mnist

    if valid_pairs not in ("own", "train"):
        raise ValueError(f"valid_pairs must be 'own' or 'train', got {valid_pairs!r}")
    vf = float(valid_fraction)
    if not (np.isfinite(vf) and 0.0 < vf < 1.0):
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction!r}")
    per_pair = check_positive_int(per_pair, "per_pair")
    data = load_mnist(data_dir, verify_sha256=verify_sha256)
    images = np.concatenate([data["train_images"], data["test_images"]])
    labels = np.concatenate([data["train_labels"], data["test_labels"]]).astype(np.int64)
    rng = as_generator(int(seed))
    n_tr = len(data["train_labels"])
    pools = stratified_pools(labels[:n_tr], {"train": 1.0 - vf, "valid": vf}, rng, "the MNIST training file")
    pools["test"] = n_tr + np.arange(len(data["test_labels"]))
    pairs = split_label_pairs(10, pair_ratios, rng)
    if valid_pairs == "train":
        pairs["valid"] = pairs["train"]
    tasks = (Task("left", n_classes=10), Task("right", n_classes=10))
    parts = {}
    for split in SPLITS:
        src = StreamedMultiMNIST(images, labels, pools[split], pairs[split], per_pair, split, int(seed), dtype)
        y = src.labels()
        parts[split] = MultiTaskDataset(inputs=src, targets=y, tasks=tasks,
                                        env=np.full(len(y), SPLIT_ENV[split], dtype=np.int64),
                                        name=f"multi-mnist-stream/{split}")
    cols = np.arange(28 * 56) % 56
    meta: dict[str, Any] = {
        "protocol": "pairs", "pairs": pairs, "valid_pairs": valid_pairs, "per_pair": per_pair,
        "true_joint": {k: pairs_joint(pairs[k], 10) for k in SPLITS},
        "causal_blocks": [np.flatnonzero(cols < 28), np.flatnonzero(cols >= 28)],
        "image_shape": (1, 28, 56),
    }
    return DatasetSplits(parts["train"], parts["valid"], parts["test"], name="multi-mnist-stream", meta=meta)
