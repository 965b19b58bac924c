"""Per-row losses of dense tasks (segmentation and dense regression maps) and the loss table.

The image / dense-task contract (ARCHITECTURE.md, docs/dense.md):

* a **segmentation** task's output is log-probabilities ``(B, C, H, W)`` (``log_softmax`` over
  dim 1) and its target an integer class map ``(B, H, W)`` with ``-1`` = ignored pixel;
* a **dense** task's output is raw values ``(B, C, H, W)`` and its target a float map
  ``(B, C, H, W)`` with ``NaN`` at invalid pixels (a pixel is valid when none of its channels
  is NaN).

The per-row loss of such a task is the mean of the per-pixel loss over the row's valid pixels
(the risk of one example, so that per-environment risks ``R_t^e`` of MT-CRL Eq. 6–8 and of
IRM / VREx are means of per-row losses exactly as for scalar tasks):

* ``"ce"`` — pixel-wise cross-entropy ``ℓ(p) = −log q_{y_p}(p)`` (PCGrad / MTAN / LibMTL's
  ``CELoss`` with ``ignore_index=-1``);
* ``"l1"`` — ``ℓ(p) = (1/C) Σ_c |ŷ_c(p) − y_c(p)|`` (MTAN / LibMTL depth loss; Taskonomy curvature);
* ``"l2"`` — ``ℓ(p) = (1/C) Σ_c (ŷ_c(p) − y_c(p))²`` (Taskonomy normals, edges, keypoints, depth);
* ``"cosine"`` — ``ℓ(p) = 1 − cos(ŷ(p), y(p))`` over the channels, the prediction (and the
  target) normalised to unit length with an ``eps`` guard (MTAN / LibMTL normal loss).

A row without any valid pixel gets loss exactly ``0`` and ``n_valid = 0`` (the caller treats it
as a missing target); its gradient is exactly ``0`` (never ``NaN``). Losses are computed in at
least float32 (half / bfloat16 outputs of mixed precision are upcast; float64 is kept).

Everything is vectorised over rows and pixels; nothing synchronises with the host except the
value-range check of CPU segmentation targets (free on the CPU).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.base import TASK_LOSSES

__all__ = [
    "ALLOWED_LOSSES",
    "DENSE_LOSSES",
    "allowed_losses",
    "dense_pixel_losses",
    "dense_row_losses",
    "resolve_loss",
    "segmentation_row_losses",
    "task_default_loss",
    "task_row_losses",
]

#: The losses each task kind accepts; the first one is the kind's default (contract: ``Task.loss``).
#: The same table as :data:`causalmtl.data.base.TASK_LOSSES` (one source of truth).
ALLOWED_LOSSES: dict[str, tuple[str, ...]] = TASK_LOSSES

#: Losses that act on maps ``(B, C, H, W)`` (handled by :func:`dense_row_losses`).
DENSE_LOSSES: tuple[str, ...] = ("ce", "l1", "l2", "cosine")

#: Guard of the normalisation in the cosine loss: ``x / max(‖x‖, eps)``.
COSINE_EPS = 1e-8


def _precision(x: Tensor) -> Tensor:
    """``x`` in at least float32 (the rule of ``nn.base.loss_precision``; kept local to avoid a cycle)."""
    return x if x.dtype == torch.float64 else x.float()


def allowed_losses(kind: str) -> tuple[str, ...]:
    """The losses a task of ``kind`` accepts (first = default); ValueError for an unknown kind."""
    if kind not in ALLOWED_LOSSES:
        raise ValueError(f"task kind must be one of {sorted(ALLOWED_LOSSES)}, got {kind!r}")
    return ALLOWED_LOSSES[kind]


def task_default_loss(kind: str) -> str:
    """The default loss of a task kind: classification ``nll``, regression ``l2``,
    segmentation ``ce``, dense ``l2``."""
    return allowed_losses(kind)[0]


def resolve_loss(kind: str, loss: str = "", task: str = "") -> str:
    """The loss a task uses: ``loss`` if the kind allows it, the kind's default for ``""``.

    Raises
    ------
    ValueError
        Naming the task, the loss and the allowed ones when the kind does not accept ``loss``.
    """
    allowed = allowed_losses(kind)
    if not isinstance(loss, str):
        raise TypeError(f"Task {task!r}: loss must be a string, got {type(loss).__name__} {loss!r}")
    if loss == "":
        return allowed[0]
    if loss not in allowed:
        raise ValueError(
            f"Task {task!r} of kind {kind!r}: loss {loss!r} is not allowed; allowed: {list(allowed)} "
            f"(or '' for the default {allowed[0]!r})"
        )
    return loss


def _check_map_shapes(pred: Tensor, target: Tensor, loss: str) -> None:
    if pred.ndim != 4:
        raise ValueError(
            f"pred must be a map of shape (B, C, H, W) for loss {loss!r}, got shape {tuple(pred.shape)}"
        )
    if not pred.dtype.is_floating_point:
        raise TypeError(f"pred must be a floating-point tensor, got dtype {pred.dtype}")
    if loss == "ce":
        want = (pred.shape[0], pred.shape[2], pred.shape[3])
        if target.ndim != 3 or tuple(target.shape) != want:
            raise ValueError(
                f"segmentation target must have shape (B, H, W) = {want} to match pred of shape "
                f"{tuple(pred.shape)}, got target of shape {tuple(target.shape)} (resize the target or "
                f"the prediction first; sizes are never matched implicitly)"
            )
        if target.dtype.is_floating_point or target.dtype == torch.bool or target.is_complex():
            raise TypeError(
                f"segmentation target must be an integer class map, got dtype {target.dtype}"
            )
    else:
        if tuple(target.shape) != tuple(pred.shape):
            raise ValueError(
                f"dense target must have the shape of pred (B, C, H, W) = {tuple(pred.shape)}, got "
                f"target of shape {tuple(target.shape)} (resize the target or the prediction first; "
                f"sizes are never matched implicitly)"
            )
        if not target.dtype.is_floating_point:
            raise TypeError(
                f"dense target must be a float map (NaN = invalid), got dtype {target.dtype}"
            )
        if loss == "cosine" and pred.shape[1] < 2:
            raise ValueError(
                f"the cosine loss needs >= 2 channels, got pred of shape {tuple(pred.shape)}"
            )


def dense_pixel_losses(pred: Tensor, target: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Per-pixel losses ``(B, H, W)`` (exactly 0 at invalid pixels) and the validity mask ``(B, H, W)``.

    Parameters
    ----------
    pred : ``(B, C, H, W)`` log-probabilities (``"ce"``) or raw values (``"l1"``, ``"l2"``, ``"cosine"``)
    target : ``(B, H, W)`` int class map, ``-1`` ignored (``"ce"``), or ``(B, C, H, W)`` float map,
        ``NaN`` at invalid pixels (the others); a pixel is valid when none of its channels is NaN
    loss : one of ``"ce"``, ``"l1"``, ``"l2"``, ``"cosine"`` (see the module docstring)
    """
    if loss not in DENSE_LOSSES:
        raise ValueError(f"loss must be one of {list(DENSE_LOSSES)} for a map, got {loss!r}")
    _check_map_shapes(pred, target, loss)
    dtype = torch.float64 if pred.dtype == torch.float64 else torch.float32
    zero = torch.zeros((), dtype=dtype, device=pred.device)
    if loss == "ce":
        n_classes = pred.shape[1]
        if target.device.type == "cpu":  # free on the CPU; on an accelerator gather itself asserts
            bad = (target < -1) | (target >= n_classes)
            if bool(bad.any()):
                pos = tuple(int(i) for i in torch.nonzero(bad)[0])
                raise ValueError(
                    f"segmentation target holds {int(target[pos])} at (row, h, w) = {pos}; expected a "
                    f"class in [0, {n_classes}) or -1 (ignored)"
                )
        valid = target >= 0
        idx = torch.where(valid, target, torch.zeros((), dtype=target.dtype, device=target.device))
        # gather first, then upcast: the (B, H, W) picked values, not the (B, C, H, W) map
        picked = _precision(pred.gather(1, idx.long().unsqueeze(1)).squeeze(1))
        # torch.where, not a product: an ignored pixel's log-prob may be -inf (0 * inf = NaN)
        return torch.where(valid, -picked, zero), valid
    p = _precision(pred)
    valid = ~torch.isnan(target).any(dim=1)
    t = torch.where(
        torch.isnan(target), torch.zeros((), dtype=target.dtype, device=target.device), target
    )
    t = t.to(p.dtype)
    if loss == "l1":
        pix = (p - t).abs().mean(dim=1)
    elif loss == "l2":
        pix = (p - t).square().mean(dim=1)
    else:  # cosine: normalise with a clamp on the squared norm so that a zero prediction has a
        # finite gradient (sqrt at 0 would give inf * 0 = NaN through torch.where)
        p_unit = p * torch.rsqrt(p.square().sum(dim=1, keepdim=True).clamp_min(COSINE_EPS**2))
        t_unit = t * torch.rsqrt(t.square().sum(dim=1, keepdim=True).clamp_min(COSINE_EPS**2))
        pix = 1.0 - (p_unit * t_unit).sum(dim=1)
    return torch.where(valid, pix, zero), valid


