"""Attributes of People loader on a tiny directory written here in the dataset's own layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalmtl.data._sources import MissingDataError
from causalmtl.data.attributes import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PAPER_PAIRS,
    TASK_ATTRIBUTES,
    load_attributes,
    read_attribute_labels,
    read_image,
)

# attributes in file order: is_male long_hair glasses hat t-shirt long_sleeves shorts jeans long_pants
TRAINVAL = [
    ("a0.png", "1 1 6 4", "1 1 -1 1 0 1 0 0 0"),
    ("a1.png", "0 0 8 6", "-1 -1 1 1 -1 -1 1 -1 1"),
    ("a2.png", "0 0 8 6", "1 1 0 0 1 -1 -1 1 1"),  # glasses, hat unspecified
    ("a3.png", "0 0 8 6", "0 -1 -1 -1 1 1 -1 1 1"),
    ("a4.png", "0 0 8 6", "1 1 1 0 -1 1 1 -1 -1"),  # hat unspecified
    ("a5.png", "0 0 8 6", "-1 -1 -1 1 -1 1 1 -1 -1"),
    ("a6.png", "0 0 8 6", "1 0 0 0 0 0 0 0 0"),  # nothing but is_male -> dropped for any task
    ("a7.png", "0 0 8 6", "1 1 1 -1 1 -1 -1 1 1"),
    ("a8.png", "0 0 8 6", "-1 -1 -1 -1 1 -1 1 -1 -1"),
    ("a9.png", "0 0 8 6", "1 1 1 1 -1 1 -1 1 -1"),  # with a0 the valid split of seed 7
    ("a10.png", "0 0 8 6", "1 -1 -1 1 1 1 -1 -1 1"),
]
TEST = [
    ("t0.png", "0 0 8 6", "1 1 1 -1 1 1 1 1 1"),
    ("t1.png", "0 0 8 6", "-1 -1 -1 1 -1 -1 -1 -1 -1"),
    ("t2.png", "0 0 8 6", "1 0 0 0 0 0 0 0 0"),
]
COLOURS = {name: ((37 * k) % 256, (91 * k + 20) % 256, (13 * k + 200) % 256)
           for k, name in enumerate([n for n, *_ in TRAINVAL + TEST])}  # fmt: skip


def write_dataset(d: Path, trainval=TRAINVAL, test=TEST, image_dirs=("trainval", "test")) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for (split, rows), sub in zip((("trainval", trainval), ("test", test)), image_dirs):
        (d / f"{split}_labels.txt").write_text("".join(f"{n} {b} {a}\n" for n, b, a in rows))
        (d / sub).mkdir(exist_ok=True)
        for n, *_ in rows:
            Image.new("RGB", (8, 6), COLOURS.get(n, (0, 0, 0))).save(d / sub / n)
    return d


def test_label_mapping_by_hand(tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "aop")
    names, boxes, labels = read_attribute_labels(d / "trainval_labels.txt")
    assert names[:2] == ["a0.png", "a1.png"] and len(names) == 11
    np.testing.assert_array_equal(boxes[0], [1, 1, 6, 4])
    # 1 -> 1, -1 -> 0, 0 -> missing (-1)
    np.testing.assert_array_equal(labels[0], [1, 1, 0, 1, -1, 1, -1, -1, -1])
    np.testing.assert_array_equal(labels[3], [-1, 0, 0, 0, 1, 1, 0, 1, 1])


def test_all_tasks_split_and_images(tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "aop")
    s = load_attributes(d, image_size=(4, 5), seed=7)
    assert s.train.task_names == TASK_ATTRIBUTES and "is_male" not in s.train.task_names
    # a6 and t2 carry no attribute but is_male -> dropped: 10 trainval, 2 test
    # valid = round(0.2 * 10) = 2 persons drawn by default_rng(7).permutation(10)
    assert (len(s.train), len(s.valid), len(s.test)) == (8, 2, 2)
    kept = [n for n, *_ in TRAINVAL if n != "a6.png"]
    perm = np.random.default_rng(7).permutation(10)
    assert [p.name for p in s.meta["files"]["valid"]] == [kept[i] for i in np.sort(perm[:2])]
    assert [p.name for p in s.meta["files"]["train"]] == [kept[i] for i in np.sort(perm[2:])]
    assert [p.name for p in s.meta["files"]["test"]] == ["t0.png", "t1.png"]
    np.testing.assert_array_equal(
        s.test.targets, [[1, 1, 0, 1, 1, 1, 1, 1], [0, 0, 1, 0, 0, 0, 0, 0]]
    )
    assert s.test.inputs.shape == (2, 3, 4, 5) and s.test.inputs.dtype == np.float32
    # a solid image stays solid: pixel = (colour / 255 - mean) / std per channel
    for split in ("train", "valid", "test"):
        ds = getattr(s, split)
        for i, f in enumerate(s.meta["files"][split]):
            c = np.asarray(COLOURS[f.name]) / 255.0
            exp = (c - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)
            np.testing.assert_allclose(
                ds.inputs[i], np.broadcast_to(exp[:, None, None], (3, 4, 5)), atol=1e-5
            )
    assert [int(x.env[0]) for _, x in s] == [0, 1, 2]


def test_paper_pairs_and_dropping(tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "aop")
    assert PAPER_PAIRS["glasses+hat"] == ("glasses", "hat")
    s = load_attributes(d, tasks="glasses+hat", load_images=False, valid_fraction=0.25)
    assert s.train.task_names == ("glasses", "hat")
    # glasses/hat both unspecified: a2, a6 -> 9 trainval; valid round(0.25 * 9) = 2; test t0, t1
    assert (len(s.train), len(s.valid), len(s.test)) == (7, 2, 2)
    assert set(s.train.inputs) == {"box"}
    # a0's box "1 1 6 4" is x y w h -> x1 y1 x2 y2 = 1 1 7 5
    files = s.meta["files"]["train"] + s.meta["files"]["valid"]
    boxes = np.concatenate([s.meta["boxes"]["train"], s.meta["boxes"]["valid"]])
    k = [f.name for f in files].index("a0.png")
    np.testing.assert_array_equal(boxes[k], [1, 1, 7, 5])
    labels = np.concatenate([s.train.targets, s.valid.targets])
    np.testing.assert_array_equal(labels[k], [0, 1])
    k4 = [f.name for f in files].index("a4.png")
    np.testing.assert_array_equal(labels[k4], [1, -1])  # hat unspecified -> missing
    # keeping everyone: 11 trainval; seed 0 puts persons 4 and 6 (a4: hat unspecified, a6:
    # nothing) in valid -> no hat label there; seed 1 puts a7 and a10 there
    with pytest.raises(ValueError, match=r"task 'hat' has no example in the valid split"):
        load_attributes(d, tasks="glasses+hat", load_images=False, drop_unlabelled=False, seed=0)
    keep_all = load_attributes(
        d, tasks="glasses+hat", load_images=False, drop_unlabelled=False, seed=1
    )
    assert len(keep_all.train) + len(keep_all.valid) == 11 and len(keep_all.test) == 3


def test_crop_to_box(tmp_path: Path) -> None:
    img = Image.new("RGB", (8, 6), (255, 0, 0))
    img.paste((0, 0, 255), (4, 0, 8, 6))  # right half blue
    f = tmp_path / "x.png"
    img.save(f)
    crop = read_image(f, (3, 3), box=(4, 0, 8, 6), normalize=False)
    np.testing.assert_allclose(
        crop, np.broadcast_to(np.array([0, 0, 1.0])[:, None, None], (3, 3, 3))
    )
    whole = read_image(f, (6, 8), normalize=False)
    assert whole[0, 0, 0] == 1.0 and whole[2, 0, 7] == 1.0
    # a box partly outside the image is intersected with it
    np.testing.assert_allclose(
        read_image(f, (2, 2), box=(4, -3, 20, 9), normalize=False), crop[:, :2, :2]
    )
    with pytest.raises(ValueError, match="does not overlap"):
        read_image(f, (2, 2), box=(10, 10, 12, 12))
    # through the loader: a0 has box (1, 1, 6, 4) inside a solid image -> still its colour
    d = write_dataset(tmp_path / "aop", image_dirs=("images", "images"))
    s = load_attributes(d, crop_to_box=True, image_size=2, normalize=False, tasks=["long_hair"])
    files = s.meta["files"]["train"] + s.meta["files"]["valid"]
    inputs = np.concatenate([s.train.inputs, s.valid.inputs])
    k = [p.name for p in files].index("a0.png")
    np.testing.assert_allclose(inputs[k, :, 0, 0], np.asarray(COLOURS["a0.png"]) / 255, atol=1e-6)


# --- bad input -------------------------------------------------------------------------------------
def test_bad_label_lines(tmp_path: Path) -> None:
    rows = list(TRAINVAL)
    rows[2] = ("a2.png", "0 0 8 6", "1 1 0 2 0 0 0 0 0")
    d = write_dataset(tmp_path / "a", trainval=rows)
    with pytest.raises(
        ValueError, match=r"trainval_labels\.txt, line 3: attribute hat = 2; expected 1"
    ):
        load_attributes(d)
    rows[2] = ("a2.png", "0 0 8", "1 1 0 1 0 0 0 0 0")
    d = write_dataset(tmp_path / "b", trainval=rows)
    with pytest.raises(ValueError, match=r"line 3: expected 14 space-separated fields .* got 13"):
        load_attributes(d)
    rows[2] = ("a2.png", "0 0 x 6", "1 1 0 1 0 0 0 0 0")
    d = write_dataset(tmp_path / "c", trainval=rows)
    with pytest.raises(ValueError, match=r"line 3: box and attributes must be numbers"):
        load_attributes(d)


def test_unknown_task_names(tmp_path: Path) -> None:
    d = write_dataset(tmp_path / "a")
    with pytest.raises(
        ValueError,
        match=r"unknown attribute or pair 'hats'; valid attributes are \['long_hair'.*pairs",
    ):
        load_attributes(d, tasks=["hats"])
    with pytest.raises(ValueError, match="is_male' is dropped"):
        load_attributes(d, tasks=["is_male", "hat"])


def test_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = write_dataset(tmp_path / "a")
    (d / "test_labels.txt").unlink()
    with pytest.raises(
        MissingDataError, match=r"test_labels\.txt.*expected at " + str(d) + r".*poselets"
    ):
        load_attributes(d)
    d = write_dataset(tmp_path / "b")
    (d / "trainval" / "a5.png").unlink()
    with pytest.raises(MissingDataError, match=r"'a5\.png'.*trainval"):
        load_attributes(d)
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    with pytest.raises(MissingDataError, match="CAUSALMTL_DATA"):
        load_attributes()
    write_dataset(tmp_path / "root" / "attributes_of_people")
    monkeypatch.setenv("CAUSALMTL_DATA", str(tmp_path / "root"))
    assert len(load_attributes(load_images=False).test) == 2


def test_split_leaving_task_empty(tmp_path: Path) -> None:
    test = [("t0.png", "0 0 8 6", "1 1 0 -1 1 1 1 1 1"), ("t1.png", "0 0 8 6", "1 1 0 1 1 1 1 1 1")]
    d = write_dataset(tmp_path / "a", test=test)
    with pytest.raises(ValueError, match=r"task 'glasses' has no example in the test split"):
        load_attributes(d, tasks="glasses+hat", load_images=False)
    with pytest.raises(ValueError, match=r"the test split is empty"):
        load_attributes(d, tasks=["glasses"], load_images=False)
