"""Multi-MNIST (MT-CRL App. C.1/C.2) from the MNIST files in their standard IDX format.

The four MNIST files are read from a *data directory*: the ``data_dir`` argument, else the
directory named by the environment variable ``CAUSALMTL_DATA``. In that directory (or its
sub-directory ``mnist/`` or ``MNIST/raw/``) the loader looks for

==========================  ==============================  ===========================
file (``.gz`` optional)     content                          shape
==========================  ==============================  ===========================
``train-images-idx3-ubyte``  training images, uint8           ``(60000, 28, 28)``
``train-labels-idx1-ubyte``  training labels 0–9, uint8       ``(60000,)``
``t10k-images-idx3-ubyte``   test images                      ``(10000, 28, 28)``
``t10k-labels-idx1-ubyte``   test labels                      ``(10000,)``
==========================  ==============================  ===========================

Checks: each file's IDX structure is verified by :func:`causalmtl.data.idx.read_idx` (magic
number, type, dimensions, exact length; an error names the file and what was found); image and
label counts must agree and labels must lie in 0–9 (errors); a count other than the official
60,000 / 10,000 and a SHA-256 digest other than the official one only **warn**
(:class:`ChecksumWarning`) — a re-encoded copy is usable. A missing file raises
:class:`MissingMNISTError` naming every missing file, the directories searched and where to
get the files. :func:`download_mnist` fetches them when the network allows it.

Multi-MNIST examples are two 28×28 digits side by side, ``(1, 28, 56)``; the tasks are the two
digit labels. The source pools: **train** and **valid** pools are a class-stratified split of
the official training images (``valid_fraction``, default 1/6), the **test** pool is the official
test set, so no image appears in two splits. The label protocols (``"biased"`` and MT-CRL's
``"pairs"``) are those of :mod:`causalmtl.data._two_digit`. ``meta["source_index"]`` indexes
the concatenation ``[train images; test images]`` (test image ``i`` is ``60000 + i``).
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from ._common import SeedLike, as_generator
from ._sources import DATA_ENV, MissingDataError, data_root
from ._two_digit import Protocol, compose_two_digit_splits, stratified_pools
from .base import DatasetSplits
from .idx import IDXFormatError, read_idx, sha256_file

logger = logging.getLogger(__name__)

SUBDIRS: tuple[str, ...] = ("", "mnist", "MNIST/raw")

#: Logical name → (file name without ``.gz``, IDX type code, shape with None = any count, official count)
MNIST_FILES: dict[str, tuple[str, int, tuple[int | None, ...], int]] = {
    "train_images": ("train-images-idx3-ubyte", 0x08, (None, 28, 28), 60000),
    "train_labels": ("train-labels-idx1-ubyte", 0x08, (None,), 60000),
    "test_images": ("t10k-images-idx3-ubyte", 0x08, (None, 28, 28), 10000),
    "test_labels": ("t10k-labels-idx1-ubyte", 0x08, (None,), 10000),
}

#: SHA-256 of the official files: the ``.gz`` files as published, and the uncompressed files
#: where known (the digest of the uncompressed official training images is not recorded here,
#: so that check is skipped for an uncompressed ``train-images-idx3-ubyte``).
OFFICIAL_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

#: Where to get the files (the first is the mirror torchvision uses; yann.lecun.com is the origin).
MNIST_SOURCES: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)


class MissingMNISTError(MissingDataError):
    """MNIST files are absent; the message names them, the places searched and the sources.

    A :class:`causalmtl.data.MissingDataError` (so both ``FileNotFoundError`` and ``ValueError``).
    """


class ChecksumWarning(UserWarning):
    """A data file's SHA-256 differs from the official value, or its count is unofficial."""


def mnist_root(data_dir: str | os.PathLike[str] | None) -> Path | None:
    """``data_dir`` if given, else ``$CAUSALMTL_DATA``, else None."""
    return data_root(data_dir)


