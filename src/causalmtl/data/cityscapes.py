"""CityScapes (Cordts et al., CVPR 2016) as in MT-CRL Table 10: segmentation (7 or 19 classes) and depth.

Two real layouts are read (``layout="auto"``: preprocessed first, then raw):

``"raw"`` — the official download (``leftImg8bit_trainvaltest.zip``, ``gtFine_trainvaltest.zip``,
    ``disparity_trainvaltest.zip``, ``camera_trainvaltest.zip``)::

        <dir>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png   RGB 8-bit
        <dir>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png    label ids 0..33
        <dir>/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png       16-bit
        <dir>/camera/<split>/<city>/<city>_<seq>_<frame>_camera.json            baseline, fx

    Label ids map to classes with the official table (cityscapesScripts ``helpers/labels.py``):
    ``classes=19``: the ``trainId`` (0..18; ``trainId`` 255 → ``-1``); ``classes=7``: the
    ``categoryId`` − 1 of the evaluated labels (flat, construction, object, nature, sky, human,
    vehicle), labels ignored in evaluation (void, parking, rail track, guard rail, bridge, tunnel,
    polegroup, caravan, trailer) → ``-1``, as the official category-level evaluation does.
    Disparity → depth (the dataset's README): a stored value ``p > 0`` is the disparity
    ``d = (p − 1) / 256`` pixels, ``p = 0`` is invalid; depth = ``baseline · fx / d`` metres
    (``baseline`` and ``fx`` from the image's ``camera.json``; without the ``camera`` folder the
    typical values 0.209313 m and 2262.52 px are used and ``meta["camera"]`` says so). ``d = 0``
    (``p = 1``) is invalid too. ``depth="disparity"`` keeps ``d`` instead.

``"preprocessed"`` — MTAN's ``.npy`` copy (Liu et al. 2019; 128 x 256, channels last)::

        <dir>/{train,val}/image/<i>.npy     float (128, 256, 3)
        <dir>/{train,val}/label_7/<i>.npy   (128, 256), -1 = ignore
        <dir>/{train,val}/label_19/<i>.npy  (128, 256), -1 = ignore
        <dir>/{train,val}/depth/<i>.npy     (128, 256, 1), 0 = invalid (MTAN stores inverse depth)

    The files carry no city: if the raw ``leftImg8bit`` folder lies beside them, ``<split>/<i>``
    is taken to be the ``i``-th raw image of that split in sorted (city, file name) order (counts
    must agree), else the loader falls back to train/val without cities
    (``meta["split"] = "preprocessed-train-val (no city names)"``).

**Split (MT-CRL Appendix C.2, Table 10).** Test = the official ``val`` images (500: frankfurt,
lindau, munster); valid = whole training cities holding ``valid_size`` images (500 → the
2,475 / 500 / 500 of the paper; chosen by subset sum over the cities in a seeded order,
:func:`~causalmtl.data._dense.pick_groups`); train = the other training cities. The environment
of an image is its city (``meta["environments"]``).

**Conventions.** ``x`` ``float32 (3, H, W)`` in [0, 1]; ``segmentation`` ``int64 (H, W)``,
``-1`` ignored; ``depth`` ``float32 (1, H, W)``, ``NaN`` invalid; depth loss L1.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import _dense
from ._sources import MissingDataError, data_root
from .base import DatasetSplits, MultiTaskDataset, Task
from .streamed import FileSource, Sample

logger = logging.getLogger(__name__)

__all__ = [
    "CITYSCAPES_CATEGORIES",
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_LABELS",
    "disparity_to_depth",
    "label_lut",
    "load_cityscapes",
    "write_synthetic_cityscapes",
]

#: (name, labelId, trainId, categoryId) for label ids 0..33 (cityscapesScripts helpers/labels.py)
CITYSCAPES_LABELS: tuple[tuple[str, int, int, int], ...] = (
    ("unlabeled", 0, 255, 0), ("ego vehicle", 1, 255, 0), ("rectification border", 2, 255, 0),
    ("out of roi", 3, 255, 0), ("static", 4, 255, 0), ("dynamic", 5, 255, 0), ("ground", 6, 255, 0),
    ("road", 7, 0, 1), ("sidewalk", 8, 1, 1), ("parking", 9, 255, 1), ("rail track", 10, 255, 1),
    ("building", 11, 2, 2), ("wall", 12, 3, 2), ("fence", 13, 4, 2), ("guard rail", 14, 255, 2),
    ("bridge", 15, 255, 2), ("tunnel", 16, 255, 2), ("pole", 17, 5, 3), ("polegroup", 18, 255, 3),
    ("traffic light", 19, 6, 3), ("traffic sign", 20, 7, 3), ("vegetation", 21, 8, 4),
    ("terrain", 22, 9, 4), ("sky", 23, 10, 5), ("person", 24, 11, 6), ("rider", 25, 12, 6),
    ("car", 26, 13, 7), ("truck", 27, 14, 7), ("bus", 28, 15, 7), ("caravan", 29, 255, 7),
    ("trailer", 30, 255, 7), ("train", 31, 16, 7), ("motorcycle", 32, 17, 7), ("bicycle", 33, 18, 7),
)  # fmt: skip
#: the 19 training classes, in trainId order
CITYSCAPES_CLASSES: tuple[str, ...] = tuple(n for n, _, t, _ in sorted(CITYSCAPES_LABELS, key=lambda r: r[2]) if t < 19)
#: the 7 categories (categoryId 1..7), in label order 0..6
CITYSCAPES_CATEGORIES: tuple[str, ...] = ("flat", "construction", "object", "nature", "sky", "human", "vehicle")
#: typical stereo baseline (m) and focal length (px) of the CityScapes cameras
DEFAULT_CAMERA = (0.209313, 2262.52)
CS_TASKS = ("segmentation", "depth")
SOURCE = ("https://www.cityscapes-dataset.com/downloads/ (leftImg8bit_trainvaltest.zip, gtFine_trainvaltest.zip, "
          "disparity_trainvaltest.zip, camera_trainvaltest.zip; registration required) or MTAN's "
          "preprocessed cityscapes2.zip (https://github.com/lorenmt/mtan)")
_SUBDIRS = ("cityscapes", "CityScapes", "Cityscapes")
_LAYOUTS = ("preprocessed", "raw")
_SUFFIX = {"image": "_leftImg8bit.png", "label": "_gtFine_labelIds.png", "disparity": "_disparity.png",
           "camera": "_camera.json"}
_FOLDER = {"image": "leftImg8bit", "label": "gtFine", "disparity": "disparity", "camera": "camera"}


def label_lut(classes: int) -> np.ndarray:
    """Look-up table ``(34,)`` from label id to class (``classes`` = 19: trainId; 7: category), ``-1`` ignored."""
    if classes not in (7, 19):
        raise ValueError(f"classes must be 7 or 19, got {classes!r}")
    lut = np.full(34, -1, dtype=np.int64)
    for _, lid, tid, cat in CITYSCAPES_LABELS:
        if tid < 19:
            lut[lid] = tid if classes == 19 else cat - 1
    return lut


def disparity_to_depth(p: np.ndarray, baseline: float, fx: float) -> np.ndarray:
    """Stored 16-bit disparity ``p`` → depth ``baseline · fx / ((p − 1) / 256)``; ``p <= 1`` → ``NaN``."""
    p = np.asarray(p, dtype=np.float64)
    d = (p - 1.0) / 256.0
    with np.errstate(divide="ignore"):
        depth = np.where(p > 1, baseline * fx / np.where(p > 1, d, 1.0), np.nan)
    return depth.astype(np.float32)


def _disparity(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.where(p > 1, (p - 1.0) / 256.0, np.nan).astype(np.float32)


# --- file sources --------------------------------------------------------------------------------------
class RawCityscapesSource(FileSource):
    """Rows of the raw layout: ``entries[r]`` = ``(split, city, stem)``."""

    def __init__(self, root: Path, entries: Sequence[tuple[str, str, str]], tasks: Sequence[str],
                 classes: int, depth: str, camera: bool) -> None:
        self.root = Path(root)
        self.entries = list(entries)
        self.tasks = tuple(tasks)
        self.classes = classes
        self.lut = label_lut(classes)
        self.depth = depth
        self.camera = camera

    def __len__(self) -> int:
        return len(self.entries)

    def path(self, i: int, kind: str) -> Path:
        split, city, stem = self.entries[i]
        return self.root / _FOLDER[kind] / split / city / f"{stem}{_SUFFIX[kind]}"

    def read(self, i: int) -> Sample:
        ip = self.path(i, "image")
        img = _dense.read_png(ip)
        x = _dense.to_image(img, ip)
        hw = x.shape[1:]
        maps: dict[str, np.ndarray] = {}
        if "segmentation" in self.tasks:
            lp = self.path(i, "label")
            ids = _dense.read_png(lp)
            if ids.ndim != 2:
                raise ValueError(f"label {lp} has shape {ids.shape}; expected a single-channel (H, W) PNG of label ids")
            if ids.shape != hw:
                raise ValueError(f"label {lp} is {ids.shape[0]}x{ids.shape[1]} but its image {ip} is "
                                 f"{hw[0]}x{hw[1]}; image and targets must have the same size")
            bad = ids > 33
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise ValueError(f"label {lp} has label id {ids[r, c]} at pixel ({r}, {c}); CityScapes "
                                 f"label ids are 0..33")
            maps["segmentation"] = self.lut[ids.astype(np.int64)]
        if "depth" in self.tasks:
            dp = self.path(i, "disparity")
            p = _dense.read_png(dp)
            if p.ndim != 2 or p.shape != hw:
                raise ValueError(f"disparity {dp} has shape {p.shape} but its image {ip} is {hw[0]}x{hw[1]}; "
                                 f"expected a 16-bit (H, W) PNG of the image's size")
            if self.depth == "disparity":
                maps["depth"] = _disparity(p)[None]
            else:
                baseline, fx = DEFAULT_CAMERA
                if self.camera:
                    cp = self.path(i, "camera")
                    with open(cp, encoding="utf-8") as fh:
                        cam = json.load(fh)
                    try:
                        baseline, fx = float(cam["extrinsic"]["baseline"]), float(cam["intrinsic"]["fx"])
                    except (KeyError, TypeError, ValueError) as err:
                        raise ValueError(f"camera file {cp} lacks extrinsic.baseline / intrinsic.fx") from err
                maps["depth"] = disparity_to_depth(p, baseline, fx)[None]
        return Sample(x, maps)

    def describe(self) -> str:
        return f"CityScapes raw files in {self.root}"


class PreprocessedCityscapesSource(FileSource):
    """Rows of MTAN's ``.npy`` layout: row ``r`` is ``<root>/<splits[r]>/<kind>/<index[r]>.npy``."""

    def __init__(self, root: Path, splits: np.ndarray, index: np.ndarray, tasks: Sequence[str], classes: int) -> None:
        self.root = Path(root)
        self.splits = np.asarray(splits)
        self.index = np.asarray(index, dtype=np.int64)
        self.tasks = tuple(tasks)
        self.classes = classes

    def __len__(self) -> int:
        return len(self.index)

    def path(self, i: int, kind: str) -> Path:
        return self.root / str(self.splits[i]) / kind / f"{int(self.index[i])}.npy"

    def read(self, i: int) -> Sample:
        ip = self.path(i, "image")
        x = _dense.to_image(_dense.read_npy(ip), ip)
        hw = x.shape[1:]
        maps: dict[str, np.ndarray] = {}
        if "segmentation" in self.tasks:
            lp = self.path(i, f"label_{self.classes}")
            maps["segmentation"] = _dense.to_class_map(_dense.read_npy(lp), self.classes, lp, hw, ip)
        if "depth" in self.tasks:
            dp = self.path(i, "depth")
            maps["depth"] = _dense.to_depth(_dense.read_npy(dp), dp, hw, ip)
        return Sample(x, maps)

    def describe(self) -> str:
        return f"CityScapes preprocessed .npy files in {self.root}"


