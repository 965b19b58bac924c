"""IDX reader/writer round trips, corrupted files, and Multi-MNIST from small IDX files."""

from __future__ import annotations

import gzip
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from _shared_data import SHARED_DATA
from causalmtl.data import (
    ChecksumWarning,
    IDXFormatError,
    MissingMNISTError,
    download_mnist,
    find_mnist_files,
    load_mnist,
    make_multi_mnist,
    read_idx,
    write_idx,
)


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, dtype, compress):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((4, 3, 5)) * 50).astype(dtype)
    path = write_idx(tmp_path / ("a.idx" + (".gz" if compress else "")), arr)
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype) and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress


def test_idx_header_bytes_are_the_standard_format(tmp_path):
    # the MNIST label-file header: magic 0x00000801, then the count as big-endian uint32
    path = write_idx(tmp_path / "labels", np.array([7, 2, 1], dtype=np.uint8))
    assert path.read_bytes() == bytes([0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1])


def test_corrupted_idx_files(tmp_path):
    good = write_idx(tmp_path / "img", np.zeros((2, 3, 3), dtype=np.uint8)).read_bytes()
    bad_magic = tmp_path / "bad_magic"
    bad_magic.write_bytes(b"\x01\x02" + good[2:])
    with pytest.raises(IDXFormatError, match=r"bad_magic: wrong magic number 0x01020803"):
        read_idx(bad_magic)
    truncated = tmp_path / "truncated"
    truncated.write_bytes(good[:-1])
    with pytest.raises(IDXFormatError, match=r"truncated: file is truncated: 33 bytes .* needs exactly 34"):
        read_idx(truncated)
    too_long = tmp_path / "long"
    too_long.write_bytes(good + b"\x00")
    with pytest.raises(IDXFormatError, match="too long"):
        read_idx(too_long)
    header_cut = tmp_path / "header_cut"
    header_cut.write_bytes(good[:9])
    with pytest.raises(IDXFormatError, match="truncated inside the header"):
        read_idx(header_cut)
    gz_cut = tmp_path / "cut.gz"
    gz_cut.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(IDXFormatError, match="cut.gz: corrupt or truncated gzip"):
        read_idx(gz_cut)
    with pytest.raises(IDXFormatError, match=r"type code 0x08, expected 0x0D"):
        read_idx(tmp_path / "img", expected_dtype=0x0D)
    with pytest.raises(IDXFormatError, match="dimension 1 is 3, expected 28"):
        read_idx(tmp_path / "img", expected_shape=(None, 28, 28))
    with pytest.raises(IDXFormatError, match="3 dimensions, expected 1"):
        read_idx(tmp_path / "img", expected_shape=(None,))


