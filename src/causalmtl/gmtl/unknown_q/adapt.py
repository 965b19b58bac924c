"""GMTL without an oracle: calibrate → estimate q on unlabeled test scores → decode.

The paper decodes with a known test prior q (§3.1, ``Σ_t log p(y_t|x) − log p(y) + log q(y)``)
or with an oracle α. :func:`adapt` replaces the oracle by an estimate ``q̂`` from the
unlabeled test inputs (EM / MLLS, :mod:`causalmtl.gmtl.unknown_q.em`), using one of two
label-shift-invariant likelihoods fitted on labelled held-out in-distribution data:

``likelihood="score"`` (default)
    the generative score model ``p(s|y)`` (:class:`~causalmtl.gmtl.unknown_q.score_model.GaussianScoreModel`);
    decoding is ``argmax_y log p(s|y) + log q̂(y)``.
``likelihood="calibrated"``
    calibrated heads (:mod:`causalmtl.gmtl.unknown_q.calibrate`) in the GMTL likelihood
    ``L(y; x) = Π_t p̃(y_t|x) / p(y)`` (:func:`gmtl_log_likelihood`); decoding is
    ``gmtl_decode(p̃, prior, q=q̂)``.

Choosing α without labels
-------------------------
When a user prefers the one-parameter GMTL decode (Eq. 6), :func:`alpha_from_severity` sets
α from the *estimated* severity ``τ̂ = τ(p, q̂)`` (weighted Kendall's τ, §5.5):
``α = (1 − τ̂) / 2``, so no shift (τ̂ = 1) gives DMTL (α = 0), a reversed ranking of the
joint classes (τ̂ = −1) gives α = 1, and α grows linearly with the severity in between. This
follows the paper's finding that the optimal α increases monotonically with severity
(§6, correlation −0.847 between τ and the optimal α); the linear map is a heuristic, not a
fitted curve. The estimate q̂ itself is the better default (it also fixes which cells gain
mass); the α decode is returned alongside for comparison.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np

from ..._severity import weighted_tau
from ..._validation import as_numpy, check_labels
from ..decoding.decode import gmtl_decode
from ..priors.prior import JointPrior, as_prior
from ..priors.tree import TreePrior
from .calibrate import Calibrator, make_calibrator
from .em import EMResult, RawScoresWarning, estimate_prior_em
from .score_model import GaussianScoreModel
from .smoothing_cv import (
    DEFAULT_CV_GRID,
    SmoothingCVResult,
    heldout_log_likelihood,
    select_smoothing_cv,
)
from .tree_em import TreeEMResult, estimate_tree_prior_em

logger = logging.getLogger(__name__)

__all__ = [
    "AdaptResult",
    "adapt",
    "alpha_from_severity",
    "decode_adapted",
    "gmtl_log_likelihood",
]


def _n_classes_of(log_probs: Any, name: str) -> tuple[int, ...]:
    if not isinstance(log_probs, (list, tuple)) or len(log_probs) == 0:
        raise ValueError(f"{name} must be a non-empty list of T arrays (N, C_t)")
    shapes = [np.shape(as_numpy(x)) for x in log_probs]
    if any(len(s) != 2 for s in shapes):
        raise ValueError(f"{name} must hold 2-D arrays (N, C_t), got shapes {shapes}")
    return tuple(int(s[1]) for s in shapes)


def gmtl_log_likelihood(
    log_probs: Sequence[Any],
    prior: JointPrior | Any,
    *,
    calibrator: Calibrator | None = None,
    assume_calibrated: bool = False,
) -> np.ndarray:
    """The GMTL likelihood ``log L(y; x) = Σ_t log p(y_t|x) − log p(y)`` as ``(N, *n_classes)``.

    This is the α = 1 objective of Eq. 6 (``log p(x|y)`` up to a term constant in y) and the
    likelihood of Saerens et al.'s EM for a factorised model. It is shift-invariant only if
    the heads are calibrated: pass a fitted ``calibrator`` (applied first), or
    ``assume_calibrated=True``; otherwise a :class:`~causalmtl.gmtl.unknown_q.em.RawScoresWarning` is
    issued, because EM on raw multi-task scores can collapse (each head leaks other tasks'
    evidence through the training correlation).
    """
    pr = as_prior(prior)
    got = _n_classes_of(log_probs, "log_probs")
    if got != pr.n_classes:
        raise ValueError(f"log_probs has classes per task {got} but the prior has n_classes {pr.n_classes}")
    if pr.has_zeros:
        raise ValueError("prior has joint cells with probability 0; refit it with pseudocount > 0")
    if calibrator is not None:
        lps = calibrator.transform(log_probs)
    else:
        if not assume_calibrated:
            msg = (
                "EM/decoding on raw, uncalibrated GMTL scores: Π_t p(y_t|x)/p(y) is not a "
                "shift-invariant likelihood unless the heads are calibrated; fit a calibrator "
                "(causalmtl.gmtl.unknown_q.calibrate) or use the generative score model"
            )
            warnings.warn(msg, RawScoresWarning, stacklevel=2)
            logger.debug(msg)  # the warning above carries it to the user
        lps = [np.asarray(as_numpy(x), dtype=np.float64) for x in log_probs]
        lps = [x - np.logaddexp.reduce(x, axis=1, keepdims=True) for x in lps]
    n = lps[0].shape[0]
    out = lps[0]
    for x in lps[1:]:
        out = (out[:, :, None] + x[:, None, :]).reshape(n, -1)
    out = out - np.log(pr.probs.reshape(-1))[None, :]
    ret: np.ndarray = out.reshape(n, *pr.n_classes)
    return ret


def alpha_from_severity(prior: JointPrior | Any, q_hat: JointPrior | Any) -> tuple[float, float]:
    """Label-free α from the estimated severity: ``α = (1 − τ(p, q̂)) / 2`` (module docstring).

    Returns ``(alpha, tau)``; τ is the weighted Kendall's τ of :func:`causalmtl.shift.weighted_tau`.
    """
    p = as_prior(prior)
    q = as_prior(q_hat, name="q_hat")
    if p.n_classes != q.n_classes:
        raise ValueError(f"q_hat has n_classes {q.n_classes} but the prior has {p.n_classes}")
    with np.errstate(divide="ignore"):
        tau = weighted_tau(np.log(p.probs), np.log(q.probs))
    alpha = float(np.clip((1.0 - tau) / 2.0, 0.0, 1.0))  # τ ∈ [−1, 1] already; clip only round-off
    return alpha, float(tau)


@dataclass(frozen=True)
class AdaptResult:
    """The outcome of :func:`adapt`.

    Attributes
    ----------
    labels : int64 ``(N, T)``
        Predictions decoded with the estimated test prior q̂.
    q_hat : JointPrior
        The estimated test prior.
    em : EMResult or TreeEMResult
        Diagnostics of the EM run (objective history, convergence).
    q_tree : TreePrior or None
        The estimated tree-structured q̂ when ``prior`` was a :class:`TreePrior`.
    likelihood : str
        ``"score"`` or ``"calibrated"``.
    calibrator, score_model :
        The fitted components (None when unused).
    tau, alpha : float
        Estimated severity τ(p, q̂) and the label-free α of :func:`alpha_from_severity`.
    alpha_labels : int64 ``(N, T)``
        Predictions of the GMTL decode (Eq. 6) at that α.
    fallback : bool
        True when ``smoothing="cv"`` found no held-out likelihood gain of q̂ over the training
        prior p worth trusting: then ``q̂ = p`` and ``labels`` is the DMTL decode of the
        (calibrated) heads, i.e. no adaptation (``cv.reason`` says why).
    cv : SmoothingCVResult or None
        The cross-validation of λ (``smoothing="cv"`` only): grid, held-out log-likelihoods,
        the held-out gain over p (nats/row) and its z statistic.
    """

    labels: np.ndarray
    q_hat: JointPrior
    prior: JointPrior
    em: EMResult | TreeEMResult
    likelihood: str
    calibrator: Calibrator | None
    score_model: GaussianScoreModel | None
    tau: float
    alpha: float
    alpha_labels: np.ndarray
    q_tree: TreePrior | None = None
    fallback: bool = False
    cv: SmoothingCVResult | None = None


def adapt(
    val_log_probs: Sequence[Any],
    val_labels: Any,
    test_log_probs: Sequence[Any],
    prior: JointPrior | Any | None = None,
    *,
    likelihood: Literal["score", "calibrated"] = "score",
    calibration: str | None = "auto",
    interactions: bool = False,
    smoothing: float | Literal["auto", "cv"] = "auto",
    max_iter: int = 2000,
    tol: float = 1e-8,
    device: str = "cpu",
    cv_folds: int = 5,
    cv_grid: Sequence[float] = DEFAULT_CV_GRID,
    cv_z: float | None = None,
    seed: int | np.random.Generator = 0,
) -> AdaptResult:
    """Adapt a multi-task model to an unknown test prior from unlabeled test scores.

    Parameters
    ----------
    val_log_probs : list of T arrays ``(N_val, C_t)``
        Per-task log-probabilities (or logits) on labelled held-out in-distribution data.
    val_labels : int ``(N_val, T)``, ``-1`` where missing
    test_log_probs : list of T arrays ``(N_test, C_t)``
        Scores of the same model on the unlabeled test inputs.
    prior : JointPrior, TreePrior or table, optional
        The training joint prior p (EM's start and the smoothing prior). Default: fitted on
        ``val_labels`` with pseudocount 1. A :class:`~causalmtl.gmtl.priors.tree.TreePrior` makes
        the estimate tree-structured on the same edges
        (:func:`~causalmtl.gmtl.unknown_q.tree_em.estimate_tree_prior_em`, M-step refits edge marginals).
    likelihood : ``"score"`` or ``"calibrated"``
        Which shift-invariant likelihood EM uses (module docstring).
    calibration : ``"auto"``, ``"temperature"``, ``"bcts"``, ``"vector"``, ``"cross"`` or None
        Head calibration fitted on the validation scores. Needed by
        ``likelihood="calibrated"`` (None warns: EM on raw scores). With the score model it
        is applied before the score features are taken, but the Gaussian score model is
        invariant to affine maps of the logits, so it rarely matters. ``"auto"``: ``"bcts"``
        for ``"calibrated"``, None for ``"score"``.
    interactions : bool
        Pairwise task interactions in the score model's mean.
    smoothing : float ≥ 0, ``"auto"`` or ``"cv"``
        λ of EM's MAP M-step (:func:`~causalmtl.gmtl.unknown_q.em.estimate_prior_em`; for a tree prior
        :func:`~causalmtl.gmtl.unknown_q.tree_em.estimate_tree_prior_em`). ``"cv"`` chooses λ by
        ``cv_folds``-fold held-out likelihood of the unlabeled test scores over ``cv_grid``
        (ratios λ/N) and ``q = p``, and falls back to ``q̂ = p`` unless the held-out gain over
        p passes a one-sided paired z-test at ``cv_z`` (default: Bonferroni 5 % over the grid)
        (:func:`~causalmtl.gmtl.unknown_q.smoothing_cv.select_smoothing_cv`); uses no test labels.
    max_iter, tol, device
        Passed to EM.
    cv_folds, cv_grid, cv_z, seed
        ``smoothing="cv"`` only: folds, grid of λ/N, z threshold, and the fold assignment seed.
    """
    n_classes = _n_classes_of(val_log_probs, "val_log_probs")
    test_nc = _n_classes_of(test_log_probs, "test_log_probs")
    if test_nc != n_classes:
        raise ValueError(
            f"test_log_probs has classes per task {test_nc} but val_log_probs has {n_classes}"
        )
    lab = check_labels(val_labels, n_classes, name="val_labels")
    # "tree" is the Prior protocol's tag of a TreePrior (decode checks it the same way)
    tree = cast(TreePrior, prior) if getattr(type(prior), "structure", None) == "tree" else None
    p = JointPrior.fit(lab, n_classes, pseudocount=1.0) if prior is None else as_prior(prior)
    if p.n_classes != n_classes:
        raise ValueError(f"prior has n_classes {p.n_classes} but the scores have {n_classes}")
    if likelihood not in ("score", "calibrated"):
        raise ValueError(f"likelihood must be 'score' or 'calibrated', got {likelihood!r}")
    if calibration == "auto":
        calibration = "bcts" if likelihood == "calibrated" else None
    cal = None
    if calibration is not None:
        cal = make_calibrator(calibration).fit(val_log_probs, lab)
        val_lp = cal.transform(val_log_probs)
        test_lp = cal.transform(test_log_probs)
    else:
        val_lp, test_lp = list(val_log_probs), list(test_log_probs)
    sm = None
    if likelihood == "score":
        sm = GaussianScoreModel(interactions=interactions).fit(val_lp, lab)
        ll = sm.log_likelihood(test_lp)
    else:
        ll = gmtl_log_likelihood(test_lp, p, assume_calibrated=cal is not None)
    res: EMResult | TreeEMResult
    q_tree = None
    cv = None
    em_kw: dict[str, Any] = {"max_iter": max_iter, "tol": tol, "device": device}
    if isinstance(smoothing, str) and smoothing == "cv":
        fit = None
        if tree is not None:
            def fit(rows: np.ndarray, _p: JointPrior, lam: float, **kw: Any) -> np.ndarray:
                return estimate_tree_prior_em(rows, tree, smoothing=lam, **kw).q.to_joint().probs

        cv = select_smoothing_cv(
            ll, p, grid=cv_grid, n_folds=cv_folds, seed=seed, z_threshold=cv_z, fit=fit, **em_kw
        )
        if cv.fallback:
            logger.info("adapt: no reliable shift estimate (%s); decoding with the training prior p", cv.reason)
    elif isinstance(smoothing, str) and smoothing != "auto":
        raise ValueError(f"smoothing must be a number >= 0, 'auto' or 'cv', got {smoothing!r}")
    if cv is not None and cv.fallback:
        n_rows = int(np.shape(ll)[0])
        obj = float(heldout_log_likelihood(ll, p).sum())
        common: dict[str, Any] = {
            "objective": obj, "history": np.asarray([obj]), "n_iter": 0, "converged": True,
            "diverged": False, "smoothing": float("inf"), "n_examples": n_rows,
        }
        if tree is not None:
            res = TreeEMResult(q=tree, **common)
            q_tree = tree
        else:
            res = EMResult(q=p.probs.copy(), notes=(cv.reason,), **common)
        q_hat = p
        # fail safe: no adaptation at all, the DMTL decode of the (calibrated) heads, which is
        # also the GMTL decode with q = p and the label-free α(τ(p, p)) = 0
        labels = gmtl_decode(test_lp, p, alpha=0.0, normalized=False).labels
    else:
        # smoothing == "cv" always set cv above, so lam is a number or "auto" here
        lam = cv.smoothing if cv is not None else cast("float | Literal['auto']", smoothing)
        if tree is not None:
            res = estimate_tree_prior_em(ll, tree, smoothing=lam, **em_kw)
            q_tree = res.q
            q_hat = res.q.to_joint()
        else:
            em_res = estimate_prior_em(ll, p, smoothing=lam, **em_kw)
            res, q_hat = em_res, em_res.prior
        labels = _decode_with(ll if sm is not None else test_lp, p, q_hat, sm is not None)
    alpha, tau = alpha_from_severity(p, q_hat)
    alpha_labels = gmtl_decode(test_lp, p, alpha=alpha, normalized=False).labels
    return AdaptResult(
        labels=np.asarray(labels), q_hat=q_hat, prior=p, em=res, likelihood=likelihood, calibrator=cal,
        score_model=sm, tau=tau, alpha=alpha, alpha_labels=np.asarray(alpha_labels), q_tree=q_tree,
        fallback=bool(cv is not None and cv.fallback), cv=cv,
    )


def _decode_with(scores: Any, prior: JointPrior, q: JointPrior, is_score_model: bool) -> np.ndarray:
    if is_score_model:
        # argmax_y log p(s|y) + log q(y): decode the joint array against a uniform prior, whose
        # −log p term is a constant.
        return np.asarray(
            gmtl_decode(scores, JointPrior.uniform(prior.n_classes), q=q, normalized=False).labels
        )
    # Σ_t log p̃(y_t|x) − log p(y) + log q(y)  (§3.1 with calibrated heads)
    return np.asarray(gmtl_decode(scores, prior, q=q, normalized=False).labels)


def decode_adapted(
    result: AdaptResult, test_log_probs: Sequence[Any], q: JointPrior | Any | None = None
) -> np.ndarray:
    """Decode (new) test scores with the fitted components of ``result`` and a prior q.

    ``q`` defaults to ``result.q_hat``. With ``likelihood="calibrated"`` this is
    ``gmtl_decode(calibrated scores, p, q=q)``; with the score model
    ``argmax_y log p(s|y) + log q(y)``. When ``result.fallback`` and ``q`` is not given, it is
    the DMTL decode of the (calibrated) heads, as in :func:`adapt`.
    """
    qp = result.q_hat if q is None else as_prior(q, name="q")
    if qp.n_classes != result.prior.n_classes:
        raise ValueError(f"q has n_classes {qp.n_classes} but the adapted model has {result.prior.n_classes}")
    lp = list(test_log_probs)
    if result.calibrator is not None:
        lp = result.calibrator.transform(lp)
    if result.fallback and q is None:
        return np.asarray(gmtl_decode(lp, result.prior, alpha=0.0, normalized=False).labels)
    if result.score_model is not None:
        return _decode_with(result.score_model.log_likelihood(lp), result.prior, qp, True)
    return _decode_with(lp, result.prior, qp, False)
