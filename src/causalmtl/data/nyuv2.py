"""NYUv2 (Silberman et al., ECCV 2012) as in MT-CRL Table 9: 13-class segmentation, depth, normals.

Two real layouts are read (``layout="auto"`` picks the first present, preprocessed first):

``"preprocessed"`` — the ``.npy`` files most multi-task code uses (MTAN, Liu et al. 2019;
    PCGrad and MT-CRL follow it)::

        <dir>/{train,val}/image/<i>.npy    float (288, 384, 3), channels last
        <dir>/{train,val}/label/<i>.npy    (288, 384), classes 0..12, -1 = ignore
        <dir>/{train,val}/depth/<i>.npy    (288, 384, 1), metres, 0 = no measurement
        <dir>/{train,val}/normal/<i>.npy   (288, 384, 3), unit vectors, 0 = no normal

    ``train`` holds the 795 images of the official training split and ``val`` the 654 test
    images. The files carry no scene type; the loader finds it, in this order, in (1)
    ``<dir>/index.csv`` (columns ``split, index, scene_type`` and optionally ``scene``,
    ``official_index``; :func:`read_nyuv2_index`, written once by :func:`write_nyuv2_index`),
    (2) ``nyu_depth_v2_labeled.mat`` + ``splits.mat`` in the same directory, taking file
    ``train/<i>`` to be official image ``trainNdxs[i]`` and ``val/<i>`` to be ``testNdxs[i]``
    (the counts must agree). Without either the scene split is impossible and the loader falls
    back to the preprocessed train/val split
    (``meta["split"] = "preprocessed-train-val (no scene types)"``).

``"labeled-mat"`` — the official ``nyu_depth_v2_labeled.mat`` (MATLAB v7.3 = HDF5, read with
    h5py). MATLAB stores arrays column-major, so h5py sees every array transposed:
    ``images`` ``(1449, 3, 640, 480)`` uint8, ``depths`` ``(1449, 640, 480)`` float (metres,
    in-painted), ``labels`` ``(1449, 640, 480)`` uint16 (0 = unlabeled, 1..894 = the 894 object
    classes); ``sceneTypes`` and ``scenes`` are ``(1, 1449)`` cell arrays of references to
    ``uint16`` character arrays (e.g. ``"bedroom"`` and ``"bedroom_0001"``). Image ``k`` is
    ``images[k].transpose(0, 2, 1)`` = ``(3, 480, 640)``. Beside it:

    * ``classMapping40.mat`` (variable ``mapClass``: ``1 x 894``, the 894 classes to the 40 of
      Gupta et al. 2013, values 1..40) and ``class13Mapping.mat`` (struct ``classMapping13``
      whose first field is ``1 x 40``: the 40 classes to the 13 of Couprie et al. 2013, values
      1..13) — the files of the NYUv2 Python toolkits (ankurhanda/nyuv2-meta-data,
      VainF/nyuv2-python-toolkit); label ``k`` becomes ``map13[map40[k]] - 1`` and 0 becomes
      ``-1`` (ignored);
    * ``splits.mat`` (the official toolbox's ``trainNdxs`` 795 x 1 and ``testNdxs`` 654 x 1,
      1-based) — only for ``split="official"``.

    Surface normals are not in the file: they are computed from the depth (:func:`normals_from_depth`).

**Split.** ``split="scene"`` (MT-CRL Appendix C.2): the environment of an image is its scene
type (27 in NYUv2: bedroom, kitchen, ...); whole scene types go to test, valid and train with
about 10 % / 10 % / 80 % of the images (:func:`~causalmtl.data._dense.split_by_groups`, seeded),
so scene types (and hence buildings) never cross splits. ``split="official"``: the official
795 / 654 train / test images, valid = whole buildings (``scenes``) of the training images
holding about ``valid_fraction`` of them (random images for the preprocessed layout without the
``.mat``).

**Conventions (the data contract).** ``x``: ``float32 (3, H, W)`` in [0, 1]; ``segmentation``:
``int64 (H, W)``, ``-1`` ignored; ``depth``: ``float32 (1, H, W)`` metres, ``NaN`` where the
stored depth is 0; ``normal``: ``float32 (3, H, W)``, ``NaN`` where the stored vector is zero.
Losses: segmentation cross-entropy, depth L1, normals cosine (MTAN's choices).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from . import _dense
from ._sources import MissingDataError, data_root
from .base import DatasetSplits, MultiTaskDataset, Task
from .streamed import FileSource, Sample

logger = logging.getLogger(__name__)

__all__ = [
    "NYU_CLASSES",
    "NYU_INTRINSICS",
    "NYU_TASKS",
    "load_nyuv2",
    "normals_from_depth",
    "read_nyuv2_index",
    "write_nyuv2_index",
    "write_synthetic_nyuv2",
]

#: the 13 classes of Couprie et al. (2013), in label order 0..12
NYU_CLASSES: tuple[str, ...] = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa",
    "table", "tv", "wall", "window",
)  # fmt: skip
#: Kinect colour-camera intrinsics of the official NYU toolbox (camera_params.m): fx, fy, cx, cy
NYU_INTRINSICS: tuple[float, float, float, float] = (518.857901, 519.469611, 325.582449, 253.736166)
NYU_TASKS: tuple[str, ...] = ("segmentation", "depth", "normal")
LABELED_MAT = "nyu_depth_v2_labeled.mat"
SPLITS_MAT = "splits.mat"
INDEX_CSV = "index.csv"
MAP40_MAT = "classMapping40.mat"
MAP13_MAT = "class13Mapping.mat"
SOURCE = (
    "https://cs.nyu.edu/~silberman/datasets/nyu_depth_v2.html (nyu_depth_v2_labeled.mat; "
    "splits.mat in the toolbox) with classMapping40.mat / class13Mapping.mat from "
    "https://github.com/ankurhanda/nyuv2-meta-data, or MTAN's preprocessed nyuv2.zip "
    "(https://github.com/lorenmt/mtan)"
)
_SUBDIRS = ("nyuv2", "nyu_v2", "NYUv2")
_LAYOUTS = ("preprocessed", "labeled-mat")


def _make_tasks(tasks: Sequence[str]) -> tuple[Task, ...]:
    spec = {
        "segmentation": Task("segmentation", "segmentation", n_classes=len(NYU_CLASSES)),
        "depth": Task("depth", "dense", channels=1, loss="l1"),
        "normal": Task("normal", "dense", channels=3, loss="cosine"),
    }
    return tuple(spec[t] for t in tasks)


# --- surface normals from depth ----------------------------------------------------------------
def normals_from_depth(depth: np.ndarray, intrinsics: Sequence[float] = NYU_INTRINSICS) -> np.ndarray:
    """Unit surface normals ``(3, H, W)`` of a depth map ``(H, W)`` (metres; ``NaN``/``<= 0`` invalid).

    Method: back-project every pixel ``(u, v)`` with depth ``Z`` to the camera-frame point
    ``P = ((u - cx) Z / fx, (v - cy) Z / fy, Z)`` (x right, y down, z forward); take the
    tangents ``∂P/∂u`` and ``∂P/∂v`` by central differences (one-sided at the border,
    ``numpy.gradient``); the normal is ``∂P/∂v × ∂P/∂u`` normalised, which points towards the
    camera (a wall facing the camera has normal ``(0, 0, -1)``). An invalid pixel, a pixel whose
    differences touch an invalid depth, or one whose tangents are parallel gets ``NaN``. For points on a plane
    the result is the plane's normal exactly (both tangents lie in the plane).
    """
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"depth must be a 2-D map (H, W), got shape {d.shape}")
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    h, w = d.shape
    z = np.where(d > 0, d, np.nan)
    u = np.arange(w, dtype=np.float64)[None, :]
    v = np.arange(h, dtype=np.float64)[:, None]
    p = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z])
    if h < 2 or w < 2:
        return np.full((3, h, w), np.nan, dtype=np.float32)
    du = np.gradient(p, axis=2)
    dv = np.gradient(p, axis=1)
    n = np.cross(dv, du, axis=0)
    norm = np.linalg.norm(n, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        n = n / norm
    n[:, ~(norm > 0) | np.isnan(z)] = np.nan  # central differences skip the centre: mask it too
    result: np.ndarray = n.astype(np.float32)
    return result


# --- official files ------------------------------------------------------------------------------
#: an open h5py File or Group (h5py ships no type information)
H5Group = Any


def _h5py() -> ModuleType:
    try:
        import h5py
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(f"reading {LABELED_MAT} (MATLAB v7.3 = HDF5) needs h5py: pip install 'h5py>=3.8'") from err
    module: ModuleType = h5py
    return module


def _mat_strings(f: H5Group, name: str) -> list[str]:
    """A MATLAB cell array of strings (``(1, N)`` references to ``uint16`` char arrays)."""
    refs = np.asarray(f[name][()]).ravel(order="F")
    # one dereference per image: index reading (1449 small reads), not per-pixel work
    return ["".join(map(chr, np.asarray(f[r][()]).ravel())) for r in refs]


def read_official_split(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``trainNdxs`` and ``testNdxs`` of ``splits.mat`` as 0-based index arrays."""
    from scipy.io import loadmat

    try:
        m = loadmat(path)
    except (NotImplementedError, ValueError):  # a v7.3 (HDF5) file
        with _h5py().File(path, "r") as f:
            m = {k: np.asarray(f[k][()]) for k in ("trainNdxs", "testNdxs") if k in f}
    out = []
    for key in ("trainNdxs", "testNdxs"):
        if key not in m:
            raise ValueError(f"{path} has no variable {key!r}; expected the official NYU toolbox splits.mat")
        idx = np.asarray(m[key]).ravel().astype(np.int64)
        if idx.size == 0 or idx.min() < 1:
            raise ValueError(f"{path}: {key} must hold 1-based image indices, got min {idx.min() if idx.size else None}")
        out.append(idx - 1)
    return out[0], out[1]


