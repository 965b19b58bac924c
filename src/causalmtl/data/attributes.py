"""Attributes of People (Bourdev, Maji, Malik, ICCV 2011), as used by GMTL §5.1.

Two layouts are read (detected from the files present):

* ``original`` — the dataset as shipped in ``attributes_dataset.tgz``:
  ``attributes_dataset/train/labels.txt`` and ``attributes_dataset/test/labels.txt``, the images
  beside each label file (``train/<image>``, ``test/<image>``);
* ``renamed`` — the layout the GMTL authors' code reads: ``trainval_labels.txt`` and
  ``test_labels.txt`` in one directory, the images at ``<dir>/<split>/<image>`` (``split`` =
  ``trainval`` / ``test``), ``<dir>/<image>`` or ``<dir>/images/<image>``.

Each label line is one person, fields separated by one or more spaces (the real file pads
with double spaces)::

    <image file> <x> <y> <w> <h> <is_male> <long_hair> <glasses> <hat> <t-shirt> \\
        <long_sleeves> <shorts> <jeans> <long_pants>

with attributes encoded 1 = yes, −1 = no, 0 = unspecified, mapped to labels 1 / 0 / missing
(−1). The box is ``x y w h`` (``box_format="xywh"``, default) or ``x1 y1 x2 y2`` (``"xyxy"``).
A box may be ``NaN NaN NaN NaN`` (23 persons of the real ``train/labels.txt``): the person has
no box; ``crop_to_box=True`` then uses the **whole image** for that person. A partly-``NaN`` or
infinite box is an error.

As in the paper, ``is_male`` is dropped (not a task). Environment ids train 0, valid 1, test 2.
Two validation splits (``split=``):

* ``"seeded"`` (default): a seeded 20 % of the trainval persons kept for the selected tasks
  (``numpy.random.default_rng(seed).permutation``), so each seed draws its own split;
* ``"gmtl"``: the GMTL authors' split, exactly: over **all** trainval rows, before any
  filtering, ``train = df.sample(frac=1 - valid_fraction, random_state=RandomState(split_seed))``
  with pandas (their ``train_ratio = 0.8`` and ``RandomState(0)``, the same for every run
  seed), ``valid`` = the rows whose image is not in ``train`` (their ``drop(train.index)``,
  the index being the image path); the unlabelled-person filter is applied afterwards.
  Use this one to reproduce the paper (the GMTL experiments): its five seeds vary only the
  network initialisation, and the α heuristic is tuned on this fixed validation set.

Image transform (documented, deterministic): open with Pillow, convert to RGB; optionally crop
to the person's box intersected with the image (``crop_to_box=True``; no box → whole image);
resize to ``image_size`` (height, width) with bilinear interpolation; scale to [0, 1];
normalise each channel with the ImageNet mean (0.485, 0.456, 0.406) and standard deviation
(0.229, 0.224, 0.225) (``normalize=True``); layout ``float32 (3, H, W)``. Images are read
through :class:`AttributeImages` (a :class:`~causalmtl.data.streamed.FileSource`): lazily
with ``stream=True``, else all at once into an array.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
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
from .streamed import FileSource, Sample
from .transforms import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)

__all__ = [
    "ATTRIBUTES",
    "PAPER_PAIRS",
    "TASK_ATTRIBUTES",
    "AttributeImages",
    "gmtl_split",
    "load_attributes",
    "read_attribute_labels",
    "read_image",
    "write_synthetic_attributes",
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
#: the renamed layout's label files (the GMTL authors' code)
LABEL_FILES = {"trainval": "trainval_labels.txt", "test": "test_labels.txt"}
#: the original layout: ``<split dir>/labels.txt``
ORIGINAL_DIRS = {"trainval": "train", "test": "test"}
SOURCE = (
    "the authors' page (Bourdev, Maji, Malik 2011, 'Describing People: A Poselet-Based Approach "
    "to Attribute Classification'): https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/"
    "shape/poselets/ (attributes_dataset.tgz)"
)
_SUBDIRS = ("attributes_dataset", "attributes_of_people", "attributes",
            "attributes_of_people/attributes_dataset")  # fmt: skip


@dataclass(frozen=True)
class _Layout:
    name: str  # "original" or "renamed"
    base: Path
    label_files: dict[str, Path]  # split -> label file

    def image_dirs(self, split: str) -> list[Path]:
        if self.name == "original":
            return [self.label_files[split].parent]
        return [self.base / split, self.base, self.base / "images"]


def _find_layout(path: str | os.PathLike[str] | None) -> _Layout:
    root = data_root(path)
    dirs = [] if root is None else [root] + [root / s for s in _SUBDIRS]
    for d in dirs:
        orig = {s: d / sub / "labels.txt" for s, sub in ORIGINAL_DIRS.items()}
        if any(f.is_file() for f in orig.values()):
            for f in orig.values():
                if not f.is_file():
                    raise missing_data_error("Attributes of People", "labels.txt", [f.parent], SOURCE)
            return _Layout("original", d, orig)
        renamed = {s: d / f for s, f in LABEL_FILES.items()}
        if any(f.is_file() for f in renamed.values()):
            for f in renamed.values():
                if not f.is_file():
                    raise missing_data_error("Attributes of People", f.name, [d], SOURCE)
            return _Layout("renamed", d, renamed)
    searched = [p for d in dirs for p in (d / "train", d)]
    raise missing_data_error(
        "Attributes of People", "labels.txt (or trainval_labels.txt)", searched, SOURCE,
        root_given=root is not None,
    )


def read_attribute_labels(file: str | os.PathLike[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Parse one label file: image names, boxes ``float64 (N, 4)``, labels ``int64 (N, 9)``.

    Fields are separated by any run of spaces (the real file uses double spaces). Labels are
    mapped 1 -> 1, −1 -> 0, 0 -> −1 (missing). A box ``NaN NaN NaN NaN`` is kept as four NaNs
    (no box). Raises ``ValueError`` naming the file and line for a line without 14 fields, a
    non-numeric or partly-NaN or infinite box, or an attribute outside {1, −1, 0}.
    """
    file = Path(file)
    names: list[str] = []
    boxes: list[list[float]] = []
    raw: list[list[int]] = []
    with open(file, encoding="utf-8", errors="replace") as fh:
        for line_no, line in enumerate(fh, 1):  # a few thousand lines; errors need line numbers
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
            nan = np.isnan(box)
            if (nan.any() and not nan.all()) or np.isinf(box).any():
                raise ValueError(
                    f"{file}, line {line_no}: box {fields[1:5]} must be four finite numbers or "
                    f"'NaN NaN NaN NaN' (no box)"
                )
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

    ``box``: ``(x1, y1, x2, y2)`` in pixels to crop to (intersected with the image), or None;
    a box of NaNs is no box (the whole image).
    """
    from PIL import Image

    with Image.open(file) as im:
        img = im.convert("RGB")
    if box is not None and not np.isnan(np.asarray(box, dtype=np.float64)).any():
        x1, y1, x2, y2 = (float(v) for v in box)
        left, top = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        right, bottom = min(img.width, int(np.ceil(x2))), min(img.height, int(np.ceil(y2)))
        if right <= left or bottom <= top:
            raise ValueError(
                f"box {tuple(box)} of {file} does not overlap the {img.width}x{img.height} image"
            )
        img = img.crop((left, top, right, bottom))
    h, w = image_size
    # Image.Resampling is Pillow >= 9.1 and we support 9.0; the module constant exists at run time
    # in every version, Pillow's stubs list only the enum
    img = img.resize((w, h), Image.BILINEAR)  # type: ignore[attr-defined]
    arr: np.ndarray = np.asarray(img, dtype=np.float32) / 255.0
    if normalize:
        arr = (arr - np.asarray(IMAGENET_MEAN, np.float32)) / np.asarray(IMAGENET_STD, np.float32)
    return np.ascontiguousarray(arr.transpose(2, 0, 1))


class AttributeImages(FileSource):
    """The persons' images, read lazily with the module's transform (crop when a box is given).

    ``files`` : image paths; ``boxes`` : ``(N, 4)`` x1 y1 x2 y2 (NaN row = no box), used only
    when ``crop_to_box``; ``image_size`` : (height, width).
    """

    def __init__(self, files: Sequence[Path], boxes: np.ndarray, image_size: tuple[int, int],
                 crop_to_box: bool = False, normalize: bool = True, split: str = "") -> None:
        self.files = [Path(f) for f in files]
        self.boxes = np.asarray(boxes, dtype=np.float64).reshape(len(self.files), 4)
        self.image_size = image_size
        self.crop_to_box = crop_to_box
        self.normalize = normalize
        self.split = split

    def __len__(self) -> int:
        return len(self.files)

    def read(self, i: int) -> Sample:
        f = self.files[i]
        if not f.is_file():
            raise missing_data_error(f"Attributes of People ({self.split} images)", f.name, [f.parent], SOURCE)
        box = self.boxes[i] if self.crop_to_box else None
        return Sample(read_image(f, self.image_size, box, self.normalize))

    def describe(self) -> str:
        return f"AttributeImages({self.split}, {len(self)} persons, {self.image_size})"


def _image_dir(layout: _Layout, split: str, first: str, required: bool) -> Path:
    tried = layout.image_dirs(split)
    for d in tried:
        if (d / first).is_file():
            return d
    if required:
        raise missing_data_error(f"Attributes of People ({split} images)", first, tried, SOURCE)
    return tried[0]


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


def gmtl_split(names: Sequence[str], valid_fraction: float = 0.2, split_seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The GMTL authors' train/valid rows of the trainval file (module docstring).

    ``train`` = ``DataFrame.sample(frac=1 - valid_fraction, random_state=RandomState(split_seed))``
    over all rows; ``valid`` = the rows whose image name is not among the train rows' names
    (their ``drop(train.index)`` on an index of image paths). Both sorted (file order).
    """
    import pandas as pd

    df = pd.DataFrame({"name": list(names)})
    train = df.sample(frac=1 - valid_fraction, random_state=np.random.RandomState(split_seed))
    train_idx = np.sort(train.index.to_numpy())
    in_train = df["name"].isin(set(train["name"])).to_numpy()
    valid_idx = np.flatnonzero(~in_train)
    return train_idx, valid_idx


