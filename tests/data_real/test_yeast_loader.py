"""Yeast loader on CSV files written here, split checked by hand, and on the real file."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from _shared_data import SHARED_DATA
from causalmtl.data._sources import MissingDataError
from causalmtl.data.yeast import YEAST_LABELS, load_yeast, read_yeast

HEADER = ",".join([f"Att{i}" for i in range(1, 104)] + [f"Class{i}" for i in range(1, 15)])


def _rows(n: int = 10) -> tuple[np.ndarray, np.ndarray]:
    x = np.arange(n * 103, dtype=np.float64).reshape(n, 103) / 1000.0
    y = (np.add.outer(np.arange(n), np.arange(14)) % 3 == 0).astype(np.int64)
    return x, y


def write_csv(path: Path, x: np.ndarray, y: np.ndarray, extra: list[str] | None = None) -> Path:
    lines = [HEADER] + [
        ",".join([*(f"{v:g}" for v in xr), *(str(v) for v in yr)]) for xr, yr in zip(x, y)
    ]
    if extra:
        lines += extra
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def test_read_exact_values(tmp_path: Path) -> None:
    x, y = _rows()
    f = write_csv(tmp_path / "yeast.csv.gz", x, y)
    xr, yr = read_yeast(f)
    np.testing.assert_allclose(xr, x)
    np.testing.assert_array_equal(yr, y)
    # directory and yeast/ sub-directory forms
    np.testing.assert_array_equal(read_yeast(tmp_path)[1], y)
    write_csv(tmp_path / "root" / "yeast" / "yeast.csv", x, y)
    np.testing.assert_array_equal(read_yeast(tmp_path / "root")[1], y)


def test_seeded_split_hand_checked(tmp_path: Path) -> None:
    x, y = _rows(10)
    f = write_csv(tmp_path / "yeast.csv.gz", x, y)
    s = load_yeast(f, seed=3, standardize=False)
    # documented: perm = default_rng(seed).permutation(10); test = first round(0.2*10) = 2,
    # valid = next 2, train = the remaining 6, each in file order
    perm = np.random.default_rng(3).permutation(10)
    exp = {"test": np.sort(perm[:2]), "valid": np.sort(perm[2:4]), "train": np.sort(perm[4:])}
    for name, split in s:
        np.testing.assert_array_equal(s.meta["indices"][name], exp[name])
        np.testing.assert_allclose(split.inputs, x[exp[name]].astype(np.float32))
        np.testing.assert_array_equal(split.targets, y[exp[name]])
    assert (len(s.train), len(s.valid), len(s.test)) == (6, 2, 2)
    assert [int(s_.env[0]) for _, s_ in s] == [0, 1, 2]
    assert s.train.n_classes == (2,) * 14
    # same seed -> same split; another seed -> another one
    again = load_yeast(f, seed=3, standardize=False)
    np.testing.assert_array_equal(again.meta["indices"]["test"], exp["test"])
    other = load_yeast(f, seed=4, standardize=False)
    assert not all(np.array_equal(other.meta["indices"][k], exp[k]) for k in exp)


def test_standardize_with_train_statistics(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (40, 103))
    x[:, 5] = 1.5  # constant feature: only centred
    _, y = _rows(40)
    s = load_yeast(write_csv(tmp_path / "y.csv", x, y), seed=0)
    tr = s.meta["indices"]["train"]
    np.testing.assert_allclose(s.train.inputs.mean(axis=0), 0.0, atol=1e-5)
    std = s.train.inputs.std(axis=0)
    np.testing.assert_allclose(np.delete(std, 5), 1.0, atol=1e-5)
    assert np.all(s.train.inputs[:, 5] == 0)
    te = s.meta["indices"]["test"]
    np.testing.assert_allclose(
        s.test.inputs,
        (x[te] - x[tr].mean(0)) / np.where(x[tr].std(0) > 0, x[tr].std(0), 1),
        rtol=1e-5,
        atol=1e-5,
    )


def test_label_selection(tmp_path: Path) -> None:
    x, y = _rows()
    f = write_csv(tmp_path / "y.csv", x, y)
    s = load_yeast(f, labels=["Class3", 0])
    assert s.train.task_names == ("Class3", "Class1")
    full = load_yeast(f)
    np.testing.assert_array_equal(s.train.targets, full.train.targets[:, [2, 0]])
    with pytest.raises(ValueError, match=r"unknown label 'Class15'; valid labels are \['Class1'"):
        load_yeast(f, labels=["Class15"])


def test_bad_files(tmp_path: Path) -> None:
    x, y = _rows()
    y2 = y.copy()
    y2[4, 6] = 2
    with pytest.raises(
        ValueError, match=r"y\.csv, line 6: label Class7 = 2\.0; labels must be 0 or 1"
    ):
        load_yeast(write_csv(tmp_path / "y.csv", x, y2))
    with pytest.raises(ValueError, match=r"line 12: malformed row \(3 fields"):
        load_yeast(write_csv(tmp_path / "z.csv", x, y, extra=["1,2,3"]))
    bad = tmp_path / "h.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"h\.csv, line 1: the header"):
        load_yeast(bad)


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingDataError, match=r"yeast\.csv\.gz.*" + str(tmp_path) + r".*Mulan"):
        load_yeast(tmp_path)
    with pytest.raises(
        MissingDataError,
        match=r"missing file 'other\.csv'; expected at " + str(tmp_path / "other.csv"),
    ):
        load_yeast(tmp_path / "other.csv")
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    with pytest.raises(MissingDataError, match="CAUSALMTL_DATA"):
        load_yeast()
    x, y = _rows()
    write_csv(tmp_path / "yeast" / "yeast.csv.gz", x, y)
    monkeypatch.setenv("CAUSALMTL_DATA", str(tmp_path))
    assert len(load_yeast().train) == 6


def test_split_leaving_task_empty(tmp_path: Path) -> None:
    x, y = _rows(3)
    with pytest.raises(ValueError, match=r"split is empty"):
        load_yeast(write_csv(tmp_path / "y.csv", x, y), valid_fraction=0.1, test_fraction=0.1)
    with pytest.raises(ValueError, match="valid_fraction"):
        load_yeast(tmp_path / "y.csv", valid_fraction=1.5)


REAL = SHARED_DATA / "yeast/yeast.csv.gz"


@pytest.mark.skipif(not REAL.is_file(), reason="yeast.csv.gz not available here")
def test_real_yeast() -> None:
    s = load_yeast(REAL)
    assert (len(s.train), len(s.valid), len(s.test)) == (1451, 483, 483)
    assert s.train.inputs.shape[1] == 103 and s.train.task_names == YEAST_LABELS
    x, y = read_yeast(REAL)
    assert x.shape == (2417, 103) and set(np.unique(y)) == {0, 1}
