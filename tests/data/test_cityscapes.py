"""CityScapes loader: tiny copies of the raw and preprocessed layouts written here by hand."""

from __future__ import annotations

import builtins
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalmtl.data import MissingDataError, _dense
from causalmtl.data.cityscapes import label_lut, load_cityscapes

H, W = 4, 5
# label ids chosen by hand with their trainId and 7-category class (cityscapesScripts labels.py)
#        id: (trainId class, category class)
PIXELS = {7: (0, 0), 8: (1, 0), 9: (-1, -1), 0: (-1, -1), 11: (2, 1), 17: (5, 2), 21: (8, 3),
          23: (10, 4), 24: (11, 5), 26: (13, 6), 33: (18, 6), 29: (-1, -1), 18: (-1, -1)}
# stored 16-bit disparity p -> disparity (p - 1) / 256 -> depth 0.2 * 2000 / d
DISP = {0: np.nan, 1: np.nan, 257: 400.0, 513: 200.0, 2561: 40.0}

# cities: train aachen 3, bochum 1, bremen 2; val frankfurt 2
CITIES = {"train": {"aachen": 3, "bochum": 1, "bremen": 2}, "val": {"frankfurt": 2}}


def _label_ids() -> np.ndarray:
    ids = np.full((H, W), 7, np.uint8)
    ids.flat[: len(PIXELS)] = list(PIXELS)
    return ids


def _disparity() -> np.ndarray:
    p = np.full((H, W), 257, np.uint16)
    p.flat[: len(DISP)] = list(DISP)
    return p


def write_raw(d: Path, cities=CITIES, camera=True, size=(H, W)) -> None:
    for split, per_city in cities.items():
        for city, n in per_city.items():
            for k in range(n):
                stem = f"{city}_{k:06d}_000019"
                for folder, suffix, arr in (
                    ("leftImg8bit", "_leftImg8bit.png", np.full((*size, 3), 10 * k, np.uint8)),
                    ("gtFine", "_gtFine_labelIds.png", _label_ids()),
                    ("disparity", "_disparity.png", _disparity()),
                ):
                    (d / folder / split / city).mkdir(parents=True, exist_ok=True)
                    Image.fromarray(arr).save(d / folder / split / city / f"{stem}{suffix}")
                if camera:
                    (d / "camera" / split / city).mkdir(parents=True, exist_ok=True)
                    cam = {"extrinsic": {"baseline": 0.2, "pitch": 0.04, "roll": 0.0, "yaw": 0.0,
                                         "x": 1.7, "y": 0.1, "z": 1.2},
                           "intrinsic": {"fx": 2000.0, "fy": 2000.0, "u0": 1000.0, "v0": 500.0}}
                    (d / "camera" / split / city / f"{stem}_camera.json").write_text(json.dumps(cam))


def write_preprocessed(d: Path, n_train: int, n_val: int, kinds=("image", "label_7", "label_19", "depth")) -> None:
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            lab19 = np.array(label_lut(19)[_label_ids()], np.float32)
            lab7 = np.array(label_lut(7)[_label_ids()], np.float32)
            depth = np.full((H, W, 1), 0.5, np.float32)
            depth[0, 0, 0] = 0.0
            arrays = {"image": np.full((H, W, 3), i / 10, np.float32), "label_7": lab7, "label_19": lab19,
                      "depth": depth}
            for kind in kinds:
                (d / split / kind).mkdir(parents=True, exist_ok=True)
                np.save(d / split / kind / f"{i}.npy", arrays[kind])


def test_raw_split_by_city_by_hand(tmp_path):
    write_raw(tmp_path)
    for seed in (0, 1, 2):
        # valid_size 2 among train cities of sizes 3, 1, 2: only bremen (2) sums to 2
        s = load_cityscapes(tmp_path, classes=19, valid_size=2, seed=seed)
        envs = s.meta["environments"]
        assert envs == ["aachen", "bochum", "bremen", "frankfurt"]
        cities = {k: sorted({envs[e] for e in part.env}) for k, part in s}
        assert cities == {"train": ["aachen", "bochum"], "valid": ["bremen"], "test": ["frankfurt"]}
        assert (len(s.train), len(s.valid), len(s.test)) == (4, 2, 2)
        assert s.meta["rows"]["valid"] == ["train/bremen/bremen_000000_000019", "train/bremen/bremen_000001_000019"]
        assert "bremen" in s.meta["split"]


