"""Taskonomy loader on tiny copies of the real layout written here, file by file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from causalmtl.data import taskonomy as tk
from causalmtl.data._sources import MissingDataError
from causalmtl.data.streamed import collate, read_rows
from causalmtl.data.taskonomy import (
    load_taskonomy,
    read_imagenet_class_index,
    read_scene_hierarchy,
    read_selected_object_classes,
    write_synthetic_taskonomy,
)
from causalmtl.gmtl.priors.prior import gmtl_taskonomy_prior

S = 6  # pixels
FOLDER = {"class_scene": "class_scene"}
SUFFIX = {"class_scene": "class_places"}


def fname(domain: str, p: int, v: int) -> str:
    ext = "npy" if domain.startswith("class_") else "png"
    return f"point_{p}_view_{v}_domain_{SUFFIX.get(domain, domain)}.{ext}"


def put(root: Path, domain: str, b: str, p: int, v: int, value) -> Path:
    d = root / FOLDER.get(domain, domain) / "taskonomy" / b
    d.mkdir(parents=True, exist_ok=True)
    f = d / fname(domain, p, v)
    if isinstance(value, np.ndarray) and f.suffix == ".npy":
        np.save(f, value)
    else:
        Image.fromarray(value).save(f)
    return f


def dist(n: int, peak: int, second: int | None = None) -> np.ndarray:
    """A distribution over n classes peaking at ``peak`` (0.5) with ``second`` next (0.3)."""
    v = np.full(n, 0.2 / n)
    v[peak] = 0.5
    if second is not None:
        v[second] = 0.3
    return v.astype(np.float32)


# object classes selected (ImageNet indices) and scene classes flagged (Places indices)
OBJ_SEL = [7, 3, 900]
SCENE_SEL = [2, 10, 364]
# rows: building -> [(point, view, object argmax over OBJ_SEL, scene argmax over SCENE_SEL)]
# the full-1000 argmax (peak) is often NOT a selected class: the label is the argmax among the
# selected ones (the 'second' entry), as in the GMTL code
ROWS = {
    "alpha": [(0, 0, 0, 1), (0, 1, 2, 1), (1, 0, 1, 0)],
    "beta": [(0, 0, 1, 2), (2, 1, 0, 0)],
    "gamma": [(5, 0, 2, 2)],
    "delta": [(3, 3, 0, 1), (4, 0, 1, 1)],
}


def write_class_lists(root: Path, names: dict[int, str] | None = None) -> None:
    idx = {i: f"name {i}, alias {i}" for i in range(1000)}
    (root / "imagenet1000_clsidx_to_labels.txt").write_text(
        "{" + ",\n ".join(f"{i}: {v!r}" for i, v in idx.items()) + "}")
    names = names or {i: idx[i] for i in OBJ_SEL}
    (root / "imagenet_selected_classes.txt").write_text("".join(f"n0{i:07d} {names[i]},\n" for i in OBJ_SEL))
    cols = ["category", "indoor", tk.SCENE_COLUMNS[0], "shopping", tk.SCENE_COLUMNS[1]]
    lines = [",".join(f'"{c}"' for c in cols)]
    for i in range(365):
        work = int(i in SCENE_SEL[:2])
        home = int(i == SCENE_SEL[2])
        lines.append(f"/s/scene{i},1,{work},{int(i % 7 == 0)},{home}")
    (root / "Scene hierarchy - Places365.csv").write_text("\n".join(lines) + "\n")


def write_tiny(root: Path) -> dict:
    """The real layout, by hand. Returns per-row expectations keyed by (building, point, view)."""
    rng = np.random.default_rng(0)
    exp = {}
    for b, rows in ROWS.items():
        for p, v, o, s in rows:
            rgb = np.full((S, S, 3), 10 * p + v, np.uint8)
            put(root, "rgb", b, p, v, rgb)
            # object: peak at an unselected class, the selected class o second
            put(root, "class_object", b, p, v, dist(1000, 500 + p, OBJ_SEL[o]))
            if (b, p, v) != ("beta", 2, 1):  # one row without its scene file
                put(root, "class_scene", b, p, v, dist(365, SCENE_SEL[s], 100))
            depth = np.full((S, S), 1024, np.uint16)  # 2 m
            depth[0, :] = 65535  # no geometry
            put(root, "depth_zbuffer", b, p, v, depth)
            normal = np.zeros((S, S, 3), np.uint8)
            normal[..., 2] = 255
            if (b, p, v) != ("beta", 2, 1):  # and without its normal file
                put(root, "normal", b, p, v, normal)
            seg = np.full((S, S), 1, np.uint8)
            seg[2:4, 2:4] = 5
            seg[5, 5] = 0
            put(root, "segment_semantic", b, p, v, seg)
            exp[(b, p, v)] = (o, s, rng)
    (root / "splits_taskonomy").mkdir()
    # 'epsilon' is listed but not on disk
    (root / "splits_taskonomy" / "train_val_test_tiny.csv").write_text(
        "id,train,val,test\nalpha,1,0,0\nbeta,1,0,0\ngamma,0,1,0\ndelta,0,0,1\nepsilon,1,0,0\nzeta,0,0,0\n")
    write_class_lists(root)
    return exp


@pytest.fixture()
def tiny(tmp_path: Path) -> Path:
    root = tmp_path / "taskonomy"
    write_tiny(root)
    return root


def test_gmtl_labels_equal_direct_reading(tiny: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as m:  # labels-only mode opens no image
        m.setattr(tk, "_read_png", lambda *a: pytest.fail("an image was read"))
        s = load_taskonomy(tiny, tasks="gmtl", split_size="tiny", labels_only=True, drop_incomplete=False)
    assert s.meta["split"] == "train_val_test_tiny.csv"
    assert s.meta["absent_buildings"] == ["epsilon"]
    assert s.meta["buildings"] == {"train": ["alpha", "beta"], "valid": ["gamma"], "test": ["delta"]}
    np.testing.assert_array_equal(s.meta["object_classes"], OBJ_SEL)
    np.testing.assert_array_equal(s.meta["scene_classes"], SCENE_SEL)
    assert s.train.n_classes == (3, 3) and (len(s.train), len(s.valid), len(s.test)) == (5, 1, 2)
    # rows sorted by (point, view) inside each building, buildings in split order
    exp_train = [(0, 1), (2, 1), (1, 0), (1, 2), (0, -1)]  # beta (2,1) has no scene file -> -1
    np.testing.assert_array_equal(s.train.labels, exp_train)
    np.testing.assert_array_equal(s.train.inputs["point"], [0, 0, 1, 0, 2])
    # a direct reading of the .npy files through the class lists
    for split in ("train", "valid", "test"):
        ds = getattr(s, split)
        names = [s.meta["environments"][e] for e in ds.env]
        for b, p, v, lab in zip(names, ds.inputs["point"], ds.inputs["view"], ds.labels):
            o = np.argmax(np.load(tiny / "class_object" / "taskonomy" / b / fname("class_object", p, v))[OBJ_SEL])
            assert lab[0] == o
            f = tiny / "class_scene" / "taskonomy" / b / fname("class_scene", p, v)
            assert lab[1] == (np.argmax(np.load(f)[SCENE_SEL]) if f.exists() else -1)
    # environments = buildings
    assert s.meta["environments"] == ["alpha", "beta", "delta", "gamma"]
    np.testing.assert_array_equal(s.train.env, [0, 0, 0, 1, 1])
    # by default the GMTL pair drops rows missing a label file, as the authors' code does
    d = load_taskonomy(tiny, tasks="gmtl", split="csv", split_size="tiny", labels_only=True)
    assert len(d.train) == 4 and d.meta["dropped"]["train"] == 1


def test_prior_equals_counts_plus_pseudocount(tiny: Path) -> None:
    s = load_taskonomy(tiny, tasks="gmtl", split="csv", split_size="tiny", labels_only=True)
    prior = gmtl_taskonomy_prior(s, pseudocount=0.5)
    counts = np.zeros((3, 3))
    for o, sc in [(0, 1), (2, 1), (1, 0), (1, 2)]:  # the four complete train rows, by hand
        counts[o, sc] += 1
    np.testing.assert_allclose(prior.probs, (counts + 0.5) / (counts + 0.5).sum())


def test_gmtl_100_by_64_on_synthetic_npy(tmp_path: Path) -> None:
    """The paper's sizes: 100 selected ImageNet classes, 64 flagged Places categories."""
    rng = np.random.default_rng(3)
    root = tmp_path / "t"
    obj_sel = rng.choice(1000, 100, replace=False)
    scene_sel = np.sort(rng.choice(365, 64, replace=False))
    (root / "splits_taskonomy").mkdir(parents=True)
    idx = {i: f"c{i}, x" for i in range(1000)}
    (root / "imagenet1000_clsidx_to_labels.txt").write_text(repr(idx))
    (root / "imagenet_selected_classes.txt").write_text("".join(f"w{i} {idx[i]},\n" for i in obj_sel))
    flags = np.isin(np.arange(365), scene_sel)
    work = flags & (np.arange(365) % 2 == 0)
    (root / "Scene hierarchy - Places365.csv").write_text(
        'category,"workplace (office building, factory, lab, etc.)",home or hotel\n'
        + "".join(f"/a/s{i},{int(w)},{int(f and not w)}\n" for i, (w, f) in enumerate(zip(work, flags))))
    expected = {}
    for b in ("b0", "b1", "b2"):
        for p in range(40):
            o, s = rng.dirichlet(np.ones(1000)), rng.dirichlet(np.ones(365))
            put(root, "rgb", b, p, 0, np.zeros((2, 2, 3), np.uint8))
            put(root, "class_object", b, p, 0, o)
            put(root, "class_scene", b, p, 0, s)
            expected[(b, p)] = (int(np.argmax(o[obj_sel])), int(np.argmax(s[scene_sel])))
    s = load_taskonomy(root, tasks="gmtl", split="buildings", building_counts=(1, 1, 1), seed=0, labels_only=True)
    assert s.train.n_classes == (100, 64)
    for split in ("train", "valid", "test"):
        ds = getattr(s, split)
        names = [s.meta["environments"][e] for e in ds.env]
        got = {(b, int(p)): tuple(lab) for b, p, lab in zip(names, ds.inputs["point"], ds.labels)}
        assert got == {k: v for k, v in expected.items() if k[0] in names}
    prior = gmtl_taskonomy_prior(s, pseudocount=1.0)
    counts = np.zeros((100, 64))
    b = s.meta["buildings"]["train"][0]
    for (bb, _), (o, sc) in expected.items():
        if bb == b:
            counts[o, sc] += 1
    assert prior.probs.shape == (100, 64)
    np.testing.assert_allclose(prior.probs, (counts + 1) / (counts + 1).sum())


