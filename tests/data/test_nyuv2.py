"""NYUv2 loader: tiny copies of the real layouts written here by hand (not by the library's writer)."""

from __future__ import annotations

import builtins
from pathlib import Path

import numpy as np
import pytest

from causalmtl.data import MissingDataError, _dense
from causalmtl.data import nyuv2 as nyu
from causalmtl.data.nyuv2 import load_nyuv2, normals_from_depth
from causalmtl.data.streamed import read_rows

H, W = 4, 6


def _image(i: int) -> np.ndarray:
    """Distinct channels-last pixels per image: value = i + (r * W + c) / 100 + channel / 1000."""
    r, c, ch = np.meshgrid(np.arange(H), np.arange(W), np.arange(3), indexing="ij")
    return (i + (r * W + c) / 100 + ch / 1000).astype(np.float32)


def write_preprocessed(d: Path, n_train: int, n_val: int, kinds=("image", "label", "depth", "normal")) -> None:
    """MTAN's layout: {train,val}/{image,label,depth,normal}/<i>.npy, channels last."""
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            label = np.full((H, W), 3.0, np.float32)
            label[0, 0] = -1.0  # ignored
            label[1, 2] = 12.0
            depth = np.full((H, W, 1), 2.5, np.float32)
            depth[2, 3, 0] = 0.0  # no measurement
            normal = np.zeros((H, W, 3), np.float32)
            normal[..., 2] = -1.0
            normal[3, 5] = 0.0  # no normal
            arrays = {"image": _image(i + (100 if split == "val" else 0)), "label": label, "depth": depth,
                      "normal": normal}
            for kind in kinds:
                (d / split / kind).mkdir(parents=True, exist_ok=True)
                np.save(d / split / kind / f"{i}.npy", arrays[kind])


# --- preprocessed layout ----------------------------------------------------------------------
def test_preprocessed_rows_follow_the_contract(tmp_path):
    write_preprocessed(tmp_path, 10, 3)
    s = load_nyuv2(tmp_path, seed=0)
    assert s.meta["layout"] == "preprocessed"
    assert [t.name for t in s.tasks] == ["segmentation", "depth", "normal"]
    assert [(t.kind, t.n_classes, t.channels, t.loss_name) for t in s.tasks] == [
        ("segmentation", 13, 1, "ce"), ("dense", 0, 1, "l1"), ("dense", 0, 3, "cosine")]
    row = s.test.inputs.read(1)  # val/1.npy
    np.testing.assert_array_equal(row.x, np.moveaxis(_image(101), -1, 0))
    assert row.x.shape == (3, H, W) and row.x.dtype == np.float32
    seg = row.maps["segmentation"]
    assert seg.dtype == np.int64 and seg[0, 0] == -1 and seg[1, 2] == 12 and seg[3, 3] == 3
    dep = row.maps["depth"]
    assert dep.shape == (1, H, W) and np.isnan(dep[0, 2, 3]) and np.isnan(dep).sum() == 1 and dep[0, 0, 0] == 2.5
    nor = row.maps["normal"]
    assert nor.shape == (3, H, W) and np.isnan(nor[:, 3, 5]).all() and np.isnan(nor).sum() == 3
    np.testing.assert_array_equal(nor[:, 0, 0], [0, 0, -1])
    assert np.all(s.train.targets == 1.0)


def test_preprocessed_without_scene_types_uses_train_val(tmp_path):
    write_preprocessed(tmp_path, 10, 3)
    s = load_nyuv2(tmp_path, seed=4)
    assert s.meta["split"] == "preprocessed-train-val (no scene types)"
    assert s.meta["environments"] == ["preprocessed-train", "preprocessed-val"]
    assert s.meta["rows"]["test"] == ["val/0", "val/1", "val/2"]
    tr, va = set(s.meta["rows"]["train"]), set(s.meta["rows"]["valid"])
    assert len(va) == 1 and not tr & va and tr | va == {f"train/{i}" for i in range(10)}  # round(0.1 * 10)
    assert s.train.env.tolist() == [0] * 9 and s.test.env.tolist() == [1] * 3
    assert load_nyuv2(tmp_path, seed=4).meta["rows"] == s.meta["rows"]  # deterministic per seed