def test_raw_label_mappings_and_depth_on_chosen_pixels(tmp_path):
    write_raw(tmp_path)
    for classes, col in ((19, 0), (7, 1)):
        s = load_cityscapes(tmp_path, classes=classes, valid_size=2)
        assert s.tasks[0].n_classes == classes and len(s.meta["classes"]) == classes
        row = s.test.inputs.read(1)  # frankfurt_000001
        assert row.x.shape == (3, H, W) and row.x.dtype == np.float32
        np.testing.assert_allclose(row.x, 10 / 255)
        seg = row.maps["segmentation"].ravel()
        assert seg[: len(PIXELS)].tolist() == [v[col] for v in PIXELS.values()]
        dep = row.maps["depth"][0].ravel()
        np.testing.assert_allclose(dep[: len(DISP)], list(DISP.values()), rtol=1e-6)
    assert s.meta["camera"] == "per-image camera/*.json"
    disp = load_cityscapes(tmp_path, valid_size=2, depth="disparity").test.inputs.read(0).maps["depth"][0].ravel()
    np.testing.assert_allclose(disp[: len(DISP)], [np.nan, np.nan, 1.0, 2.0, 10.0])


def test_raw_without_camera_uses_typical_values_and_says_so(tmp_path):
    write_raw(tmp_path, camera=False)
    s = load_cityscapes(tmp_path, valid_size=2)
    assert "typical baseline 0.209313" in s.meta["camera"]
    dep = s.test.inputs.read(0).maps["depth"][0].ravel()
    np.testing.assert_allclose(dep[2], 0.209313 * 2262.52 / 1.0, rtol=1e-6)


def test_raw_is_read_lazily(tmp_path, monkeypatch):
    write_raw(tmp_path)
    opened, pngs = [], []
    real_open, real_png = builtins.open, _dense.read_png
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    monkeypatch.setattr(_dense, "read_png", lambda p: (pngs.append(str(p)), real_png(p))[1])
    s = load_cityscapes(tmp_path, valid_size=2, size=(2, 3))
    assert [p for p in opened if p.endswith((".png", ".json"))] == [] and pngs == []
    from causalmtl.data.streamed import read_rows

    out = read_rows(s.valid.inputs, np.array([1]), s.valid.transform)[0]
    assert sorted(Path(p).name for p in pngs) == ["bremen_000001_000019_disparity.png",
                                                  "bremen_000001_000019_gtFine_labelIds.png",
                                                  "bremen_000001_000019_leftImg8bit.png"]
    assert out.x.shape == (3, 2, 3) and out.maps["segmentation"].shape == (2, 3)


def test_preprocessed_with_and_without_city_names(tmp_path):
    write_preprocessed(tmp_path, 6, 2)
    s = load_cityscapes(tmp_path, classes=19, valid_size=2, seed=0)
    assert s.meta["layout"] == "preprocessed" and s.meta["split"] == "preprocessed-train-val (no city names)"
    assert s.meta["rows"]["test"] == ["val/0", "val/1"] and len(s.valid) == 2 and len(s.train) == 4
    row = s.train.inputs.read(0)
    assert row.maps["segmentation"].ravel()[: len(PIXELS)].tolist() == [v[0] for v in PIXELS.values()]
    assert np.isnan(row.maps["depth"][0, 0, 0]) and np.isnan(row.maps["depth"]).sum() == 1
    s7 = load_cityscapes(tmp_path, classes=7, valid_size=2)
    assert s7.train.inputs.read(0).maps["segmentation"].ravel()[: len(PIXELS)].tolist() == [
        v[1] for v in PIXELS.values()]
    # with the raw layout beside it, file train/<i> is the i-th raw train image (sorted city, name)
    write_raw(tmp_path)
    s = load_cityscapes(tmp_path, classes=19, valid_size=2, seed=0)
    assert s.meta["layout"] == "preprocessed" and "bremen" in s.meta["split"]
    assert [r.split(" ")[0] for r in s.meta["rows"]["valid"]] == ["train/4", "train/5"]  # aachen 0-2, bochum 3
    assert [s.meta["environments"][e] for e in s.test.env] == ["frankfurt", "frankfurt"]


# --- bad input -------------------------------------------------------------------------------------
def test_unknown_layout_names_layouts_and_first_missing(tmp_path):
    (tmp_path / "gtFine").mkdir()
    with pytest.raises(MissingDataError) as err:
        load_cityscapes(tmp_path)
    msg = str(err.value)
    assert f"preprocessed (first missing: {tmp_path / 'train' / 'image' / '0.npy'})" in msg
    assert f"raw (first missing: {tmp_path / 'leftImg8bit' / 'train'})" in msg


def test_missing_label_file_is_named(tmp_path):
    write_raw(tmp_path)
    gone = tmp_path / "gtFine" / "train" / "bochum" / "bochum_000000_000019_gtFine_labelIds.png"
    gone.unlink()
    with pytest.raises(MissingDataError, match="bochum_000000_000019_gtFine_labelIds.png is missing"):
        load_cityscapes(tmp_path, valid_size=2)
    s = load_cityscapes(tmp_path, valid_size=2, tasks="depth")  # a depth-only run does not need it
    assert s.train.task_names == ("depth",)


