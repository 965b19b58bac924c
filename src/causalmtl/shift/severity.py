"""Severity of a target shift: weighted Kendall's τ between p(y) and q(y) (Makino et al. 2022, §5.5).

τ is computed on the flattened joint log priors with the hyperbolic weight ``1/(r + 1)`` of
rank ``r`` (0 = most important), through :func:`scipy.stats.weightedtau`. A large positive τ
means the ranking of joint classes is preserved (mild shift); a negative τ means it is
largely reversed (severe shift). τ depends on the priors only through their rankings, so
normalising them (or not) makes no difference.

Two variants are offered because they differ a lot on the same pair of priors:

``"scipy"`` (default)
    ``weightedtau(log_p, log_q)`` with scipy's defaults (``rank=True, additive=True``):
    Vigna's (2015) additive hyperbolic τ_h, symmetrised by averaging the values obtained
    when ranking by (p, q) and by (q, p). An exchange of elements with ranks r and s weighs
    ``1/(r+1) + 1/(s+1)``, and with ties

        τ = Σ_{i<j} w_ij sgn(x_i − x_j) sgn(y_i − y_j)
            / ( sqrt(Σ_{i<j} w_ij [x_i ≠ x_j]) · sqrt(Σ_{i<j} w_ij [y_i ≠ y_j]) ).

    This is what the authors' published evaluation computed, so results compare with theirs.

``"shieh"``
    Shieh's (1998) weighted τ that the paper cites: one reference ranking by p (rank 0 =
    largest p, ties broken by q) and multiplicative weights ``w_ij = 1/(r_i+1) · 1/(r_j+1)``:
    ``weightedtau(log_p, log_q, rank=None, additive=False)`` with p first (same formula as
    above with the multiplicative ``w_ij``; without ties the denominator is ``Σ_{i<j} w_ij``).

Both lie in [−1, 1]. The multiplicative weights concentrate almost all the mass on the few
most probable classes of p, so "shieh" values are typically far more extreme than "scipy".
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.stats import weightedtau

from .sample import QDraws, flat_log_prior

TauVariant = Literal["scipy", "shieh"]
TAU_VARIANTS: tuple[str, ...] = ("scipy", "shieh")


def _check_variant(variant: str) -> str:
    if variant not in TAU_VARIANTS:
        raise ValueError(f"variant must be one of {TAU_VARIANTS}, got {variant!r}")
    return variant


def weighted_tau(log_p: Any, log_q: Any, variant: TauVariant = "scipy") -> float:
    """Weighted Kendall's τ between two joint priors (§5.5), hyperbolic weight ``1/(r+1)``.

    Parameters
    ----------
    log_p, log_q : log-probabilities (any shape, flattened C-order; need not be normalised)
        or ``JointPrior`` objects. p is the reference (in-distribution) prior.
    variant : ``"scipy"`` (default; additive, symmetrised, as the authors computed) or
        ``"shieh"`` (multiplicative weights, ranking by p; Shieh 1998). See module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.shift import weighted_tau
    >>> lp = np.log([0.4, 0.3, 0.2, 0.1])
    >>> round(weighted_tau(lp, lp), 12), round(weighted_tau(lp, lp[::-1]), 12)
    (1.0, -1.0)
    """
    _check_variant(variant)
    x = flat_log_prior(log_p, "log_p")
    y = flat_log_prior(log_q, "log_q")
    if x.size != y.size:
        raise ValueError(f"log_q has {y.size} joint classes but log_p has {x.size}")
    return _tau(x, y, variant)


def _tau(x: np.ndarray, y: np.ndarray, variant: str) -> float:
    if variant == "scipy":
        return float(weightedtau(x, y).statistic)
    return float(weightedtau(x, y, rank=None, additive=False).statistic)


def severity(log_p: Any, log_q: Any | QDraws, variant: TauVariant = "scipy") -> np.ndarray:
    """τ(p, q_d) for a batch of target priors: one value per row of ``log_q``.

    Parameters
    ----------
    log_p : the reference log prior (K values, any shape) or a ``JointPrior``
    log_q : ``(D, K)`` log priors (or ``(D, *n_classes)``), or a :class:`QDraws`
    variant : see :func:`weighted_tau`

    Returns
    -------
    ndarray ``(D,)`` of τ values.
    """
    _check_variant(variant)
    x = flat_log_prior(log_p, "log_p")
    lq = log_q.log_q if isinstance(log_q, QDraws) else np.asarray(log_q, dtype=np.float64)
    if lq.ndim < 1 or lq.size % x.size or lq.size == 0:
        raise ValueError(f"log_q must have shape (D, {x.size}) to match log_p, got {lq.shape}")
    lq = lq.reshape(-1, x.size)
    if np.isnan(lq).any():
        raise ValueError("log_q contains NaN")
    return np.array([_tau(x, row, variant) for row in lq], dtype=np.float64)


__all__ = ["weighted_tau", "severity", "TAU_VARIANTS", "TauVariant"]