def test_mtcrl_tasks_maps_and_missing(tiny: Path) -> None:
    s = load_taskonomy(tiny, tasks=["object", "segment_semantic", "normal", "depth_zbuffer"],
                       split={"train": ["alpha", "beta"], "valid": ["gamma"], "test": ["delta"]})
    t = {x.name: x for x in s.tasks}
    assert t["segment_semantic"].kind == "segmentation" and t["segment_semantic"].n_classes == 17
    assert t["normal"].channels == 3 and t["depth_zbuffer"].loss_name == "l2"
    assert t["object"].n_classes == 1000
    # object over all 1,000 classes: the peak 500 + point
    np.testing.assert_array_equal(s.train.targets[:, 0], [500, 500, 501, 500, 502])
    # beta (2, 1) has no normal file: its presence column is NaN, all others 1
    np.testing.assert_array_equal(np.isnan(s.train.targets[:, 2]), [0, 0, 0, 0, 1])
    src = s.train.inputs
    smp = src.read(0)
    assert smp.x.shape == (3, S, S) and smp.x.dtype == np.uint8 and smp.x[0, 0, 0] == 0
    assert src.read(1).x[0, 0, 0] == 1  # point 0 view 1
    seg = smp.maps["segment_semantic"]
    assert seg[0, 0] == 0 and seg[2, 2] == 4 and seg[5, 5] == -1  # background 1 -> 0, 5 -> 4, 0 -> ignored
    depth = smp.maps["depth_zbuffer"]
    assert depth.shape == (1, S, S) and np.isnan(depth[0, 0]).all() and (depth[0, 1:] == 2.0).all()
    n = smp.maps["normal"]
    np.testing.assert_allclose(n[:, 1:, :], np.broadcast_to(np.array([-1, -1, 1.0])[:, None, None], (3, S - 1, S)))
    assert np.isnan(n[:, 0]).all()  # no geometry (depth 65535) -> invalid normal
    assert "normal" not in src.read(4).maps
    x, maps = collate(read_rows(src, np.arange(5)), s.train.dense_tasks)
    assert np.isnan(maps["normal"][4]).all() and x.shape == (5, 3, S, S)
    # without depth masking the first row of the normal map is kept
    u = load_taskonomy(tiny, tasks=["normal"], split={"train": ["alpha"], "valid": ["gamma"], "test": ["delta"]},
                       mask_from_depth=False)
    assert not np.isnan(u.train.inputs.read(0).maps["normal"]).any()
    # the papers' pipeline (resize, crop, flip) as transforms on image and maps together
    tf = tk.paper_transforms(resize=8, crop=4)
    out = tf["train"](smp, np.random.default_rng(0))
    assert out.x.shape == (3, 4, 4) and out.x.dtype == np.float32
    assert out.maps["segment_semantic"].shape == (4, 4) and out.maps["normal"].shape == (3, 4, 4)
    ev = tf["eval"](smp, np.random.default_rng(0))
    np.testing.assert_allclose(ev.x, (0.0 - np.array(tk.IMAGENET_MEAN)[:, None, None])
                               / np.array(tk.IMAGENET_STD)[:, None, None] * np.ones((3, 4, 4)), rtol=1e-6)