def load_attributes(
    path: str | os.PathLike[str] | None = None,
    *,
    tasks: str | Sequence[str] | None = None,
    seed: int = 0,
    valid_fraction: float = 0.2,
    split: Literal["seeded", "gmtl"] = "seeded",
    split_seed: int = 0,
    image_size: int | tuple[int, int] = 64,
    crop_to_box: bool = False,
    box_format: Literal["xywh", "xyxy"] = "xywh",
    normalize: bool = True,
    load_images: bool = True,
    stream: bool = False,
    drop_unlabelled: bool = True,
) -> DatasetSplits:
    """Attributes of People as binary classification tasks (GMTL §5.1).

    Parameters
    ----------
    path : the dataset directory (either layout, module docstring) or a data root holding it in
        ``attributes_dataset/`` or ``attributes_of_people/``; ``None`` uses ``$CAUSALMTL_DATA``.
    tasks : ``None`` = the eight attributes; a pair name of :data:`PAPER_PAIRS`; or attribute
        names (order kept).
    seed, valid_fraction : the ``"seeded"`` validation split drawn from trainval.
    split : ``"seeded"`` or ``"gmtl"`` (the authors' exact split with ``split_seed``; module
        docstring). The GMTL experiments use ``"gmtl"``.
    image_size : output height and width (an int for a square).
    crop_to_box, box_format, normalize : the image transform (module docstring).
    load_images : if False, no image is read or even looked up and the inputs are
        ``{"box": float32 (N, 4)}`` (x1, y1, x2, y2; NaN = no box): for label-only uses such as
        fitting a joint prior.
    stream : with ``load_images``, inputs are an :class:`AttributeImages` file source read
        lazily by batch (nothing is read here beyond checking the first image of each split);
        otherwise all images are read into ``float32 (N, 3, H, W)``.
    drop_unlabelled : drop persons for whom every selected task is unspecified.

    Returns
    -------
    DatasetSplits
        Targets ``int64 (N, T)`` with −1 for unspecified. ``meta``: ``files`` (dict split ->
        image paths), ``boxes`` (dict split -> ``(N, 4)`` x1 y1 x2 y2, NaN = no box), ``tasks``,
        ``layout`` (``"original"``/``"renamed"``), ``split``, ``directory``, ``seed``,
        ``no_box`` (dict split -> persons without a box).
    """
    check_fraction(valid_fraction, "valid_fraction")
    if box_format not in ("xywh", "xyxy"):
        raise ValueError(f"box_format must be 'xywh' or 'xyxy', got {box_format!r}")
    if split not in ("seeded", "gmtl"):
        raise ValueError(f"split must be 'seeded' or 'gmtl', got {split!r}")
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    if len(size) != 2 or any(int(s) != s or s < 1 for s in size):
        raise ValueError(
            f"image_size must be a positive int or (height, width), got {image_size!r}"
        )
    size = (int(size[0]), int(size[1]))
    selected = _select_tasks(tasks)
    cols = [ATTRIBUTES.index(t) for t in selected]
    layout = _find_layout(path)

    read = {}
    for part, file in layout.label_files.items():
        names, boxes, labels = read_attribute_labels(file)
        if box_format == "xywh":
            boxes = np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)
        has_box = ~np.isnan(boxes).any(axis=1)
        bad = has_box & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
        if bad.any():
            r = int(np.argmax(bad))
            raise ValueError(
                f"{file}: person {r + 1} ({names[r]}) has an empty box {boxes[r].tolist()} "
                f"(x1 y1 x2 y2, from box_format={box_format!r})"
            )
        image_dir = _image_dir(layout, part, names[0], required=load_images)
        files = [image_dir / n for n in names]
        read[part] = (files, boxes, labels[:, cols], names)

    files_tv, boxes_tv, labels_tv, names_tv = read["trainval"]
    if split == "gmtl":
        train_idx, valid_idx = gmtl_split(names_tv, valid_fraction, split_seed)
    else:
        keep = (labels_tv >= 0).any(axis=1) if drop_unlabelled else np.ones(len(files_tv), bool)
        kept = np.flatnonzero(keep)
        valid_k, train_k = seeded_fraction_split(len(kept), [valid_fraction, 1 - valid_fraction], seed)
        train_idx, valid_idx = kept[train_k], kept[valid_k]
    files_te, boxes_te, labels_te, _ = read["test"]
    rows = {"train": (read["trainval"], train_idx), "valid": (read["trainval"], valid_idx),
            "test": (read["test"], np.arange(len(files_te)))}  # fmt: skip
    parts = {}
    for name, ((files, boxes, labels, _), idx) in rows.items():
        if drop_unlabelled:
            idx = idx[(labels[idx] >= 0).any(axis=1)]
        parts[name] = ([files[i] for i in idx], boxes[idx], labels[idx])

    task_objs = tuple(Task(t, "classification", 2) for t in selected)
    out = {}
    for env, (name, (files, boxes, labels)) in enumerate(parts.items()):
        if not files:
            raise ValueError(
                f"attributes: the {name} split is empty (no person with any selected task "
                f"{selected} labelled)"
            )
        inputs: np.ndarray | dict[str, np.ndarray] | FileSource
        if load_images:
            source = AttributeImages(files, boxes, size, crop_to_box, normalize, split=name)
            if stream:
                inputs = source
            else:
                inputs = np.empty((len(files), 3, *size), dtype=np.float32)
                for i in range(len(files)):  # file I/O: one decode per image
                    inputs[i] = source.read(i).x
        else:
            inputs = {"box": boxes.astype(np.float32)}
        out[name] = MultiTaskDataset(
            inputs=inputs,
            targets=labels,
            tasks=task_objs,
            env=np.full(len(files), env, dtype=np.int64),
            name=f"attributes/{name}",
        )
    splits = DatasetSplits(
        out["train"], out["valid"], out["test"], name="attributes",
        meta={"files": {s: p[0] for s, p in parts.items()}, "boxes": {s: p[1] for s, p in parts.items()},
              "no_box": {s: int(np.isnan(p[1]).any(axis=1).sum()) for s, p in parts.items()},
              "tasks": selected, "directory": str(layout.base), "layout": layout.name,
              "split": split, "seed": seed if split == "seeded" else split_seed},
    )  # fmt: skip
    check_no_empty_task(splits)
    return splits