def read_class_mapping(directory: Path) -> np.ndarray:
    """Look-up table ``(895,)``: NYU label (0..894) → 13-class label (0..12), 0 → ``-1``.

    From ``classMapping40.mat`` (``mapClass``, 894 → 40, 1-based) and ``class13Mapping.mat``
    (first field of the ``classMapping13`` struct, 40 → 13, 1-based).
    """
    from scipy.io import loadmat

    p40, p13 = directory / MAP40_MAT, directory / MAP13_MAT
    map40 = np.asarray(loadmat(p40)["mapClass"]).ravel().astype(np.int64)
    s13 = loadmat(p13)["classMapping13"]
    map13 = np.asarray(s13[0, 0][0]).ravel().astype(np.int64)
    if map40.shape != (894,) or map40.min() < 1 or map40.max() > 40:
        raise ValueError(f"{p40}: mapClass must map the 894 NYU classes to 1..40, got shape {map40.shape}, "
                         f"values {map40.min()}..{map40.max()}")
    if map13.shape != (40,) or map13.min() < 1 or map13.max() > 13:
        raise ValueError(f"{p13}: classMapping13's first field must map the 40 classes to 1..13, got shape "
                         f"{map13.shape}, values {map13.min()}..{map13.max()}")
    lut = np.empty(895, dtype=np.int64)
    lut[0] = -1
    lut[1:] = map13[map40 - 1] - 1
    return lut