def test_lazy_nothing_opened_at_load(tmp_path, monkeypatch):
    write_preprocessed(tmp_path, 4, 2)
    opened, npy = [], []
    real_open, real_read = builtins.open, _dense.read_npy
    monkeypatch.setattr(builtins, "open", lambda f, *a, **k: (opened.append(str(f)), real_open(f, *a, **k))[1])
    monkeypatch.setattr(_dense, "read_npy", lambda p: (npy.append(str(p)), real_read(p))[1])
    s = load_nyuv2(tmp_path, size=(2, 3))
    assert [p for p in opened if p.endswith(".npy")] == [] and npy == []
    out = read_rows(s.train.inputs, np.array([0]), s.train.transform)[0]
    want = {str(tmp_path / "train" / k / f"{s.meta['rows']['train'][0].split('/')[1]}.npy")
            for k in ("image", "label", "depth", "normal")}
    assert set(npy) == want and len(npy) == 4
    assert out.x.shape == (3, 2, 3) and out.maps["normal"].shape == (3, 2, 3)


# --- official labeled .mat ---------------------------------------------------------------------
def _mat_strings(h5py, f, key, values):
    refs = [f.create_dataset(f"#refs#/{key}{i}", data=np.array([ord(c) for c in v], np.uint16)[:, None]).ref
            for i, v in enumerate(values)]
    f.create_dataset(key, data=np.array(refs, dtype=h5py.ref_dtype)[None, :])


def write_labeled_mat(d: Path, scene_types, labels=None, depths=None, images=None, splits=None):
    """nyu_depth_v2_labeled.mat as MATLAB v7.3 stores it (h5py sees the arrays transposed),
    plus classMapping40.mat / class13Mapping.mat and optionally splits.mat."""
    h5py = pytest.importorskip("h5py")
    from scipy.io import savemat

    n = len(scene_types)
    images = np.stack([np.round(_image(i) * 7 % 256).astype(np.uint8) for i in range(n)]) if images is None else images
    labels = np.ones((n, H, W), np.uint16) if labels is None else labels
    depths = np.full((n, H, W), 2.0, np.float32) if depths is None else depths
    d.mkdir(parents=True, exist_ok=True)
    with h5py.File(d / "nyu_depth_v2_labeled.mat", "w") as f:
        f.create_dataset("images", data=images.transpose(0, 3, 2, 1))   # (N, 3, W, H)
        f.create_dataset("depths", data=depths.transpose(0, 2, 1))      # (N, W, H)
        f.create_dataset("labels", data=labels.transpose(0, 2, 1))
        _mat_strings(h5py, f, "sceneTypes", scene_types)
        _mat_strings(h5py, f, "scenes", [f"{t}_{i:04d}" for i, t in enumerate(scene_types)])
    # 894 -> 40: id k -> 40 - ((k - 1) % 40); 40 -> 13: j -> ((j - 1) % 13) + 1
    savemat(d / "classMapping40.mat", {"mapClass": (40 - np.arange(894) % 40)[None, :].astype(float)})
    savemat(d / "class13Mapping.mat", {"classMapping13": {"labelIdx": (np.arange(40) % 13 + 1)[None, :].astype(float),
                                                          "labelName": np.array(nyu.NYU_CLASSES, dtype=object)}})
    if splits is not None:
        savemat(d / "splits.mat", {"trainNdxs": np.array(splits[0], float)[:, None],
                                   "testNdxs": np.array(splits[1], float)[:, None]})
    return images


# 14 bedroom, 3 kitchen, 2 office, 1 bathroom (N = 20): test target round(0.1 * 20) = 2 -> only
# {office} sums to 2 (bathroom 1 alone is smaller); valid target 2 among the rest -> {bathroom}.
SCENES = ["bedroom"] * 14 + ["kitchen"] * 3 + ["office"] * 2 + ["bathroom"]
ORDER = [3, 17, 0, 19, 5, 14, 9, 1, 18, 7, 2, 15, 11, 4, 16, 8, 6, 13, 10, 12]
SCENE_TYPES = [SCENES[k] for k in np.argsort(ORDER)]  # shuffled so that rows of a type are not contiguous


def test_labeled_mat_scene_split_by_hand(tmp_path):
    write_labeled_mat(tmp_path, SCENE_TYPES)
    for seed in (0, 1, 2):
        s = load_nyuv2(tmp_path, layout="labeled-mat", seed=seed)
        envs = s.meta["environments"]
        assert envs == ["bathroom", "bedroom", "kitchen", "office"]
        rows = {k: [int(r.split("/")[1]) for r in v] for k, v in s.meta["rows"].items()}
        types = {k: {SCENE_TYPES[r] for r in v} for k, v in rows.items()}
        assert types == {"train": {"bedroom", "kitchen"}, "valid": {"bathroom"}, "test": {"office"}}
        assert sorted(rows["train"] + rows["valid"] + rows["test"]) == list(range(20))
        assert [envs[e] for e in s.train.env] == [SCENE_TYPES[r] for r in rows["train"]]
        assert (len(s.train), len(s.valid), len(s.test)) == (17, 1, 2)