def find_mnist_files(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Locate the four MNIST files (``.gz`` or uncompressed) in the data directory.

    Raises
    ------
    MissingMNISTError
        Naming every missing file, the directories searched and where to get the files.
    """
    root = mnist_root(data_dir)
    dirs = [] if root is None else [root / s if s else root for s in SUBDIRS]
    found: dict[str, Path] = {}
    missing: list[str] = []
    for key, (fname, *_rest) in MNIST_FILES.items():
        hit = next((d / n for d in dirs for n in (fname + ".gz", fname) if (d / n).is_file()), None)
        if hit is None:
            missing.append(fname + "[.gz]")
        else:
            found[key] = hit
    if missing:
        where = ", ".join(str(d) for d in dirs) if dirs else "(no data directory)"
        hint = (
            f" No data directory was given: pass data_dir=... or set the environment variable {DATA_ENV}."
            if root is None
            else ""
        )
        raise MissingMNISTError(
            f"MNIST: missing file(s) {', '.join(missing)}; expected in one of: {where}.{hint} "
            f"Get the four IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            f"t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) from {' or '.join(MNIST_SOURCES)} "
            f"or call causalmtl.data.download_mnist(dir)."
        )
    return found


def _check_sha256(path: Path) -> None:
    official = OFFICIAL_SHA256.get(path.name)
    if official is None:
        logger.info("no official SHA-256 recorded for %s; digest check skipped", path)
        return
    digest = sha256_file(path)
    if digest != official:
        warnings.warn(
            f"{path}: SHA-256 {digest} differs from the official {official}; the file's structure "
            "is valid, so it is used (e.g. a re-encoded copy)",
            ChecksumWarning,
            stacklevel=3,
        )


def load_mnist(data_dir: str | os.PathLike[str] | None = None, verify_sha256: bool = True) -> dict[str, np.ndarray]:
    """Read and verify the four MNIST files.

    Returns
    -------
    dict with ``"train_images"`` ``(n, 28, 28)`` uint8, ``"train_labels"`` ``(n,)`` int64,
    ``"test_images"``, ``"test_labels"``.

    Raises
    ------
    MissingMNISTError
        Files absent (see :func:`find_mnist_files`).
    IDXFormatError
        A structural error in a file, or image and label counts that disagree, or a label
        outside 0–9.
    """
    paths = find_mnist_files(data_dir)
    out: dict[str, np.ndarray] = {}
    for key, (_fname, code, shape, official_n) in MNIST_FILES.items():
        path = paths[key]
        arr = read_idx(path, expected_dtype=code, expected_shape=shape)
        if verify_sha256:
            _check_sha256(path)
        if arr.shape[0] != official_n:
            warnings.warn(
                f"{path}: {arr.shape[0]} items where the official file has {official_n}",
                ChecksumWarning,
                stacklevel=2,
            )
        out[key] = arr.astype(np.int64) if key.endswith("labels") else arr
    for part in ("train", "test"):
        n_img, n_lab = len(out[f"{part}_images"]), len(out[f"{part}_labels"])
        if n_img != n_lab:
            raise IDXFormatError(
                f"{paths[f'{part}_images']} holds {n_img} images but {paths[f'{part}_labels']} "
                f"holds {n_lab} labels; the counts must agree"
            )
        lab = out[f"{part}_labels"]
        bad = (lab < 0) | (lab > 9)
        if bad.any():
            i = int(np.argmax(bad))
            raise IDXFormatError(f"{paths[f'{part}_labels']}: label {int(lab[i])} at item {i} is not a digit 0-9")
    return out


def download_mnist(
    dest: str | os.PathLike[str],
    base_url: str = MNIST_SOURCES[0],
    timeout: float = 60.0,
) -> dict[str, Path]:
    """Download the four ``.gz`` MNIST files into ``dest`` (skipping files already there).

    Needs network access; files are written atomically (``.part`` then rename). Structure and
    SHA-256 are checked when the files are loaded (:func:`load_mnist`).
    """
    d = Path(dest).expanduser()
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, (fname, *_rest) in MNIST_FILES.items():
        target = d / (fname + ".gz")
        if not target.is_file():
            url = base_url.rstrip("/") + "/" + fname + ".gz"
            logger.info("downloading %s -> %s", url, target)
            part = target.with_name(target.name + ".part")
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as fh:  # noqa: S310
                shutil.copyfileobj(resp, fh)
            part.replace(target)
        out[key] = target
    return out


def make_multi_mnist(
    data_dir: str | os.PathLike[str] | None = None,
    protocol: Protocol = "pairs",
    n_train: int = 20_000,
    n_valid: int = 5_000,
    n_test: int = 5_000,
    m: float = 0.9,
    train_joint: npt.ArrayLike | None = None,
    valid_joint: npt.ArrayLike | None = None,
    test_joint: npt.ArrayLike | None = None,
    valid_fraction: float = 1 / 6,
    pair_ratios: Sequence[float] = (3, 1, 1),
    dtype: str = "float32",
    seed: SeedLike = 0,
    download: bool = False,
    verify_sha256: bool = True,
    valid_pairs: str = "own",
) -> DatasetSplits:
    """Multi-MNIST train/valid/test splits (MT-CRL C.1/C.2) from the IDX files.

    Parameters are those of :func:`causalmtl.data.make_multi_digits` (same protocols and
    joint tables over 10 × 10 digit pairs), plus:

    data_dir : path, optional
        Directory with the MNIST files (default ``$CAUSALMTL_DATA``; see module docstring).
    valid_fraction : float in (0, 1)
        Share of the official training images that forms the valid pool (class-stratified).
    dtype : ``"float32"`` (pixels / 255) or ``"uint8"``
        At the default sizes float32 inputs take 30,000 × 6,272 bytes ≈ 188 MB.
    valid_pairs : ``"own"`` or ``"train"``, see :func:`causalmtl.data.make_multi_digits`
    download : bool
        Fetch missing files into ``data_dir`` with :func:`download_mnist` first.

    Returns
    -------
    DatasetSplits
        Inputs ``(N, 1, 28, 56)``; targets int64 ``(N, 2)``; env ids train 0, valid 1, test 2;
        ``meta`` as for Multi-Digits (``"causal_blocks"`` = left / right pixel halves).
    """
    vf = float(valid_fraction)
    if not (np.isfinite(vf) and 0.0 < vf < 1.0):
        raise ValueError(f"valid_fraction must lie strictly between 0 and 1, got {valid_fraction!r}")
    if download:
        root = mnist_root(data_dir)
        if root is None:
            raise ValueError(f"download=True needs a data_dir (or {DATA_ENV}) to download into")
        try:
            find_mnist_files(root)
        except MissingMNISTError:
            download_mnist(root)
    data = load_mnist(data_dir, verify_sha256=verify_sha256)
    rng = as_generator(seed)
    n_tr = len(data["train_labels"])
    images = np.concatenate([data["train_images"], data["test_images"]])
    labels = np.concatenate([data["train_labels"], data["test_labels"]])
    pools = stratified_pools(data["train_labels"], {"train": 1.0 - vf, "valid": vf}, rng, "the MNIST training file")
    pools["test"] = n_tr + np.arange(len(data["test_labels"]))
    return compose_two_digit_splits(
        images,
        labels,
        pools,
        {"train": n_train, "valid": n_valid, "test": n_test},
        protocol,
        rng,
        name="multi-mnist",
        source="MNIST",
        m=m,
        train_joint=train_joint,
        valid_joint=valid_joint,
        test_joint=test_joint,
        pair_ratios=pair_ratios,
        dtype=dtype,
        valid_pairs=valid_pairs,
        scale=255.0,
    )
