"""Dense per-row losses (causalmtl.nn.losses) against brute-force per-pixel loops."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from causalmtl.data.base import TASK_LOSSES, Task
from causalmtl.nn.losses import (
    ALLOWED_LOSSES,
    allowed_losses,
    dense_pixel_losses,
    dense_row_losses,
    resolve_loss,
    segmentation_row_losses,
    task_default_loss,
    task_row_losses,
)

NAN = float("nan")


def _brute_dense(pred: np.ndarray, target: np.ndarray, loss: str):
    """Per-row loss by a plain loop over rows and pixels, straight from the definitions."""
    b, c, h, w = pred.shape
    rows, counts = [], []
    for i in range(b):
        total, n = 0.0, 0
        for y in range(h):
            for x in range(w):
                t = target[i, :, y, x].astype(np.float64)
                if np.isnan(t).any():
                    continue
                p = pred[i, :, y, x].astype(np.float64)
                if loss == "l1":
                    v = np.mean(np.abs(p - t))
                elif loss == "l2":
                    v = np.mean((p - t) ** 2)
                else:
                    v = 1.0 - p @ t / (np.linalg.norm(p) * np.linalg.norm(t))
                total += v
                n += 1
        rows.append(total / n if n else 0.0)
        counts.append(n)
    return np.array(rows), np.array(counts)


def _brute_ce(log_probs: np.ndarray, target: np.ndarray):
    b, _, h, w = log_probs.shape
    rows, counts = [], []
    for i in range(b):
        vals = [
            -log_probs[i, target[i, y, x], y, x]
            for y in range(h)
            for x in range(w)
            if target[i, y, x] >= 0
        ]
        rows.append(float(np.mean(vals)) if vals else 0.0)
        counts.append(len(vals))
    return np.array(rows), np.array(counts)


def _dense_case(seed: int, c: int = 3):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(4, c, 5, 6, generator=g, dtype=torch.float64)
    target = torch.randn(4, c, 5, 6, generator=g, dtype=torch.float64)
    holes = torch.rand(4, 5, 6, generator=g) < 0.3
    target[holes.unsqueeze(1).expand_as(target)] = NAN
    target[2] = NAN  # a row without any valid pixel
    return pred, target


@pytest.mark.parametrize("loss", ["l1", "l2", "cosine"])
def test_dense_row_losses_equal_brute_force(loss):
    pred, target = _dense_case(0)
    got, n_valid = dense_row_losses(pred, target, loss)
    want, want_n = _brute_dense(pred.numpy(), target.numpy(), loss)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(n_valid.numpy(), want_n)
    assert n_valid.dtype == torch.int64
    assert got[2].item() == 0.0 and n_valid[2].item() == 0


def test_hand_computed_values():
    # one row, 2 channels, 1x3 pixels; pixel 1 invalid (NaN in every channel), pixel 2 NaN in one
    # channel (also invalid). Only pixel 0 counts: pred (1, 2), target (3, 0).
    pred = torch.tensor([[[[1.0, 5.0, 7.0]], [[2.0, 5.0, 7.0]]]])
    target = torch.tensor([[[[3.0, NAN, 1.0]], [[0.0, NAN, NAN]]]])
    l1, n = dense_row_losses(pred, target, "l1")
    assert l1.item() == pytest.approx((2 + 2) / 2) and n.item() == 1
    l2, _ = dense_row_losses(pred, target, "l2")
    assert l2.item() == pytest.approx((4 + 4) / 2)
    cos, _ = dense_row_losses(pred, target, "cosine")
    assert cos.item() == pytest.approx(1 - 3 / (math.sqrt(5) * 3))
    # segmentation: 3 classes, 1x4 pixels, pixel 3 ignored
    probs = torch.tensor([[0.5, 0.2, 0.1, 0.3], [0.25, 0.7, 0.1, 0.3], [0.25, 0.1, 0.8, 0.4]])
    log_probs = probs.log().reshape(1, 3, 1, 4)
    target_c = torch.tensor([[[0, 1, 0, -1]]])
    ce, n = segmentation_row_losses(log_probs, target_c)
    assert ce.item() == pytest.approx(
        -(math.log(0.5) + math.log(0.7) + math.log(0.1)) / 3, rel=1e-6
    )
    assert n.item() == 3


def test_ce_equals_brute_force_with_ignored_and_empty_rows():
    g = torch.Generator().manual_seed(1)
    log_probs = torch.log_softmax(torch.randn(3, 4, 5, 6, generator=g, dtype=torch.float64), dim=1)
    target = torch.randint(0, 4, (3, 5, 6), generator=g)
    target[torch.rand(3, 5, 6, generator=g) < 0.3] = -1
    target[1] = -1
    got, n = segmentation_row_losses(log_probs, target)
    want, want_n = _brute_ce(log_probs.numpy(), target.numpy())
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12)
    np.testing.assert_array_equal(n.numpy(), want_n)
    # same as torch's own cross-entropy with ignore_index, row by row (a second formulation)
    for i in (0, 2):
        ref = torch.nn.functional.nll_loss(log_probs[i : i + 1], target[i : i + 1], ignore_index=-1)
        assert got[i].item() == pytest.approx(ref.item(), rel=1e-12)


@pytest.mark.parametrize("loss", ["l1", "l2", "cosine", "ce"])
def test_gradients_finite_and_zero_off_valid_pixels(loss):
    g = torch.Generator().manual_seed(2)
    if loss == "ce":
        logits = torch.randn(3, 4, 4, 5, generator=g)
        logits[
            0, 0, 0, 0
        ] = -math.inf  # -inf log-prob of class 0 (the gather index of an ignored pixel)
        pred = torch.log_softmax(logits, dim=1).detach().requires_grad_(True)
        target = torch.randint(0, 4, (3, 4, 5), generator=g)
        target[0, 0, 0] = -1
        target[1] = -1
        invalid = target < 0
    else:
        pred = torch.randn(3, 3, 4, 5, generator=g)
        pred[0, :, 1, 1] = (
            0.0  # zero prediction vector (cosine normalisation at 0) at a valid pixel
        )
        pred[0, :, 2, 2] = 0.0  # ... and at an invalid one
        pred.requires_grad_(True)
        target = torch.randn(3, 3, 4, 5, generator=g)
        target[0, :, 2, 2] = NAN
        target[1] = NAN
        invalid = torch.isnan(target).any(1)
    loss_rows, n = dense_row_losses(pred, target, loss)
    loss_rows.sum().backward()
    assert torch.isfinite(pred.grad).all()
    off = invalid.unsqueeze(1).expand_as(pred)
    assert (pred.grad[off] == 0).all()
    assert torch.isfinite(loss_rows).all() and loss_rows[1].item() == 0.0 and n[1].item() == 0


def test_l2_gradient_matches_analytic():
    pred, target = _dense_case(3)
    pred.requires_grad_(True)
    rows, n = dense_row_losses(pred, target, "l2")
    rows.sum().backward()
    t0 = torch.nan_to_num(target)
    valid = ~torch.isnan(target).any(1, keepdim=True)
    c = pred.shape[1]
    want = torch.where(
        valid, 2 * (pred.detach() - t0) / (c * n.clamp(min=1).view(-1, 1, 1, 1)), 0.0
    )
    torch.testing.assert_close(pred.grad, want, rtol=1e-12, atol=1e-12)


def test_cosine_is_scale_invariant_and_batch_independent():
    pred, target = _dense_case(4)
    a, _ = dense_row_losses(pred, target, "cosine")
    b, _ = dense_row_losses(3.7 * pred, 0.2 * target, "cosine")
    torch.testing.assert_close(a, b)
    # each row's loss is the loss of that row alone
    for i in range(pred.shape[0]):
        r, _ = dense_row_losses(pred[i : i + 1], target[i : i + 1], "cosine")
        assert r.item() == pytest.approx(a[i].item(), rel=1e-12, abs=1e-15)


def test_precision_bf16_upcast_and_float64_kept():
    pred, target = _dense_case(5)
    p16 = pred.to(torch.bfloat16)
    got, _ = dense_row_losses(p16, target.float(), "l2")
    assert got.dtype == torch.float32
    ref, _ = dense_row_losses(p16.float(), target.float(), "l2")
    torch.testing.assert_close(got, ref)
    got64, _ = dense_row_losses(pred, target, "l1")
    assert got64.dtype == torch.float64
    lp = torch.log_softmax(pred[:, :3].float(), 1).to(torch.bfloat16)
    ce, _ = segmentation_row_losses(lp, torch.zeros(4, 5, 6, dtype=torch.long))
    assert ce.dtype == torch.float32


def test_pixel_losses_zero_at_invalid():
    pred, target = _dense_case(6)
    pix, valid = dense_pixel_losses(pred, target, "l1")
    assert pix.shape == valid.shape == (4, 5, 6)
    assert (pix[~valid] == 0).all()
    torch.testing.assert_close(valid, ~torch.isnan(target).any(1))


def test_bad_shapes_and_values_raise():
    pred = torch.zeros(2, 3, 4, 5)
    with pytest.raises(ValueError, match=r"\(2, 3, 4, 5\).*\(2, 3, 8, 10\)"):
        dense_row_losses(pred, torch.zeros(2, 3, 8, 10), "l2")
    with pytest.raises(ValueError, match=r"\(2, 4, 5\).*\(2, 3, 4, 5\).*\(2, 8, 10\)"):
        dense_row_losses(pred, torch.zeros(2, 8, 10, dtype=torch.long), "ce")
    with pytest.raises(ValueError, match=r"\(B, C, H, W\).*\(2, 3\)"):
        dense_row_losses(torch.zeros(2, 3), torch.zeros(2, 3), "l1")
    with pytest.raises(TypeError, match="integer class map"):
        dense_row_losses(pred, torch.zeros(2, 4, 5), "ce")
    with pytest.raises(TypeError, match="float map"):
        dense_row_losses(pred, torch.zeros(2, 3, 4, 5, dtype=torch.long), "l2")
    bad = torch.zeros(2, 4, 5, dtype=torch.long)
    bad[1, 2, 3] = 3
    with pytest.raises(ValueError, match=r"holds 3 at \(row, h, w\) = \(1, 2, 3\).*\[0, 3\)"):
        dense_row_losses(pred, bad, "ce")
    with pytest.raises(ValueError, match="loss must be one of"):
        dense_row_losses(pred, torch.zeros(2, 3, 4, 5), "huber")
    with pytest.raises(ValueError, match=">= 2 channels"):
        dense_row_losses(torch.zeros(2, 1, 4, 5), torch.zeros(2, 1, 4, 5), "cosine")


def test_loss_table_defaults_and_validation():
    assert {k: task_default_loss(k) for k in ALLOWED_LOSSES} == {
        "classification": "nll", "regression": "l2", "segmentation": "ce", "dense": "l2",
    }  # fmt: skip
    assert allowed_losses("dense") == ("l2", "l1", "cosine")
    assert ALLOWED_LOSSES is TASK_LOSSES  # the data contract's table, not a copy
    assert resolve_loss("dense", "", "depth") == "l2"
    assert resolve_loss("dense", "cosine", "normal") == "cosine"
    with pytest.raises(ValueError, match=r"'seg'.*'l1'.*\['ce'\]"):
        resolve_loss("segmentation", "l1", "seg")
    with pytest.raises(ValueError, match=r"'digit'.*'ce'.*\['nll'\]"):
        resolve_loss("classification", "ce", "digit")
    with pytest.raises(ValueError, match="kind must be one of"):
        task_default_loss("image")


def test_task_row_losses_dispatches_on_the_task():
    pred, target = _dense_case(7)
    normals = SimpleNamespace(name="normal", kind="dense", loss="cosine")
    depth = SimpleNamespace(name="depth", kind="dense", loss="")
    torch.testing.assert_close(
        task_row_losses(pred, target, normals)[0], dense_row_losses(pred, target, "cosine")[0]
    )
    torch.testing.assert_close(
        task_row_losses(pred, target, depth)[0], dense_row_losses(pred, target, "l2")[0]
    )
    with pytest.raises(ValueError, match="'normal'.*'ce'"):
        task_row_losses(pred, target, SimpleNamespace(name="normal", kind="dense", loss="ce"))
    with pytest.raises(ValueError, match="kinds 'segmentation' and 'dense'"):
        task_row_losses(pred, target, SimpleNamespace(name="y", kind="regression", loss=""))


def test_task_row_losses_with_contract_tasks():
    pred, target = _dense_case(8)
    normal = Task("normal", kind="dense", channels=3, loss="cosine")
    depth = Task("depth", kind="dense", channels=3)
    want_cos, want_n = _brute_dense(pred.numpy(), target.numpy(), "cosine")
    got, n = task_row_losses(pred, target, normal)
    np.testing.assert_allclose(got.numpy(), want_cos, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(n.numpy(), want_n)
    want_l2, _ = _brute_dense(pred.numpy(), target.numpy(), "l2")
    np.testing.assert_allclose(task_row_losses(pred, target, depth)[0].numpy(), want_l2, rtol=1e-12)
    log_probs = torch.log_softmax(pred, 1)
    labels = torch.randint(-1, 3, (4, 5, 6), generator=torch.Generator().manual_seed(9))
    seg = Task("seg", kind="segmentation", n_classes=3)
    want_ce, _ = _brute_ce(log_probs.numpy(), labels.numpy())
    np.testing.assert_allclose(
        task_row_losses(log_probs, labels, seg)[0].numpy(), want_ce, rtol=1e-12
    )
