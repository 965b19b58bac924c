"""Attributes of People (Bourdev, Maji, Malik, ICCV 2011), as used by GMTL §5.1.

The dataset's own layout: two label files, ``trainval_labels.txt`` and ``test_labels.txt``, one
person per line, space-separated::

    <image file> <x> <y> <w> <h> <is_male> <long_hair> <glasses> <hat> <t-shirt> \\
        <long_sleeves> <shorts> <jeans> <long_pants>

with attributes encoded 1 = yes, −1 = no, 0 = unspecified, mapped to labels 1 / 0 / missing
(−1). The images are looked up, relative to the label file's directory, at ``<file>``,
``<split>/<file>`` and ``images/<file>`` (the first that exists for the split's first line is
used for the whole split). The box is ``x y w h`` (``box_format="xywh"``, default) or
``x1 y1 x2 y2`` (``"xyxy"``).

As in the paper, ``is_male`` is dropped (not a task); validation is a seeded 20 % of trainval
(``numpy.random.default_rng(seed).permutation``); environment ids train 0, valid 1, test 2.

Image transform (documented, deterministic): open with Pillow, convert to RGB; optionally crop
to the person's box intersected with the image (``crop_to_box=True``); resize to
``image_size`` (height, width) with bilinear interpolation; scale to [0, 1]; normalise each
channel with the ImageNet mean (0.485, 0.456, 0.406) and standard deviation
(0.229, 0.224, 0.225) (``normalize=True``); layout ``float32 (N, 3, H, W)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from ._sources import (
    check_fraction,
    check_no_empty_task,
    data_root,
    missing_data_error,
    seeded_fraction_split,
)
from .base import DatasetSplits, MultiTaskDataset, Task

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTES",
    "PAPER_PAIRS",
    "TASK_ATTRIBUTES",
    "load_attributes",
    "read_attribute_labels",
    "read_image",
]

#: The nine attributes of the label files, in file order.
ATTRIBUTES: tuple[str, ...] = (
    "is_male", "long_hair", "glasses", "hat", "t-shirt", "long_sleeves", "shorts", "jeans",
    "long_pants",
)  # fmt: skip
#: The eight attributes usable as tasks (``is_male`` dropped, GMTL §5.1).
TASK_ATTRIBUTES: tuple[str, ...] = ATTRIBUTES[1:]
#: The paper's task pairs (the three with the most co-occurring labels, GMTL §5.1).
PAPER_PAIRS: dict[str, tuple[str, str]] = {
    "hat+long_sleeves": ("hat", "long_sleeves"),
    "long_hair+hat": ("long_hair", "hat"),
    "glasses+hat": ("glasses", "hat"),
}
LABEL_FILES = {"trainval": "trainval_labels.txt", "test": "test_labels.txt"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SOURCE = (
    "the authors' page (Bourdev, Maji, Malik 2011, 'Describing People: A Poselet-Based Approach "
    "to Attribute Classification'): https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/"
    "shape/poselets/ (attributes_dataset.tgz)"
)
_SUBDIRS = ("attributes_of_people", "attributes_dataset", "attributes")


def _find_directory(path: str | os.PathLike[str] | None) -> Path:
    root = data_root(path)
    dirs = [] if root is None else [root] + [root / s for s in _SUBDIRS]
    for d in dirs:
        if (d / LABEL_FILES["trainval"]).is_file() or (d / LABEL_FILES["test"]).is_file():
            for f in LABEL_FILES.values():
                if not (d / f).is_file():
                    raise missing_data_error("Attributes of People", f, [d], SOURCE)
            return d
    raise missing_data_error(
        "Attributes of People", LABEL_FILES["trainval"], dirs, SOURCE, root_given=root is not None
    )


def read_attribute_labels(file: str | os.PathLike[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parse one label file: image names, boxes ``float64 (N, 4)``, labels ``int64 (N, 9)``.

    Labels are mapped 1 -> 1, −1 -> 0, 0 -> −1 (missing). Raises ``ValueError`` naming the file
    and line for a line without 14 fields, a non-numeric box, or an attribute outside {1, −1, 0}.
    """
    file = Path(file)
    names: list[str] = []
    boxes: list[list[float]] = []
    raw: list[list[int]] = []
    with open(file, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != 5 + len(ATTRIBUTES):
                raise ValueError(
                    f"{file}, line {line_no}: expected {5 + len(ATTRIBUTES)} space-separated fields "
                    f"(image, 4 box numbers, {len(ATTRIBUTES)} attributes), got {len(fields)}"
                )
            try:
                box = [float(v) for v in fields[1:5]]
                attrs = [int(v) for v in fields[5:]]
            except ValueError:
                raise ValueError(
                    f"{file}, line {line_no}: box and attributes must be numbers, got {fields[1:]!r}"
                ) from None
            for name, v in zip(ATTRIBUTES, attrs):
                if v not in (1, -1, 0):
                    raise ValueError(
                        f"{file}, line {line_no}: attribute {name} = {v}; expected 1 (yes), "
                        f"-1 (no) or 0 (unspecified)"
                    )
            if not np.all(np.isfinite(box)):
                raise ValueError(f"{file}, line {line_no}: box {box} is not finite")
            names.append(fields[0])
            boxes.append(box)
            raw.append(attrs)
    if not names:
        raise ValueError(f"{file}: holds no labelled person")
    enc = np.asarray(raw, dtype=np.int64)
    labels = np.select([enc == 1, enc == -1], [1, 0], default=-1)
    return names, np.asarray(boxes, dtype=np.float64), labels


def read_image(
    file: str | os.PathLike[str],
    image_size: tuple[int, int] = (64, 64),
    box: Sequence[float] | None = None,
    normalize: bool = True,
) -> np.ndarray:
    """One image as ``float32 (3, H, W)`` with the module's documented transform.

    ``box``: ``(x1, y1, x2, y2)`` in pixels to crop to (intersected with the image), or None.
    """
    from PIL import Image

    with Image.open(file) as im:
        img = im.convert("RGB")
    if box is not None:
        x1, y1, x2, y2 = (float(v) for v in box)
        left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        right, bottom = min(img.width, int(np.ceil(x2))), min(img.height, int(np.ceil(y2)))
        if right <= left or bottom <= top:
            raise ValueError(
                f"box {tuple(box)} of {file} does not overlap the {img.width}x{img.height} image"
            )
        img = img.crop((left, top, right, bottom))
    h, w = image_size
    img = img.resize((w, h), Image.BILINEAR)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if normalize:
        arr = (arr - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


def _image_dir(base: Path, split: str, first: str) -> Path:
    tried = [base, base / split, base / "images"]
    for d in tried:
        if (d / first).is_file():
            return d
    raise missing_data_error(f"Attributes of People ({split} images)", first, tried, SOURCE)


def _select_tasks(tasks: str | Sequence[str] | None) -> list[str]:
    if tasks is None:
        return list(TASK_ATTRIBUTES)
    if isinstance(tasks, str):
        if tasks in PAPER_PAIRS:
            return list(PAPER_PAIRS[tasks])
        tasks = [tasks]
    out = []
    for t in tasks:
        if t == "is_male":
            raise ValueError(
                "tasks: 'is_male' is dropped as in the paper (GMTL §5.1); valid attributes are "
                f"{list(TASK_ATTRIBUTES)}"
            )
        if t not in TASK_ATTRIBUTES:
            raise ValueError(
                f"tasks: unknown attribute or pair {t!r}; valid attributes are "
                f"{list(TASK_ATTRIBUTES)} and pairs {list(PAPER_PAIRS)}"
            )
        if t in out:
            raise ValueError(f"tasks: attribute {t!r} is listed twice")
        out.append(t)
    if not out:
        raise ValueError("tasks: no attribute selected")
    return out


def load_attributes(
    path: str | os.PathLike[str] | None = None,
    *,
    tasks: str | Sequence[str] | None = None,
    seed: int = 0,
    valid_fraction: float = 0.2,
    image_size: int | tuple[int, int] = 64,
    crop_to_box: bool = False,
    box_format: Literal["xywh", "xyxy"] = "xywh",
    normalize: bool = True,
    load_images: bool = True,
    drop_unlabelled: bool = True,
) -> DatasetSplits:
    """Attributes of People as binary classification tasks (GMTL §5.1).

    Parameters
    ----------
    path : the dataset directory (with the two label files) or a data root holding it in
        ``attributes_of_people/``; ``None`` uses ``$CAUSALMTL_DATA``.
    tasks : ``None`` = the eight attributes; a pair name of :data:`PAPER_PAIRS`; or attribute
        names (order kept).
    seed, valid_fraction : the validation split drawn from trainval.
    image_size : output height and width (an int for a square).
    crop_to_box, box_format, normalize : the image transform (module docstring).
    load_images : if False, no image is read and the inputs are ``{"box": float32 (N, 4)}``
        (x1, y1, x2, y2): for label-only uses such as fitting a joint prior.
    drop_unlabelled : drop persons for whom every selected task is unspecified.

    Returns
    -------
    DatasetSplits
        Targets ``int64 (N, T)`` with −1 for unspecified. ``meta``: ``files`` (dict split ->
        image paths), ``boxes`` (dict split -> ``(N, 4)`` x1 y1 x2 y2), ``tasks``.
    """
    check_fraction(valid_fraction, "valid_fraction")
    if box_format not in ("xywh", "xyxy"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(
            f"image_size must be a positive int or (height, width), got {image_size!r}"
        )
    size = (int(size[0]), int(size[1]))
    selected = _select_tasks(tasks)
    cols = [ATTRIBUTES.index(t) for t in selected]
    base = _find_directory(path)

    read = {}
    for split, fname in LABEL_FILES.items():
        names, boxes, labels = read_attribute_labels(base / fname)
        if box_format == "xywh":
            boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        bad = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(
                f"{base / fname}: person {r + 1} ({names[r]}) has an empty box {boxes[r].tolist()} "
                f"(x1 y1 x2 y2, from box_format={box_format!r})"
            )
        labels = labels[:, cols]
        keep = (labels >= 0).any(axis=1) if drop_unlabelled else np.ones(len(names), bool)
        idx = np.flatnonzero(keep)
        image_dir = _image_dir(base, split, names[0])
        files = [image_dir / names[i] for i in idx]
        read[split] = (files, boxes[idx], labels[idx])

    files_tv, boxes_tv, labels_tv = read["trainval"]
    valid_idx, train_idx = seeded_fraction_split(
        len(files_tv), [valid_fraction, 1 - valid_fraction], seed
    )
    parts = {
        "train": ([files_tv[i] for i in train_idx], boxes_tv[train_idx], labels_tv[train_idx]),
        "valid": ([files_tv[i] for i in valid_idx], boxes_tv[valid_idx], labels_tv[valid_idx]),
        "test": read["test"],
    }
    task_objs = tuple(Task(t, "classification", 2) for t in selected)
    out = {}
    for env, (split, (files, boxes, labels)) in enumerate(parts.items()):
        if not files:
            raise ValueError(
                f"attributes: the {split} split is empty (no person with any selected task "
                f"{selected} labelled)"
            )
        if load_images:
            inputs: np.ndarray | dict[str, np.ndarray] = np.empty(
                (len(files), 3, *size), dtype=np.float32
            )
            for i, f in enumerate(files):  # file I/O: one decode per image
                if not f.is_file():
                    raise missing_data_error(
                        f"Attributes of People ({split} images)", f.name, [f.parent], SOURCE
                    )
                inputs[i] = read_image(f, size, boxes[i] if crop_to_box else None, normalize)
        else:
            inputs = {"box": boxes.astype(np.float32)}
        out[split] = MultiTaskDataset(
            inputs=inputs,
            targets=labels,
            tasks=task_objs,
            env=np.full(len(files), env, dtype=np.int64),
            name=f"attributes/{split}",
        )
    splits = DatasetSplits(
        out["train"], out["valid"], out["test"], name="attributes",
        meta={"files": {s: p[0] for s, p in parts.items()}, "boxes": {s: p[1] for s, p in parts.items()},
              "tasks": selected, "directory": str(base), "seed": seed},
    )  # fmt: skip
    check_no_empty_task(splits)
    return splits