# --- layouts ------------------------------------------------------------------------------------------
def _raw_entries(d: Path, split: str) -> list[tuple[str, str, str]]:
    """(split, city, stem) of every ``leftImg8bit/<split>/<city>/*_leftImg8bit.png``, sorted (listing only)."""
    base = d / "leftImg8bit" / split
    out = []
    for city in sorted(os.listdir(base)):
        if not (base / city).is_dir():
            continue
        suf = _SUFFIX["image"]
        out += [(split, city, f[: -len(suf)]) for f in sorted(os.listdir(base / city)) if f.endswith(suf)]
    return out


def _check_raw_files(d: Path, entries: Sequence[tuple[str, str, str]], kinds: Sequence[str]) -> None:
    """Every entry has its files of ``kinds`` (directory listings, no file opened)."""
    listing: dict[Path, set[str]] = {}
    for split, city, stem in entries:
        for kind in kinds:
            folder = d / _FOLDER[kind] / split / city
            if folder not in listing:
                listing[folder] = set(os.listdir(folder)) if folder.is_dir() else set()
            name = f"{stem}{_SUFFIX[kind]}"
            if name not in listing[folder]:
                raise MissingDataError(f"CityScapes raw layout: {folder / name} is missing (for image "
                                       f"{d / 'leftImg8bit' / split / city / (stem + _SUFFIX['image'])}); "
                                       f"get the {_FOLDER[kind]} package from {SOURCE}")


