"""Shared parts of the dense (image) loaders: NYUv2 and CityScapes.

* :func:`pick_groups` / :func:`split_by_groups`: splits by environment (scene type, city) in
  which every environment lands whole in one split, sized to target fractions (subset sum).
* the per-pixel conversions every loader applies to the files it reads (channels-last to
  channels-first, invalid depth to ``NaN``, class-map range checks naming the file).
* :func:`read_npy`, :func:`read_png`: the only functions that open image/target files, so
  tests can count them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "pick_groups",
    "split_by_groups",
    "read_npy",
    "read_png",
    "to_image",
    "to_class_map",
    "to_depth",
    "to_normal",
    "check_tasks",
]


def read_npy(path: str | os.PathLike[str]) -> np.ndarray:
    """``numpy.load`` of one ``.npy`` file (no pickles)."""
    result: np.ndarray = np.load(path, allow_pickle=False)
    return result


def read_png(path: str | os.PathLike[str]) -> np.ndarray:
    """One PNG as an array: 8-bit RGB ``(H, W, 3)``, 8-bit grey ``(H, W)`` or 16-bit ``(H, W)``."""
    from PIL import Image

    with Image.open(path) as im:
        im.load()
        if im.mode in ("I;16", "I;16B", "I;16L", "I"):
            return np.asarray(im).astype(np.int64)
        if im.mode not in ("L", "RGB"):
            return np.asarray(im.convert("RGB"))
        return np.asarray(im)


# --- splits by environment -------------------------------------------------------------------
def pick_groups(sizes: np.ndarray, target: int, rng: np.random.Generator) -> np.ndarray:
    """Choose whole groups whose sizes sum as close to ``target`` as possible from below.

    The groups are taken in the order of ``rng.permutation``; among the subsets with the best
    reachable sum ``<= target`` (subset-sum table, vectorised over sums) the one preferring
    earlier groups in that order is returned, so the choice varies with the seed. When every
    group is larger than ``target`` the smallest group is taken (a split never ends up empty).
    Returns a boolean mask over the groups.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    n = len(sizes)
    chosen = np.zeros(n, dtype=bool)
    if n == 0:
        return chosen
    order = rng.permutation(n)
    target = max(int(target), 0)
    reach = np.zeros((n + 1, target + 1), dtype=bool)
    reach[0, 0] = True
    for k, g in enumerate(order, 1):  # one vectorised shift per group (tens of groups)
        s = int(sizes[g])
        reach[k] = reach[k - 1]
        if s <= target:
            reach[k, s:] |= reach[k - 1, : target + 1 - s]
    best = int(np.flatnonzero(reach[n])[-1])
    if best == 0:
        smallest = order[np.argmin(sizes[order])]
        chosen[smallest] = True
        return chosen
    s = best
    for k in range(n, 0, -1):
        if not reach[k - 1, s]:  # group k is needed to reach s
            g = order[k - 1]
            chosen[g] = True
            s -= int(sizes[g])
    return chosen


def split_by_groups(
    groups: np.ndarray,
    names: Sequence[str],
    fractions: Sequence[float],
    seed: int,
    what: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows of train / valid / test with every group (environment) whole in one split.

    ``groups`` holds a group id per row (``0 .. len(names) - 1``). Test takes the groups picked
    by :func:`pick_groups` for ``round(fractions[2] * N)`` rows, valid those for
    ``round(fractions[1] * N)`` among the rest, train the remainder (generator
    ``numpy.random.default_rng(seed)``, test drawn first). Raises ``ValueError`` when a split
    would be left without an environment.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.shape != (3,) or not np.all(fr > 0) or not np.isclose(fr.sum(), 1.0):
        raise ValueError(f"fractions must be three positive numbers summing to 1 "
                         f"(train, valid, test), got {tuple(fractions)!r}")
    groups = np.asarray(groups, dtype=np.int64)
    counts = np.bincount(groups, minlength=len(names))
    present = np.flatnonzero(counts)
    if len(present) < 3:
        raise ValueError(
            f"{what}: a split by environment needs at least 3 environments with images so that "
            f"train, valid and test each get one; found {len(present)}: "
            f"{[names[int(i)] for i in present]} (a split would be left with no environment)"
        )
    rng = np.random.default_rng(seed)
    n = len(groups)
    test_g = present[pick_groups(counts[present], round(fr[2] * n), rng)]
    rest = np.setdiff1d(present, test_g)
    valid_g = rest[pick_groups(counts[rest], round(fr[1] * n), rng)]
    train_g = np.setdiff1d(rest, valid_g)
    if len(train_g) == 0:
        raise ValueError(
            f"{what}: the split by environment left train without an environment "
            f"(valid {[names[i] for i in valid_g]}, test {[names[i] for i in test_g]}); "
            f"use more environments or other fractions"
        )
    return (np.flatnonzero(np.isin(groups, train_g)), np.flatnonzero(np.isin(groups, valid_g)),
            np.flatnonzero(np.isin(groups, test_g)))


# --- per-pixel conversions -------------------------------------------------------------------
def to_image(a: np.ndarray, path: object) -> np.ndarray:
    """``(H, W, 3)`` channels-last pixels to ``float32 (3, H, W)``; ``uint8`` scaled to [0, 1]."""
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"image {path} has shape {a.shape}; expected (H, W, 3) (channels last)")
    x = a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, 0))


