"""Taskonomy (Zamir et al., CVPR 2018) in its real layout: GMTL's object × scene pair and MT-CRL's tasks.

Layout (the Omnidata download tool's, also the GMTL authors')::

    <root>/<domain>/taskonomy/<building>/point_<p>_view_<v>_domain_<domain>.<ext>

with the domains of :data:`DOMAINS`: ``rgb`` (8-bit RGB PNG, 512²), ``depth_zbuffer`` (16-bit PNG,
units of 1/512 m, **65535 = no geometry**, Omnidata's ``mask_valid`` convention),
``normal`` (8-bit RGB, 127-centred), ``segment_semantic`` (8-bit labels: 0 = "uncertain",
1 = background, 2–17 = the 16 COCO objects), ``principal_curvature`` (8-bit, curvatures in the
first two channels, zero = 127), ``edge_occlusion``, ``keypoints2d``, ``keypoints3d`` (16-bit
PNGs), ``class_object`` (``.npy``, a distribution over the 1,000 ImageNet classes distilled
from a ResNet-152) and ``class_scene`` (folder ``class_scene``, files
``…_domain_class_places.npy``, a distribution over the 365 Places classes). The official
building splits are ``train_val_test_{tiny,medium,full,fullplus}.csv`` (``splits_taskonomy.zip``:
one row per building, columns ``id,train,val,test`` with 0/1 flags).

Targets (the data contract; each documented conversion is in :func:`decode_domain`):

* ``object`` / ``scene``: the argmax of the ``.npy`` distribution over the selected classes
  (all 1,000 / 365 by default; GMTL: the 100 selected ImageNet classes and the 64 Places
  classes flagged "workplace" or "home or hotel", read as the GMTL authors' code reads them:
  :func:`read_imagenet_class_index`, :func:`read_selected_object_classes`,
  :func:`read_scene_hierarchy`);
* ``segment_semantic``: class map, 0 ("uncertain") → −1 (ignored), ``v`` → ``v − 1`` (17 classes:
  background and 16 objects);
* ``depth_zbuffer``: metres ``v / 512``, 65535 → NaN; ``normal``: ``v / 127.5 − 1`` (3 channels);
  ``principal_curvature``: ``(v − 127) / 128`` on the first two channels; ``edge_occlusion``,
  ``keypoints2d``, ``keypoints3d``: ``v / 65535`` (Omnidata's 16-bit scaling). With
  ``mask_from_depth=True`` the pixels without geometry (depth 65535) are NaN in every dense
  regression map of the row (the row's depth file is read when present).

Streaming: the dataset's inputs are a :class:`TaskonomySource` reading one row's PNGs when a
batch needs it. The **file index** (which ``(point, view)`` exist per domain and building) is
built by listing each ``<domain>/taskonomy/<building>`` folder once and cached in
``<root>/.causalmtl_cache/`` (or, when the data directory is read-only, in
``$XDG_CACHE_HOME/causalmtl/taskonomy/<hash of root>/``); an entry is re-listed only when the
folder's modification time changes (adding or removing a file changes it). The class labels
(argmax per row) are cached the same way, keyed by the class selection.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ._sources import MissingDataError, data_root, missing_data_error
from .base import DatasetSplits, Inputs, MultiTaskDataset, Task
from .streamed import FileSource, Sample, Transform
from .transforms import IMAGENET_MEAN, IMAGENET_STD, train_eval_transforms  # noqa: F401 (re-exported)

logger = logging.getLogger(__name__)

__all__ = [
    "DOMAINS",
    "MTCRL_TASKS",
    "GMTL_TASKS",
    "TaskonomySource",
    "TaskonomyIndex",
    "decode_domain",
    "load_taskonomy",
    "paper_transforms",
    "read_imagenet_class_index",
    "read_scene_hierarchy",
    "read_selected_object_classes",
    "read_split_csv",
    "write_synthetic_taskonomy",
]

SOURCE = ("the Omnidata download tool (`omnitools.download ... --components taskonomy`), see "
          "https://github.com/StanfordVL/taskonomy/tree/master/data; split CSVs in splits_taskonomy.zip")


@dataclass(frozen=True)
class Domain:
    """One Taskonomy domain: folder name, the ``domain_<suffix>`` of its files, extension, bits."""

    folder: str
    suffix: str
    ext: str
    bits: int = 8  # 16 for the 16-bit PNG domains; 0 for .npy


DOMAINS: dict[str, Domain] = {
    "rgb": Domain("rgb", "rgb", "png"),
    "depth_zbuffer": Domain("depth_zbuffer", "depth_zbuffer", "png", 16),
    "normal": Domain("normal", "normal", "png"),
    "segment_semantic": Domain("segment_semantic", "segment_semantic", "png"),
    "principal_curvature": Domain("principal_curvature", "principal_curvature", "png"),
    "edge_occlusion": Domain("edge_occlusion", "edge_occlusion", "png", 16),
    "keypoints2d": Domain("keypoints2d", "keypoints2d", "png", 16),
    "keypoints3d": Domain("keypoints3d", "keypoints3d", "png", 16),
    "class_object": Domain("class_object", "class_object", "npy", 0),
    "class_scene": Domain("class_scene", "class_places", "npy", 0),
}
N_IMAGENET = 1000
N_PLACES = 365
DEPTH_INVALID = 65535
DEPTH_UNITS_PER_METRE = 512.0

#: MT-CRL Table 8 tasks (and depth, listed in its Appendix C text): task -> (domain, Task)
MTCRL_TASKS: dict[str, tuple[str, Task]] = {
    "object": ("class_object", Task("object", "classification", N_IMAGENET)),
    "scene": ("class_scene", Task("scene", "classification", N_PLACES)),
    "segment_semantic": ("segment_semantic", Task("segment_semantic", "segmentation", 17, loss="ce")),
    "principal_curvature": ("principal_curvature", Task("principal_curvature", "dense", channels=2, loss="l1")),
    "normal": ("normal", Task("normal", "dense", channels=3, loss="l2")),
    "edge_occlusion": ("edge_occlusion", Task("edge_occlusion", "dense", channels=1, loss="l2")),
    "keypoints2d": ("keypoints2d", Task("keypoints2d", "dense", channels=1, loss="l2")),
    "keypoints3d": ("keypoints3d", Task("keypoints3d", "dense", channels=1, loss="l2")),
    "depth_zbuffer": ("depth_zbuffer", Task("depth_zbuffer", "dense", channels=1, loss="l2")),
}
#: GMTL §5.1: object (100 selected ImageNet classes) and scene (64 Places classes)
GMTL_TASKS = ("object", "scene")
GMTL_FILES = {
    "class_index": "imagenet1000_clsidx_to_labels.txt",
    "object_classes": "imagenet_selected_classes.txt",
    "scene_hierarchy": "Scene hierarchy - Places365.csv",
}
SCENE_COLUMNS = ("workplace (office building, factory, lab, etc.)", "home or hotel")
_NAME = re.compile(r"^point_(\d+)_view_(\d+)_domain_(.+)\.(\w+)$")
_CACHE_VERSION = 1


# --- class lists, read as the GMTL authors' code reads them ----------------------------------------
def read_imagenet_class_index(file: str | os.PathLike[str]) -> dict[int, str]:
    """``imagenet1000_clsidx_to_labels.txt``: a Python dict literal ``{0: 'tench, Tinca tinca', ...}``
    (``ast.literal_eval``, as the GMTL code). Must map the ints 0..999 to strings."""
    file = Path(file)
    if not file.is_file():
        raise missing_data_error("Taskonomy (ImageNet class index)", file.name, [file.parent], SOURCE)
    try:
        index = ast.literal_eval(file.read_text(encoding="utf-8"))
    except (ValueError, SyntaxError) as e:
        raise ValueError(f"{file}: not a Python dict literal {{index: 'name', ...}} ({e})") from None
    if not isinstance(index, dict) or sorted(index) != list(range(N_IMAGENET)) or not all(
        isinstance(v, str) for v in index.values()
    ):
        raise ValueError(f"{file}: expected a dict mapping 0..{N_IMAGENET - 1} to class names, "
                         f"got {type(index).__name__} with {len(index) if hasattr(index, '__len__') else '?'} entries")
    return index


def read_selected_object_classes(file: str | os.PathLike[str], class_index: Mapping[int, str]) -> np.ndarray:
    """The ImageNet indices of ``imagenet_selected_classes.txt``, in file order.

    As the GMTL code: each non-empty line is stripped, its first space-separated token dropped
    (``split(" ", 1)[1]``), a trailing comma removed, and the rest looked up by exact name in
    the class index. Names not in the index are an error listing the first ones.
    """
    file = Path(file)
    if not file.is_file():
        raise missing_data_error("Taskonomy (selected ImageNet classes)", file.name, [file.parent], SOURCE)
    name_to_idx = {v: k for k, v in class_index.items()}
    names, bad_lines = [], []
    for line_no, line in enumerate(file.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(" ", 1)
        if len(parts) != 2:
            bad_lines.append(line_no)
            continue
        names.append(parts[1].rstrip(","))
    if bad_lines:
        raise ValueError(f"{file}, line {bad_lines[0]}: expected '<id> <class name>,' (two fields)")
    unknown = [n for n in names if n not in name_to_idx]
    if unknown:
        raise ValueError(f"{file}: {len(unknown)} class name(s) not in the {len(class_index)}-class "
                         f"ImageNet index, first: {unknown[:5]}")
    idx = np.asarray([name_to_idx[n] for n in names], dtype=np.int64)
    if len(np.unique(idx)) != len(idx):
        raise ValueError(f"{file}: a class is listed twice")
    if not len(idx):
        raise ValueError(f"{file}: lists no class")
    return idx


def read_scene_hierarchy(file: str | os.PathLike[str], columns: Sequence[str] = SCENE_COLUMNS) -> np.ndarray:
    """The Places365 indices flagged 1 in any of ``columns`` of ``Scene hierarchy - Places365.csv``.

    As the GMTL code: ``pandas.read_csv`` (first row = header), rows with a 1 in the
    "workplace (office building, factory, lab, etc.)" or "home or hotel" column; the Places
    index of a category is its row position (the CSV lists the 365 categories in class order).
    """
    import pandas as pd

    file = Path(file)
    if not file.is_file():
        raise missing_data_error("Taskonomy (Places scene hierarchy)", file.name, [file.parent], SOURCE)
    df = pd.read_csv(file)
    missing = [c for c in ("category", *columns) if c not in df.columns]
    if missing:
        raise ValueError(f"{file}: missing column(s) {missing}; columns are {list(df.columns)[:20]}")
    if len(df) != N_PLACES:
        logger.warning("%s has %d category rows, not %d; its row positions are used as Places "
                       "indices as the GMTL code does", file, len(df), N_PLACES)
    flag = np.zeros(len(df), dtype=bool)
    for c in columns:
        flag |= pd.to_numeric(df[c], errors="coerce").to_numpy() == 1
    idx = np.flatnonzero(flag).astype(np.int64)
    if not len(idx):
        raise ValueError(f"{file}: no category is flagged 1 in {list(columns)}")
    if idx.max() >= N_PLACES:
        raise ValueError(f"{file}: flagged row {int(idx.max())} is beyond the {N_PLACES} Places classes")
    return idx


def read_split_csv(file: str | os.PathLike[str]) -> dict[str, list[str]]:
    """The official split CSV (``id,train,val,test``): split -> building ids, in file order.

    A building flagged in two splits or listed twice is an error; one flagged in none (the
    CSVs list every building with the partitions it belongs to) is left out.
    """
    import pandas as pd

    file = Path(file)
    if not file.is_file():
        raise missing_data_error("Taskonomy (split CSV)", file.name, [file.parent], SOURCE)
    df = pd.read_csv(file)
    df.columns = [str(c).strip() for c in df.columns]
    need = ["id", "train", "val", "test"]
    if any(c not in df.columns for c in need):
        raise ValueError(f"{file}: expected columns {need}, got {list(df.columns)}")
    ids = df["id"].astype(str).str.strip()
    dup = ids[ids.duplicated()]
    if len(dup):
        raise ValueError(f"{file}: building {dup.iloc[0]!r} is listed twice")
    flags = df[["train", "val", "test"]].apply(pd.to_numeric, errors="coerce").fillna(0).to_numpy() == 1
    n = flags.sum(axis=1)
    if (n > 1).any():
        r = int(np.argmax(n > 1))
        raise ValueError(f"{file}: building {ids.iloc[r]!r} is in two splits "
                         f"{[s for s, f in zip(need[1:], flags[r]) if f]}")
    return {"train": ids[flags[:, 0]].tolist(), "valid": ids[flags[:, 1]].tolist(),
            "test": ids[flags[:, 2]].tolist()}


# --- the file index ---------------------------------------------------------------------------------
def _writable(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def default_cache_dir(root: Path) -> Path:
    """``<root>/.causalmtl_cache`` if writable, else ``$XDG_CACHE_HOME/causalmtl/taskonomy/<hash>``."""
    beside = root / ".causalmtl_cache"
    if _writable(beside):
        return beside
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    digest = hashlib.sha1(str(root.resolve()).encode()).hexdigest()[:16]
    return base / "causalmtl" / "taskonomy" / digest


class _FolderCache:
    """Per-folder arrays cached in one ``.npz`` and trusted while the folder's mtime is unchanged."""

    def __init__(self, file: Path) -> None:
        self.file = file
        self.entries: dict[str, tuple[int, dict[str, np.ndarray]]] = {}
        self.dirty = False
        if file.is_file():
            try:
                with np.load(file, allow_pickle=False) as z:
                    if int(z["version"]) == _CACHE_VERSION:
                        keys, mtimes = z["keys"].tolist(), z["mtimes"]
                        fields = [str(f) for f in z["fields"]]
                        data = {f: (z[f"a_{f}"], z[f"o_{f}"]) for f in fields}
                        for k, key in enumerate(keys):
                            arrays = {f: a[o[k]:o[k + 1]] for f, (a, o) in data.items()}
                            self.entries[key] = (int(mtimes[k]), arrays)
            except (OSError, ValueError, KeyError) as e:  # a damaged cache is rebuilt
                logger.warning("ignoring unreadable Taskonomy cache %s (%s)", file, e)
                self.entries = {}

    def get(self, key: str, mtime: int) -> dict[str, np.ndarray] | None:
        hit = self.entries.get(key)
        return hit[1] if hit is not None and hit[0] == mtime else None

    def put(self, key: str, mtime: int, arrays: dict[str, np.ndarray]) -> None:
        self.entries[key] = (mtime, arrays)
        self.dirty = True

    def save(self) -> None:
        if not self.dirty:
            return
        keys = sorted(self.entries)
        fields = sorted({f for k in keys for f in self.entries[k][1]})
        data = {}
        for f in fields:
            parts = [self.entries[k][1].get(f, np.zeros(0, np.int64)) for k in keys]
            data[f"a_{f}"] = np.concatenate(parts) if parts else np.zeros(0, np.int64)
            data[f"o_{f}"] = np.cumsum([0, *[len(a) for a in parts]])
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(self.file.name + f".tmp{os.getpid()}.npz")
        np.savez(tmp, version=_CACHE_VERSION, keys=np.asarray(keys, dtype=str),
                 mtimes=np.asarray([self.entries[k][0] for k in keys], dtype=np.int64),
                 fields=np.asarray(fields, dtype=str),
                 # numpy's stub also matches **arrays against savez's `allow_pickle: bool`; the
                 # keys here are all "a_*" / "o_*" array names
                 **data)  # type: ignore[arg-type]
        os.replace(tmp, self.file)
        self.dirty = False