def _official_scenes(d: Path, n_tr: int, n_va: int) -> tuple[list[str], list[str] | None, np.ndarray]:
    """Scene type and building of the preprocessed files, taking ``train/<i>`` = ``trainNdxs[i]``
    and ``val/<i>`` = ``testNdxs[i]`` (0-based official indices returned third)."""
    tr, te = read_official_split(d / SPLITS_MAT)
    if (len(tr), len(te)) != (n_tr, n_va):
        raise ValueError(f"NYUv2: {d / SPLITS_MAT} lists {len(tr)} train / {len(te)} test images but "
                         f"the preprocessed files are {n_tr} train / {n_va} val; cannot map files "
                         f"to official indices")
    with _h5py().File(d / LABELED_MAT, "r") as f:
        types_all = _mat_strings(f, "sceneTypes")
        scenes_all = _mat_strings(f, "scenes") if "scenes" in f else None
    official = np.r_[tr, te]
    if official.max() >= len(types_all):
        raise ValueError(f"NYUv2: {d / SPLITS_MAT} indexes image {official.max() + 1} but "
                         f"{d / LABELED_MAT} has {len(types_all)} images")
    types = [types_all[k] for k in official]
    return types, None if scenes_all is None else [scenes_all[k] for k in official], official


def read_nyuv2_index(path: Path, n_train: int, n_val: int) -> tuple[list[str], list[str] | None]:
    """Scene type (and building, if given) of every preprocessed file from ``index.csv``.

    The file (written by :func:`write_nyuv2_index` or by hand) has a header and one line per
    file: ``split`` (``train`` / ``val``), ``index`` (the ``<i>`` of ``<split>/*/<i>.npy``),
    ``scene_type``, and optionally ``scene`` (the building, e.g. ``bedroom_0001``) and
    ``official_index`` (1-based index into ``nyu_depth_v2_labeled.mat``, informative). Returns
    lists over the rows ``train/0 .. train/n_train-1, val/0 .. val/n_val-1``.
    """
    import csv

    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or ())
        missing = {"split", "index", "scene_type"} - cols
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected a header with split, index, "
                             f"scene_type (and optionally scene, official_index)")
        entries = {}
        for line, rec in enumerate(reader, 2):  # one line per image: index reading
            try:
                key = (rec["split"].strip(), int(rec["index"]))
            except (TypeError, ValueError) as err:
                raise ValueError(f"{path}, line {line}: index {rec.get('index')!r} is not an integer") from err
            entries[key] = (rec["scene_type"].strip(), (rec.get("scene") or "").strip())
    order = [("train", i) for i in range(n_train)] + [("val", i) for i in range(n_val)]
    absent = [k for k in order if k not in entries]
    if absent:
        raise ValueError(f"{path} has no line for {absent[0][0]}/{absent[0][1]} ({len(absent)} preprocessed files "
                         f"unlisted); every file needs its scene_type")
    types = [entries[k][0] for k in order]
    scenes = [entries[k][1] for k in order]
    return types, scenes if all(scenes) else None


