"""Evaluating an estimated test prior q̂ under simulated target shift (was ``gmtl.evaluate_q``).

* :func:`q_error` — L1 and total-variation distance between q̂ and the true q.
* :func:`importance_resample` — a finite unlabeled test set drawn from q by importance
  resampling of a labelled pool (weights ``q(y_i) / p̂(y_i)`` with p̂ the pool's empirical
  joint, Makino et al. 2022 §5.4), so the estimator sees a realistic sample size.
* :func:`shifted_accuracy` — mean per-task accuracy under q by importance weighting of the
  whole pool (the §5.4 estimator of :class:`~causalmtl.shift.ImportanceEstimator`; lower
  variance than scoring the resampled set).
* :func:`oracle_gain_recovered` — ``(acc(q̂) − acc(DMTL)) / (acc(q) − acc(DMTL))``, the
  fraction of the oracle-q gain over DMTL that the estimate recovers.
* :func:`correlation_shift` — a test prior that flips or removes the strongest pairwise label
  correlations of p (the shifts of the issue-11 targets).
* :func:`evaluate_unknown_q` — one simulated shift end to end: resample an unlabeled set,
  adapt, and score DMTL, oracle-q GMTL, estimated-q GMTL, the label-free α, and GMTL at the
  oracle-best single α.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._validation import as_numpy, check_labels, check_n_classes, make_rng
from ..gmtl import JointPrior, adapt, as_prior, decode_adapted, gmtl_decode
from ..gmtl.unknown_q.tree_em import edge_l1
from .importance import ImportanceEstimator

logger = logging.getLogger(__name__)

__all__ = [
    "q_error",
    "importance_resample",
    "shifted_accuracy",
    "oracle_gain_recovered",
    "correlation_shift",
    "strongest_pairs",
    "evaluate_unknown_q",
]


def q_error(q_hat: JointPrior | Any, q: JointPrior | Any) -> dict[str, float]:
    """``{"l1": Σ|q̂ − q|, "tv": ½ Σ|q̂ − q|}`` between two joint priors of the same shape."""
    a, b = as_prior(q_hat, name="q_hat"), as_prior(q, name="q")
    if a.n_classes != b.n_classes:
        raise ValueError(f"q_hat has n_classes {a.n_classes} but q has {b.n_classes}")
    l1 = float(np.abs(a.probs - b.probs).sum())
    return {"l1": l1, "tv": 0.5 * l1}


def _pool_weights(lab: np.ndarray, n_classes: tuple[int, ...], q: JointPrior) -> tuple[np.ndarray, float]:
    """Importance weights ``q(y_i)/p̂(y_i)`` over a fully labelled pool, and q's mass on empty cells."""
    flat = np.ravel_multi_index(lab.T, n_classes)
    counts = np.bincount(flat, minlength=q.size).astype(np.float64)
    qf = q.probs.reshape(-1)
    missing = float(qf[counts == 0].sum())
    w = qf[flat] / counts[flat]  # q(y)/p̂(y) up to the constant N
    return w, missing


