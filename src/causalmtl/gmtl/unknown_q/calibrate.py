"""Per-head calibration of multi-task scores by NLL, fitted with L-BFGS.

EM over the joint label space (:mod:`causalmtl.gmtl.unknown_q.em`) needs a likelihood that is the same
in training and test. With a factorised multi-task model it is ``Π_t p(y_t|x) / p(y)``, and
that is only sound if the heads' probabilities are calibrated (Alexandari, Kundaje &
Shrikumar 2020, "Maximum likelihood with bias-corrected calibration is hard-to-beat at label
shift adaptation", ICML, §3–4). Each calibrator maps the per-task scores ``z_t`` (first
normalised to log-probabilities, so logits and log-probabilities give the same result) to
calibrated logits ``z̃_t`` and is fitted by minimising the negative log-likelihood of the
labels on labelled held-out data (rows with a missing label ``-1`` are skipped for that
task), in float64 with ``torch.optim.LBFGS``:

``TemperatureScaling``  ``z̃_t = z_t / T_t``                (Guo et al. 2017, §4.2)
``BCTSCalibrator``      ``z̃_t = z_t / T_t + b_t``          (bias-corrected temperature
                                                             scaling, Alexandari et al. 2020)
``VectorScaling``       ``z̃_t = w_t ⊙ z_t + b_t``          (Guo et al. 2017, §4.2)
``CrossTaskScaling``    ``z̃_t = W_t [z_1; …; z_T] + b_t``  (each task's calibrated logit a
                                                             linear function of all tasks' logits)

:func:`calibration_report` gives per-task NLL and the expected calibration error (ECE,
Guo et al. 2017 Eq. 3 with equal-width confidence bins) before and after.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
import torch

from ..._validation import as_numpy, check_labels, check_n_classes, check_nonnegative

logger = logging.getLogger(__name__)

__all__ = [
    "Calibrator",
    "TemperatureScaling",
    "BCTSCalibrator",
    "VectorScaling",
    "CrossTaskScaling",
    "CalibrationReport",
    "calibration_report",
    "expected_calibration_error",
    "make_calibrator",
    "CALIBRATORS",
]


def _as_scores(
    log_probs: Any, n_classes: tuple[int, ...] | None, name: str
) -> tuple[list[torch.Tensor], tuple[int, ...]]:
    """Validate a list of T arrays ``(N, C_t)``; return float64 log-softmaxed tensors."""
    if not isinstance(log_probs, (list, tuple)) or len(log_probs) == 0:
        raise ValueError(f"{name} must be a non-empty list of T arrays (N, C_t), got {type(log_probs).__name__}")
    arrs = [np.asarray(as_numpy(x), dtype=np.float64) for x in log_probs]
    shapes = tuple(a.shape for a in arrs)
    if any(a.ndim != 2 for a in arrs):
        raise ValueError(f"{name} must hold 2-D arrays (N, C_t), got shapes {shapes}")
    got = tuple(a.shape[1] for a in arrs)
    if n_classes is not None and got != n_classes:
        raise ValueError(
            f"{name} has classes per task {got} ({len(got)} tasks) but the calibrator was fitted "
            f"for n_classes={n_classes}"
        )
    n_classes = check_n_classes(got, name=f"{name} classes per task")
    n = arrs[0].shape[0]
    for t, a in enumerate(arrs):
        if a.shape[0] != n:
            raise ValueError(f"{name}[{t}] has {a.shape[0]} rows but {name}[0] has {n}")
        if not np.all(np.isfinite(a)):
            r, c = np.argwhere(~np.isfinite(a))[0]
            raise ValueError(f"{name}[{t}] has a non-finite score {a[r, c]!r} at row {r}, class {c}")
    if n == 0:
        raise ValueError(f"{name} has no rows")
    tens = [torch.log_softmax(torch.as_tensor(a), dim=1) for a in arrs]
    return tens, n_classes


def _labels(labels: Any, n_classes: tuple[int, ...], n: int) -> np.ndarray:
    lab = check_labels(labels, n_classes, name="labels")
    if lab.shape[0] != n:
        raise ValueError(f"labels has {lab.shape[0]} rows but the scores have {n}")
    return lab


def _task_nll(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean NLL of labels ``y`` (``-1`` skipped) under softmax(logits); NaN when none is observed."""
    mask = (y >= 0).to(logits.dtype)
    lp = torch.log_softmax(logits, dim=1).gather(1, y.clamp(min=0)[:, None])[:, 0]
    return -(lp * mask).sum() / mask.sum()