def write_nyuv2_index(directory: str | os.PathLike[str]) -> Path:
    """Write ``index.csv`` beside the preprocessed files from ``splits.mat`` and the labeled ``.mat``.

    Takes ``train/<i>`` = ``trainNdxs[i]`` and ``val/<i>`` = ``testNdxs[i]`` (an assumption about
    the preprocessed files' order that the counts can only partly confirm) and records each
    file's official index, scene type and building, so later loads need neither h5py nor the
    2.8 GB file. Returns the path written.
    """
    import csv

    d = Path(directory)
    n_tr = _dense.numbered_files(d / "train" / "image")
    n_va = _dense.numbered_files(d / "val" / "image")
    for name in (SPLITS_MAT, LABELED_MAT):
        if not (d / name).is_file():
            raise MissingDataError(f"write_nyuv2_index: {d / name} is missing; get it from {SOURCE}")
    types, scenes, official = _official_scenes(d, n_tr, n_va)
    files = [("train", i) for i in range(n_tr)] + [("val", i) for i in range(n_va)]
    out = d / INDEX_CSV
    with open(out, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["split", "index", "official_index", "scene_type", "scene"])
        for (sp, i), k, t, b in zip(files, official, types, scenes or [""] * len(files)):
            w.writerow([sp, i, int(k) + 1, t, b])
    return out


# --- file sources ------------------------------------------------------------------------------------
class PreprocessedNYUSource(FileSource):
    """Rows of the preprocessed layout: row ``r`` is ``<root>/<split[r]>/{image,label,...}/<index[r]>.npy``."""

    def __init__(self, root: Path, splits: np.ndarray, index: np.ndarray, tasks: Sequence[str]) -> None:
        self.root = Path(root)
        self.splits = np.asarray(splits)
        self.index = np.asarray(index, dtype=np.int64)
        self.tasks = tuple(tasks)

    def __len__(self) -> int:
        return len(self.index)

    def path(self, i: int, kind: str) -> Path:
        return self.root / str(self.splits[i]) / kind / f"{int(self.index[i])}.npy"

    def read(self, i: int) -> Sample:
        img_path = self.path(i, "image")
        x = _dense.to_image(_dense.read_npy(img_path), img_path)
        hw = x.shape[1:]
        maps: dict[str, np.ndarray] = {}
        if "segmentation" in self.tasks:
            p = self.path(i, "label")
            maps["segmentation"] = _dense.to_class_map(_dense.read_npy(p), len(NYU_CLASSES), p, hw, img_path)
        if "depth" in self.tasks:
            p = self.path(i, "depth")
            maps["depth"] = _dense.to_depth(_dense.read_npy(p), p, hw, img_path)
        if "normal" in self.tasks:
            p = self.path(i, "normal")
            maps["normal"] = _dense.to_normal(_dense.read_npy(p), p, hw, img_path)
        return Sample(x, maps)

    def describe(self) -> str:
        return f"NYUv2 preprocessed .npy files in {self.root}"


class LabeledMatNYUSource(FileSource):
    """Rows of ``nyu_depth_v2_labeled.mat``: row ``r`` is official image ``rows[r]`` (0-based).

    The HDF5 file is opened on the first read in each process (DataLoader workers open their
    own handle) and only the requested image's slices are read.
    """

    def __init__(self, path: Path, rows: np.ndarray, lut: np.ndarray | None, tasks: Sequence[str],
                 intrinsics: Sequence[float] = NYU_INTRINSICS) -> None:
        self.path = Path(path)
        self.rows = np.asarray(rows, dtype=np.int64)
        self.lut = lut
        self.tasks = tuple(tasks)
        self.intrinsics = tuple(float(v) for v in intrinsics)
        self._file: H5Group | None = None
        self._pid: int | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_file"] = state["_pid"] = None
        return state

    def _handle(self) -> H5Group:
        if self._file is None or self._pid != os.getpid():
            self._file = _h5py().File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, i: int) -> Sample:
        f = self._handle()
        k = int(self.rows[i])
        where = f"{self.path} image {k}"
        img = np.asarray(f["images"][k])
        if img.ndim != 3 or img.shape[0] != 3:
            raise ValueError(f"{where}: images[{k}] has shape {img.shape}; expected (3, W, H) (MATLAB order)")
        x = np.ascontiguousarray(img.transpose(0, 2, 1)).astype(np.float32) / 255.0
        hw = x.shape[1:]
        maps: dict[str, np.ndarray] = {}
        if "segmentation" in self.tasks:
            lab = np.asarray(f["labels"][k]).T
            if lab.shape != hw:
                raise ValueError(f"{where}: labels[{k}] is {lab.shape[0]}x{lab.shape[1]} but the image is "
                                 f"{hw[0]}x{hw[1]}")
            lab = lab.astype(np.int64)
            bad = (lab < 0) | (lab > 894)
            if bad.any():
                r, c = np.argwhere(bad)[0]
                raise ValueError(f"{where}: label {lab[r, c]} at pixel ({r}, {c}) is outside the NYU classes "
                                 f"0..894 (0 = unlabeled)")
            if self.lut is None:
                raise ValueError(f"{self.path}: the segmentation task needs the class mapping (lut), "
                                 "which this source was built without")
            maps["segmentation"] = self.lut[lab]
        if "depth" in self.tasks or "normal" in self.tasks:
            dep = np.asarray(f["depths"][k]).T
            depth = _dense.to_depth(dep, f"{where} (depths)", hw, where)
            if "depth" in self.tasks:
                maps["depth"] = depth
            if "normal" in self.tasks:
                maps["normal"] = normals_from_depth(depth[0], self.intrinsics)
        return Sample(x, maps)

    def describe(self) -> str:
        return f"NYUv2 {self.path}"