class TaskonomyIndex:
    """Which ``(point, view)`` files exist per domain and building, listed once and cached.

    ``listings`` counts how many folders were actually listed (the rest came from the cache).
    """

    def __init__(self, root: Path, cache_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.cache_dir = default_cache_dir(self.root) if cache_dir is None else Path(cache_dir)
        self._listing: dict[str, _FolderCache] = {}  # one cache file per domain, opened when needed
        self.listings = 0

    def _cache(self, domain: str) -> _FolderCache:
        if domain not in self._listing:
            self._listing[domain] = _FolderCache(self.cache_dir / f"listing_{domain}.npz")
        return self._listing[domain]

    def folder(self, domain: str, building: str) -> Path:
        return self.root / DOMAINS[domain].folder / "taskonomy" / building

    def buildings(self, domain: str) -> list[str]:
        """Building folders of a domain (a few hundred entries: listed every time, cheaply)."""
        d = self.root / DOMAINS[domain].folder / "taskonomy"
        if not d.is_dir():
            return []
        return sorted(e.name for e in os.scandir(d) if e.is_dir())

    def mtime(self, domain: str, building: str) -> int | None:
        try:
            return os.stat(self.folder(domain, building)).st_mtime_ns
        except FileNotFoundError:
            return None

    def pairs(self, domain: str, building: str) -> np.ndarray | None:
        """Sorted ``(point, view)`` int64 ``(n, 2)`` of the domain's files in the building, or None."""
        mtime = self.mtime(domain, building)
        if mtime is None:
            return None
        key = f"{domain}/{building}"
        hit = self._cache(domain).get(key, mtime)
        if hit is not None:
            return hit["pv"].reshape(-1, 2).astype(np.int64)
        dom = DOMAINS[domain]
        found = []
        for e in os.scandir(self.folder(domain, building)):  # one listing per folder, then cached
            m = _NAME.match(e.name)
            if m and m.group(3) == dom.suffix and m.group(4) == dom.ext:
                found.append((int(m.group(1)), int(m.group(2))))
        self.listings += 1
        pv = np.asarray(sorted(found), dtype=np.int64).reshape(-1, 2)
        self._cache(domain).put(key, mtime, {"pv": pv.ravel().astype(np.int32)})
        return pv

    def file(self, domain: str, building: str, point: int, view: int) -> Path:
        dom = DOMAINS[domain]
        return self.folder(domain, building) / f"point_{point}_view_{view}_domain_{dom.suffix}.{dom.ext}"

    def save(self) -> None:
        for cache in self._listing.values():
            try:
                cache.save()
            except OSError as e:
                logger.warning("could not write the Taskonomy index cache %s (%s)", cache.file, e)


# --- decoding one file ------------------------------------------------------------------------------
def _read_png(file: Path, bits: int) -> np.ndarray:
    from PIL import Image

    with Image.open(file) as im:
        mode = im.mode
        a = np.asarray(im)
    if bits == 16:
        if mode not in ("I;16", "I;16B", "I;16L", "I") or a.dtype == np.uint8:
            raise ValueError(f"{file}: expected a 16-bit PNG (Taskonomy stores this domain in 16 bits), "
                             f"got an 8-bit image (mode {mode!r}); re-download the file")
        return a.astype(np.int64)
    return a.astype(np.int64)


def decode_domain(domain: str, raw: np.ndarray) -> np.ndarray:
    """Raw pixel values of a domain → its contract target (module docstring conversions)."""
    if domain == "segment_semantic":
        v = raw if raw.ndim == 2 else raw[..., 0]
        return np.where(v == 0, -1, v - 1).astype(np.int64)
    if domain == "depth_zbuffer":
        v = raw if raw.ndim == 2 else raw[..., 0]
        out = (v / DEPTH_UNITS_PER_METRE).astype(np.float32)
        out[v == DEPTH_INVALID] = np.nan
        return out[None]
    if domain == "normal":
        return (raw[..., :3].transpose(2, 0, 1) / 127.5 - 1.0).astype(np.float32)
    if domain == "principal_curvature":
        return ((raw[..., :2].transpose(2, 0, 1) - 127.0) / 128.0).astype(np.float32)
    if domain in ("edge_occlusion", "keypoints2d", "keypoints3d"):
        v = raw if raw.ndim == 2 else raw[..., 0]
        return (v / 65535.0).astype(np.float32)[None]
    raise ValueError(f"domain {domain!r} has no map decoding; map domains: "
                     f"{[d for d in DOMAINS if DOMAINS[d].ext == 'png' and d != 'rgb']}")


def _read_distribution(file: Path, n: int) -> np.ndarray:
    try:
        v = np.load(file, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{file}: not a readable .npy array ({e})") from None
    v = np.asarray(v, dtype=np.float64).ravel()
    if v.shape != (n,):
        raise ValueError(f"{file}: expected a distribution over {n} classes, got {v.size} values")
    return v


class TaskonomySource(FileSource):
    """Rows of Taskonomy read lazily: ``x`` = the RGB image ``uint8 (3, H, W)``; ``maps`` = the
    row's dense targets (contract shapes) for the dense tasks whose file exists.

    Parameters: ``index`` (the file index), ``buildings`` (names), ``building`` (index into
    ``buildings``) / ``point`` / ``view`` per row,
    ``dense`` (task name -> domain), ``present`` (task name -> bool per row),
    ``mask_from_depth`` (NaN where the row's depth is 65535, in every regression map).
    """

    def __init__(self, index: TaskonomyIndex, buildings: Sequence[str], building: np.ndarray,
                 point: np.ndarray, view: np.ndarray,
                 dense: Mapping[str, str], present: Mapping[str, np.ndarray], depth_present: np.ndarray,
                 mask_from_depth: bool = True) -> None:
        self.index = index
        self.buildings = [str(b) for b in buildings]
        self.building = np.asarray(building, dtype=np.int64)
        self.point = np.asarray(point, dtype=np.int64)
        self.view = np.asarray(view, dtype=np.int64)
        self.dense = dict(dense)
        self.present = {k: np.asarray(v, dtype=bool) for k, v in present.items()}
        self.depth_present = np.asarray(depth_present, dtype=bool)
        self.mask_from_depth = mask_from_depth

    def __len__(self) -> int:
        return len(self.point)

    def path(self, domain: str, i: int) -> Path:
        return self.index.file(domain, self.buildings[self.building[i]], int(self.point[i]), int(self.view[i]))

    def read(self, i: int) -> Sample:
        rgb = _read_png(self.path("rgb", i), 8)
        if rgb.ndim != 3 or rgb.shape[2] < 3:
            raise ValueError(f"{self.path('rgb', i)}: expected an RGB image, got shape {rgb.shape}")
        x = np.ascontiguousarray(rgb[..., :3].transpose(2, 0, 1)).astype(np.uint8)
        maps: dict[str, np.ndarray] = {}
        invalid = None
        if self.mask_from_depth and self.depth_present[i]:
            depth_raw = _read_png(self.path("depth_zbuffer", i), 16)
            invalid = (depth_raw if depth_raw.ndim == 2 else depth_raw[..., 0]) == DEPTH_INVALID
        for task, domain in self.dense.items():
            if not self.present[task][i]:
                continue
            raw = _read_png(self.path(domain, i), DOMAINS[domain].bits)
            m = decode_domain(domain, raw)
            if invalid is not None and m.dtype.kind == "f" and invalid.shape == m.shape[-2:]:
                m[:, invalid] = np.nan
            maps[task] = m
        return Sample(x, maps)

    def describe(self) -> str:
        return f"TaskonomySource({self.index.root}, {len(self)} rows, {sorted(self.dense)})"


# --- loading ----------------------------------------------------------------------------------------
def _find_root(path: str | os.PathLike[str] | None) -> Path:
    root = data_root(path)
    if root is None:
        raise missing_data_error("Taskonomy", "rgb/taskonomy", [], SOURCE, root_given=False)
    cands = [root, root / "taskonomy", root / "taskonomy_medium", root / "taskonomy" / "taskonomy_medium"]
    for c in cands:
        if any((c / d.folder / "taskonomy").is_dir() for d in DOMAINS.values()):
            return c
    raise MissingDataError(
        f"Taskonomy: no '<domain>/taskonomy/<building>/' folder under {[str(c) for c in cands]}. "
        f"Get it from {SOURCE} (see docs/datasets.md)."
    )


def _find_file(name: str, given: str | os.PathLike[str] | None, root: Path, what: str) -> Path:
    if given is not None:
        return Path(given).expanduser()
    cands = [root, root.parent, root / "splits_taskonomy", root.parent / "splits_taskonomy"]
    for c in cands:
        if (c / name).is_file():
            return c / name
    raise missing_data_error(f"Taskonomy ({what})", name, cands, SOURCE)


def _resolve_tasks(tasks: str | Sequence[str]) -> list[str]:
    if isinstance(tasks, str):
        if tasks == "gmtl":
            return list(GMTL_TASKS)
        if tasks == "mtcrl":
            return list(MTCRL_TASKS)
        tasks = [tasks]
    out = []
    for t in tasks:
        if t not in MTCRL_TASKS:
            raise ValueError(f"tasks: unknown Taskonomy task {t!r}; valid: 'gmtl', 'mtcrl' or names from "
                             f"{list(MTCRL_TASKS)}")
        if t in out:
            raise ValueError(f"tasks: {t!r} is listed twice")
        out.append(t)
    if not out:
        raise ValueError("tasks: no task selected")
    return out


def _check_splits(groups: Mapping[str, Sequence[str]], where: str) -> dict[str, list[str]]:
    out = {s: [str(b) for b in groups.get(s, [])] for s in ("train", "valid", "test")}
    extra = sorted(set(groups) - set(out))
    if extra:
        raise ValueError(f"split: unknown split name(s) {extra}; expected 'train', 'valid', 'test'")
    seen: dict[str, str] = {}
    for s, bs in out.items():
        for b in bs:
            if b in seen and seen[b] != s:
                raise ValueError(f"{where}: building {b!r} is in two splits ({seen[b]!r} and {s!r})")
            seen[b] = s
        if not bs:
            raise ValueError(f"{where}: the {s} split has no building")
    return out


def _class_labels(index: TaskonomyIndex, cache: _FolderCache, domain: str, building: str,
                  pv: np.ndarray, sel: np.ndarray, n_all: int) -> np.ndarray:
    """Argmax over ``sel`` of the ``.npy`` of every ``(point, view)`` in ``pv``; −1 where absent."""
    mtime = index.mtime(domain, building)
    if mtime is None:
        return np.full(len(pv), -1, dtype=np.int64)
    avail = index.pairs(domain, building)
    if avail is None:  # the folder was removed after the stat above: absent as well
        return np.full(len(pv), -1, dtype=np.int64)
    key = f"{domain}/{building}"
    hit = cache.get(key, mtime)
    if hit is None:
        labels = np.empty(len(avail), dtype=np.int64)
        for k, (p, v) in enumerate(avail):  # one small file per row: I/O, cached afterwards
            labels[k] = int(np.argmax(_read_distribution(index.file(domain, building, int(p), int(v)), n_all)[sel]))
        cache.put(key, mtime, {"pv": avail.ravel().astype(np.int32), "label": labels.astype(np.int32)})
    elif not np.array_equal(hit["pv"], avail.ravel()):  # listing re-made since: recompute
        cache.entries.pop(key)
        return _class_labels(index, cache, domain, building, pv, sel, n_all)
    else:
        labels = hit["label"].astype(np.int64)
    return _lookup(avail, labels, pv)


def _lookup(avail: np.ndarray, values: np.ndarray, pv: np.ndarray) -> np.ndarray:
    """``values`` of the rows of sorted ``avail`` matching each row of ``pv``; −1 where absent."""
    out = np.full(len(pv), -1, dtype=np.int64)
    if not len(avail) or not len(pv):
        return out
    base = int(max(avail[:, 1].max(), pv[:, 1].max())) + 1
    ka = avail[:, 0] * base + avail[:, 1]
    kq = pv[:, 0] * base + pv[:, 1]
    pos = np.clip(np.searchsorted(ka, kq), 0, len(ka) - 1)
    hit = ka[pos] == kq
    out[hit] = values[pos[hit]]
    return out


def load_taskonomy(
    path: str | os.PathLike[str] | None = None,
    *,
    tasks: str | Sequence[str] = "mtcrl",
    split: Literal["csv", "buildings"] | Mapping[str, Sequence[str]] | None = None,
    split_size: str = "medium",
    split_csv: str | os.PathLike[str] | None = None,
    building_counts: tuple[int, int, int] = (48, 3, 3),
    seed: int = 0,
    object_classes: Literal["all", "gmtl"] | Sequence[int] = "all",
    scene_classes: Literal["all", "gmtl"] | Sequence[int] = "all",
    class_index_file: str | os.PathLike[str] | None = None,
    object_classes_file: str | os.PathLike[str] | None = None,
    scene_hierarchy_file: str | os.PathLike[str] | None = None,
    labels_only: bool = False,
    drop_incomplete: bool | None = None,
    mask_from_depth: bool = True,
    transform: Transform | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> DatasetSplits:
    """Taskonomy as a :class:`DatasetSplits` on the streamed-data contract.

    Parameters
    ----------
    path : the directory holding ``<domain>/taskonomy/<building>/`` (or a data root holding it
        in ``taskonomy/``); ``None`` uses ``$CAUSALMTL_DATA``.
    tasks : ``"mtcrl"`` (the nine tasks of :data:`MTCRL_TASKS`, MT-CRL Table 8 + depth),
        ``"gmtl"`` (object and scene with GMTL's class selections, i.e. ``object_classes`` and
        ``scene_classes`` default to ``"gmtl"``), or task names.
    split : ``None`` = ``"csv"`` for ``tasks="gmtl"`` (the authors' medium split), else
        ``"buildings"``; ``"buildings"`` (the buildings present, permuted with ``default_rng(seed)``, cut
        into ``building_counts`` train/valid/test: MT-CRL's 48/3/3), ``"csv"`` (the official
        ``train_val_test_<split_size>.csv``, or ``split_csv``; buildings listed but absent on
        disk are skipped and named in ``meta["absent_buildings"]``), or a mapping
        ``{"train": [...], "valid": [...], "test": [...]}`` of building ids.
    object_classes, scene_classes : ``"all"`` (1,000 / 365 classes), ``"gmtl"`` (the class
        lists, files below), or explicit class indices; the label is the argmax over them.
    class_index_file, object_classes_file, scene_hierarchy_file : the GMTL class-list files
        (defaults: :data:`GMTL_FILES` looked up in the data directory and its parent).
    labels_only : read no image and list no image folder beyond what the labels need: inputs
        are ``{"point": int64, "view": int64}``; only for classification tasks.
    drop_incomplete : drop rows missing any task's file (the GMTL code skips such rows);
        default True for the GMTL pair, else False (missing targets stay missing).
    mask_from_depth : NaN in every dense regression map where the row's depth is 65535.
    transform : set on every split (``(sample, rng) -> sample``, :mod:`causalmtl.data.transforms`).
        Images are ``uint8`` at the stored size (512²); pass e.g. ``Compose([Resize(256),
        ToFloat(), Normalize(IMAGENET_MEAN, IMAGENET_STD)])``.
    cache_dir : where the index and label caches go (default: module docstring).

    Returns
    -------
    DatasetSplits
        ``env`` = building id (position in ``meta["environments"]``). ``meta``: ``environments``
        (building names), ``buildings`` (split -> names), ``tasks`` (task -> domain),
        ``object_classes`` / ``scene_classes`` (selected class indices), ``directory``,
        ``cache_dir``, ``listings`` (folders listed this call; 0 when the cache was fresh),
        ``absent_buildings``, ``dropped`` (split -> rows dropped as incomplete), ``split``.
    """
    names = _resolve_tasks(tasks)
    gmtl = isinstance(tasks, str) and tasks == "gmtl"
    if gmtl:
        object_classes = "gmtl" if object_classes == "all" else object_classes
        scene_classes = "gmtl" if scene_classes == "all" else scene_classes
    if drop_incomplete is None:
        drop_incomplete = gmtl
    if split is None:
        split = "csv" if gmtl else "buildings"
    task_domain = {t: MTCRL_TASKS[t][0] for t in names}
    dense = {t: d for t, d in task_domain.items() if MTCRL_TASKS[t][1].is_dense}
    if labels_only and dense:
        raise ValueError(f"labels_only=True reads no image, but tasks {sorted(dense)} are dense maps; "
                         f"use labels_only with classification tasks only ('object', 'scene')")
    root = _find_root(path)
    index = TaskonomyIndex(root, None if cache_dir is None else Path(cache_dir))

    # class selections
    sel: dict[str, np.ndarray] = {}
    for task, choice, n_all in (("object", object_classes, N_IMAGENET), ("scene", scene_classes, N_PLACES)):
        if task not in names:
            continue
        if isinstance(choice, str) and choice == "all":
            sel[task] = np.arange(n_all)
        elif isinstance(choice, str) and choice == "gmtl":
            if task == "object":
                ci = read_imagenet_class_index(_find_file(GMTL_FILES["class_index"], class_index_file, root, "ImageNet class index"))
                sel[task] = read_selected_object_classes(
                    _find_file(GMTL_FILES["object_classes"], object_classes_file, root, "selected ImageNet classes"), ci)
            else:
                sel[task] = read_scene_hierarchy(
                    _find_file(GMTL_FILES["scene_hierarchy"], scene_hierarchy_file, root, "Places scene hierarchy"))
        else:
            s = np.asarray(choice, dtype=np.int64).ravel()
            if not len(s) or s.min() < 0 or s.max() >= n_all or len(np.unique(s)) != len(s):
                raise ValueError(f"{task}_classes must be distinct indices in [0, {n_all}), got {choice!r}")
            sel[task] = s
        if len(sel[task]) < 2:
            raise ValueError(f"{task}: at least 2 classes must be selected, got {len(sel[task])}")

    # which folder defines the rows: rgb (rows = images), or in labels-only mode without rgb the
    # first label domain
    row_domain = "rgb"
    if labels_only and not index.buildings("rgb"):
        row_domain = task_domain[names[0]]
    present_b = index.buildings(row_domain)
    if not present_b:
        raise MissingDataError(f"Taskonomy: no building folder in {root / DOMAINS[row_domain].folder / 'taskonomy'}; "
                               f"get the data from {SOURCE}")

    # splits of buildings
    absent: list[str] = []
    if isinstance(split, Mapping):
        groups = _check_splits(split, "split")
        unknown = [b for g in groups.values() for b in g if b not in present_b]
        if unknown:
            raise ValueError(f"split: building(s) {unknown[:5]} have no {row_domain}/taskonomy/<building> folder "
                             f"under {root}")
        split_name = "given"
    elif split == "csv":
        csv = _find_file(f"train_val_test_{split_size}.csv", split_csv, root, "split CSV")
        listed = _check_splits(read_split_csv(csv), str(csv))
        groups = {s: [b for b in bs if b in present_b] for s, bs in listed.items()}
        absent = sorted(b for bs in listed.values() for b in bs if b not in present_b)
        if absent:
            logger.info("Taskonomy: %d buildings of %s are not on disk (skipped)", len(absent), csv.name)
        groups = _check_splits(groups, f"{csv} (buildings present under {root})")
        split_name = csv.name
    elif split == "buildings":
        counts = tuple(int(c) for c in building_counts)
        if len(counts) != 3 or min(counts) < 1:
            raise ValueError(f"building_counts must be three ints >= 1, got {building_counts!r}")
        if sum(counts) > len(present_b):
            raise ValueError(f"building_counts {counts} need {sum(counts)} buildings; only "
                             f"{len(present_b)} are under {root / DOMAINS[row_domain].folder / 'taskonomy'}")
        perm = np.random.default_rng(seed).permutation(len(present_b))
        edges = np.cumsum([0, *counts])
        groups = {s: sorted(present_b[i] for i in perm[edges[k]:edges[k + 1]])
                  for k, s in enumerate(("train", "valid", "test"))}
        split_name = f"buildings(seed={seed}, counts={counts})"
    else:
        raise ValueError(f"split must be 'csv', 'buildings' or a mapping of building lists, got {split!r}")

    environments = sorted(b for bs in groups.values() for b in bs)
    env_of = {b: k for k, b in enumerate(environments)}
    label_caches = {
        t: _FolderCache(index.cache_dir / f"labels_{t}_{hashlib.sha1(sel[t].tobytes()).hexdigest()[:12]}.npz")
        for t in sel
    }
    need_depth = mask_from_depth and any(MTCRL_TASKS[t][1].kind == "dense" for t in dense)

    out, dropped, buildings_meta = {}, {}, {}
    task_objs: list[Task] = []
    for t in names:
        task_obj = MTCRL_TASKS[t][1]
        if t in sel:
            task_obj = Task(t, "classification", len(sel[t]))
        task_objs.append(task_obj)
    for sname, blist in groups.items():
        cols: dict[str, list[np.ndarray]] = {t: [] for t in names}
        bcol, pcol, depth_col = [], [], []
        for b in blist:
            pv = index.pairs(row_domain, b)
            if pv is None:
                pv = np.zeros((0, 2), np.int64)
            for t, domain in task_domain.items():
                if index.mtime(domain, b) is None:
                    raise MissingDataError(
                        f"Taskonomy: task {t!r} needs the domain folder {domain!r} of building {b!r}, "
                        f"missing: {index.folder(domain, b)}. Download that domain ({SOURCE}) or drop the task.")
                if t in sel:
                    lab = _class_labels(index, label_caches[t], domain, b, pv, sel[t],
                                        N_IMAGENET if t == "object" else N_PLACES)
                    cols[t].append(lab)
                else:
                    avail = index.pairs(domain, b)
                    if avail is None:
                        raise MissingDataError(f"Taskonomy: the domain folder {domain!r} of building {b!r} "
                                               f"was removed while loading: {index.folder(domain, b)}")
                    cols[t].append(_lookup(avail, np.ones(len(avail), np.int64), pv))
            if need_depth:
                dp = index.pairs("depth_zbuffer", b)
                depth_col.append(np.zeros(len(pv), np.int64) if dp is None
                                 else _lookup(dp, np.ones(len(dp), np.int64), pv))
            bcol.append(np.full(len(pv), env_of[b], dtype=np.int64))
            pcol.append(pv)
        pv_all = np.concatenate(pcol) if pcol else np.zeros((0, 2), np.int64)
        env = np.concatenate(bcol) if bcol else np.zeros(0, np.int64)
        raw = {t: np.concatenate(c) for t, c in cols.items()}
        keep = np.ones(len(pv_all), dtype=bool)
        if drop_incomplete:
            for t in names:
                keep &= raw[t] >= 0
        dropped[sname] = int((~keep).sum())
        if not keep.any():
            raise ValueError(f"Taskonomy: the {sname} split (buildings {blist}) has no row"
                             + (" with every task's file" if drop_incomplete else ""))
        pv_all, env = pv_all[keep], env[keep]
        targets = np.empty((len(pv_all), len(names)), dtype=np.float64)
        for j, t in enumerate(names):
            v = raw[t][keep]
            if t in sel:
                targets[:, j] = np.where(v >= 0, v, np.nan)
            else:
                targets[:, j] = np.where(v >= 0, 1.0, np.nan)
        if all(task.kind == "classification" for task in task_objs):
            targets = np.where(np.isnan(targets), -1, targets).astype(np.int64)
        if labels_only:
            inputs: Inputs = {"point": pv_all[:, 0].copy(), "view": pv_all[:, 1].copy()}
        else:
            depth_present = (np.concatenate(depth_col)[keep] > 0) if need_depth else np.zeros(len(pv_all), bool)
            present = {t: raw[t][keep] >= 0 for t in dense}
            inputs = TaskonomySource(index, environments, env, pv_all[:, 0], pv_all[:, 1], dense, present,
                                     depth_present, mask_from_depth)
        out[sname] = MultiTaskDataset(inputs=inputs, targets=targets, tasks=tuple(task_objs), env=env,
                                      name=f"taskonomy/{sname}", transform=None if labels_only else transform)
        buildings_meta[sname] = list(blist)
    index.save()
    for c in label_caches.values():
        try:
            c.save()
        except OSError as e:
            logger.warning("could not write the Taskonomy label cache %s (%s)", c.file, e)
    return DatasetSplits(
        out["train"], out["valid"], out["test"], name="taskonomy",
        meta={"environments": environments, "buildings": buildings_meta, "tasks": task_domain,
              "object_classes": sel.get("object"), "scene_classes": sel.get("scene"),
              "directory": str(root), "cache_dir": str(index.cache_dir), "listings": index.listings,
              "absent_buildings": absent, "dropped": dropped, "split": split_name},
    )  # fmt: skip


def paper_transforms(resize: int = 256, crop: int = 224) -> dict[str, Any]:
    """The GMTL papers' image pipeline as contract transforms: ``{"train": ..., "eval": ...}``.

    Train: resize to ``resize``², random ``crop``² crop, horizontal flip (p = 0.5; the normal
    map's x component is negated), ``uint8`` → [0, 1], ImageNet normalisation. Eval: resize,
    centre crop, the same scaling (GMTL §5.2: 256 → 224). Maps follow the image geometry.
    """
    return train_eval_transforms(resize, crop, flip=True, normalize=True)


# --- synthetic copy in the real layout ---------------------------------------------------------------
def write_synthetic_taskonomy(
    directory: str | os.PathLike[str],
    *,
    buildings: int | Sequence[str] = 6,
    points: int = 6,
    views: int = 2,
    size: int = 64,
    seed: int = 0,
    n_objects: int = 100,
    n_scenes: int = 64,
    domains: Sequence[str] | None = None,
    split_counts: tuple[int, int, int] | None = None,
) -> Path:
    """Write a small Taskonomy copy in the real layout, with learnable structure.

    Writes every domain of :data:`DOMAINS` (or ``domains``) for ``buildings`` × ``points`` ×
    ``views`` rows at ``size``² pixels, the GMTL class-list files (:data:`GMTL_FILES`: a
    1,000-class index of synthetic names, ``n_objects`` selected classes, a 365-row scene
    hierarchy with ``n_scenes`` categories flagged) and ``splits_taskonomy/train_val_test_tiny.csv``
    (``split_counts`` buildings, default about 4:1:1). Each building has its own scene mixture
    (the environment shift); the object class depends on the scene (a confounded joint). The
    image encodes both: the background colour is a function of the scene class and a square's
    colour of the object class; depth grows with the row's distance and is nearer on the square,
    normals, curvature, occlusion edges and keypoints derive from that geometry, and the
    semantic map labels the square's pixels with ``1 + object % 16`` (+1 offset, 0 = uncertain
    border pixels). Returns ``directory``.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    root = Path(directory)
    names = [f"bldg{k:02d}" for k in range(buildings)] if isinstance(buildings, int) else [str(b) for b in buildings]
    if len(names) < 3 or points < 1 or views < 1 or size < 8:
        raise ValueError(f"need >= 3 buildings, points >= 1, views >= 1, size >= 8; got {len(names)}, "
                         f"{points}, {views}, {size}")
    if not (2 <= n_objects <= N_IMAGENET and 2 <= n_scenes <= N_PLACES):
        raise ValueError(f"n_objects in [2, {N_IMAGENET}] and n_scenes in [2, {N_PLACES}], got {n_objects}, {n_scenes}")
    doms = list(DOMAINS) if domains is None else list(domains)
    obj_sel = np.sort(rng.choice(N_IMAGENET, n_objects, replace=False))
    scene_sel = np.sort(rng.choice(N_PLACES, n_scenes, replace=False))
    # class-list files in the formats the GMTL code reads
    root.mkdir(parents=True, exist_ok=True)
    (root / GMTL_FILES["class_index"]).write_text(
        "{" + ",\n ".join(f"{i}: 'synthetic class {i}, thing {i}'" for i in range(N_IMAGENET)) + "}\n")
    (root / GMTL_FILES["object_classes"]).write_text(
        "".join(f"n{9000000 + i:08d} synthetic class {i}, thing {i},\n" for i in obj_sel))
    flags = np.zeros((N_PLACES, 2), dtype=int)
    flags[scene_sel, rng.integers(0, 2, n_scenes)] = 1
    header = ["category", "indoor", SCENE_COLUMNS[0], SCENE_COLUMNS[1]]
    rows = [",".join(f'"{h}"' for h in header)]
    rows += [f"'/s/scene_{i}',1,{flags[i, 0]},{flags[i, 1]}" for i in range(N_PLACES)]
    (root / GMTL_FILES["scene_hierarchy"]).write_text("\n".join(rows) + "\n")
    n_b = len(names)
    counts = split_counts or (n_b - 2 * max(1, n_b // 6), max(1, n_b // 6), max(1, n_b // 6))
    if sum(counts) > n_b or min(counts) < 1:
        raise ValueError(f"split_counts {counts} do not fit {n_b} buildings")
    flag = np.zeros((n_b, 3), dtype=int)
    for k, (a, b) in enumerate(zip(np.cumsum([0, *counts[:2]]), np.cumsum(counts))):
        flag[a:b, k] = 1
    (root / "splits_taskonomy").mkdir(exist_ok=True)
    (root / "splits_taskonomy" / "train_val_test_tiny.csv").write_text(
        "id,train,val,test\n" + "".join(f"{b},{f[0]},{f[1]},{f[2]}\n" for b, f in zip(names, flag)))
    # a confounded joint: scene ~ building mixture; object | scene concentrated on a few classes
    obj_given_scene = rng.dirichlet(np.full(n_objects, 0.05), size=n_scenes)
    palette_o = rng.integers(0, 256, size=(n_objects, 3))
    palette_s = rng.integers(0, 256, size=(n_scenes, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    for b in names:
        mix = rng.dirichlet(np.full(n_scenes, 0.1))
        folders = {d: root / DOMAINS[d].folder / "taskonomy" / b for d in doms}
        for f in folders.values():
            f.mkdir(parents=True, exist_ok=True)
        for p in range(points):
            scene = int(rng.choice(n_scenes, p=mix))
            obj = int(rng.choice(n_objects, p=obj_given_scene[scene]))
            for v in range(views):  # one set of files per row: the loop is I/O
                far = 1.0 + 4.0 * rng.random()
                half = int(rng.integers(size // 8, size // 3))
                cy, cx = rng.integers(half, size - half, size=2)
                sq = (np.abs(yy - cy) < half) & (np.abs(xx - cx) < half)
                depth_m = far + 0.02 * yy
                depth_m = np.where(sq, far * 0.5 + 0.01 * (np.abs(yy - cy) + np.abs(xx - cx)), depth_m)
                depth = np.minimum(np.round(depth_m * DEPTH_UNITS_PER_METRE), DEPTH_INVALID - 1).astype(np.uint16)
                depth[: max(1, size // 16)] = DEPTH_INVALID  # a band without geometry at the top
                gy, gx = np.gradient(depth_m)
                n = np.stack([-gx, -gy, np.ones_like(gx)])
                n /= np.linalg.norm(n, axis=0, keepdims=True)
                rgb = np.where(sq[..., None], palette_o[obj], palette_s[scene]) + rng.integers(0, 20, (size, size, 3))
                edge = sq ^ (np.abs(yy - cy) < half - 1) & (np.abs(xx - cx) < half - 1)
                corners = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2.0 * half**2))
                seg = np.where(sq, 2 + obj % 16, 1).astype(np.uint8)
                seg[edge] = 0
                base = f"point_{p}_view_{v}_domain_"
                files = {
                    "rgb": np.clip(rgb, 0, 255).astype(np.uint8),
                    "depth_zbuffer": depth,
                    "normal": np.clip(np.round((n.transpose(1, 2, 0) + 1) * 127.5), 0, 255).astype(np.uint8),
                    "segment_semantic": seg,
                    "principal_curvature": np.stack([np.where(edge, 200, 127), np.where(sq, 140, 127),
                                                     np.full_like(yy, 127)], -1).astype(np.uint8),
                    "edge_occlusion": (edge * 40000).astype(np.uint16),
                    "keypoints2d": (corners * 30000).astype(np.uint16),
                    "keypoints3d": (corners * sq * 50000).astype(np.uint16),
                }
                for d in doms:
                    dom = DOMAINS[d]
                    target = folders[d] / f"{base}{dom.suffix}.{dom.ext}"
                    if d == "class_object":
                        logits = rng.normal(0, 1, N_IMAGENET)
                        logits[obj_sel[obj]] += 8.0
                        np.save(target, (np.exp(logits) / np.exp(logits).sum()).astype(np.float32))
                    elif d == "class_scene":
                        logits = rng.normal(0, 1, N_PLACES)
                        logits[scene_sel[scene]] += 8.0
                        np.save(target, (np.exp(logits) / np.exp(logits).sum()).astype(np.float32))
                    else:
                        Image.fromarray(files[d]).save(target)
    return root