def test_labeled_mat_seed_changes_a_free_split(tmp_path):
    # 16 + 2 + 2: test and valid each take one of the two size-2 types, which one depends on the seed
    types = ["a"] * 16 + ["b"] * 2 + ["c"] * 2
    write_labeled_mat(tmp_path, types)
    seen = set()
    for seed in range(8):
        s = load_nyuv2(tmp_path, layout="labeled-mat", tasks="depth", seed=seed)
        test_type = {s.meta["environments"][e] for e in s.test.env}
        assert {s.meta["environments"][e] for e in s.train.env} == {"a"}
        seen.add(tuple(sorted(test_type)))
        assert load_nyuv2(tmp_path, layout="labeled-mat", tasks="depth", seed=seed).meta["rows"] == s.meta["rows"]
    assert seen == {("b",), ("c",)}
    # depth and normals need no class-mapping file; segmentation names the first one missing
    (tmp_path / "classMapping40.mat").unlink()
    assert load_nyuv2(tmp_path, tasks=("depth", "normal")).meta["layout"] == "labeled-mat"
    with pytest.raises(MissingDataError, match=r"labeled-mat \(first missing: .*classMapping40\.mat\)"):
        load_nyuv2(tmp_path)


def test_labeled_mat_pixels_labels_depth_normals(tmp_path):
    labels = np.ones((6, H, W), np.uint16)
    labels[2, 0, 0], labels[2, 0, 1], labels[2, 0, 2], labels[2, 3, 5] = 0, 2, 3, 41
    depths = np.full((6, H, W), 2.0, np.float32)
    depths[2, 1, 4] = 0.0
    images = write_labeled_mat(tmp_path, ["a", "a", "b", "b", "c", "c"], labels=labels, depths=depths,
                               splits=([1, 2, 3, 4], [5, 6]))
    s = load_nyuv2(tmp_path, split="official", seed=0)
    assert s.meta["layout"] == "labeled-mat"
    rows = {k: [int(r.split("/")[1]) for r in v] for k, v in s.meta["rows"].items()}
    assert rows["test"] == [4, 5] and sorted(rows["train"] + rows["valid"]) == [0, 1, 2, 3]
    src = nyu.LabeledMatNYUSource(tmp_path / "nyu_depth_v2_labeled.mat", np.arange(6),
                                  nyu.read_class_mapping(tmp_path), nyu.NYU_TASKS)
    row = src.read(2)
    np.testing.assert_allclose(row.x, np.moveaxis(images[2], -1, 0) / 255.0, rtol=1e-6)
    seg = row.maps["segmentation"]
    # by hand: 0 -> ignore; 1 -> 40 -> 1 -> class 0; 2 -> 39 -> 13 -> 12; 3 -> 38 -> 12 -> 11;
    # 41 -> 40 -> 1 -> 0
    assert (seg[0, 0], seg[0, 1], seg[0, 2], seg[3, 5], seg[1, 1]) == (-1, 12, 11, 0, 0)
    dep = row.maps["depth"]
    assert np.isnan(dep[0, 1, 4]) and np.isnan(dep).sum() == 1 and dep[0, 0, 0] == 2.0
    nor = row.maps["normal"]
    np.testing.assert_allclose(nor[:, 2, 1], [0, 0, -1], atol=1e-6)  # flat wall facing the camera
    # the invalid pixel and the 4 pixels whose central differences touch it have no normal
    assert np.isnan(nor[0]).sum() == 5 and np.isnan(nor[:, 0, 4]).all() and np.isnan(nor[:, 1, 3]).all()
    # DataLoader workers get a pickled copy: the open HDF5 handle is dropped and reopened
    import pickle

    again = pickle.loads(pickle.dumps(src)).read(2)
    np.testing.assert_array_equal(again.maps["segmentation"], seg)


def test_normals_of_a_plane_are_exact():
    fx, fy, cx, cy = nyu.NYU_INTRINSICS
    n_true = np.array([0.2, -0.3, -1.0])
    n_true /= np.linalg.norm(n_true)
    v, u = np.mgrid[0:30, 0:40].astype(float)
    u, v = u * 16, v * 16  # rays across the whole 480 x 640 field of view
    r = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)])
    depth = -2.0 / np.tensordot(n_true, r, axes=1)  # n . (Z r) = -2
    assert (depth > 0).all()
    nor = normals_from_depth(depth, (fx / 16, fy / 16, cx / 16, cy / 16))
    np.testing.assert_allclose(nor, np.broadcast_to(n_true[:, None, None], nor.shape), atol=1e-5)