# --- layouts ------------------------------------------------------------------------------------------
def _first_missing_preprocessed(d: Path, tasks: Sequence[str]) -> Path | None:
    kinds = ["image"] + [{"segmentation": "label", "depth": "depth", "normal": "normal"}[t] for t in tasks]
    for split in ("train", "val"):
        for kind in kinds:
            if not (d / split / kind / "0.npy").is_file():
                return d / split / kind / "0.npy"
    return None


def _first_missing_mat(d: Path, tasks: Sequence[str]) -> Path | None:
    needed = (LABELED_MAT, MAP40_MAT, MAP13_MAT) if "segmentation" in tasks else (LABELED_MAT,)
    for name in needed:
        if not (d / name).is_file():
            return d / name
    return None


def _find(path: str | os.PathLike[str] | None, layout: str, tasks: Sequence[str]) -> tuple[str, Path]:
    root = data_root(path)
    if root is None:
        raise MissingDataError(
            f"NYUv2: no data directory given: pass path=... or set the environment variable "
            f"CAUSALMTL_DATA. Get the data from {SOURCE} (see docs/datasets.md)."
        )
    dirs = [root] + [root / s for s in _SUBDIRS if (root / s).is_dir()]
    tried = []
    wanted = _LAYOUTS if layout == "auto" else (layout,)
    for lay in wanted:
        for d in dirs:
            if lay == "preprocessed":
                if (d / "train" / "image").is_dir():
                    miss = _first_missing_preprocessed(d, tasks)
                    if miss is not None:
                        kind = miss.parent.name
                        raise ValueError(
                            f"NYUv2 preprocessed layout in {d}: {miss} is missing; the requested tasks "
                            f"{list(tasks)} need {{train,val}}/{kind}/<i>.npy (this layout lacks it)"
                        )
                    return lay, d
                tried.append(f"preprocessed (first missing: {d / 'train' / 'image' / '0.npy'})")
            else:
                miss = _first_missing_mat(d, tasks)
                if miss is None:
                    return lay, d
                tried.append(f"labeled-mat (first missing: {miss})")
    raise MissingDataError(
        f"NYUv2: {root} is in no known layout; tried " + "; ".join(tried)
        + f". Get the data from {SOURCE} (see docs/datasets.md)."
    )