# --- synthetic copy in the original layout ---------------------------------------------------------
def write_synthetic_attributes(
    directory: str | os.PathLike[str],
    *,
    n_train: int = 120,
    n_test: int = 120,
    size: int = 48,
    seed: int = 0,
    missing_rate: float = 0.15,
    nan_boxes: int = 2,
) -> Path:
    """Write a small Attributes of People copy in the **original** layout, with learnable images.

    ``<directory>/attributes_dataset/{train,test}/labels.txt`` (fields joined by double spaces,
    as in the real file; ``nan_boxes`` persons per split with ``NaN NaN NaN NaN`` boxes) and one
    JPEG per person beside it. Attributes are drawn from a correlated model (a latent "formal /
    outdoor" factor raises long sleeves and long pants, lowers shorts and t-shirts; hats are more
    common with long sleeves), each unspecified with probability ``missing_rate``. The image
    shows each attribute that is present as a fixed coloured patch at a fixed place (hat: top
    band; long hair: side bands at head height; glasses: dark bar; ...), plus noise — so every
    label is predictable from the image. Returns the ``attributes_dataset`` directory.
    """
    from PIL import Image

    if n_train < 2 or n_test < 2 or size < 16:
        raise ValueError(f"need n_train >= 2, n_test >= 2 and size >= 16, got {n_train}, {n_test}, {size}")
    rng = np.random.default_rng(seed)
    root = Path(directory) / "attributes_dataset"
    s = size
    # (row slice, col slice, rgb) of each of the nine attributes' patches, in ATTRIBUTES order
    patches = [
        (slice(s * 7 // 8, s), slice(0, s // 4), (30, 30, 200)),            # is_male
        (slice(s // 8, s * 3 // 8), slice(0, s // 8), (120, 60, 20)),        # long_hair (left)
        (slice(s // 4, s // 4 + 3), slice(s * 3 // 8, s * 5 // 8), (0, 0, 0)),  # glasses
        (slice(0, s // 8), slice(s // 4, s * 3 // 4), (220, 20, 20)),       # hat
        (slice(s * 3 // 8, s // 2), slice(s * 3 // 8, s * 5 // 8), (250, 250, 250)),  # t-shirt
        (slice(s * 3 // 8, s * 5 // 8), slice(s * 7 // 8, s), (20, 160, 20)),  # long_sleeves
        (slice(s * 5 // 8, s * 3 // 4), slice(s // 4, s * 3 // 4), (230, 200, 40)),  # shorts
        (slice(s * 3 // 4, s * 7 // 8), slice(s // 4, s // 2), (40, 60, 140)),  # jeans
        (slice(s * 3 // 4, s * 7 // 8), slice(s // 2, s * 3 // 4), (90, 90, 90)),  # long_pants
    ]
    for split, n in (("train", n_train), ("test", n_test)):
        d = root / split
        d.mkdir(parents=True, exist_ok=True)
        z = rng.random(n)
        p = np.stack([
            np.full(n, 0.5), 0.3 + 0.2 * (1 - z), np.full(n, 0.25), 0.2 + 0.3 * z, 0.6 - 0.3 * z,
            0.3 + 0.5 * z, 0.5 - 0.4 * z, np.full(n, 0.4), 0.3 + 0.5 * z,
        ], axis=1)  # fmt: skip
        yes = rng.random((n, 9)) < p
        code = np.where(yes, 1, -1)
        code[rng.random((n, 9)) < missing_rate] = 0
        noise = rng.integers(0, 60, size=(n, s, s, 3), dtype=np.int64)
        lines = []
        no_box = set(rng.choice(n, size=min(nan_boxes, n), replace=False).tolist())
        for i in range(n):  # one file per person: the loop is I/O
            img = 100 + noise[i]
            for a, (rs, cs, rgb) in enumerate(patches):
                if yes[i, a]:
                    img[rs, cs] = rgb
            name = f"{i + 1:05d}.jpg"
            Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(d / name, quality=95)
            box = "NaN  NaN  NaN  NaN" if i in no_box else f"{1 + i % 3}  {2}  {s - 4}  {s - 3}"
            lines.append(f"{name}  {box}  " + "  ".join(str(int(v)) for v in code[i]) + "\n")
        (d / "labels.txt").write_text("".join(lines))
    return root
