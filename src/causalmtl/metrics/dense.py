"""Metrics of dense tasks, accumulated over a whole split (MT-CRL Tables 8–10; MTAN / LibMTL).

Every accumulator keeps exact sums and counts on the device of the first update (int64
counts, float64 sums) and divides only in :meth:`compute`, so the value over a split does not
depend on how the split is batched (never a mean of per-batch means). ``update`` does no host
synchronisation: bad values found in an update (a class outside the range, a depth target
``<= 0``) are counted on the device and reported by ``compute`` as a ``ValueError``.

Conventions (targets as in the data contract: class maps ``(B, H, W)`` with ``-1`` = ignored;
dense maps ``(B, C, H, W)`` with ``NaN`` = invalid; a pixel is valid when none of its channels
is NaN; only valid pixels ever count):

**Segmentation** (:class:`ConfusionMatrix`, :class:`SegmentationMetrics`). ``M[i, j]`` counts
the valid pixels of target class ``i`` predicted as ``j`` over the split.

* ``pix_acc = Σ_i M[i, i] / Σ_ij M[i, j]``;
* ``IoU_c = M[c, c] / (Σ_j M[c, j] + Σ_i M[i, c] − M[c, c])`` and ``miou`` = the mean of
  ``IoU_c`` over the classes whose union is non-zero, i.e. the classes present in the target
  **or** the prediction somewhere in the split. This is the confusion-matrix metric of MTAN's
  ``ConfMatrix`` and LibMTL's ``SegMetric`` (``torch.mean(diag / (rows + cols − diag))`` over the
  accumulated matrix); the two agree whenever every class has a non-zero union, and where one
  has none theirs is NaN (0/0) while ours leaves the class out (``nanmean``). A class absent
  from the target but predicted somewhere has IoU 0 and counts;
* ``ce`` (when the prediction is log-probabilities): mean pixel cross-entropy over valid pixels
  (MT-CRL Table 8 reports it for Taskonomy segmentation).

**Depth** (:class:`DepthMetrics`): over valid pixels ``p`` of the split (all channels),
``abs_err = mean |ŷ − y|``, ``rel_err = mean |ŷ − y| / y`` (MTAN / LibMTL ``DepthMetric``;
the target must be ``> 0`` where valid), and ``mse = mean (ŷ − y)²``.

**Dense regression** (:class:`RegressionMapMetrics`, e.g. Taskonomy curvature, edges,
keypoints): ``abs_err`` (the "L1 loss" of MT-CRL Table 8) and ``mse`` (its "L2 loss").

**Surface normals** (:class:`NormalMetrics`): the angle between the prediction and the target
at each valid pixel, both normalised (the prediction need not be unit length),
``θ = 2·atan2(‖â − b̂‖, ‖â + b̂‖)`` in degrees (equal to ``acos(â·b̂)`` but accurate near 0° and
180°, where float32 ``acos`` loses ~0.02°); ``mean_angle`` and ``median_angle`` over all valid
pixels of the split, and ``within_11.25``, ``within_22.5``, ``within_30``: the share with
``θ < t`` (strict, as LibMTL's ``NormalMetric``), as fractions in [0, 1].

*The median without unbounded memory*: angles are counted in an exact histogram of
:data:`ANGLE_BINS_PER_DEGREE` = 1000 bins per degree over [0°, 180°] (180 001 int64 bins,
1.4 MB per accumulator, whatever the split's size). The median is the split's median order
statistic(s) (the average of the two middle ones for an even count, as ``numpy.median``), each
replaced by the centre of its bin: the error is at most half a bin, **0.0005°**. Mean and the
``within_t`` shares are exact sums and counts, not read from the histogram. (The alternative,
keeping every angle as float16 on the device, would cost 2 bytes × pixels — 0.3 GB for the
NYUv2 test split at 288×384, 16 GB for 0.1 % of Taskonomy — and float16 has a 0.03° step at 30°.)

:func:`metric_direction` gives each metric's direction (+1 higher is better, −1 lower), which
:func:`causalmtl.metrics.relative.relative_improvement_from_metrics` uses for MT-CRL's Δ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import Tensor

from .direction import metric_direction

__all__ = [
    "ANGLE_BINS_PER_DEGREE",
    "METRIC_KINDS",
    "NORMAL_THRESHOLDS",
    "ConfusionMatrix",
    "DenseMetrics",
    "DepthMetrics",
    "NormalMetrics",
    "angles_degrees",
    "RegressionMapMetrics",
    "SegmentationMetrics",
    "dense_metrics_for_task",
    "metric_direction",
]

#: Histogram resolution of :class:`NormalMetrics` (median error <= 0.5 / this, in degrees).
ANGLE_BINS_PER_DEGREE = 1000
#: Angle thresholds (degrees) of the ``within_t`` shares (MTAN, LibMTL, PCGrad's NYUv2 tables).
NORMAL_THRESHOLDS: tuple[float, ...] = (11.25, 22.5, 30.0)

#: Metric kinds of :meth:`DenseMetrics.create`.
METRIC_KINDS: tuple[str, ...] = ("segmentation", "depth", "normals", "dense")


# --------------------------------------------------------------------------------------------
def _check_map(x: Tensor, name: str, ndim: int) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != ndim:
        want = "(B, H, W)" if ndim == 3 else "(B, C, H, W)"
        raise ValueError(f"{name} must have shape {want}, got shape {tuple(x.shape)}")


class DenseMetrics:
    """Base of the split-level accumulators: named device tensors (sums and counts) added by
    ``update(pred, target)`` and divided by ``compute() -> dict[str, float]``; ``reset()``,
    ``merge(other)`` and ``state_tensors()`` (for a DDP all-reduce). Build one with
    :meth:`DenseMetrics.create` or :func:`dense_metrics_for_task`."""

    _names: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._state: dict[str, Tensor] | None = None

    def _zeros(self, device: torch.device) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _ensure(self, device: torch.device) -> dict[str, Tensor]:
        if self._state is None:
            self._state = self._zeros(device)
        return self._state

    def _add(self, parts: Mapping[str, Tensor], device: torch.device) -> None:
        state = self._ensure(device)
        for k, v in parts.items():
            state[k] += v.to(state[k].device, state[k].dtype)

    def reset(self) -> None:
        """Forget every update."""
        self._state = None

    def state_tensors(self, device: torch.device | str | None = None) -> list[Tensor]:
        """The accumulated tensors (sums and counts), for an in-place ``all_reduce(SUM)`` across
        ranks. With ``device``, a rank that saw no update first creates the zero state there (so
        every rank contributes the same tensors); without it, empty before the first update."""
        if self._state is None and device is not None:
            self._ensure(torch.device(device))
        return [] if self._state is None else [self._state[k] for k in sorted(self._state)]

    def merge(self, other: DenseMetrics) -> None:
        """Add ``other``'s accumulated sums (same class and settings) into this one."""
        if type(other) is not type(self) or self._settings() != other._settings():
            raise ValueError(f"cannot merge {other!r} into {self!r}: different metric or settings")
        if other._state is None:
            return
        self._add(other._state, next(iter(other._state.values())).device)

    def _settings(self) -> tuple[object, ...]:
        return ()

    def update(self, pred: Tensor, target: Tensor) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def compute(self) -> dict[str, float]:  # pragma: no cover - abstract
        raise NotImplementedError

    @staticmethod
    def create(kind: str, n_classes: int = 0, ignore_index: int = -1) -> DenseMetrics:
        """The accumulator of a metric kind: ``"segmentation"`` (:class:`SegmentationMetrics`,
        needs ``n_classes``), ``"depth"`` (:class:`DepthMetrics`), ``"normals"``
        (:class:`NormalMetrics`) or ``"dense"`` (:class:`RegressionMapMetrics`)."""
        if kind == "segmentation":
            return SegmentationMetrics(n_classes, ignore_index)
        if kind == "depth":
            return DepthMetrics()
        if kind == "normals":
            return NormalMetrics()
        if kind == "dense":
            return RegressionMapMetrics()
        raise ValueError(f"metric kind must be one of {list(METRIC_KINDS)}, got {kind!r}")

    def _need_state(self) -> dict[str, Tensor]:
        if self._state is None:
            raise ValueError(f"{type(self).__name__}.compute() called before any update")
        return self._state