def importance_resample(
    labels: Any,
    q: JointPrior | Any,
    n: int,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, JointPrior]:
    """Draw ``n`` row indices (with replacement) so that their labels follow q.

    Row i is drawn with probability ``∝ q(y_i) / p̂(y_i)`` where p̂ is the pool's empirical
    joint, so each joint cell receives exactly its q mass. Cells with ``q > 0`` but no row
    in the pool cannot be represented: their mass is dropped, q renormalised over the
    observed cells (a warning names the mass dropped), and that effective q is returned.

    Returns
    -------
    indices : int64 ``(n,)``
    q_effective : JointPrior
    """
    qp = as_prior(q, name="q")
    lab = check_labels(labels, qp.n_classes, name="labels", allow_missing=False)
    if int(n) != n or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    rng = make_rng(seed)
    w, missing = _pool_weights(lab, qp.n_classes, qp)
    if w.sum() <= 0:
        raise ValueError("q puts no mass on any joint cell present in labels")
    q_eff = qp
    if missing > 0:
        msg = (
            f"q puts mass {missing:.4g} on joint cells with no example in the pool; that mass "
            "was dropped and q renormalised over the observed cells"
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        flat = np.ravel_multi_index(lab.T, qp.n_classes)
        seen = np.bincount(flat, minlength=qp.size) > 0
        qe = np.where(seen, qp.probs.reshape(-1), 0.0)
        q_eff = JointPrior.from_probs((qe / qe.sum()).reshape(qp.n_classes))
    idx = rng.choice(lab.shape[0], size=int(n), replace=True, p=w / w.sum())
    return idx.astype(np.int64), q_eff


def shifted_accuracy(pred: Any, labels: Any, q: JointPrior | Any) -> float:
    """Mean per-task accuracy under q, by importance weighting a fully labelled pool (§5.4).

    ``Σ_i w_i acc_i / Σ_i w_i`` with ``w_i = q(y_i)/p̂(y_i)`` and ``acc_i`` the fraction of
    tasks predicted correctly for row i. Cells of q absent from the pool are ignored (their
    mass is renormalised away, as in :func:`importance_resample`).
    """
    qp = as_prior(q, name="q")
    lab = check_labels(labels, qp.n_classes, name="labels", allow_missing=False)
    pr = np.asarray(as_numpy(pred))
    if pr.shape != lab.shape:
        raise ValueError(f"pred has shape {pr.shape} but labels has {lab.shape}")
    flat = np.ravel_multi_index(lab.T, qp.n_classes)
    p_hat = np.bincount(flat, minlength=qp.size).astype(np.float64) / lab.shape[0]  # the pool's joint
    acc = (pr == lab).mean(axis=1)
    est = ImportanceEstimator(lab, acc, qp.n_classes).estimate(p_hat, qp.probs.reshape(1, -1))
    return float(est[0])


def oracle_gain_recovered(acc_est: float, acc_oracle: float, acc_dmtl: float) -> float:
    """``(acc_est − acc_dmtl) / (acc_oracle − acc_dmtl)``; NaN when the oracle gains ≤ 1e-12."""
    gain = float(acc_oracle) - float(acc_dmtl)
    if gain <= 1e-12:
        return float("nan")
    return (float(acc_est) - float(acc_dmtl)) / gain


def strongest_pairs(prior: JointPrior | Any, n_pairs: int = 1) -> list[tuple[int, int]]:
    """The ``n_pairs`` task pairs with the largest mutual information under ``prior``."""
    pr = as_prior(prior)
    T = pr.n_tasks
    if T < 2:
        raise ValueError(f"prior must have at least 2 tasks to have pairs, got n_classes {pr.n_classes}")
    if int(n_pairs) != n_pairs or not 1 <= n_pairs <= T * (T - 1) // 2:
        raise ValueError(f"n_pairs must be an int in [1, {T * (T - 1) // 2}], got {n_pairs!r}")
    scores = []
    for a in range(T):
        for b in range(a + 1, T):
            pab = pr.marginalize([a, b]).probs
            outer = pab.sum(1, keepdims=True) * pab.sum(0, keepdims=True)
            mask = pab > 0
            scores.append((float((pab[mask] * np.log(pab[mask] / outer[mask])).sum()), a, b))
    scores.sort(key=lambda x: -x[0])
    return [(a, b) for _, a, b in scores[: int(n_pairs)]]


def correlation_shift(
    prior: JointPrior | Any,
    n_pairs: int = 1,
    mode: str = "flip",
    pairs: Sequence[tuple[int, int]] | None = None,
) -> JointPrior:
    """A test prior that removes or flips the strongest pairwise correlations of p.

    ``q(y) ∝ p(y) · Π_{(a,b)} [p(y_a) p(y_b) / p(y_a, y_b)]^s`` with ``s = 1`` (``"remove"``:
    for one pair, ``q(y_a, y_b) = p(y_a) p(y_b)`` exactly, the rest of the joint kept given
    the pair) or ``s = 2`` (``"flip"``: the pair's log odds ratios change sign). ``pairs``
    defaults to the ``n_pairs`` pairs of largest mutual information (:func:`strongest_pairs`).
    Every factor is computed from p; zero cells of p stay zero.
    """
    pr = as_prior(prior)
    if mode not in ("flip", "remove"):
        raise ValueError(f"mode must be 'flip' or 'remove', got {mode!r}")
    s = 2.0 if mode == "flip" else 1.0
    chosen = strongest_pairs(pr, n_pairs) if pairs is None else [tuple(map(int, ab)) for ab in pairs]
    logq = np.zeros(pr.n_classes)
    with np.errstate(divide="ignore", invalid="ignore"):
        logq = np.log(pr.probs)
        for a, b in chosen:
            if not (0 <= a < pr.n_tasks and 0 <= b < pr.n_tasks and a != b):
                raise ValueError(f"pairs must hold two distinct task indices in [0, {pr.n_tasks}), got {(a, b)}")
            pab = pr.marginalize([a, b]).probs
            ratio = np.log(pab.sum(1, keepdims=True)) + np.log(pab.sum(0, keepdims=True)) - np.log(pab)
            shape = [1] * pr.n_tasks
            shape[a], shape[b] = pr.n_classes[a], pr.n_classes[b]
            term = ratio if a < b else ratio.T
            logq = logq + s * np.where(np.isfinite(term), term, 0.0).reshape(shape)
    q = np.where(pr.probs > 0, np.exp(logq - logq[pr.probs > 0].max()), 0.0)
    return JointPrior.from_probs(q / q.sum())


def evaluate_unknown_q(
    val_log_probs: Sequence[Any],
    val_labels: Any,
    pool_log_probs: Sequence[Any],
    pool_labels: Any,
    prior: JointPrior | Any,
    q: JointPrior | Any,
    *,
    n_unlabeled: int = 5000,
    seed: int | np.random.Generator = 0,
    alphas: Sequence[float] = tuple(np.linspace(0.0, 1.0, 11)),
    **adapt_kwargs: Any,
) -> dict[str, float]:
    """Score one simulated shift: resample an unlabeled set from q, adapt, compare decoders.

    The estimate sees only ``n_unlabeled`` resampled test scores; accuracies are importance-
    weighted over the whole labelled pool under the effective q (see
    :func:`importance_resample`). Returned keys: ``acc_dmtl``, ``acc_oracle_q`` (the paper's
    known-q GMTL decode of the raw heads, §3.1), ``acc_oracle_q_same_lik`` (the adapted
    decoder's likelihood with the true q), ``acc_est_q``, ``acc_alpha_tau`` (label-free α), ``acc_best_alpha`` and ``best_alpha``
    (GMTL at the oracle-best single α of ``alphas``), ``recovered`` (fraction of the oracle-q
    gain over DMTL) and ``recovered_same_lik``,
    ``l1``, ``tv``, ``l1_prior`` (L1 of the do-nothing estimate p), ``tau_hat``, ``alpha_tau``, ``em_iter``, ``em_converged``, and
    ``fallback``, ``cv_ratio``, ``cv_gain``, ``cv_z`` with ``smoothing="cv"``, and
    ``edge_l1`` (mean edge-table L1) when ``prior`` is a :class:`~causalmtl.gmtl.priors.tree.TreePrior`.
    """
    pr = as_prior(prior)
    n_classes = check_n_classes(pr.n_classes)
    pool_lab = check_labels(pool_labels, n_classes, name="pool_labels", allow_missing=False)
    idx, q_eff = importance_resample(pool_lab, q, n_unlabeled, seed)
    test_lp = [np.asarray(as_numpy(x), dtype=np.float64)[idx] for x in pool_log_probs]
    res = adapt(val_log_probs, val_labels, test_lp, prior, **adapt_kwargs)
    # the same decoder, applied to the whole pool, scored under q by importance weights
    pool_lp = [np.asarray(as_numpy(x), dtype=np.float64) for x in pool_log_probs]
    pred_est = decode_adapted(res, pool_lp)
    pred_oracle = decode_adapted(res, pool_lp, q_eff)
    pred_dmtl = gmtl_decode(pool_lp, pr, alpha=0.0, normalized=False).labels
    pred_gmtl_q = gmtl_decode(pool_lp, pr, q=q_eff, normalized=False).labels
    pred_tau = gmtl_decode(pool_lp, pr, alpha=res.alpha, normalized=False).labels
    grid = gmtl_decode(pool_lp, pr, alpha=list(alphas), normalized=False).labels
    accs_alpha = np.array([shifted_accuracy(g, pool_lab, q_eff) for g in grid])
    out = {
        "acc_dmtl": shifted_accuracy(pred_dmtl, pool_lab, q_eff),
        "acc_oracle_q": shifted_accuracy(pred_gmtl_q, pool_lab, q_eff),
        "acc_oracle_q_same_lik": shifted_accuracy(pred_oracle, pool_lab, q_eff),
        "acc_est_q": shifted_accuracy(pred_est, pool_lab, q_eff),
        "acc_alpha_tau": shifted_accuracy(pred_tau, pool_lab, q_eff),
        "acc_best_alpha": float(accs_alpha.max()),
        "best_alpha": float(np.asarray(alphas)[int(accs_alpha.argmax())]),
        "tau_hat": res.tau,
        "alpha_tau": res.alpha,
        "em_iter": float(res.em.n_iter),
        "em_converged": float(res.em.converged),
    }
    out.update(q_error(res.q_hat, q_eff))
    if res.cv is not None:  # smoothing="cv": the chosen λ/N (inf = fell back to p) and the guard
        out.update(fallback=float(res.fallback), cv_ratio=res.cv.ratio, cv_gain=res.cv.gain, cv_z=res.cv.z)
    out["l1_prior"] = q_error(pr, q_eff)["l1"]  # the do-nothing estimate q̂ = p
    if res.q_tree is not None:
        out["edge_l1"] = edge_l1(res.q_tree, q_eff.probs)
    out["recovered"] = oracle_gain_recovered(out["acc_est_q"], out["acc_oracle_q"], out["acc_dmtl"])
    out["recovered_same_lik"] = oracle_gain_recovered(
        out["acc_est_q"], out["acc_oracle_q_same_lik"], out["acc_dmtl"]
    )
    return out
