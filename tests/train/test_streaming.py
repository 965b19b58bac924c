"""The image/dense contract end to end: in-memory and streamed data give the same batches,
losses, training run and metrics; dense rows without a valid pixel count as missing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from _dense_toy import TASKS, arrays
from _dense_toy import dataset as _dataset
from _dense_toy import model as _model
from _dense_toy import splits as _splits
from causalmtl.data.base import MultiTaskDataset, Task
from causalmtl.data.streamed import ArraySource, FileSource
from causalmtl.data.transforms import Compose, HorizontalFlip, RandomCrop
from causalmtl.methods import ERM, IRM, Batch
from causalmtl.train import Trainer, evaluate
from causalmtl.train.sampling import epoch_plan
from causalmtl.train.streaming import StepBatches


def test_dense_row_losses_equal_a_brute_force_loop():
    data = _dataset(6, 0, 3, streamed=False)
    b = Batch.from_dataset(data)
    model = _model()
    out = model.forward_full(b.x)
    got = model.row_losses(out, b.y, b.maps).detach().numpy()
    _, _, maps = arrays(6, 3)
    for i in range(6):
        lp = out.outputs[1][i].detach().numpy()
        pix = [(r, c) for r in range(8) for c in range(8) if maps["seg"][i, r, c] >= 0]
        want = np.mean([-lp[maps["seg"][i, r, c], r, c] for r, c in pix]) if pix else 0.0
        assert got[i, 1] == pytest.approx(want, rel=1e-5, abs=1e-7)
        d = out.outputs[2][i, 0].detach().numpy()
        pix = [(r, c) for r in range(8) for c in range(8) if not np.isnan(maps["depth"][i, 0, r, c])]
        want = np.mean([abs(d[r, c] - maps["depth"][i, 0, r, c]) for r, c in pix]) if pix else 0.0
        assert got[i, 2] == pytest.approx(want, rel=1e-5, abs=1e-7)
        nrm = out.outputs[3][i].detach().numpy()
        cos = [1 - nrm[:, r, c] @ maps["normal"][i, :, r, c] / np.linalg.norm(nrm[:, r, c])
               for r in range(8) for c in range(8)]
        assert got[i, 3] == pytest.approx(np.mean(cos), rel=1e-4)
    # row 2's depth map has no valid pixel: a missing target (no loss, not counted)
    assert np.isnan(b.y[2, 2].item()) and got[2, 2] == 0.0
    # rows without a segmentation map are missing too
    assert torch.isnan(b.y[1::7, 1]).all()


def test_streamed_and_in_memory_give_identical_batches():
    mem, disk = _dataset(40, 0, 0, False), _dataset(40, 0, 0, True)
    groups = [np.arange(40)]

    def plan_of(epoch):
        return epoch_plan(groups, 16, 3, seed=5, epoch=epoch)

    a = StepBatches(mem, plan_of, 3, torch.device("cpu"), seed=5)
    b = StepBatches(disk, plan_of, 3, torch.device("cpu"), seed=5)
    assert b.resident is None  # nothing of a streamed split is held on the device
    for ba, bb in zip(a.epoch(2), b.epoch(2), strict=True):
        (ba,), (bb,) = ba, bb
        assert torch.equal(ba.x, bb.x) and torch.equal(ba.env, bb.env)
        assert torch.equal(torch.nan_to_num(ba.y, nan=-7), torch.nan_to_num(bb.y, nan=-7))
        assert ba.maps.keys() == bb.maps.keys()
        for t in ba.maps:
            assert torch.equal(torch.nan_to_num(ba.maps[t], nan=-7), torch.nan_to_num(bb.maps[t], nan=-7))


@pytest.mark.parametrize("method", [ERM, IRM])
def test_training_streamed_equals_in_memory(method):
    kw = dict(epochs=2, batch_size=16, lr=1e-2, seed=3)
    proto = "split" if method is ERM else "mtcrl"
    r_mem = Trainer(method(_model()), protocol=proto, **kw).fit(_splits(False))
    r_disk = Trainer(method(_model()), protocol=proto, **kw).fit(_splits(True))
    cols = [c for c in r_mem.history.columns if c.startswith(("train/", "valid/"))]
    assert np.allclose(r_mem.history[cols].to_numpy(float), r_disk.history[cols].to_numpy(float),
                       rtol=1e-5, atol=1e-6, equal_nan=True)
    assert r_mem.history["train/loss"].iloc[-1] < r_mem.history["train/loss"].iloc[0]


def test_streamed_training_with_two_workers_matches_zero_workers():
    kw = dict(epochs=1, batch_size=16, lr=1e-2, seed=3)
    r0 = Trainer(ERM(_model()), num_workers=0, **kw).fit(_splits(True))
    r2 = Trainer(ERM(_model()), num_workers=2, **kw).fit(_splits(True))
    cols = [c for c in r0.history.columns if c.startswith(("train/", "valid/"))]
    assert np.allclose(r0.history[cols].to_numpy(float), r2.history[cols].to_numpy(float), equal_nan=True)


def test_evaluate_streamed_equals_in_memory():
    model = _model()
    a = evaluate(model, _dataset(16, 1, 1, False), batch_size=5)
    b = evaluate(model, _dataset(16, 1, 1, True), batch_size=7)
    assert a.keys() == b.keys()
    for k in a:
        assert a[k] == pytest.approx(b[k], rel=1e-5, nan_ok=True)


class _CountingSource(FileSource):
    def __init__(self, x, maps):
        self.inner = ArraySource(x, maps)
        self.reads: list[int] = []

    def __len__(self):
        return len(self.inner)

    def read(self, i):
        self.reads.append(i)
        return self.inner.read(i)


def test_streamed_split_is_read_lazily_and_transforms_are_seeded_per_row():
    x, y, maps = arrays(12, 0, hw=10)
    src = _CountingSource(x, maps)
    t = Compose([RandomCrop(8), HorizontalFlip(0.5)])
    data = MultiTaskDataset(src, y, TASKS, transform=t)
    sub = data.subset(np.arange(6, 12))
    assert src.reads == [] and sub.streamed and len(sub) == 6
    b1 = Batch.from_dataset(sub, [0, 1])
    assert src.reads == [6, 7] and tuple(b1.x.shape) == (2, 3, 8, 8)
    b2 = Batch.from_dataset(sub, [0, 1])
    assert torch.equal(b1.x, b2.x)                       # same (seed, epoch, row): same crop
    assert tuple(b1.maps[1].shape) == (2, 8, 8) and tuple(b1.maps[3].shape) == (2, 3, 8, 8)


def test_contract_errors_name_the_problem():
    x, y, maps = arrays(4, 0)
    with pytest.raises(ValueError, match=r"maps for the dense tasks \['normal'\]"):
        MultiTaskDataset(x, y, TASKS, maps={k: v for k, v in maps.items() if k != "normal"})
    with pytest.raises(ValueError, match=r"maps\['depth'\] must have shape \(N, 1, H, W\)"):
        MultiTaskDataset(x, y, TASKS, maps={**maps, "depth": maps["depth"][:, 0]})
    bad = y.copy()
    bad[0, 2] = 0.5
    with pytest.raises(ValueError, match="dense task 'depth' must be 1.0"):
        MultiTaskDataset(x, bad, TASKS, maps=maps)
    with pytest.raises(ValueError, match="loss 'cosine' is not available for a segmentation task"):
        Task("s", "segmentation", n_classes=3, loss="cosine")
    with pytest.raises(ValueError, match="transform applies to rows read from a FileSource"):
        MultiTaskDataset(x, y, TASKS, maps=maps, transform=RandomCrop(4))


def test_evaluate_reports_split_level_dense_metrics_and_selection_follows_direction():
    model = _model()
    res = evaluate(model, _dataset(16, 1, 1, False), batch_size=5)
    for key in ("miou/seg", "pix_acc/seg", "abs_err/depth", "rel_err/depth", "mean_angle/normal",
                "median_angle/normal", "within_22.5/normal"):
        assert key in res and np.isfinite(res[key]), key
    # one accumulation over the split equals the metric of one big batch
    big = evaluate(model, _dataset(16, 1, 1, False), batch_size=16)
    assert res["miou/seg"] == pytest.approx(big["miou/seg"]) and res["rel_err/depth"] == pytest.approx(big["rel_err/depth"], rel=1e-5)
    t_max = Trainer(ERM(_model()), epochs=1, select="valid/miou/seg")
    t_min = Trainer(ERM(_model()), epochs=1, select="valid/rel_err/depth")
    assert (t_max.mode, t_min.mode) == ("max", "min")
    r = t_max.fit(_splits(True))
    assert "valid/miou/seg" in r.history.columns


class _BatchSource(FileSource):
    """Counts row reads and batch reads; serves the same arrays either way."""

    def __init__(self, x):
        self.x, self.rows_read, self.batches_read = x, 0, 0

    def __len__(self):
        return len(self.x)

    def read(self, i):
        self.rows_read += 1
        from causalmtl.data.streamed import Sample

        return Sample(self.x[i])

    def read_batch(self, rows):
        self.batches_read += 1
        return self.x[rows]


def test_a_source_with_read_batch_is_read_once_per_batch_with_the_same_rows():
    from causalmtl.train.streaming import rows_batch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype(np.float32)
    y = rng.integers(0, 2, size=(10, 1))
    src = _BatchSource(x)
    data = MultiTaskDataset(src, y, (Task("a", n_classes=2),)).subset(np.arange(2, 10))
    b = rows_batch(data, np.array([0, 3, 5]))
    assert src.batches_read == 1 and src.rows_read == 0
    assert torch.equal(b.x, torch.as_tensor(x[[2, 5, 7]]))