def test_bad_raw_files_are_named_when_read(tmp_path):
    write_raw(tmp_path)
    city = tmp_path / "gtFine" / "val" / "frankfurt"
    Image.fromarray(np.zeros((H + 1, W), np.uint8)).save(city / "frankfurt_000000_000019_gtFine_labelIds.png")
    ids = _label_ids()
    ids[2, 3] = 34
    Image.fromarray(ids).save(city / "frankfurt_000001_000019_gtFine_labelIds.png")
    s = load_cityscapes(tmp_path, valid_size=2)
    with pytest.raises(ValueError, match=r"frankfurt_000000_000019_gtFine_labelIds\.png is 5x5 but its image "
                                         r".*frankfurt_000000_000019_leftImg8bit\.png is 4x5"):
        s.test.inputs.read(0)
    with pytest.raises(ValueError, match=r"labelIds\.png has label id 34 at pixel \(2, 3\)"):
        s.test.inputs.read(1)


def test_bad_preprocessed_files(tmp_path):
    write_preprocessed(tmp_path, 4, 2)
    np.save(tmp_path / "train" / "depth" / "1.npy", np.zeros((H, W, 2), np.float32))
    lab = np.zeros((H, W), np.float32)
    lab[3, 4] = 7
    np.save(tmp_path / "train" / "label_7" / "2.npy", lab)
    s = load_cityscapes(tmp_path, classes=7, valid_size=1)
    src = s.train.inputs.base
    with pytest.raises(ValueError, match=r"depth .*train/depth/1\.npy has shape \(4, 5, 2\)"):
        src.read(1)
    with pytest.raises(ValueError, match=r"train/label_7/2\.npy has the value 7 at pixel \(3, 4\); expected a "
                                         r"class in \[0, 7\)"):
        src.read(2)


def test_task_or_classes_the_layout_lacks(tmp_path):
    write_preprocessed(tmp_path, 3, 2, kinds=("image", "label_7", "depth"))
    with pytest.raises(ValueError, match=r"train/label_19/0\.npy is missing.*lacks it"):
        load_cityscapes(tmp_path, classes=19, valid_size=1)
    assert load_cityscapes(tmp_path, classes=7, valid_size=1).tasks[0].n_classes == 7
    with pytest.raises(ValueError, match="classes must be 7 or 19"):
        load_cityscapes(tmp_path, classes=8)


def test_one_training_city_leaves_valid_without_environment(tmp_path):
    write_raw(tmp_path, cities={"train": {"aachen": 3}, "val": {"frankfurt": 1}})
    with pytest.raises(ValueError, match="at least 2"):
        load_cityscapes(tmp_path, valid_size=1)
    write_raw(tmp_path / "b")
    with pytest.raises(ValueError, match="valid_size=500 asks for 500 valid images out of 6"):
        load_cityscapes(tmp_path / "b")


def test_synthetic_writer_both_layouts(tmp_path):
    from causalmtl.data.cityscapes import write_synthetic_cityscapes

    write_synthetic_cityscapes(tmp_path / "raw", n_per_city=2, size=(8, 16))
    s = load_cityscapes(tmp_path / "raw", valid_size=4)
    assert (len(s.train) + len(s.valid), len(s.test)) == (10, 4)
    assert not {s.meta["environments"][e] for e in s.valid.env} & {s.meta["environments"][e] for e in s.train.env}
    write_synthetic_cityscapes(tmp_path / "pre", n_per_city=2, size=(8, 16), layout="preprocessed")
    s = load_cityscapes(tmp_path / "pre", classes=19, valid_size=4)
    row = s.train.inputs.read(0)
    assert row.x.shape == (3, 8, 16) and row.maps["depth"].shape == (1, 8, 16)


def test_cli_writes_synthetic_copies(tmp_path, capsys):
    from causalmtl.cli import main

    assert main(["data", "synthetic", "cityscapes", str(tmp_path / "cs"), "--n", "2", "--size", "8", "16"]) == 0
    out = capsys.readouterr().out
    assert "raw layout" in out and "by city" in out
    assert len(list((tmp_path / "cs" / "leftImg8bit" / "train").glob("*/*_leftImg8bit.png"))) == 10
    assert main(["data", "synthetic", "nyuv2", str(tmp_path / "nyu"), "--n", "10", "--size", "8", "12"]) == 0
    assert "split: scene types" in capsys.readouterr().out  # the writer's index.csv
    assert np.load(tmp_path / "nyu" / "train" / "image" / "0.npy").shape == (8, 12, 3)


def test_rows_collate_into_contract_batches(tmp_path):
    from causalmtl.data.streamed import collate, read_rows

    write_raw(tmp_path)
    s = load_cityscapes(tmp_path, classes=7, valid_size=2)
    x, maps = collate(read_rows(s.train.inputs, np.arange(len(s.train)), s.train.transform), s.train.dense_tasks)
    assert x.shape == (4, 3, H, W) and x.dtype == np.float32
    assert maps["segmentation"].shape == (4, H, W) and maps["segmentation"].dtype == np.int64
    assert maps["depth"].shape == (4, 1, H, W) and np.isnan(maps["depth"]).sum() == 4 * 2  # p = 0 and p = 1
    assert (maps["segmentation"] == -1).sum() == 4 * 4  # parking, unlabeled, caravan, polegroup