def _find(path: str | os.PathLike[str] | None, layout: str, tasks: Sequence[str], classes: int) -> tuple[str, Path]:
    root = data_root(path)
    if root is None:
        raise MissingDataError(f"CityScapes: no data directory given: pass path=... or set the environment "
                               f"variable CAUSALMTL_DATA. Get the data from {SOURCE} (see docs/datasets.md).")
    dirs = [root] + [root / s for s in _SUBDIRS if (root / s).is_dir()]
    tried = []
    for lay in (_LAYOUTS if layout == "auto" else (layout,)):
        for d in dirs:
            if lay == "preprocessed":
                first = d / "train" / "image" / "0.npy"
                if first.is_file():
                    kinds = ["image"] + [f"label_{classes}" if t == "segmentation" else "depth" for t in tasks]
                    for sp in ("train", "val"):
                        for kind in kinds:
                            if not (d / sp / kind / "0.npy").is_file():
                                raise ValueError(f"CityScapes preprocessed layout in {d}: {d / sp / kind / '0.npy'} "
                                                 f"is missing; tasks {list(tasks)} with classes={classes} need "
                                                 f"{{train,val}}/{kind}/<i>.npy (this layout lacks it)")
                    return lay, d
                tried.append(f"preprocessed (first missing: {first})")
            else:
                miss = next((d / "leftImg8bit" / sp for sp in ("train", "val")
                             if not (d / "leftImg8bit" / sp).is_dir()), None)
                if miss is None:
                    return lay, d
                tried.append(f"raw (first missing: {miss})")
    raise MissingDataError(f"CityScapes: {root} is in no known layout; tried " + "; ".join(tried)
                           + f". Get the data from {SOURCE} (see docs/datasets.md).")


