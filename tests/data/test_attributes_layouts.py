"""Attributes of People as shipped (``attributes_dataset/{train,test}/labels.txt``), the real line
formats (double spaces, NaN boxes), labels without images, streaming and the GMTL authors' split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalmtl.data.attributes import (
    AttributeImages,
    gmtl_split,
    load_attributes,
    read_attribute_labels,
    read_image,
    write_synthetic_attributes,
)
from causalmtl.data.streamed import FileSource

# the real file's format: fields joined by two spaces, some boxes NaN
# attributes: is_male long_hair glasses hat t-shirt long_sleeves shorts jeans long_pants
TRAIN = [
    "1.jpg  1  1  5  4  1  1  -1  1  0  1  0  0  0",
    "2.jpg  NaN  NaN  NaN  NaN  -1  -1  1  1  -1  -1  1  -1  1",
    "3.jpg  0  0  8  6  1  1  0  0  1  -1  -1  1  1",
    "4.jpg  0  0  8  6  0  -1  -1  -1  1  1  -1  1  1",
    "5.jpg  0  0  8  6  1  0  0  0  0  0  0  0  0",  # only is_male -> dropped
    "6.jpg  NaN  NaN  NaN  NaN  -1  -1  -1  1  -1  1  1  -1  -1",
    "7.jpg  2  1  4  3  1  1  1  -1  1  -1  -1  1  1",
    "8.jpg  0  0  8  6  -1  -1  -1  -1  1  -1  1  -1  -1",
    "9.jpg  0  0  8  6  1  1  1  1  -1  1  -1  1  -1",
    "10.jpg  0  0  8  6  1  -1  -1  1  1  1  -1  -1  1",
]
TEST = [
    "1.jpg  0  0  8  6  1  1  1  -1  1  1  1  1  1",
    "2.jpg  NaN  NaN  NaN  NaN  -1  -1  -1  1  -1  -1  -1  -1  -1",
    "3.jpg  0  0  8  6  1  0  0  0  0  0  0  0  0",
]


def write_shipped(root: Path, images: bool = True) -> Path:
    """``<root>/attributes_dataset/{train,test}/labels.txt`` with the images beside them."""
    d = root / "attributes_dataset"
    for split, lines in (("train", TRAIN), ("test", TEST)):
        (d / split).mkdir(parents=True)
        (d / split / "labels.txt").write_text("\n".join(lines) + "\n")
        if images:
            for k, line in enumerate(lines):
                img = np.zeros((6, 8, 3), np.uint8)
                img[:, :4] = (20 * k, 100, 200 if split == "test" else 50)
                img[:, 4:] = (250, 20 * k, 0)
                Image.fromarray(img).save(d / split / line.split()[0])
    return d


def test_real_line_format_parses(tmp_path: Path) -> None:
    d = write_shipped(tmp_path)
    names, boxes, labels = read_attribute_labels(d / "train" / "labels.txt")
    assert len(names) == 10 and names[1] == "2.jpg"
    assert np.isnan(boxes[1]).all() and np.isnan(boxes[5]).all() and not np.isnan(boxes[[0, 2, 3]]).any()
    np.testing.assert_array_equal(boxes[0], [1, 1, 5, 4])
    np.testing.assert_array_equal(labels[1], [0, 0, 1, 1, 0, 0, 1, 0, 1])
    (tmp_path / "bad.txt").write_text("1.jpg  NaN  2  NaN  NaN  1  1  1  1  1  1  1  1  1\n")
    with pytest.raises(ValueError, match=r"bad\.txt, line 1: box .* four finite numbers or 'NaN NaN NaN NaN'"):
        read_attribute_labels(tmp_path / "bad.txt")


def test_shipped_layout_counts_and_nan_box_crops_whole_image(tmp_path: Path) -> None:
    write_shipped(tmp_path)
    s = load_attributes(tmp_path, tasks="glasses+hat", image_size=(6, 8), crop_to_box=True, normalize=False)
    assert s.meta["layout"] == "original"
    # glasses/hat both unspecified: 3.jpg, 5.jpg -> 8 trainval; valid round(0.2 * 8) = 2; test 1, 2
    assert (len(s.train), len(s.valid), len(s.test)) == (6, 2, 2)
    assert [p.name for p in s.meta["files"]["test"]] == ["1.jpg", "2.jpg"]
    np.testing.assert_array_equal(s.test.labels, [[1, 0], [0, 1]])
    assert s.meta["no_box"]["test"] == 1 and s.meta["no_box"]["train"] + s.meta["no_box"]["valid"] == 2
    # test 2.jpg has a NaN box: its input is the whole image, not a crop
    whole = read_image(s.meta["files"]["test"][1], (6, 8), normalize=False)
    np.testing.assert_allclose(s.test.inputs[1], whole)
    assert s.test.inputs[1][0, 0, 0] != s.test.inputs[1][0, 0, 7]  # both halves are there
    # 1.jpg (test) box 0 0 8 6 = whole image too; train 7.jpg box x2 y1 w4 h3 -> right half only
    files = s.meta["files"]["train"] + s.meta["files"]["valid"]
    inputs = np.concatenate([s.train.inputs, s.valid.inputs])
    k = [f.name for f in files].index("7.jpg")
    np.testing.assert_allclose(inputs[k], read_image(files[k], (6, 8), box=(2, 1, 6, 4), normalize=False))


def test_labels_only_needs_no_image(tmp_path: Path) -> None:
    write_shipped(tmp_path, images=False)
    s = load_attributes(tmp_path / "attributes_dataset", tasks=["hat"], load_images=False)
    # hat unspecified: 3.jpg, 5.jpg (train), 3.jpg (test)
    assert len(s.train) + len(s.valid) == 8 and len(s.test) == 2
    assert np.isnan(s.test.inputs["box"][1]).all()
    with pytest.raises(FileNotFoundError, match=r"'1\.jpg'"):
        load_attributes(tmp_path, tasks=["hat"])


def test_stream_matches_in_memory(tmp_path: Path) -> None:
    write_shipped(tmp_path)
    mem = load_attributes(tmp_path, image_size=4, crop_to_box=True)
    lazy = load_attributes(tmp_path, image_size=4, crop_to_box=True, stream=True)
    assert isinstance(lazy.train.inputs, AttributeImages) and isinstance(lazy.train.inputs, FileSource)
    for split in ("train", "valid", "test"):
        a, b = getattr(mem, split), getattr(lazy, split)
        np.testing.assert_array_equal(a.targets, b.targets)
        for i in range(len(a)):
            np.testing.assert_array_equal(a.inputs[i], b.inputs.read(i).x)


def test_gmtl_split_is_pandas_sample_over_all_rows(tmp_path: Path) -> None:
    write_shipped(tmp_path)
    s = load_attributes(tmp_path, tasks="glasses+hat", split="gmtl", load_images=False)
    # the authors: train = 80 % of ALL 10 trainval rows via RandomState(0), valid = the rest,
    # and only then unlabelled persons (3.jpg, 5.jpg for this pair) disappear
    chosen = np.random.RandomState(0).choice(10, size=8, replace=False)  # pandas' sample(frac=0.8)
    names = [line.split()[0] for line in TRAIN]
    keep = {n for n in names if n not in ("3.jpg", "5.jpg")}
    assert [p.name for p in s.meta["files"]["train"]] == [names[i] for i in sorted(chosen) if names[i] in keep]
    rest = sorted(set(range(10)) - set(chosen))
    assert [p.name for p in s.meta["files"]["valid"]] == [names[i] for i in rest if names[i] in keep]
    assert s.meta["split"] == "gmtl"
    # independent of the run seed
    t = load_attributes(tmp_path, tasks="glasses+hat", split="gmtl", seed=5, load_images=False)
    assert t.meta["files"]["train"] == s.meta["files"]["train"]
    # drop(train.index): a person whose image name also appears in train leaves valid
    tr, va = gmtl_split(["a", "b", "a", "c", "d"], 0.4, 0)
    chosen = np.random.RandomState(0).choice(5, size=3, replace=False)
    np.testing.assert_array_equal(tr, np.sort(chosen))
    in_train = {["a", "b", "a", "c", "d"][i] for i in chosen}
    np.testing.assert_array_equal(va, [i for i, n in enumerate(["a", "b", "a", "c", "d"]) if n not in in_train])


def test_synthetic_writer(tmp_path: Path) -> None:
    d = write_synthetic_attributes(tmp_path, n_train=30, n_test=20, size=16, seed=1)
    assert (d / "train" / "labels.txt").read_text().count("NaN  NaN  NaN  NaN") == 2
    s = load_attributes(tmp_path, tasks="hat+long_sleeves", image_size=16, normalize=False, valid_fraction=0.2)
    assert s.meta["layout"] == "original" and len(s.test) <= 20
    # learnable: the hat patch (top band, red) is there exactly when hat == 1
    for split in ("train", "valid", "test"):
        ds = getattr(s, split)
        red = ds.inputs[:, 0, 0, 8] > 0.8
        hat = ds.labels[:, 0]
        assert (red[hat == 1]).all() and not red[hat == 0].any()