class ConfusionMatrix(DenseMetrics):
    """Streaming confusion matrix ``M[target, prediction]`` (int64, on the device of the data).

    ``update(pred, target)``: ``pred`` is scores ``(B, C, H, W)`` (the arg-max over dim 1 is the
    prediction) or integer labels ``(B, H, W)``; ``target`` integer labels ``(B, H, W)``,
    ``ignore_index`` = not counted. One ``scatter_add_`` per update, no host synchronisation.
    See the module docstring for ``miou`` / ``pix_acc``.
    """

    def __init__(self, n_classes: int, ignore_index: int = -1) -> None:
        super().__init__()
        if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 2:
            raise ValueError(f"n_classes must be an int >= 2, got {n_classes!r}")
        if not isinstance(ignore_index, int) or 0 <= ignore_index < n_classes:
            raise ValueError(
                f"ignore_index must be an int outside [0, n_classes={n_classes}), got {ignore_index!r}"
            )
        self.n_classes = n_classes
        self.ignore_index = ignore_index

    def __repr__(self) -> str:
        return f"ConfusionMatrix(n_classes={self.n_classes}, ignore_index={self.ignore_index})"

    def _settings(self) -> tuple[object, ...]:
        return (self.n_classes, self.ignore_index)

    def _zeros(self, device: torch.device) -> dict[str, Tensor]:
        c = self.n_classes
        return {
            "matrix": torch.zeros(c * c, dtype=torch.int64, device=device),
            "bad_target": torch.zeros((), dtype=torch.int64, device=device),
            "bad_pred": torch.zeros((), dtype=torch.int64, device=device),
        }

    def labels_of(self, pred: Tensor) -> Tensor:
        """Predicted labels ``(B, H, W)`` of scores ``(B, C, H, W)`` (or the labels themselves)."""
        if pred.ndim == 4:
            if pred.shape[1] != self.n_classes:
                raise ValueError(
                    f"pred has {pred.shape[1]} channels (shape {tuple(pred.shape)}), expected "
                    f"n_classes = {self.n_classes}"
                )
            # max(...).indices: the first maximum, like argmax, and 4x faster over the channel
            # axis of a (B, C, H, W) map on the CPU
            return pred.max(dim=1).indices
        _check_map(pred, "pred", 3)
        if pred.dtype.is_floating_point:
            raise TypeError(
                f"pred of shape (B, H, W) must be integer labels, got dtype {pred.dtype}"
            )
        return pred

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Count the valid pixels of one batch (see the class docstring)."""
        _check_map(target, "target", 3)
        if target.dtype.is_floating_point:
            raise TypeError(f"target must be an integer class map, got dtype {target.dtype}")
        labels = self.labels_of(pred)
        if tuple(labels.shape) != tuple(target.shape):
            raise ValueError(
                f"pred of shape {tuple(pred.shape)} does not match target of shape {tuple(target.shape)}"
            )
        c = self.n_classes
        t = target.long()
        p = labels.long().to(t.device)
        keep = t != self.ignore_index
        bad_t = keep & ((t < 0) | (t >= c))
        bad_p = keep & ~bad_t & ((p < 0) | (p >= c))
        ok = keep & ~bad_t & ~bad_p
        # invalid pixels go to an extra bin that is dropped (no boolean indexing: no sync)
        idx = torch.where(ok, t * c + p, torch.full((), c * c, dtype=torch.long, device=t.device))
        counts = torch.zeros(c * c + 1, dtype=torch.int64, device=t.device)
        counts.scatter_add_(0, idx.reshape(-1), torch.ones_like(idx.reshape(-1)))
        self._add(
            {"matrix": counts[: c * c], "bad_target": bad_t.sum(), "bad_pred": bad_p.sum()},
            t.device,
        )

    @property
    def matrix(self) -> Tensor:
        """The ``(C, C)`` int64 matrix ``M[target, prediction]`` (zeros before any update)."""
        if self._state is None:
            return torch.zeros(self.n_classes, self.n_classes, dtype=torch.int64)
        return self._state["matrix"].view(self.n_classes, self.n_classes)

    def _checked(self) -> Tensor:
        s = self._need_state()
        bad_t, bad_p = int(s["bad_target"]), int(s["bad_pred"])
        if bad_t:
            raise ValueError(
                f"target held {bad_t} pixels outside [0, {self.n_classes}) that are not the ignore "
                f"index {self.ignore_index}"
            )
        if bad_p:
            raise ValueError(
                f"pred held {bad_p} labels outside [0, {self.n_classes}) at valid pixels"
            )
        return self.matrix.double()

    def iou(self) -> Tensor:
        """Per-class IoU ``(C,)`` float64 on the CPU, NaN for a class with union 0."""
        m = self._checked().cpu()
        inter = m.diagonal()
        union = m.sum(0) + m.sum(1) - inter
        return torch.where(union > 0, inter / union.clamp(min=1), torch.full_like(inter, math.nan))

    def compute(self) -> dict[str, float]:
        """``{"miou", "pix_acc"}`` over every update so far (NaN when no pixel was counted)."""
        m = self._checked().cpu()
        total = float(m.sum())
        iou = self.iou()
        present = ~torch.isnan(iou)
        miou = float(iou[present].mean()) if bool(present.any()) else math.nan
        return {"miou": miou, "pix_acc": float(m.diagonal().sum()) / total if total else math.nan}


class SegmentationMetrics(ConfusionMatrix):
    """:class:`ConfusionMatrix` plus the mean pixel cross-entropy ``ce`` when ``pred`` is
    log-probabilities ``(B, C, H, W)`` (the contract's segmentation output)."""

    def _zeros(self, device: torch.device) -> dict[str, Tensor]:
        out = super()._zeros(device)
        out["ce_sum"] = torch.zeros((), dtype=torch.float64, device=device)
        out["ce_count"] = torch.zeros((), dtype=torch.int64, device=device)
        return out

    def __repr__(self) -> str:
        return f"SegmentationMetrics(n_classes={self.n_classes}, ignore_index={self.ignore_index})"

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        super().update(pred, target)
        if pred.ndim == 4 and pred.dtype.is_floating_point:
            c = self.n_classes
            t = target.long().to(pred.device)
            ok = (t >= 0) & (t < c) & (t != self.ignore_index)
            idx = torch.where(ok, t, torch.zeros((), dtype=torch.long, device=t.device))
            nll = -pred.gather(1, idx.unsqueeze(1)).squeeze(1).double()
            self._add({"ce_sum": torch.where(ok, nll, 0.0).sum(), "ce_count": ok.sum()}, t.device)

    def compute(self) -> dict[str, float]:
        """``{"miou", "pix_acc"}`` and ``"ce"`` when every update gave log-probabilities."""
        out = super().compute()
        s = self._need_state()
        n = int(s["ce_count"])
        if n and n == int(self.matrix.sum()):
            out["ce"] = float(s["ce_sum"]) / n
        return out


def _valid_pixels(
    pred: Tensor, target: Tensor, dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    """Checked ``pred`` and NaN-free target in ``dtype``, and the ``(B, H, W)`` validity mask."""
    _check_map(pred, "pred", 4)
    _check_map(target, "target", 4)
    if tuple(pred.shape) != tuple(target.shape):
        raise ValueError(
            f"pred of shape {tuple(pred.shape)} does not match target of shape {tuple(target.shape)}"
        )
    if not (pred.dtype.is_floating_point and target.dtype.is_floating_point):
        raise TypeError(f"pred and target must be float maps, got {pred.dtype} and {target.dtype}")
    nan = torch.isnan(target)
    valid = ~nan.any(dim=1)
    t = torch.where(nan, torch.zeros((), dtype=target.dtype, device=target.device), target)
    return pred.to(dtype), t.to(pred.device, dtype), valid.to(pred.device)


class RegressionMapMetrics(DenseMetrics):
    """``abs_err`` and ``mse`` over the valid pixels of the split (all channels; see module docs)."""

    def _zeros(self, device: torch.device) -> dict[str, Tensor]:
        z = torch.zeros((), dtype=torch.float64, device=device)
        return {
            "abs_sum": z.clone(),
            "sq_sum": z.clone(),
            "n": torch.zeros((), dtype=torch.int64, device=device),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def _parts(self, p: Tensor, t: Tensor, valid: Tensor) -> dict[str, Tensor]:
        v = valid.unsqueeze(1)
        err = torch.where(v, p - t, 0.0)
        return {
            "abs_sum": err.abs().sum(),
            "sq_sum": err.square().sum(),
            "n": valid.sum() * p.shape[1],
        }

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch: ``pred``, ``target`` ``(B, C, H, W)``, NaN in ``target`` = invalid."""
        p, t, valid = _valid_pixels(pred, target, torch.float64)
        self._add(self._parts(p, t, valid), p.device)

    def compute(self) -> dict[str, float]:
        """``{"abs_err", "mse"}`` (NaN when no valid pixel was seen)."""
        s = self._need_state()
        n = int(s["n"])
        if n == 0:
            return {"abs_err": math.nan, "mse": math.nan}
        return {"abs_err": float(s["abs_sum"]) / n, "mse": float(s["sq_sum"]) / n}


class DepthMetrics(RegressionMapMetrics):
    """``abs_err``, ``rel_err`` (= mean ``|ŷ − y| / y``) and ``mse`` over valid pixels (MTAN / LibMTL)."""

    def _zeros(self, device: torch.device) -> dict[str, Tensor]:
        out = super()._zeros(device)
        out["rel_sum"] = torch.zeros((), dtype=torch.float64, device=device)
        out["bad"] = torch.zeros((), dtype=torch.int64, device=device)
        return out

    def _parts(self, p: Tensor, t: Tensor, valid: Tensor) -> dict[str, Tensor]:
        out = super()._parts(p, t, valid)
        v = valid.unsqueeze(1)
        pos = t > 0
        rel = torch.where(v & pos, (p - t).abs() / torch.where(pos, t, 1.0), 0.0)
        out["rel_sum"] = rel.sum()
        out["bad"] = (v & ~pos).sum()
        return out

    def compute(self) -> dict[str, float]:
        """``{"abs_err", "rel_err", "mse"}``; ValueError if a valid target was ``<= 0``."""
        s = self._need_state()
        bad = int(s["bad"])
        if bad:
            raise ValueError(
                f"depth target held {bad} valid pixels <= 0; rel_err needs positive depth "
                f"(mark invalid depth as NaN)"
            )
        out = super().compute()
        n = int(s["n"])
        out["rel_err"] = float(s["rel_sum"]) / n if n else math.nan
        return {"abs_err": out["abs_err"], "rel_err": out["rel_err"], "mse": out["mse"]}


def angles_degrees(pred: Tensor, target: Tensor, eps: float = 1e-12) -> Tensor:
    """Angle ``(B, H, W)`` in degrees between ``pred`` and ``target`` ``(B, C, H, W)`` over channels.

    ``θ = 2·atan2(‖â − b̂‖, ‖â + b̂‖)`` with ``â = a / max(‖a‖, eps)`` (= ``acos(â·b̂)``, accurate
    at every angle). NaN target pixels give NaN.
    """
    a = pred / _channel_norm(pred).clamp_min(eps)
    b = target / _channel_norm(target).clamp_min(eps)
    return torch.rad2deg(2.0 * torch.atan2(_channel_norm(a - b)[:, 0], _channel_norm(a + b)[:, 0]))


def _channel_norm(x: Tensor) -> Tensor:
    """``‖x‖`` over dim 1, keepdim (``Tensor.norm(dim=1)`` is ~20x slower on a CPU map)."""
    return x.square().sum(dim=1, keepdim=True).sqrt()


class NormalMetrics(DenseMetrics):
    """Surface-normal angle metrics (degrees) over the split; see the module docstring."""

    n_bins = 180 * ANGLE_BINS_PER_DEGREE + 1

    def __repr__(self) -> str:
        return "NormalMetrics()"

    def _zeros(self, device: torch.device) -> dict[str, Tensor]:
        out = {
            "hist": torch.zeros(self.n_bins, dtype=torch.int64, device=device),
            "angle_sum": torch.zeros((), dtype=torch.float64, device=device),
            "n": torch.zeros((), dtype=torch.int64, device=device),
        }
        for thr in NORMAL_THRESHOLDS:
            out[f"within_{thr:g}"] = torch.zeros((), dtype=torch.int64, device=device)
        return out

    @torch.no_grad()
    def update(self, pred: Tensor, target: Tensor) -> None:
        """Add one batch: ``pred``, ``target`` ``(B, C, H, W)`` (C >= 2), NaN in ``target`` = invalid."""
        _check_map(pred, "pred", 4)
        if pred.shape[1] < 2:
            raise ValueError(f"normals need >= 2 channels, got pred of shape {tuple(pred.shape)}")
        p, t, valid = _valid_pixels(
            pred, target, torch.float64 if pred.dtype == torch.float64 else torch.float32
        )
        theta = torch.where(valid, angles_degrees(p, t), 0.0)
        bins = (theta.double() * ANGLE_BINS_PER_DEGREE).long().clamp(0, self.n_bins - 1)
        bins = torch.where(
            valid, bins, torch.full((), self.n_bins, dtype=torch.long, device=bins.device)
        )
        hist = torch.zeros(self.n_bins + 1, dtype=torch.int64, device=bins.device)
        hist.scatter_add_(0, bins.reshape(-1), torch.ones_like(bins.reshape(-1)))
        parts = {"hist": hist[: self.n_bins], "angle_sum": theta.double().sum(), "n": valid.sum()}
        for thr in NORMAL_THRESHOLDS:
            parts[f"within_{thr:g}"] = (valid & (theta < thr)).sum()
        self._add(parts, bins.device)

    def compute(self) -> dict[str, float]:
        """``{"mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"}``."""
        s = self._need_state()
        n = int(s["n"])
        keys = ["mean_angle", "median_angle"] + [f"within_{t:g}" for t in NORMAL_THRESHOLDS]
        if n == 0:
            return dict.fromkeys(keys, math.nan)
        cum = s["hist"].cpu().cumsum(0)
        # order statistics k = floor((n-1)/2) and ceil((n-1)/2) (0-based), as numpy.median
        ks = torch.tensor([(n - 1) // 2, n // 2], dtype=torch.int64)
        b = torch.searchsorted(cum, ks + 1)  # first bin whose cumulative count exceeds k
        centres = (b.double() + 0.5) / ANGLE_BINS_PER_DEGREE
        out = {"mean_angle": float(s["angle_sum"]) / n, "median_angle": float(centres.mean())}
        for thr in NORMAL_THRESHOLDS:
            out[f"within_{thr:g}"] = int(s[f"within_{thr:g}"]) / n
        return out


def dense_metrics_for_task(task: object, metric_kind: str | None = None) -> DenseMetrics:
    """The accumulator for a segmentation / dense task (anything with ``name``, ``kind``,
    ``n_classes``, ``loss``).

    Without ``metric_kind``: segmentation → ``"segmentation"``; a dense task with loss
    ``"cosine"`` or ``"normal"`` in its name → ``"normals"``; ``"depth"`` in its name →
    ``"depth"``; any other dense task → ``"dense"`` (abs_err, mse).
    """
    kind = getattr(task, "kind", None)
    name = str(getattr(task, "name", ""))
    if kind not in ("segmentation", "dense"):
        raise ValueError(
            f"Task {name!r}: dense metrics need kind 'segmentation' or 'dense', got {kind!r}"
        )
    if metric_kind is None:
        low = name.lower()
        if kind == "segmentation":
            metric_kind = "segmentation"
        elif getattr(task, "loss", "") == "cosine" or "normal" in low:
            metric_kind = "normals"
        elif "depth" in low:
            metric_kind = "depth"
        else:
            metric_kind = "dense"
    if (metric_kind == "segmentation") != (kind == "segmentation"):
        raise ValueError(f"Task {name!r} of kind {kind!r} cannot use metric kind {metric_kind!r}")
    return DenseMetrics.create(metric_kind, int(getattr(task, "n_classes", 0) or 0))