def test_building_split_by_seed(tiny: Path) -> None:
    a = load_taskonomy(tiny, tasks=["object"], building_counts=(2, 1, 1), seed=4, labels_only=True)
    b = load_taskonomy(tiny, tasks=["object"], building_counts=(2, 1, 1), seed=4, labels_only=True)
    assert a.meta["buildings"] == b.meta["buildings"]
    groups = a.meta["buildings"]
    every = sum(groups.values(), [])
    assert sorted(every) == ["alpha", "beta", "delta", "gamma"] and len(set(every)) == 4
    perm = np.random.default_rng(4).permutation(4)
    names = sorted(ROWS)
    assert groups["train"] == sorted(names[i] for i in perm[:2]) and groups["test"] == [names[perm[3]]]
    n_rows = {b: len(r) for b, r in ROWS.items()}
    assert len(a.train) == sum(n_rows[b] for b in groups["train"])
    with pytest.raises(ValueError, match=r"building_counts \(3, 1, 1\) need 5 buildings; only 4"):
        load_taskonomy(tiny, tasks=["object"], building_counts=(3, 1, 1), labels_only=True)


def test_index_cache_reused_and_invalidated(tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kw = dict(tasks=["object", "normal"], split={"train": ["alpha", "beta"], "valid": ["gamma"], "test": ["delta"]})
    first = load_taskonomy(tiny, **kw)
    # rgb, class_object, normal, depth (for masking) of 4 buildings
    assert first.meta["listings"] == 16
    assert Path(first.meta["cache_dir"]) == tiny / ".causalmtl_cache"
    # the second load lists no folder and reads no label file (the argmax labels are cached)
    with monkeypatch.context() as m:
        m.setattr(tk, "_read_distribution", lambda *a: pytest.fail("a cached label file was read"))
        again = load_taskonomy(tiny, **kw)
    assert again.meta["listings"] == 0 and len(again.train) == 5
    np.testing.assert_array_equal(again.train.targets, first.train.targets)
    # a damaged cache file is rebuilt
    (tiny / ".causalmtl_cache" / "listing_rgb.npz").write_bytes(b"not a zip")
    assert load_taskonomy(tiny, **kw).meta["listings"] == 4
    # a new row in one building: only the changed folder is listed again
    put(tiny, "rgb", "gamma", 9, 0, np.zeros((S, S, 3), np.uint8))
    third = load_taskonomy(tiny, **kw)
    assert third.meta["listings"] == 1 and len(third.valid) == 2
    assert np.isnan(third.valid.targets[1]).all()  # no object or normal file for it yet
    put(tiny, "class_object", "gamma", 9, 0, dist(1000, 4))
    fourth = load_taskonomy(tiny, **kw)
    assert fourth.meta["listings"] == 1 and fourth.valid.targets[1, 0] == 4
    # a read-only data directory: the cache goes to the user cache directory
    monkeypatch.setattr(tk, "_writable", lambda d: False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    ro = load_taskonomy(tiny, **kw)
    assert Path(ro.meta["cache_dir"]).is_relative_to(tmp_path / "xdg") and ro.meta["listings"] == 16
    assert load_taskonomy(tiny, **kw).meta["listings"] == 0


def test_bad_input(tiny: Path, tmp_path: Path) -> None:
    split = {"train": ["alpha", "beta"], "valid": ["gamma"], "test": ["delta"]}
    with pytest.raises(ValueError, match=r"building 'beta' is in two splits"):
        load_taskonomy(tiny, tasks=["object"], split={**split, "test": ["beta"]}, labels_only=True)
    with pytest.raises(ValueError, match=r"the valid split has no building"):
        load_taskonomy(tiny, tasks=["object"], split={**split, "valid": []}, labels_only=True)
    csv = tiny / "splits_taskonomy" / "train_val_test_tiny.csv"
    csv.write_text("id,train,val,test\nalpha,1,1,0\nbeta,0,0,1\n")
    with pytest.raises(ValueError, match=r"building 'alpha' is in two splits \['train', 'val'\]"):
        load_taskonomy(tiny, tasks=["object"], split="csv", split_size="tiny", labels_only=True)
    csv.write_text("id,train,val,test\nalpha,1,0,0\nbeta,0,0,1\nomega,0,1,0\n")
    with pytest.raises(ValueError, match=r"the valid split has no building"):
        load_taskonomy(tiny, tasks=["object"], split="csv", split_size="tiny", labels_only=True)
    with pytest.raises(ValueError, match=r"labels_only=True reads no image.*normal"):
        load_taskonomy(tiny, tasks=["object", "normal"], split=split, labels_only=True)
    # a missing domain folder for a requested task names the domain and the building
    (tiny / "segment_semantic" / "taskonomy" / "gamma").rename(tmp_path / "moved")
    with pytest.raises(MissingDataError, match=r"'segment_semantic' of building 'gamma'"):
        load_taskonomy(tiny, tasks=["segment_semantic"], split=split)
    # 8-bit where 16-bit depth is expected
    put(tiny, "depth_zbuffer", "alpha", 0, 0, np.full((S, S), 4, np.uint8))
    s = load_taskonomy(tiny, tasks=["depth_zbuffer"], split=split)
    with pytest.raises(ValueError, match=r"point_0_view_0_domain_depth_zbuffer\.png: expected a 16-bit PNG"):
        s.train.inputs.read(0)
    with pytest.raises(ValueError, match="unknown Taskonomy task 'depth'"):
        load_taskonomy(tiny, tasks=["depth"])
    with pytest.raises(MissingDataError, match="no '<domain>/taskonomy/<building>/' folder"):
        load_taskonomy(tmp_path / "nothing", tasks=["object"])


def test_class_list_files(tmp_path: Path) -> None:
    write_class_lists(tmp_path, names={7: "name 7, alias 7", 3: "nam 3", 900: "name 900, alias 90"})
    index = read_imagenet_class_index(tmp_path / "imagenet1000_clsidx_to_labels.txt")
    assert index[3] == "name 3, alias 3"
    with pytest.raises(ValueError, match=r"2 class name\(s\) not in the 1000-class ImageNet index, "
                                         r"first: \['nam 3', 'name 900, alias 90'\]"):
        read_selected_object_classes(tmp_path / "imagenet_selected_classes.txt", index)
    write_class_lists(tmp_path)
    np.testing.assert_array_equal(read_selected_object_classes(tmp_path / "imagenet_selected_classes.txt", index), OBJ_SEL)
    np.testing.assert_array_equal(read_scene_hierarchy(tmp_path / "Scene hierarchy - Places365.csv"), sorted(SCENE_SEL))
    (tmp_path / "bad.txt").write_text("{0: 'a'}")
    with pytest.raises(ValueError, match="expected a dict mapping 0..999"):
        read_imagenet_class_index(tmp_path / "bad.txt")
    (tmp_path / "h.csv").write_text("category,home or hotel\n/a,1\n")
    with pytest.raises(ValueError, match=r"missing column\(s\) \['workplace"):
        read_scene_hierarchy(tmp_path / "h.csv")


def test_synthetic_writer_layout_and_structure(tmp_path: Path) -> None:
    root = write_synthetic_taskonomy(tmp_path / "syn", buildings=6, points=5, views=2, size=16, seed=2)
    assert (root / "class_scene" / "taskonomy" / "bldg00" / "point_0_view_1_domain_class_places.npy").is_file()
    s = load_taskonomy(root, tasks="mtcrl", building_counts=(4, 1, 1), seed=0)
    assert len(s.train) + len(s.valid) + len(s.test) == 60 and not np.isnan(s.train.targets).any()
    g = load_taskonomy(root, tasks="gmtl", split="csv", split_size="tiny", labels_only=True)
    assert g.train.n_classes == (100, 64) and (len(g.train), len(g.valid), len(g.test)) == (40, 10, 10)
    # learnable: the background colour (a corner pixel, noise < 20) is a function of the scene
    corners, scenes = [], []
    src = s.train.inputs
    for i in range(len(src)):
        corners.append(src.read(i).x[:, -1, 0].astype(int))
        scenes.append(int(s.train.targets[i, 1]))
    corners, scenes = np.asarray(corners), np.asarray(scenes)
    for sc in np.unique(scenes):
        c = corners[scenes == sc]
        assert (c.max(axis=0) - c.min(axis=0) < 20).all()