class Calibrator:
    """Base class: fit parameters by NLL with L-BFGS, then map scores to calibrated log-probs.

    Subclasses define :meth:`_init_params` and :meth:`_apply`. Parameters
    ----------
    l2 : float
        Weight of an L2 penalty pulling the parameters towards the identity map (0 = none);
        useful for :class:`CrossTaskScaling` on small validation sets.
    max_iter : int
        L-BFGS iterations.
    """

    name = "identity"

    def __init__(self, l2: float = 0.0, max_iter: int = 100) -> None:
        self.l2 = check_nonnegative(l2, "l2")
        if int(max_iter) != max_iter or max_iter < 1:
            raise ValueError(f"max_iter must be a positive int, got {max_iter!r}")
        self.max_iter = int(max_iter)
        self.n_classes: tuple[int, ...] | None = None
        self.params_: list[torch.Tensor] | None = None
        self.init_: list[torch.Tensor] | None = None
        self.report_before_: CalibrationReport | None = None
        self.report_after_: CalibrationReport | None = None

    # --- to override -----------------------------------------------------------------
    def _init_params(self, n_classes: tuple[int, ...]) -> list[torch.Tensor]:
        raise NotImplementedError

    def _apply(self, z: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
        raise NotImplementedError

    # --- public ----------------------------------------------------------------------
    def fit(self, log_probs: Sequence[Any], labels: Any) -> Calibrator:
        """Fit on labelled held-out scores: ``log_probs`` a list of T ``(N, C_t)`` arrays."""
        z, n_classes = _as_scores(log_probs, None, "log_probs")
        lab = _labels(labels, n_classes, z[0].shape[0])
        for t in range(len(n_classes)):
            if not (lab[:, t] >= 0).any():
                raise ValueError(f"labels[:, {t}] has no observed label; task {t} cannot be calibrated")
        y = torch.as_tensor(lab)
        init = [p.clone() for p in self._init_params(n_classes)]
        params = [p.clone().requires_grad_(True) for p in init]
        opt = torch.optim.LBFGS(
            params, lr=1.0, max_iter=self.max_iter, tolerance_grad=1e-8,
            tolerance_change=1e-11, history_size=20, line_search_fn="strong_wolfe",
        )

        def closure() -> torch.Tensor:
            opt.zero_grad()
            out = self._apply(z, params)
            # sums of (at least one) tensors are tensors; sum()'s start value 0 hides it from mypy
            loss = cast(torch.Tensor, sum(_task_nll(o, y[:, t]) for t, o in enumerate(out)))
            if self.l2 > 0:
                loss = loss + self.l2 * cast(torch.Tensor, sum(((p - p0) ** 2).sum() for p, p0 in zip(params, init)))
            loss.backward()  # type: ignore[no-untyped-call]  # torch's Tensor.backward is unannotated
            return loss

        opt.step(closure)  # type: ignore[no-untyped-call]  # torch's LBFGS.step is unannotated
        self.n_classes = n_classes
        self.params_ = [p.detach() for p in params]
        self.init_ = init
        self.report_before_ = calibration_report([x.numpy() for x in z], lab)
        self.report_after_ = calibration_report(self.transform(log_probs), lab)
        logger.info(
            "%s: NLL %s -> %s", self.name, self.report_before_.nll, self.report_after_.nll
        )
        return self

    def transform(self, log_probs: Sequence[Any]) -> list[np.ndarray]:
        """Calibrated per-task log-probabilities, a list of T float64 ``(N, C_t)`` arrays."""
        if self.params_ is None:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit(log_probs, labels) first")
        z, _ = _as_scores(log_probs, self.n_classes, "log_probs")
        with torch.no_grad():
            out = self._apply(z, self.params_)
        return [torch.log_softmax(o, dim=1).numpy() for o in out]

    def fit_transform(self, log_probs: Sequence[Any], labels: Any) -> list[np.ndarray]:
        return self.fit(log_probs, labels).transform(log_probs)


class TemperatureScaling(Calibrator):
    """One temperature per task, ``z̃_t = z_t / T_t`` (Guo et al. 2017, §4.2).

    ``T_t = exp(−θ_t)`` is kept positive by the parameterisation.
    """

    name = "temperature"

    def _init_params(self, n_classes: tuple[int, ...]) -> list[torch.Tensor]:
        return [torch.zeros(len(n_classes), dtype=torch.float64)]

    def _apply(self, z: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
        inv_t = torch.exp(params[0])
        return [x * inv_t[t] for t, x in enumerate(z)]

    @property
    def temperatures(self) -> np.ndarray:
        """The fitted ``T_t`` per task."""
        if self.params_ is None:
            raise ValueError("TemperatureScaling is not fitted")
        return torch.exp(-self.params_[0]).numpy()


class BCTSCalibrator(Calibrator):
    """Bias-corrected temperature scaling ``z̃_t = z_t / T_t + b_t`` (Alexandari et al. 2020)."""

    name = "bcts"

    def _init_params(self, n_classes: tuple[int, ...]) -> list[torch.Tensor]:
        return [torch.zeros(len(n_classes), dtype=torch.float64)] + [
            torch.zeros(c, dtype=torch.float64) for c in n_classes
        ]

    def _apply(self, z: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
        inv_t = torch.exp(params[0])
        return [x * inv_t[t] + params[1 + t] for t, x in enumerate(z)]


class VectorScaling(Calibrator):
    """Per-class scale and bias, ``z̃_t = w_t ⊙ z_t + b_t`` (Guo et al. 2017, §4.2)."""

    name = "vector"

    def _init_params(self, n_classes: tuple[int, ...]) -> list[torch.Tensor]:
        out: list[torch.Tensor] = []
        for c in n_classes:
            out += [torch.ones(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64)]
        return out

    def _apply(self, z: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
        return [x * params[2 * t] + params[2 * t + 1] for t, x in enumerate(z)]


class CrossTaskScaling(Calibrator):
    """Each task's calibrated logit a learned linear function of all tasks' logits.

    ``z̃_t = W_t [z_1; …; z_T] + b_t`` with ``W_t`` of shape ``(C_t, Σ_s C_s)``, started at
    the identity on task t's own block. It can undo the evidence a head borrows from other
    tasks through the training correlation, which per-head calibrators cannot.
    """

    name = "cross"

    def _init_params(self, n_classes: tuple[int, ...]) -> list[torch.Tensor]:
        total = sum(n_classes)
        out: list[torch.Tensor] = []
        offset = 0
        for c in n_classes:
            w = torch.zeros((c, total), dtype=torch.float64)
            w[:, offset : offset + c] = torch.eye(c, dtype=torch.float64)
            out += [w, torch.zeros(c, dtype=torch.float64)]
            offset += c
        return out

    def _apply(self, z: list[torch.Tensor], params: list[torch.Tensor]) -> list[torch.Tensor]:
        cat = torch.cat(z, dim=1)
        return [cat @ params[2 * t].T + params[2 * t + 1] for t in range(len(z))]


CALIBRATORS: dict[str, type[Calibrator]] = {
    "temperature": TemperatureScaling,
    "bcts": BCTSCalibrator,
    "vector": VectorScaling,
    "cross": CrossTaskScaling,
}

CalibrationMethod = Literal["temperature", "bcts", "vector", "cross"]


def make_calibrator(method: str, **kwargs: Any) -> Calibrator:
    """Build a calibrator by name: one of ``CALIBRATORS`` (temperature, bcts, vector, cross)."""
    if method not in CALIBRATORS:
        raise ValueError(f"method must be one of {sorted(CALIBRATORS)}, got {method!r}")
    return CALIBRATORS[method](**kwargs)


def expected_calibration_error(log_probs: Any, labels: Any, n_bins: int = 15) -> float:
    """ECE of one task (Guo et al. 2017, Eq. 3): ``Σ_b |B_b|/n · |acc(B_b) − conf(B_b)|``.

    Confidence is the top-class probability, binned into ``n_bins`` equal-width bins of
    (0, 1]; rows with label ``-1`` are skipped.
    """
    lp = np.asarray(as_numpy(log_probs), dtype=np.float64)
    y = np.asarray(as_numpy(labels)).astype(np.int64).reshape(-1)
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    if lp.ndim != 2 or lp.shape[0] != y.shape[0]:
        raise ValueError(f"log_probs must be (N, C) with N = len(labels) = {y.shape[0]}, got {lp.shape}")
    keep = y >= 0
    if not keep.any():
        return float("nan")
    lp, y = lp[keep], y[keep]
    conf = np.exp(lp.max(axis=1))
    correct = (lp.argmax(axis=1) == y).astype(np.float64)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    acc = np.bincount(bins, weights=correct, minlength=n_bins)
    cf = np.bincount(bins, weights=conf, minlength=n_bins)
    return float(np.abs(acc - cf).sum() / y.shape[0])


@dataclass(frozen=True)
class CalibrationReport:
    """Per-task mean NLL and ECE (arrays of length T)."""

    nll: np.ndarray
    ece: np.ndarray

    def __str__(self) -> str:
        rows = [f"task {t}: NLL {a:.4f}  ECE {b:.4f}" for t, (a, b) in enumerate(zip(self.nll, self.ece))]
        return "\n".join(rows)


def calibration_report(log_probs: Sequence[Any], labels: Any, n_bins: int = 15) -> CalibrationReport:
    """Per-task NLL (mean over labelled rows) and ECE of per-task log-probabilities."""
    z, n_classes = _as_scores(log_probs, None, "log_probs")
    lab = _labels(labels, n_classes, z[0].shape[0])
    y = torch.as_tensor(lab)
    nll = np.array([float(_task_nll(x, y[:, t])) for t, x in enumerate(z)])
    ece = np.array([expected_calibration_error(x.numpy(), lab[:, t], n_bins) for t, x in enumerate(z)])
    return CalibrationReport(nll=nll, ece=ece)