def dense_row_losses(pred: Tensor, target: Tensor, loss: str) -> tuple[Tensor, Tensor]:
    """Per-row losses ``(B,)`` = mean per-pixel loss over the row's valid pixels, and ``n_valid (B,)``.

    ``loss_i = Σ_{p valid} ℓ_i(p) / max(1, n_valid_i)``, so a row without a valid pixel has loss
    exactly 0 and a zero (finite) gradient. ``n_valid`` is int64. The loss is float32 (float64
    for float64 ``pred``). See :func:`dense_pixel_losses` for the arguments.

    Examples
    --------
    >>> pred = torch.zeros(1, 1, 1, 2)
    >>> target = torch.tensor([[[[2.0, float("nan")]]]])
    >>> dense_row_losses(pred, target, "l2")
    (tensor([4.]), tensor([1]))
    """
    pix, valid = dense_pixel_losses(pred, target, loss)
    n_valid = valid.sum(dim=(1, 2))
    row = pix.sum(dim=(1, 2)) / n_valid.clamp(min=1).to(pix.dtype)
    return row, n_valid


def segmentation_row_losses(log_probs: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """Pixel-wise cross-entropy per row, ``dense_row_losses(log_probs, target, "ce")``."""
    return dense_row_losses(log_probs, target, "ce")


def task_row_losses(pred: Tensor, target: Tensor, task: object) -> tuple[Tensor, Tensor]:
    """Per-row losses of one segmentation / dense task described by ``task``.

    ``task`` is anything with ``name``, ``kind`` and (optionally) ``loss`` attributes, e.g. a
    ``causalmtl.data.base.Task``; its loss is resolved with :func:`resolve_loss`.
    """
    kind = getattr(task, "kind", None)
    name = getattr(task, "name", "")
    if kind not in ("segmentation", "dense"):
        raise ValueError(
            f"Task {name!r}: task_row_losses handles kinds 'segmentation' and 'dense', got {kind!r}"
        )
    return dense_row_losses(pred, target, resolve_loss(kind, getattr(task, "loss", "") or "", name))