def _check_hw(shape: tuple[int, ...], hw: tuple[int, int], path: object, image: object, what: str) -> None:
    if tuple(shape[:2]) != tuple(hw):
        raise ValueError(f"{what} {path} is {shape[0]}x{shape[1]} but its image {image} is "
                         f"{hw[0]}x{hw[1]}; image and targets must have the same size")


def to_class_map(a: np.ndarray, n_classes: int, path: object, hw: tuple[int, int], image: object) -> np.ndarray:
    """A stored class map ``(H, W)`` (``-1`` = ignore) to ``int64``, checked against ``n_classes``."""
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"label {path} has shape {a.shape}; expected (H, W)")
    _check_hw(a.shape, hw, path, image, "label")
    if a.dtype.kind == "f":
        bad = ~np.isfinite(a) | (a != np.round(a))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise ValueError(f"label {path} has the non-integer value {a[r, c]!r} at pixel ({r}, {c})")
    lab = a.astype(np.int64)
    bad = (lab < -1) | (lab >= n_classes)
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(f"label {path} has the value {lab[r, c]} at pixel ({r}, {c}); expected a class "
                         f"in [0, {n_classes}) or -1 (ignored)")
    return lab


def to_depth(a: np.ndarray, path: object, hw: tuple[int, int], image: object) -> np.ndarray:
    """A stored depth map ``(H, W, 1)`` or ``(H, W)`` to ``float32 (1, H, W)``; ``<= 0`` → ``NaN``."""
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim != 2:
        raise ValueError(f"depth {path} has shape {a.shape}; expected (H, W, 1) or (H, W)")
    _check_hw(a.shape, hw, path, image, "depth")
    d = a.astype(np.float32)
    d[~(d > 0)] = np.nan  # 0 = no measurement; negative or non-finite never valid
    return d[None]


def to_normal(a: np.ndarray, path: object, hw: tuple[int, int], image: object) -> np.ndarray:
    """A stored normal map ``(H, W, 3)`` to ``float32 (3, H, W)``; zero / non-finite vectors → ``NaN``."""
    if a.ndim != 3 or a.shape[-1] != 3:
        raise ValueError(f"normal {path} has shape {a.shape}; expected (H, W, 3) (channels last)")
    _check_hw(a.shape, hw, path, image, "normal")
    n = np.moveaxis(a.astype(np.float32), -1, 0).copy()
    invalid = ~np.isfinite(n).all(axis=0) | (n == 0).all(axis=0)
    n[:, invalid] = np.nan
    return n


def check_tasks(tasks: Sequence[str] | str, known: Sequence[str], what: str) -> tuple[str, ...]:
    """Validate a task selection (names from ``known``, no repeats)."""
    if isinstance(tasks, str):
        tasks = (tasks,)
    tasks = tuple(tasks)
    bad = [t for t in tasks if t not in known]
    if not tasks or bad or len(set(tasks)) != len(tasks):
        raise ValueError(f"{what}: tasks must be distinct names from {list(known)}, got {list(tasks)}")
    return tasks


def numbered_files(directory: Path, suffix: str = ".npy") -> int:
    """Count ``0<suffix> .. (n-1)<suffix>`` in ``directory`` (listing only); a gap is an error."""
    stems = [p[: -len(suffix)] for p in os.listdir(directory) if p.endswith(suffix)]
    idx = sorted(int(s) for s in stems if s.isdigit())
    n = len(idx)
    if idx != list(range(n)):
        missing = next(i for i in range(n) if idx[i] != i)
        raise ValueError(f"{directory} holds {n} numbered {suffix} files but {missing}{suffix} is missing; "
                         f"expected 0{suffix} .. {n - 1}{suffix}")
    return n