def _valid_count(valid_size: int | float, n: int) -> int:
    if isinstance(valid_size, (int, np.integer)) and not isinstance(valid_size, bool):
        k = int(valid_size)
    elif isinstance(valid_size, float) and 0 < valid_size < 1:
        k = int(round(valid_size * n))
    else:
        raise ValueError(f"valid_size must be an int (images) or a float in (0, 1) (fraction), got {valid_size!r}")
    if not 0 < k < n:
        raise ValueError(f"valid_size={valid_size!r} asks for {k} valid images out of {n} training images; "
                         f"it must leave both splits non-empty")
    return k


def load_cityscapes(
    path: str | os.PathLike[str] | None = None,
    *,
    layout: str = "auto",
    classes: int = 7,
    tasks: Sequence[str] | str = CS_TASKS,
    size: int | Sequence[int] | None = None,
    seed: int = 0,
    valid_size: int | float = 500,
    depth: str = "metric",
) -> DatasetSplits:
    """CityScapes from its real layout (module docstring) as streamed splits.

    Parameters
    ----------
    path : the data directory (or a root holding ``cityscapes/``); default ``$CAUSALMTL_DATA``
    layout : ``"auto"``, ``"preprocessed"`` or ``"raw"``
    classes : 7 (categories) or 19 (train ids)
    tasks : any of ``"segmentation"``, ``"depth"``
    size : ``(H, W)`` to resize every row to (``None``: stored size; MTAN uses 128 x 256)
    seed : seeds the choice of the valid cities (or valid images without cities)
    valid_size : valid images (int; MT-CRL 500) or a fraction of the training images (float)
    depth : ``"metric"`` (metres, from disparity and camera) or ``"disparity"`` (pixels); raw only

    Returns
    -------
    DatasetSplits with ``env`` = city id (``meta["environments"]``); ``meta`` keys ``layout``,
    ``split``, ``environments``, ``classes`` (class names), ``depth``, ``camera`` (raw),
    ``rows`` (per split, ``"<split>/<city>/<stem>"`` or ``"<split>/<i>"``), ``source``.
    """
    tasks = _dense.check_tasks(tasks, CS_TASKS, "load_cityscapes")
    if classes not in (7, 19):
        raise ValueError(f"classes must be 7 or 19, got {classes!r}")
    if layout not in ("auto", *_LAYOUTS):
        raise ValueError(f"layout must be 'auto', 'preprocessed' or 'raw', got {layout!r}")
    if depth not in ("metric", "disparity"):
        raise ValueError(f"depth must be 'metric' or 'disparity', got {depth!r}")
    lay, d = _find(path, layout, tasks, classes)
    names = list(CITYSCAPES_CLASSES if classes == 19 else CITYSCAPES_CATEGORIES)
    meta: dict[str, Any] = {"layout": lay, "source": str(d), "classes": names, "tasks": list(tasks)}
    raw_here = (d / "leftImg8bit" / "train").is_dir() and (d / "leftImg8bit" / "val").is_dir()
    entries = (_raw_entries(d, "train") + _raw_entries(d, "val")) if raw_here else None

    if lay == "raw":
        if entries is None:
            raise MissingDataError(f"CityScapes raw layout: {d} needs leftImg8bit/train and leftImg8bit/val")
        kinds = ["label"] * ("segmentation" in tasks) + ["disparity"] * ("depth" in tasks)
        camera = (d / "camera").is_dir() and "depth" in tasks and depth == "metric"
        _check_raw_files(d, entries, kinds + ["camera"] * camera)
        source: FileSource = RawCityscapesSource(d, entries, tasks, classes, depth, camera)
        row_names = ["/".join(e) for e in entries]
        meta["depth"] = ("disparity (p - 1) / 256 in pixels" if depth == "disparity"
                         else "metres: baseline * fx / ((p - 1) / 256)")
        if "depth" in tasks and depth == "metric":
            meta["camera"] = ("per-image camera/*.json" if camera else
                              f"typical baseline {DEFAULT_CAMERA[0]} m, fx {DEFAULT_CAMERA[1]} px (no camera folder)")
        is_val = np.array([e[0] == "val" for e in entries])
    else:
        n_tr = _dense.numbered_files(d / "train" / "image")
        n_va = _dense.numbered_files(d / "val" / "image")
        for kind in [f"label_{classes}" if t == "segmentation" else "depth" for t in tasks]:
            for sp, n in (("train", n_tr), ("val", n_va)):
                m = _dense.numbered_files(d / sp / kind)
                if m != n:
                    raise ValueError(f"CityScapes: {d / sp / kind} holds {m} files but {d / sp / 'image'} holds {n}")
        source = PreprocessedCityscapesSource(d, np.array(["train"] * n_tr + ["val"] * n_va),
                                              np.r_[np.arange(n_tr), np.arange(n_va)], tasks, classes)
        row_names = [f"train/{i}" for i in range(n_tr)] + [f"val/{i}" for i in range(n_va)]
        meta["depth"] = "as stored in the preprocessed files (MTAN: inverse depth), 0 → NaN"
        is_val = np.r_[np.zeros(n_tr, bool), np.ones(n_va, bool)]
        if entries is not None:
            n_raw_tr = sum(e[0] == "train" for e in entries)
            if (n_raw_tr, len(entries) - n_raw_tr) != (n_tr, n_va):
                raise ValueError(f"CityScapes: the raw layout in {d} has {n_raw_tr} train / "
                                 f"{len(entries) - n_raw_tr} val images but the preprocessed files are "
                                 f"{n_tr} / {n_va}; cannot give the files their cities")
            meta["index"] = "<split>/<i> = i-th raw image of the split in sorted (city, file) order"
            row_names = [f"{r} ({'/'.join(e)})" for r, e in zip(row_names, entries)]
        else:
            entries = None

    rng = np.random.default_rng(seed)
    train_pool = np.flatnonzero(~is_val)
    k_valid = _valid_count(valid_size, len(train_pool))
    if entries is not None:
        cities = [e[1] for e in entries]
        env_names = sorted(set(cities))
        env = np.searchsorted(env_names, cities).astype(np.int64)
        tr_cities, tr_ids = np.unique(env[train_pool], return_inverse=True)
        if len(tr_cities) < 2:
            raise ValueError(f"CityScapes: the training images come from {len(tr_cities)} city "
                             f"({[env_names[c] for c in tr_cities]}); a split by city needs at least 2 so that "
                             f"train and valid each get one (a split would be left with no environment)")
        counts = np.bincount(tr_ids, minlength=len(tr_cities))
        chosen = _dense.pick_groups(counts, k_valid, rng)
        if chosen.all():
            raise ValueError(f"CityScapes: valid_size={valid_size!r} takes every training city; train would be empty")
        va = train_pool[chosen[tr_ids]]
        tr = train_pool[~chosen[tr_ids]]
        meta["split"] = (f"by city: valid = {[env_names[c] for c in tr_cities[chosen]]} "
                         f"({len(va)} images, target {k_valid}), test = official val, seed {seed}")
    else:
        logger.warning("CityScapes: the preprocessed files carry no city names (no raw leftImg8bit beside "
                       "them); using train/val with %d random valid images", k_valid)
        env_names = ["preprocessed-train", "preprocessed-val"]
        env = is_val.astype(np.int64)
        va = np.sort(train_pool[rng.permutation(len(train_pool))[:k_valid]])
        tr = np.setdiff1d(train_pool, va)
        meta["split"] = "preprocessed-train-val (no city names)"
    te = np.flatnonzero(is_val)
    meta["environments"] = env_names

    from .transforms import Resize

    transform = None if size is None else Resize(size)
    task_objs = tuple(Task("segmentation", "segmentation", n_classes=classes) if t == "segmentation"
                      else Task("depth", "dense", channels=1, loss="l1") for t in tasks)
    parts: list[MultiTaskDataset] = []
    meta["rows"] = {}
    for name, rows in (("train", tr), ("valid", va), ("test", te)):
        if len(rows) == 0:
            raise ValueError(f"CityScapes: the {name} split is empty ({meta['split']})")
        parts.append(MultiTaskDataset(inputs=source.subset(rows), targets=np.ones((len(rows), len(task_objs))),
                                      tasks=task_objs, env=env[rows], name=f"cityscapes/{name}",
                                      transform=transform))
        meta["rows"][name] = [row_names[r] for r in rows]
    return DatasetSplits(parts[0], parts[1], parts[2], name="cityscapes", meta=meta)