def write_fake_mnist(root: Path, n_train: int = 300, n_test: int = 100, gz: bool = True, seed: int = 0) -> Path:
    """Small MNIST-format files: every image's pixel (0, 0) encodes its label, (0, 1) its index mod 256."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    ext = ".gz" if gz else ""
    for part, n in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(n, dtype=np.uint8) % 10
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        images[:, 0, 0] = labels
        write_idx(root / f"{part}-images-idx3-ubyte{ext}", images)
        write_idx(root / f"{part}-labels-idx1-ubyte{ext}", labels)
    return root


def test_missing_files_error_names_files_dirs_and_sources(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(MissingMNISTError) as info:
        find_mnist_files(tmp_path)
    msg = str(info.value)
    assert "t10k-labels-idx1-ubyte[.gz]" in msg and "train-images" not in msg.split(";")[0]
    assert str(tmp_path) in msg and "ossci-datasets" in msg and "yann.lecun.com" in msg
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    with pytest.raises(MissingMNISTError, match="CAUSALMTL_DATA"):
        find_mnist_files(None)


def test_data_dir_from_environment_and_subdir(tmp_path, monkeypatch):
    write_fake_mnist(tmp_path / "mnist", gz=False)
    monkeypatch.setenv("CAUSALMTL_DATA", str(tmp_path))
    paths = find_mnist_files()
    assert paths["train_images"] == tmp_path / "mnist" / "train-images-idx3-ubyte"


def test_load_mnist_warns_on_checksum_and_count(tmp_path):
    write_fake_mnist(tmp_path)
    with pytest.warns(ChecksumWarning) as record:
        data = load_mnist(tmp_path)
    texts = " ".join(str(w.message) for w in record)
    assert "differs from the official" in texts and "where the official file has 60000" in texts
    assert data["train_images"].shape == (300, 28, 28) and data["test_labels"].dtype == np.int64
    np.testing.assert_array_equal(data["train_images"][:, 0, 0], data["train_labels"])


def test_load_mnist_structural_errors(tmp_path):
    write_fake_mnist(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(299, dtype=np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ChecksumWarning)
        with pytest.raises(IDXFormatError, match="holds 300 images but .* holds 299 labels"):
            load_mnist(tmp_path)
        write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.full(300, 12, dtype=np.uint8))
        with pytest.raises(IDXFormatError, match="label 12 at item 0 is not a digit"):
            load_mnist(tmp_path)
        # images file with the labels' magic number (0x00000801)
        write_idx(tmp_path / "train-images-idx3-ubyte.gz", np.zeros(300, dtype=np.uint8))
        with pytest.raises(IDXFormatError, match=r"train-images-idx3-ubyte.gz: wrong magic number 0x00000801"):
            load_mnist(tmp_path)


def test_official_digests_accept_identical_files(tmp_path):
    real = SHARED_DATA / "mnist/t10k-labels-idx1-ubyte.gz"
    if not real.is_file():
        pytest.skip("real MNIST test labels not available on this machine")
    from causalmtl.data.mnist import _check_sha256

    with warnings.catch_warnings():
        warnings.simplefilter("error", ChecksumWarning)
        _check_sha256(real)  # byte-identical to the official file: no warning
    copy = tmp_path / real.name
    raw = bytearray(real.read_bytes())
    raw[100] ^= 0xFF  # one flipped byte
    copy.write_bytes(bytes(raw))
    with pytest.warns(ChecksumWarning):
        _check_sha256(copy)


@pytest.fixture()
def fake_dir(tmp_path):
    return write_fake_mnist(tmp_path / "data")


@pytest.mark.filterwarnings("ignore::causalmtl.data.mnist.ChecksumWarning")
def test_multi_mnist_pairs_protocol(fake_dir):
    splits = make_multi_mnist(fake_dir, protocol="pairs", n_train=600, n_valid=200, n_test=200, seed=1)
    x = splits.train.inputs
    assert x.shape == (600, 1, 28, 56) and x.dtype == np.float32
    # pixel (0,0) of each half encodes that digit's label (written by the fixture)
    np.testing.assert_array_equal(np.rint(x[:, 0, 0, 0] * 255), splits.train.labels[:, 0])
    np.testing.assert_array_equal(np.rint(x[:, 0, 0, 28] * 255), splits.train.labels[:, 1])
    pairs = splits.meta["pairs"]
    train_keys = set(map(tuple, pairs["train"].tolist()))
    assert not train_keys & set(map(tuple, splits.test.labels.tolist()))
    src = splits.meta["source_index"]
    assert (src["test"] >= 300).all() and (src["train"] < 300).all() and (src["valid"] < 300).all()
    assert np.intersect1d(src["train"], src["valid"]).size == 0
    assert [int(s.env[0]) for _, s in splits] == [0, 1, 2]


@pytest.mark.filterwarnings("ignore::causalmtl.data.mnist.ChecksumWarning")
def test_multi_mnist_biased_and_determinism(fake_dir):
    q = np.zeros((10, 10))
    q[np.arange(10), (np.arange(10) + 1) % 10] = 0.1
    a = make_multi_mnist(fake_dir, protocol="biased", m=1.0, n_train=300, n_valid=50, n_test=300, test_joint=q, dtype="uint8", seed=2)
    assert (a.train.labels[:, 0] == a.train.labels[:, 1]).all()
    assert (a.test.labels[:, 1] == (a.test.labels[:, 0] + 1) % 10).all()
    assert a.train.inputs.dtype == np.uint8
    b = make_multi_mnist(fake_dir, protocol="biased", m=1.0, n_train=300, n_valid=50, n_test=300, test_joint=q, dtype="uint8", seed=2)
    np.testing.assert_array_equal(a.test.inputs, b.test.inputs)
    with pytest.raises(ValueError, match=r"test_joint must be a joint table over the classes \(10, 10\)"):
        make_multi_mnist(fake_dir, protocol="biased", test_joint=np.full(99, 1 / 99))
    with pytest.raises(ValueError, match="valid_fraction"):
        make_multi_mnist(fake_dir, valid_fraction=1.0)


def test_download_from_a_mirror(tmp_path):
    mirror = write_fake_mnist(tmp_path / "mirror")
    dest = tmp_path / "dest"
    paths = download_mnist(dest, base_url=mirror.as_uri() + "/")
    assert sorted(p.name for p in paths.values()) == sorted(os.listdir(mirror))
    assert (dest / "t10k-images-idx3-ubyte.gz").read_bytes() == (mirror / "t10k-images-idx3-ubyte.gz").read_bytes()


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs the real MNIST files")
def test_real_mnist_files_load(tmp_path):
    with pytest.warns(ChecksumWarning, match="train-images-idx3-ubyte.gz"):
        data = load_mnist(SHARED_DATA / "mnist")
    assert data["train_images"].shape == (60000, 28, 28) and data["test_labels"].shape == (10000,)
    assert np.bincount(data["test_labels"]).tolist()[:2] == [980, 1135]


# --- paper-scale Multi-MNIST generated on the fly (MT-CRL C.1-C.2; issue 18) ----------------
@pytest.mark.filterwarnings("ignore::causalmtl.data.mnist.ChecksumWarning")
def test_streamed_multi_mnist_is_lazy_deterministic_and_pair_disjoint(fake_dir):
    from causalmtl.data.mnist_stream import StreamedMultiMNIST, make_streamed_multi_mnist

    s = make_streamed_multi_mnist(fake_dir, per_pair=10_000, seed=3)
    # the paper's sizes: 100 pairs x 10,000 images, split 3:1:1, without composing any image
    assert [len(d) for _, d in s] == [600_000, 200_000, 200_000]
    assert isinstance(s.train.inputs, StreamedMultiMNIST) and s.train.streamed
    assert s.train.inputs.images.shape == (400, 28, 28)  # only the source images are in memory
    src = s.train.inputs
    rows = np.array([0, 9_999, 10_000, 123_457, 599_999])
    x = src.read_batch(rows)
    assert x.shape == (5, 1, 28, 56) and x.dtype == np.float32
    # pixel (0, 0) of each half encodes that digit's label (the fixture): image = labels
    np.testing.assert_array_equal(np.rint(x[:, 0, 0, 0] * 255), s.train.labels[rows, 0])
    np.testing.assert_array_equal(np.rint(x[:, 0, 0, 28] * 255), s.train.labels[rows, 1])
    # same seed + index -> same image, in any order, one row or many; another seed differs
    again = make_streamed_multi_mnist(fake_dir, per_pair=10_000, seed=3).train.inputs
    np.testing.assert_array_equal(again.read_batch(rows[::-1])[::-1], x)
    np.testing.assert_array_equal(src.read(123_457).x, x[3])
    idx = src.source_index(np.arange(0, 600_000, 997))
    other = make_streamed_multi_mnist(fake_dir, per_pair=10_000, seed=4)
    assert not np.array_equal(other.train.inputs.source_index(np.arange(0, 600_000, 997)), idx)
    # rows of one pair use many different source images (the hash spreads them over the pool)
    same_pair = src.source_index(np.arange(10_000))
    assert len(np.unique(same_pair[:, 0])) > 20
    # the pair split never puts a test (or valid) pair in train; pools are disjoint
    def codes(lab):  # label pair -> 10 * left + right
        return set(np.unique(lab[:, 0] * 10 + lab[:, 1]).tolist())

    train = codes(s.meta["pairs"]["train"])
    for split in ("valid", "test"):
        assert not train & codes(getattr(s, split).labels)
    assert codes(s.train.labels) == train
    pools = {k: np.unique(getattr(s, k).inputs.source_index(np.arange(0, len(getattr(s, k)), 101)))
             for k in ("train", "valid", "test")}
    assert (pools["test"] >= 300).all() and (pools["train"] < 300).all()
    assert np.intersect1d(pools["train"], pools["valid"]).size == 0
    assert [int(d.env[0]) for _, d in s] == [0, 1, 2]
    with pytest.raises(IndexError, match="rows must lie in"):
        src.read_batch(np.array([600_000]))


@pytest.mark.filterwarnings("ignore::causalmtl.data.mnist.ChecksumWarning")
def test_streamed_multi_mnist_trains_through_the_streamed_trainer(fake_dir):
    from causalmtl.data.mnist_stream import make_streamed_multi_mnist
    from causalmtl.methods import ERM
    from causalmtl.nn import STL, seeded
    from causalmtl.nn.encoders import LeNetEncoder
    from causalmtl.train import Trainer, evaluate

    s = make_streamed_multi_mnist(fake_dir, per_pair=3, seed=0)
    with seeded(0):
        model = STL(lambda: LeNetEncoder(1, (28, 56), out_dim=8), s.tasks)
    Trainer(ERM(model), epochs=1, batch_size=32, patience=1, seed=0).fit(s)
    res = evaluate(model, s.test)
    assert 0.0 <= res["acc/left"] <= 1.0
    with pytest.raises(ValueError, match="per_pair must be"):
        make_streamed_multi_mnist(fake_dir, per_pair=0)
