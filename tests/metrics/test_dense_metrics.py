"""Split-level dense metrics (causalmtl.metrics.dense) against hand computations and brute force."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from causalmtl.metrics.dense import (
    ANGLE_BINS_PER_DEGREE,
    ConfusionMatrix,
    DenseMetrics,
    DepthMetrics,
    NormalMetrics,
    RegressionMapMetrics,
    SegmentationMetrics,
    dense_metrics_for_task,
)
from causalmtl.metrics.direction import metric_direction

NAN = float("nan")
MEDIAN_TOL = 0.5 / ANGLE_BINS_PER_DEGREE + 1e-6  # half a histogram bin, plus float32 angle error


# --- segmentation -----------------------------------------------------------------------------
def _hand_maps():
    # 3 classes (+ class 3 in a 4-class setup: never in target nor prediction), 2x3 map, one
    # ignored pixel. Valid (target -> pred): 0->0, 0->1, 1->1, 1->1, 2->0; ignored pixel pred 2.
    target = torch.tensor([[[0, 0, 1], [1, -1, 2]]])
    pred = torch.tensor([[[0, 1, 1], [1, 2, 0]]])
    return pred, target


def test_confusion_matrix_hand_computation():
    pred, target = _hand_maps()
    cm = ConfusionMatrix(4)
    cm.update(pred, target)
    want = torch.tensor([[1, 1, 0, 0], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]])
    torch.testing.assert_close(cm.matrix, want)
    # IoU_0 = 1 / (2 + 2 - 1), IoU_1 = 2 / (2 + 3 - 2), IoU_2 = 0 / (1 + 0 - 0); class 3 has union 0
    iou = cm.iou()
    np.testing.assert_allclose(iou[:3].numpy(), [1 / 3, 2 / 3, 0.0])
    assert math.isnan(iou[3].item())
    out = cm.compute()
    assert out["miou"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert out["pix_acc"] == pytest.approx(3 / 5)


def test_class_only_predicted_counts_with_iou_zero():
    # class 2 never in the target, predicted once: union 1, IoU 0, and it is part of the mean
    target = torch.tensor([[[0, 1, 1]]])
    pred = torch.tensor([[[0, 1, 2]]])
    cm = ConfusionMatrix(3)
    cm.update(pred, target)
    # IoU_0 = 1/1, IoU_1 = 1/(2 + 1 - 1), IoU_2 = 0/1
    assert cm.compute()["miou"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert cm.compute()["pix_acc"] == pytest.approx(2 / 3)


def _random_seg(seed, b=6, c=5, h=7, w=9):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, c, h, w, generator=g, dtype=torch.float64)
    target = torch.randint(0, c, (b, h, w), generator=g)
    target[torch.rand(b, h, w, generator=g) < 0.25] = -1
    return torch.log_softmax(logits, 1), target


def _brute_seg(labels: np.ndarray, target: np.ndarray, c: int):
    m = np.zeros((c, c), dtype=np.int64)
    for t, p in zip(target.ravel(), labels.ravel()):
        if t >= 0:
            m[t, p] += 1
    ious = []
    for k in range(c):
        inter = m[k, k]
        union = m[k, :].sum() + m[:, k].sum() - inter
        if union > 0:
            ious.append(inter / union)
    return m, float(np.mean(ious)), np.trace(m) / m.sum()


def test_split_level_equals_brute_force_and_batching_does_not_matter():
    log_probs, target = _random_seg(0)
    m, miou, acc = _brute_seg(log_probs.argmax(1).numpy(), target.numpy(), 5)
    one = SegmentationMetrics(5)
    one.update(log_probs, target)
    two = SegmentationMetrics(5)
    two.update(log_probs[:2], target[:2])
    two.update(log_probs[2:], target[2:])
    np.testing.assert_array_equal(one.matrix.numpy(), m)
    np.testing.assert_array_equal(two.matrix.numpy(), m)
    for got in (one.compute(), two.compute()):
        assert got["miou"] == pytest.approx(miou, rel=1e-12)
        assert got["pix_acc"] == pytest.approx(acc, rel=1e-12)
    # the split value is not the mean of the per-batch values
    a, b = SegmentationMetrics(5), SegmentationMetrics(5)
    a.update(log_probs[:1], target[:1])
    b.update(log_probs[1:], target[1:])
    assert (a.compute()["miou"] + b.compute()["miou"]) / 2 != pytest.approx(miou, rel=1e-6)
    # labels in place of scores give the same matrix
    lab = ConfusionMatrix(5)
    lab.update(log_probs.argmax(1), target)
    torch.testing.assert_close(lab.matrix, one.matrix)


def test_miou_equals_the_libmtl_formula_when_every_class_has_a_union():
    # LibMTL SegMetric / MTAN ConfMatrix: torch.mean(diag / (rows + cols - diag)) of the matrix
    log_probs, target = _random_seg(1)
    cm = ConfusionMatrix(5)
    cm.update(log_probs, target)
    h = cm.matrix.double()
    iu = torch.diag(h) / (h.sum(1) + h.sum(0) - torch.diag(h))
    assert torch.isfinite(iu).all()
    assert cm.compute()["miou"] == pytest.approx(torch.mean(iu).item(), rel=1e-12)
    assert cm.compute()["pix_acc"] == pytest.approx(
        (torch.diag(h).sum() / h.sum()).item(), rel=1e-12
    )


def test_segmentation_ce_is_the_mean_pixel_nll_over_valid_pixels():
    log_probs, target = _random_seg(2)
    vals = [
        -log_probs[i, target[i, y, x], y, x].item()
        for i in range(target.shape[0]) for y in range(target.shape[1]) for x in range(target.shape[2])
        if target[i, y, x] >= 0
    ]  # fmt: skip
    sm = SegmentationMetrics(5)
    sm.update(log_probs[:3], target[:3])
    sm.update(log_probs[3:], target[3:])
    assert sm.compute()["ce"] == pytest.approx(np.mean(vals), rel=1e-12)
    labels_only = SegmentationMetrics(5)
    labels_only.update(log_probs.argmax(1), target)
    assert "ce" not in labels_only.compute()


def test_other_ignore_index_and_bad_labels():
    pred, target = _hand_maps()
    t255 = torch.where(target < 0, 255, target)
    cm = ConfusionMatrix(4, ignore_index=255)
    cm.update(pred, t255)
    ref = ConfusionMatrix(4)
    ref.update(pred, target)
    torch.testing.assert_close(cm.matrix, ref.matrix)
    bad = ConfusionMatrix(3)
    bad.update(
        pred, torch.tensor([[[0, 0, 5], [1, -1, 2]]])
    )  # update never syncs: error at compute
    with pytest.raises(ValueError, match=r"1 pixels outside \[0, 3\)"):
        bad.compute()
    with pytest.raises(ValueError, match="4 channels.*n_classes = 3"):
        ConfusionMatrix(3).update(torch.zeros(1, 4, 2, 3), target)
    with pytest.raises(ValueError, match="does not match"):
        ConfusionMatrix(3).update(pred, target[:, :1])
    with pytest.raises(ValueError, match="n_classes must be an int >= 2"):
        ConfusionMatrix(1)
    with pytest.raises(ValueError, match="ignore_index"):
        ConfusionMatrix(3, ignore_index=0)
    with pytest.raises(ValueError, match="before any update"):
        ConfusionMatrix(3).compute()


# --- depth and dense regression ----------------------------------------------------------------
def test_depth_hand_computation():
    # pixels: pred 1, 2, 3, 4 against gt 2, NaN, 3, 5 -> valid: errors 1, 0, 1
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2)
    gt = torch.tensor([2.0, NAN, 3.0, 5.0]).reshape(1, 1, 2, 2)
    d = DepthMetrics()
    d.update(pred, gt)
    out = d.compute()
    assert out["abs_err"] == pytest.approx((1 + 0 + 1) / 3)
    assert out["rel_err"] == pytest.approx((1 / 2 + 0 / 3 + 1 / 5) / 3)
    assert out["mse"] == pytest.approx((1 + 0 + 1) / 3)


def _random_depth(seed, b=5, c=1):
    g = torch.Generator().manual_seed(seed)
    gt = torch.rand(b, c, 6, 7, generator=g, dtype=torch.float64) * 9 + 0.5
    pred = gt + torch.randn(b, c, 6, 7, generator=g, dtype=torch.float64)
    holes = torch.rand(b, 6, 7, generator=g) < 0.3
    gt[holes.unsqueeze(1).expand_as(gt)] = NAN
    gt[1] = NAN
    return pred, gt


def test_depth_equals_brute_force_over_the_split_in_any_batching():
    pred, gt = _random_depth(0)
    p, t = pred.numpy().ravel(), gt.numpy().ravel()
    ok = ~np.isnan(t)
    want = {
        "abs_err": np.mean(np.abs(p[ok] - t[ok])),
        "rel_err": np.mean(np.abs(p[ok] - t[ok]) / t[ok]),
        "mse": np.mean((p[ok] - t[ok]) ** 2),
    }
    one, two = DepthMetrics(), DepthMetrics()
    one.update(pred, gt)
    two.update(pred[:3], gt[:3])
    two.update(pred[3:], gt[3:])
    for out in (one.compute(), two.compute()):
        for k, v in want.items():
            assert out[k] == pytest.approx(v, rel=1e-12)


def test_regression_map_counts_every_channel_of_valid_pixels():
    pred, gt = _random_depth(1, c=3)
    gt[0, 1, 0, 0] = NAN  # one NaN channel invalidates the whole pixel
    valid = ~torch.isnan(gt).any(1, keepdim=True).expand_as(gt)
    diff = (pred - torch.nan_to_num(gt))[valid].numpy()
    r = RegressionMapMetrics()
    r.update(pred.float(), gt.float())
    out = r.compute()
    assert out["abs_err"] == pytest.approx(np.mean(np.abs(diff)), rel=1e-6)
    assert out["mse"] == pytest.approx(np.mean(diff**2), rel=1e-6)


def test_depth_rejects_non_positive_valid_targets_and_empty_splits():
    d = DepthMetrics()
    d.update(torch.ones(1, 1, 1, 2), torch.tensor([[[[0.0, 1.0]]]]))
    with pytest.raises(ValueError, match="1 valid pixels <= 0"):
        d.compute()
    e = DepthMetrics()
    e.update(torch.ones(1, 1, 1, 2), torch.full((1, 1, 1, 2), NAN))
    assert all(math.isnan(v) for v in e.compute().values())
    with pytest.raises(ValueError, match="does not match"):
        DepthMetrics().update(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 4, 4))


# --- normals ------------------------------------------------------------------------------------
def test_normals_hand_computation():
    # target (0, 0, 1) at every pixel; predictions at 0, 45, 90, 180 and 10 degrees (not unit
    # length), and one invalid pixel
    s, c = math.sin(math.radians(10)), math.cos(math.radians(10))
    pred = torch.tensor(
        [[0, 0, 2.0], [1, 0, 1], [0, 3, 0], [0, 0, -1], [3 * s, 0, 3 * c], [1, 1, 1]]
    )
    gt = torch.tensor([[0, 0, 1.0]] * 5 + [[NAN] * 3])
    m = NormalMetrics()
    m.update(pred.T.reshape(1, 3, 2, 3), gt.T.reshape(1, 3, 2, 3))
    out = m.compute()
    assert out["mean_angle"] == pytest.approx((0 + 45 + 90 + 180 + 10) / 5, abs=1e-4)
    assert out["median_angle"] == pytest.approx(45, abs=MEDIAN_TOL)
    assert out["within_11.25"] == pytest.approx(2 / 5)  # 0 and 10 degrees
    assert out["within_22.5"] == pytest.approx(2 / 5)
    assert out["within_30"] == pytest.approx(2 / 5)
    # an even count takes the mean of the two middle angles, as numpy.median: drop 180 -> 0,10,45,90
    even = NormalMetrics()
    keep = [0, 1, 2, 4]
    even.update(pred[keep].T.reshape(1, 3, 1, 4), gt[keep].T.reshape(1, 3, 1, 4))
    assert even.compute()["median_angle"] == pytest.approx((10 + 45) / 2, abs=MEDIAN_TOL)


def _random_normals(seed, b=6, h=20, w=30):
    g = torch.Generator().manual_seed(seed)
    gt = torch.randn(b, 3, h, w, generator=g)
    gt = gt / gt.norm(dim=1, keepdim=True)
    pred = gt + 0.6 * torch.randn(b, 3, h, w, generator=g)  # angles spread over 0..~90 degrees
    holes = torch.rand(b, h, w, generator=g) < 0.2
    gt[holes.unsqueeze(1).expand_as(gt)] = NAN
    return pred, gt


def _numpy_angles(pred, gt):
    p = pred.double().numpy().transpose(0, 2, 3, 1).reshape(-1, 3)
    t = gt.double().numpy().transpose(0, 2, 3, 1).reshape(-1, 3)
    ok = ~np.isnan(t).any(1)
    p, t = p[ok], t[ok]
    cos = np.sum(p * t, 1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def test_normals_equal_numpy_over_the_split_in_any_batching():
    pred, gt = _random_normals(0)
    ang = _numpy_angles(pred, gt)
    one, two = NormalMetrics(), NormalMetrics()
    one.update(pred, gt)
    two.update(pred[:2], gt[:2])
    two.update(pred[2:], gt[2:])
    for out in (one.compute(), two.compute()):
        assert out["mean_angle"] == pytest.approx(ang.mean(), abs=1e-4)
        assert out["median_angle"] == pytest.approx(np.median(ang), abs=MEDIAN_TOL)
        for thr in (11.25, 22.5, 30):
            assert out[f"within_{thr:g}"] == pytest.approx(np.mean(ang < thr), abs=1e-12)
    # float32 angles may differ in the last ulp with the batch layout (~1e-6 degrees)
    assert one.compute() == pytest.approx(two.compute(), rel=1e-9)


def test_normal_median_error_bound_on_many_pixels():
    pred, gt = _random_normals(1, b=4, h=96, w=128)  # ~39k valid pixels, odd and even medians
    for n_rows in (4, 3):
        ang = _numpy_angles(pred[:n_rows], gt[:n_rows])
        m = NormalMetrics()
        m.update(pred[:n_rows], gt[:n_rows])
        assert abs(m.compute()["median_angle"] - np.median(ang)) <= MEDIAN_TOL


def test_normals_bad_input():
    with pytest.raises(ValueError, match=">= 2 channels"):
        NormalMetrics().update(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        NormalMetrics().update(torch.ones(3, 2, 2), torch.ones(3, 2, 2))


# --- accumulator plumbing, factory, directions -----------------------------------------------
def test_merge_and_state_tensors_equal_one_accumulator():
    pred, gt = _random_normals(2)
    a, b, whole = NormalMetrics(), NormalMetrics(), NormalMetrics()
    a.update(pred[:3], gt[:3])
    b.update(pred[3:], gt[3:])
    whole.update(pred, gt)
    a.merge(b)
    assert a.compute() == pytest.approx(whole.compute(), rel=1e-9)  # float32 angles: last-ulp noise
    # an all-reduce(SUM) is the element-wise sum of the state tensors
    c, d = SegmentationMetrics(5), SegmentationMetrics(5)
    log_probs, target = _random_seg(3)
    c.update(log_probs[:2], target[:2])
    d.update(log_probs[2:], target[2:])
    for x, y in zip(c.state_tensors(), d.state_tensors()):
        x += y
    e = SegmentationMetrics(5)
    e.update(log_probs, target)
    assert c.compute() == pytest.approx(e.compute(), rel=1e-12)
    with pytest.raises(ValueError, match="cannot merge"):
        c.merge(SegmentationMetrics(4))
    c.reset()
    assert c.state_tensors() == []


def test_factory_and_task_mapping():
    assert isinstance(DenseMetrics.create("segmentation", 3), SegmentationMetrics)
    assert isinstance(DenseMetrics.create("depth"), DepthMetrics)
    assert isinstance(DenseMetrics.create("normals"), NormalMetrics)
    assert type(DenseMetrics.create("dense")) is RegressionMapMetrics
    with pytest.raises(ValueError, match="metric kind must be one of"):
        DenseMetrics.create("edges")
    task = SimpleNamespace
    assert isinstance(
        dense_metrics_for_task(task(name="seg", kind="segmentation", n_classes=13)),
        SegmentationMetrics,
    )
    assert isinstance(
        dense_metrics_for_task(task(name="normal", kind="dense", loss="")), NormalMetrics
    )
    assert isinstance(
        dense_metrics_for_task(task(name="n", kind="dense", loss="cosine")), NormalMetrics
    )
    assert isinstance(
        dense_metrics_for_task(task(name="depth", kind="dense", loss="l1")), DepthMetrics
    )
    assert (
        type(dense_metrics_for_task(task(name="curvature", kind="dense", loss="l1")))
        is RegressionMapMetrics
    )
    assert isinstance(dense_metrics_for_task(task(name="x", kind="dense"), "depth"), DepthMetrics)
    from causalmtl.data.base import Task

    real = [
        Task("seg", kind="segmentation", n_classes=13),
        Task("normal", kind="dense", channels=3, loss="cosine"),
        Task("depth", kind="dense", loss="l1"),
        Task("curvature", kind="dense", channels=2),
    ]
    got = [type(dense_metrics_for_task(t)) for t in real]
    assert got == [SegmentationMetrics, NormalMetrics, DepthMetrics, RegressionMapMetrics]
    assert dense_metrics_for_task(real[0]).n_classes == 13
    with pytest.raises(ValueError, match="cannot use metric kind"):
        dense_metrics_for_task(task(name="x", kind="dense"), "segmentation")
    with pytest.raises(ValueError, match="kind 'segmentation' or 'dense'"):
        dense_metrics_for_task(task(name="y", kind="regression"))


def test_every_computed_metric_has_a_direction():
    up = {"miou", "pix_acc", "within_11.25", "within_22.5", "within_30"}
    accs = [DenseMetrics.create(k, 5) for k in ("segmentation", "depth", "normals", "dense")]
    log_probs, target = _random_seg(4)
    accs[0].update(log_probs, target)
    pred, gt = _random_depth(2)
    accs[1].update(pred, gt)
    accs[3].update(pred, gt)
    npred, ngt = _random_normals(3)
    accs[2].update(npred, ngt)
    names = {k for a in accs for k in a.compute()}
    assert names == up | {"ce", "abs_err", "rel_err", "mse", "mean_angle", "median_angle"}
    for name in names:
        assert metric_direction(name) == (1 if name in up else -1), name


def test_docs_example_runs(capsys):
    import re
    from pathlib import Path

    doc = Path(__file__).resolve().parents[2] / "docs" / "dense.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.S)
    assert len(blocks) == 1
    exec(compile(blocks[0], "docs/dense.md python block", "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "0.0 0"
    assert lines[1].startswith("['depth/rel_err', 'seg/miou']")