def _random_valid(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    k = max(1, int(round(fraction * n)))
    if k >= n:
        raise ValueError(f"valid_fraction={fraction} leaves no training image among {n}")
    return np.sort(rng.permutation(n)[:k])


def load_nyuv2(
    path: str | os.PathLike[str] | None = None,
    *,
    layout: str = "auto",
    split: str = "scene",
    tasks: Sequence[str] | str = NYU_TASKS,
    size: int | Sequence[int] | None = None,
    seed: int = 0,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    valid_fraction: float = 0.1,
) -> DatasetSplits:
    """NYUv2 from its real layout (module docstring) as streamed splits.

    Parameters
    ----------
    path : the data directory (or a root holding ``nyuv2/``); default ``$CAUSALMTL_DATA``
    layout : ``"auto"``, ``"preprocessed"`` or ``"labeled-mat"``
    split : ``"scene"`` (MT-CRL: whole scene types, ``fractions`` train/valid/test, seeded) or
        ``"official"`` (795 / 654 train / test; valid ``valid_fraction`` of train)
    tasks : any of ``"segmentation"``, ``"depth"``, ``"normal"``
    size : ``(H, W)`` to resize every row to (a :class:`~causalmtl.data.transforms.Resize`
        on each split); ``None`` keeps the stored size (288 x 384 preprocessed, 480 x 640 .mat)
    seed : seeds the split

    Returns
    -------
    DatasetSplits whose splits read rows lazily (``inputs`` is a FileSource); ``env`` is the scene
    type id (names in ``meta["environments"]``); ``meta`` keys: ``layout``, ``split``,
    ``environments``, ``classes``, ``normals``, ``rows`` (per split, the source of each row:
    ``"train/<i>"`` / ``"val/<i>"`` files or ``"mat/<k>"`` 0-based official indices), ``source``.
    """
    tasks = _dense.check_tasks(tasks, NYU_TASKS, "load_nyuv2")
    if layout not in ("auto", *_LAYOUTS):
        raise ValueError(f"layout must be 'auto', 'preprocessed' or 'labeled-mat', got {layout!r}")
    if split not in ("scene", "official"):
        raise ValueError(f"split must be 'scene' or 'official', got {split!r}")
    if not 0 < float(valid_fraction) < 1:
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction!r}")
    lay, d = _find(path, layout, tasks)
    rng = np.random.default_rng(seed)
    meta: dict[str, Any] = {"layout": lay, "source": str(d), "classes": list(NYU_CLASSES), "tasks": list(tasks)}
    scene_types: list[str] | None = None
    buildings: list[str] | None = None

    if lay == "preprocessed":
        n_tr = _dense.numbered_files(d / "train" / "image")
        n_va = _dense.numbered_files(d / "val" / "image")
        for t in tasks:
            kind = {"segmentation": "label", "depth": "depth", "normal": "normal"}[t]
            for sp, n in (("train", n_tr), ("val", n_va)):
                m = _dense.numbered_files(d / sp / kind)
                if m != n:
                    raise ValueError(f"NYUv2: {d / sp / kind} holds {m} files but {d / sp / 'image'} holds {n}")
        source: FileSource = PreprocessedNYUSource(d, np.array(["train"] * n_tr + ["val"] * n_va),
                                       np.r_[np.arange(n_tr), np.arange(n_va)], tasks)
        row_names = [f"train/{i}" for i in range(n_tr)] + [f"val/{i}" for i in range(n_va)]
        meta["normals"] = "preprocessed files"
        if (d / INDEX_CSV).is_file():
            scene_types, buildings = read_nyuv2_index(d / INDEX_CSV, n_tr, n_va)
            meta["index"] = f"{INDEX_CSV} (split, index, scene_type per file)"
        elif (d / LABELED_MAT).is_file() and (d / SPLITS_MAT).is_file():
            scene_types, buildings, _ = _official_scenes(d, n_tr, n_va)
            meta["index"] = f"train/<i> = trainNdxs[i], val/<i> = testNdxs[i] ({SPLITS_MAT})"
        official_train = np.arange(n_tr)
        official_test = np.arange(n_tr, n_tr + n_va)
    else:
        with _h5py().File(d / LABELED_MAT, "r") as f:
            for key in ("images", "depths", "labels", "sceneTypes"):
                if key not in f:
                    raise ValueError(f"NYUv2: {d / LABELED_MAT} has no variable {key!r}; expected the official "
                                     f"labeled file")
            n_img = f["images"].shape[0]
            shapes = {k: f[k].shape for k in ("images", "depths", "labels")}
            scene_types = _mat_strings(f, "sceneTypes")
            buildings = _mat_strings(f, "scenes") if "scenes" in f else None
        if shapes["images"][2:] != shapes["labels"][1:] or shapes["depths"] != shapes["labels"]:
            raise ValueError(f"NYUv2: {d / LABELED_MAT}: images {shapes['images']}, depths {shapes['depths']} "
                             f"and labels {shapes['labels']} do not have the same image size")
        if len(scene_types) != n_img:
            raise ValueError(f"NYUv2: {d / LABELED_MAT} has {n_img} images but {len(scene_types)} sceneTypes")
        lut = read_class_mapping(d) if "segmentation" in tasks else None
        source = LabeledMatNYUSource(d / LABELED_MAT, np.arange(n_img), lut, tasks)
        row_names = [f"mat/{k}" for k in range(n_img)]
        meta["normals"] = ("computed from depth: cross product of central-difference tangents of the "
                           "back-projected points, Kinect intrinsics fx, fy, cx, cy = "
                           + ", ".join(map(str, NYU_INTRINSICS)))
        if split == "official":
            if not (d / SPLITS_MAT).is_file():
                raise MissingDataError(f"NYUv2: split='official' needs {d / SPLITS_MAT} (the official NYU "
                                       f"toolbox's trainNdxs/testNdxs); get it from {SOURCE}")
            official_train, official_test = read_official_split(d / SPLITS_MAT)
            if max(official_train.max(), official_test.max()) >= n_img:
                raise ValueError(f"NYUv2: {d / SPLITS_MAT} indexes beyond the {n_img} images of {LABELED_MAT}")

    if scene_types is not None:
        env_names = sorted(set(scene_types))
        env = np.searchsorted(env_names, scene_types).astype(np.int64)
    if split == "scene" and scene_types is not None:
        tr, va, te = _dense.split_by_groups(env, env_names, fractions, seed, "NYUv2 scene-type split")
        meta["split"] = (f"scene types, fractions {tuple(float(v) for v in fractions)}, seed {seed}")
    elif scene_types is None:
        if split == "scene":
            logger.warning("NYUv2: the preprocessed files carry no scene types (no %s, nor %s + %s beside "
                           "them); using the preprocessed train/val split", INDEX_CSV, LABELED_MAT, SPLITS_MAT)
        env_names = ["preprocessed-train", "preprocessed-val"]
        env = np.r_[np.zeros(n_tr, np.int64), np.ones(n_va, np.int64)]
        va_local = _random_valid(n_tr, valid_fraction, rng)
        va = official_train[va_local]
        tr = np.setdiff1d(official_train, va)
        te = official_test
        meta["split"] = "preprocessed-train-val (no scene types)"
    else:  # official split with scene types known
        if buildings is not None:
            b_names, b_ids = np.unique(np.asarray(buildings)[official_train], return_inverse=True)
            counts = np.bincount(b_ids, minlength=len(b_names))
            chosen = _dense.pick_groups(counts, round(valid_fraction * len(official_train)), rng)
            va = np.sort(official_train[chosen[b_ids]])
        else:
            va = official_train[_random_valid(len(official_train), valid_fraction, rng)]
        tr = np.setdiff1d(official_train, va)
        te = np.sort(official_test)
        if len(tr) == 0:
            raise ValueError("NYUv2: the valid buildings took every official training image; lower valid_fraction")
        meta["split"] = f"official train/test, valid = whole buildings (~{valid_fraction:.0%} of train), seed {seed}"
    meta["environments"] = list(env_names)

    from .transforms import Resize

    transform = None if size is None else Resize(size)
    task_objs = _make_tasks(tasks)
    parts: list[MultiTaskDataset] = []
    for name, rows in (("train", tr), ("valid", va), ("test", te)):
        if len(rows) == 0:
            raise ValueError(f"NYUv2: the {name} split is empty ({meta['split']})")
        rows = np.asarray(rows, dtype=np.int64)
        parts.append(MultiTaskDataset(
            inputs=source.subset(rows),
            targets=np.ones((len(rows), len(task_objs))),
            tasks=task_objs,
            env=env[rows],
            name=f"nyuv2/{name}",
            transform=transform,
        ))
        meta.setdefault("rows", {})[name] = [row_names[r] for r in rows]
    return DatasetSplits(parts[0], parts[1], parts[2], name="nyuv2", meta=meta)