def test_preprocessed_gets_scene_types_from_the_official_index(tmp_path):
    write_labeled_mat(tmp_path, SCENE_TYPES, splits=([2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 1, 3, 5, 7],
                                                     [9, 11, 13, 15, 17, 19]))
    write_preprocessed(tmp_path, 14, 6)
    s = load_nyuv2(tmp_path, layout="preprocessed", seed=3)
    assert s.meta["layout"] == "preprocessed" and "trainNdxs" in s.meta["index"]
    official = [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 1, 3, 5, 7] + [9, 11, 13, 15, 17, 19]
    file_type = {f"train/{i}": SCENE_TYPES[k - 1] for i, k in enumerate(official[:14])}
    file_type |= {f"val/{i}": SCENE_TYPES[k - 1] for i, k in enumerate(official[14:])}
    types = {k: {file_type[r] for r in v} for k, v in s.meta["rows"].items()}
    assert types == {"train": {"bedroom", "kitchen"}, "valid": {"bathroom"}, "test": {"office"}}
    envs = s.meta["environments"]
    assert [envs[e] for e in s.test.env] == [file_type[r] for r in s.meta["rows"]["test"]]


# --- bad input ---------------------------------------------------------------------------------------
def test_unknown_layout_names_layouts_and_first_missing_file(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(MissingDataError) as err:
        load_nyuv2(tmp_path)
    msg = str(err.value)
    assert f"preprocessed (first missing: {tmp_path / 'train' / 'image' / '0.npy'})" in msg
    assert f"labeled-mat (first missing: {tmp_path / 'nyu_depth_v2_labeled.mat'})" in msg


def test_no_directory_says_where_to_get_data(monkeypatch):
    monkeypatch.delenv("CAUSALMTL_DATA", raising=False)
    with pytest.raises(MissingDataError, match="CAUSALMTL_DATA.*nyu_depth_v2"):
        load_nyuv2()


def test_bad_files_are_named_when_read(tmp_path):
    write_preprocessed(tmp_path, 3, 2)
    bad_label = np.zeros((H, W), np.float32)
    bad_label[1, 1] = 13
    np.save(tmp_path / "train" / "label" / "0.npy", bad_label)
    np.save(tmp_path / "train" / "label" / "1.npy", np.zeros((H + 1, W), np.float32))
    np.save(tmp_path / "train" / "depth" / "2.npy", np.zeros((H, W, 2), np.float32))
    np.save(tmp_path / "val" / "normal" / "0.npy", np.zeros((H, W, 2), np.float32))
    lab = np.zeros((H, W), np.float32)
    lab[0, 0] = -2
    np.save(tmp_path / "val" / "label" / "1.npy", lab)
    s = load_nyuv2(tmp_path)  # nothing is read at load time
    src = s.train.inputs.base
    with pytest.raises(ValueError, match=r"label .*train/label/0\.npy has the value 13 at pixel \(1, 1\)"):
        src.read(0)
    with pytest.raises(ValueError, match=r"label .*train/label/1\.npy is 5x6 but its image .*train/image/1\.npy is 4x6"):
        src.read(1)
    with pytest.raises(ValueError, match=r"depth .*train/depth/2\.npy has shape \(4, 6, 2\)"):
        src.read(2)
    with pytest.raises(ValueError, match=r"normal .*val/normal/0\.npy has shape \(4, 6, 2\)"):
        src.read(3)
    with pytest.raises(ValueError, match=r"val/label/1\.npy has the value -2"):
        src.read(4)


def test_task_the_layout_lacks(tmp_path):
    write_preprocessed(tmp_path, 3, 2, kinds=("image", "label", "depth"))
    with pytest.raises(ValueError, match=r"train/normal/0\.npy is missing.*lacks it"):
        load_nyuv2(tmp_path)
    s = load_nyuv2(tmp_path, tasks=("segmentation", "depth"))
    assert s.train.task_names == ("segmentation", "depth")
    with pytest.raises(ValueError, match="tasks must be distinct names"):
        load_nyuv2(tmp_path, tasks=("curvature",))


def test_gap_in_numbered_files(tmp_path):
    write_preprocessed(tmp_path, 3, 2)
    (tmp_path / "train" / "image" / "1.npy").unlink()
    with pytest.raises(ValueError, match=r"1\.npy is missing"):
        load_nyuv2(tmp_path)


def test_too_few_scene_types_leave_a_split_empty(tmp_path):
    write_labeled_mat(tmp_path, ["a"] * 5 + ["b"] * 3)
    with pytest.raises(ValueError, match="at least 3 environments.*found 2"):
        load_nyuv2(tmp_path, layout="labeled-mat")


def test_labeled_mat_label_outside_894(tmp_path):
    labels = np.ones((3, H, W), np.uint16)
    labels[1, 2, 2] = 900
    write_labeled_mat(tmp_path, ["a", "b", "c"], labels=labels)
    s = load_nyuv2(tmp_path, layout="labeled-mat", fractions=(0.34, 0.33, 0.33))
    src = s.train.inputs.base
    with pytest.raises(ValueError, match=r"image 1: label 900 at pixel \(2, 2\) is outside the NYU classes"):
        src.read(1)


def test_synthetic_writer_round_trips_both_layouts(tmp_path):
    nyu.write_synthetic_nyuv2(tmp_path / "pre", n=12, size=(8, 10), seed=1)
    s = load_nyuv2(tmp_path / "pre")  # index.csv gives the scene types
    assert len(s.train) + len(s.valid) + len(s.test) == 12 and s.meta["index"].startswith("index.csv")
    assert not set(s.train.env) & set(s.test.env) and not set(s.valid.env) & set(s.test.env)
    row = s.train.inputs.read(0)
    assert row.x.shape == (3, 8, 10) and set(np.unique(row.maps["segmentation"])) <= set(range(-1, 13))
    pytest.importorskip("h5py")
    nyu.write_synthetic_nyuv2(tmp_path / "mat", n=12, size=(8, 10), seed=1, layout="labeled-mat", n_scene_types=4)
    s = load_nyuv2(tmp_path / "mat")
    assert len(s.train) + len(s.valid) + len(s.test) == 12 and len(s.meta["environments"]) == 4
    assert not set(s.train.env) & set(s.test.env) and not set(s.valid.env) & set(s.test.env)


def _write_index(d: Path, lines: list[str]) -> None:
    (d / "index.csv").write_text("split,index,official_index,scene_type,scene\n" + "\n".join(lines) + "\n")


def test_preprocessed_scene_types_from_index_csv(tmp_path):
    write_preprocessed(tmp_path, 14, 6)
    files = [f"train/{i}" for i in range(14)] + [f"val/{i}" for i in range(6)]
    _write_index(tmp_path, [f"{f.replace('/', ',')},{k + 1},{SCENE_TYPES[k]},{SCENE_TYPES[k]}_{k:04d}"
                            for k, f in enumerate(files)])
    s = load_nyuv2(tmp_path, seed=5)
    file_type = dict(zip(files, SCENE_TYPES))
    types = {k: {file_type[r] for r in v} for k, v in s.meta["rows"].items()}
    assert types == {"train": {"bedroom", "kitchen"}, "valid": {"bathroom"}, "test": {"office"}}
    # official split: test = val files, valid = whole buildings of train (here one image each)
    s = load_nyuv2(tmp_path, split="official", seed=5)
    assert s.meta["rows"]["test"] == [f"val/{i}" for i in range(6)] and len(s.valid) == 1
    # a file without a line is named
    _write_index(tmp_path, [f"{f.replace('/', ',')},,{SCENE_TYPES[k]}," for k, f in enumerate(files) if f != "val/3"])
    with pytest.raises(ValueError, match=r"index.csv has no line for val/3"):
        load_nyuv2(tmp_path)
    (tmp_path / "index.csv").write_text("split,index,scene\ntrain,0,a\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['scene_type'\]"):
        load_nyuv2(tmp_path)


def test_write_index_from_official_files_matches_direct_mapping(tmp_path):
    official = ([2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 1, 3, 5, 7], [9, 11, 13, 15, 17, 19])
    write_labeled_mat(tmp_path, SCENE_TYPES, splits=official)
    write_preprocessed(tmp_path, 14, 6)
    direct = load_nyuv2(tmp_path, layout="preprocessed", seed=2)
    path = nyu.write_nyuv2_index(tmp_path)
    lines = path.read_text().splitlines()
    assert lines[0] == "split,index,official_index,scene_type,scene"
    assert lines[1] == f"train,0,2,{SCENE_TYPES[1]},{SCENE_TYPES[1]}_0001"  # train/0 = trainNdxs[0] = 2
    assert lines[15] == f"val,0,9,{SCENE_TYPES[8]},{SCENE_TYPES[8]}_0008"
    via_csv = load_nyuv2(tmp_path, layout="preprocessed", seed=2)
    assert via_csv.meta["index"].startswith("index.csv") and via_csv.meta["rows"] == direct.meta["rows"]