# --- synthetic copy in the real layouts ------------------------------------------------------------------
def _synthetic_street(rng: np.random.Generator, h: int, w: int,
                      tint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label ids of a street-like scene (sky on top, road at the bottom, objects between),
    colours a function of the label id, disparity growing towards the bottom."""
    ids = np.array([lid for _, lid, tid, _ in CITYSCAPES_LABELS if tid < 19] + [0, 9])  # 19 classes + void + parking
    yy = np.arange(h)[:, None] / h
    horizon = rng.uniform(0.3, 0.5)
    road_line = rng.uniform(0.65, 0.8)
    lab = np.where(yy < horizon, 23, np.where(yy > road_line, 7, 11)) * np.ones((1, w), np.int64)
    for _ in range(3):  # a few objects as rectangles of other classes
        c = int(rng.choice(ids))
        top, left = int(rng.integers(0, h - 2)), int(rng.integers(0, w - 2))
        lab[top: top + max(2, h // 4), left: left + max(2, w // 5)] = c
    colours = np.stack([(np.arange(34) * 37 % 97) / 97.0, (np.arange(34) * 53 % 89) / 89.0,
                        (np.arange(34) * 71 % 83) / 83.0], axis=1)
    img = np.clip(colours[lab] + tint + rng.normal(scale=0.03, size=(h, w, 3)), 0, 1)
    disp = 2.0 + 30.0 * yy * np.ones((1, w)) + (lab == 26) * 5.0  # pixels
    p = np.round(disp * 256 + 1).astype(np.int64)
    p[lab == 23] = 0  # no disparity in the sky
    return (img * 255).round().astype(np.uint8), lab.astype(np.uint8), p


def write_synthetic_cityscapes(
    directory: str | os.PathLike[str],
    n_per_city: int = 4,
    size: Sequence[int] = (32, 64),
    seed: int = 0,
    layout: str = "raw",
    train_cities: Sequence[str] = ("aachen", "bochum", "bremen", "cologne", "darmstadt"),
    val_cities: Sequence[str] = ("frankfurt", "lindau"),
) -> Path:
    """Write a small synthetic CityScapes in a real layout (for the ``tiny`` presets and demos).

    ``layout="raw"``: ``leftImg8bit`` / ``gtFine`` (``labelIds``) / ``disparity`` (16-bit) /
    ``camera`` for ``n_per_city`` images of every city; ``"preprocessed"``:
    ``{train,val}/{image,label_7,label_19,depth}/<i>.npy`` (depth = disparity, as MTAN's inverse
    depth). Learnable: colours are a function of the label id (plus noise and a per-city tint,
    the environment), disparity grows towards the bottom of the image. Returns the directory.
    """
    from PIL import Image

    h, w = (int(v) for v in size)
    if n_per_city < 1 or h < 8 or w < 8 or len(train_cities) < 2 or not val_cities:
        raise ValueError("write_synthetic_cityscapes needs n_per_city >= 1, size >= (8, 8), >= 2 train cities "
                         f"and >= 1 val city; got {n_per_city}, {size}, {train_cities}, {val_cities}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    out = Path(directory)
    rng = np.random.default_rng(seed)
    lut7, lut19 = label_lut(7), label_lut(19)
    counters = {"train": 0, "val": 0}
    for split, cities in (("train", train_cities), ("val", val_cities)):
        for city in cities:
            tint = rng.uniform(-0.06, 0.06, size=3)
            for k in range(n_per_city):
                img, lab, p = _synthetic_street(rng, h, w, tint)
                if layout == "raw":
                    stem = f"{city}_{k:06d}_000019"
                    for kind, arr in (("image", img), ("label", lab), ("disparity", p.astype(np.uint16))):
                        folder = out / _FOLDER[kind] / split / city
                        folder.mkdir(parents=True, exist_ok=True)
                        Image.fromarray(arr).save(folder / f"{stem}{_SUFFIX[kind]}")
                    folder = out / "camera" / split / city
                    folder.mkdir(parents=True, exist_ok=True)
                    cam = {"extrinsic": {"baseline": DEFAULT_CAMERA[0]}, "intrinsic": {"fx": DEFAULT_CAMERA[1]}}
                    (folder / f"{stem}_camera.json").write_text(json.dumps(cam))
                else:
                    i = counters[split]
                    counters[split] += 1
                    arrays = {"image": img.astype(np.float32) / 255.0,
                              "label_7": lut7[lab].astype(np.float32), "label_19": lut19[lab].astype(np.float32),
                              "depth": np.nan_to_num(_disparity(p))[..., None]}
                    for kind, arr in arrays.items():
                        (out / split / kind).mkdir(parents=True, exist_ok=True)
                        np.save(out / split / kind / f"{i}.npy", arr)
    return out