# --- synthetic copy in the real layouts ---------------------------------------------------------------
def _synthetic_scene(rng: np.random.Generator, h: int, w: int, n_classes: int,
                     tint: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A class map from smooth random fields; colours a function of the class (plus a per-scene
    tint and noise); depth a tilted plane plus a per-class offset."""
    k = 4
    fields = rng.normal(size=(n_classes, k, k))
    # bilinear-ish upsampling of coarse random fields by a separable interpolation matrix
    ry = np.clip(np.linspace(0, k - 1, h), 0, k - 1)
    rx = np.clip(np.linspace(0, k - 1, w), 0, k - 1)
    iy = np.minimum(ry.astype(int), k - 2)
    ix = np.minimum(rx.astype(int), k - 2)
    wy = (ry - iy)[:, None]
    wx = (rx - ix)[None, :]
    f = (fields[:, iy][:, :, ix] * (1 - wy) * (1 - wx) + fields[:, iy + 1][:, :, ix] * wy * (1 - wx)
         + fields[:, iy][:, :, ix + 1] * (1 - wy) * wx + fields[:, iy + 1][:, :, ix + 1] * wy * wx)
    label = f.argmax(axis=0).astype(np.int64)
    levels = np.array([0.15, 0.5, 0.85])
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
    palette = grid[::2][:n_classes]  # 13 colours at least 0.35 apart
    img = palette[label] + tint[None, None, :] + rng.normal(scale=0.03, size=(h, w, 3))
    img = np.clip(img, 0, 1)
    yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
    depth = 1.5 + 2.0 * yy + 0.5 * xx + 0.15 * label
    return img, label, depth


def write_synthetic_nyuv2(
    directory: str | os.PathLike[str],
    n: int = 40,
    size: Sequence[int] = (48, 64),
    seed: int = 0,
    layout: str = "preprocessed",
    n_scene_types: int = 5,
) -> Path:
    """Write a small synthetic NYUv2 in a real layout (for the ``tiny`` presets and demos).

    ``layout="preprocessed"``: ``{train,val}/{image,label,depth,normal}/<i>.npy`` (the first
    80 % of the images train, the rest val) and ``index.csv`` (scene types); ``"labeled-mat"``: ``nyu_depth_v2_labeled.mat``
    (HDF5, MATLAB order, 894-class labels), ``splits.mat``, ``classMapping40.mat`` and
    ``class13Mapping.mat``. Images are learnable: the class of a pixel is a function of its
    colour (up to noise and a per-scene-type tint, the environment), depth is a plane plus a
    per-class offset and normals are computed from it (:func:`normals_from_depth`).
    Needs h5py for ``"labeled-mat"``. Returns the directory.
    """
    h, w = (int(v) for v in size)
    if n < 6 or h < 4 or w < 4:
        raise ValueError(f"write_synthetic_nyuv2 needs n >= 6 and size >= (4, 4), got n={n}, size={size}")
    if n_scene_types < 3:
        raise ValueError(f"n_scene_types must be >= 3 (train, valid and test each need one), got {n_scene_types}")
    if layout not in _LAYOUTS:
        raise ValueError(f"layout must be one of {list(_LAYOUTS)}, got {layout!r}")
    out = Path(directory)
    rng = np.random.default_rng(seed)
    types = [f"scene_type_{j}" for j in range(n_scene_types)]
    scene_of = np.sort(rng.integers(0, n_scene_types, size=n))
    scene_of[:n_scene_types] = np.arange(n_scene_types)  # every type present
    scene_of = rng.permutation(scene_of)
    tints = rng.uniform(-0.05, 0.05, size=(n_scene_types, 3))
    scale = max(h, w)
    intr = (NYU_INTRINSICS[0] * scale / 640, NYU_INTRINSICS[1] * scale / 640, w / 2, h / 2)
    samples = [_synthetic_scene(rng, h, w, len(NYU_CLASSES), tints[scene_of[i]]) for i in range(n)]
    if layout == "preprocessed":
        import csv

        n_train = int(round(0.8 * n))
        out.mkdir(parents=True, exist_ok=True)
        with open(out / INDEX_CSV, "w", newline="", encoding="utf-8") as fh:
            wr = csv.writer(fh)
            wr.writerow(["split", "index", "official_index", "scene_type", "scene"])
            for i in range(n):
                sp, j = ("train", i) if i < n_train else ("val", i - n_train)
                wr.writerow([sp, j, i + 1, types[scene_of[i]], f"{types[scene_of[i]]}_{i // 3:04d}"])
        for i, (img, label, depth) in enumerate(samples):
            sp, j = ("train", i) if i < n_train else ("val", i - n_train)
            lab = label.copy()
            lab[0, 0] = -1  # one ignored pixel per image, as in the real files
            normal = np.nan_to_num(np.moveaxis(normals_from_depth(depth, intr), 0, -1))
            for kind, arr in (("image", img.astype(np.float32)), ("label", lab.astype(np.float32)),
                              ("depth", depth[..., None].astype(np.float32)), ("normal", normal)):
                (out / sp / kind).mkdir(parents=True, exist_ok=True)
                np.save(out / sp / kind / f"{j}.npy", arr)
        return out
    h5py = _h5py()
    from scipy.io import savemat

    out.mkdir(parents=True, exist_ok=True)
    # 894 → 40 → 13: class c (0..12) is NYU label 1 + c (and 14 + c), via 40-class 1 + c
    map40 = (np.arange(894) % 40 + 1).astype(np.float64)
    map13 = (np.arange(40) % 13 + 1).astype(np.float64)
    savemat(out / MAP40_MAT, {"mapClass": map40[None, :]})
    savemat(out / MAP13_MAT, {"classMapping13": {"labelIdx": map13[None, :],
                                                  "labelName": np.array(NYU_CLASSES, dtype=object)}})
    imgs = np.stack([np.round(s[0] * 255).astype(np.uint8) for s in samples])  # (N, H, W, 3)
    labels = np.stack([s[1] + 1 for s in samples]).astype(np.uint16)          # NYU ids 1..13
    labels[:, 0, 0] = 0                                                         # unlabeled
    depths = np.stack([s[2] for s in samples]).astype(np.float32)
    with h5py.File(out / LABELED_MAT, "w") as f:
        f.create_dataset("images", data=imgs.transpose(0, 3, 2, 1))
        f.create_dataset("depths", data=depths.transpose(0, 2, 1))
        f.create_dataset("labels", data=labels.transpose(0, 2, 1))
        for key, values in (("sceneTypes", [types[s] for s in scene_of]),
                            ("scenes", [f"{types[s]}_{i // 3:04d}" for i, s in enumerate(scene_of)])):
            refs = []
            for i, text in enumerate(values):
                ds = f.create_dataset(f"#refs#/{key}_{i}", data=np.array([ord(c) for c in text], np.uint16)[:, None])
                refs.append(ds.ref)
            f.create_dataset(key, data=np.array(refs, dtype=h5py.ref_dtype)[None, :])
    perm = rng.permutation(n)
    n_train = int(round(0.55 * n))
    savemat(out / SPLITS_MAT, {"trainNdxs": np.sort(perm[:n_train] + 1)[:, None].astype(np.float64),
                               "testNdxs": np.sort(perm[n_train:] + 1)[:, None].astype(np.float64)})
    return out
