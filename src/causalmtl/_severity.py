"""The severity of a target shift, shared by ``gmtl`` and ``shift``: weighted Kendall's τ (§5.5).

This module sits below both packages (it imports neither), so that ``gmtl.adapt`` (the
label-free α from τ(p, q̂)) and ``shift`` (the evaluation protocol) use one implementation.
The variants and their formulas are documented in :mod:`causalmtl.shift.severity`, which
re-exports these names and adds the batched, vectorised :func:`~causalmtl.shift.severity`.

Convention: τ takes **log** priors (arrays of log-probabilities, any shape, flattened in
C-order, need not be normalised) or prior objects (:func:`flat_log_prior`).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from ._validation import as_numpy

TauVariant = Literal["scipy", "shieh"]
TAU_VARIANTS: tuple[str, ...] = ("scipy", "shieh")


def flat_log_prior(prior: object, name: str = "log_p") -> np.ndarray:
    """Return a flattened float64 log prior from a log-prior array or a ``JointPrior``.

    ``prior`` may be a numpy array or torch tensor of log-probabilities (any shape; it is
    flattened in C-order; it need not be normalised) or an object with a ``log_prob``
    attribute (a :class:`causalmtl.gmtl.JointPrior` or small
    :class:`causalmtl.gmtl.TreePrior`: any :class:`causalmtl.gmtl.Prior`).

    Raises
    ------
    TypeError
        If the array is not numeric.
    ValueError
        If the array is empty or holds NaN or +inf.
    """
    if hasattr(prior, "log_prob") and hasattr(prior, "n_classes"):
        arr = np.asarray(prior.log_prob, dtype=np.float64).reshape(-1)
    else:
        raw = np.asarray(as_numpy(prior))
        if raw.dtype.kind not in "iuf":
            raise TypeError(f"{name} must be a numeric array of log-probabilities or a JointPrior, got {prior!r:.60}")
        arr = raw.astype(np.float64).reshape(-1)
    if arr.size < 2:
        raise ValueError(f"{name} must have at least 2 joint classes, got {arr.size}")
    if np.isnan(arr).any():
        raise ValueError(
            f"{name} contains NaN at flat index {int(np.flatnonzero(np.isnan(arr))[0])}"
        )
    if np.isposinf(arr).any():
        raise ValueError(
            f"{name} contains +inf at flat index {int(np.flatnonzero(np.isposinf(arr))[0])}"
        )
    if np.isneginf(arr).all():
        raise ValueError(f"{name} is -inf everywhere; it is not a log prior")
    return arr


def check_variant(variant: str) -> str:
    """``variant`` if it is one of :data:`TAU_VARIANTS`, else a ValueError naming it."""
    if variant not in TAU_VARIANTS:
        raise ValueError(f"variant must be one of {TAU_VARIANTS}, got {variant!r}")
    return variant


def weighted_tau(log_p: npt.ArrayLike, log_q: npt.ArrayLike, variant: TauVariant = "scipy") -> float:
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
    >>> from causalmtl.shift import weighted_tau   # also causalmtl._severity.weighted_tau
    >>> lp = np.log([0.4, 0.3, 0.2, 0.1])
    >>> round(weighted_tau(lp, lp), 12), round(weighted_tau(lp, lp[::-1]), 12)
    (1.0, -1.0)
    """
    check_variant(variant)
    x = flat_log_prior(log_p, "log_p")
    y = flat_log_prior(log_q, "log_q")
    if x.size != y.size:
        raise ValueError(f"log_q has {y.size} joint classes but log_p has {x.size}")
    return flat_tau(x, y, variant)


def _weightedtau() -> Any:
    """``scipy.stats.weightedtau``, imported on first use: ``scipy.stats`` costs ~60 MB and
    seconds to import, and ``import causalmtl.gmtl`` (which reaches this module through
    ``adapt``) should not pay for it before τ is needed."""
    from scipy.stats import weightedtau

    return weightedtau


def flat_tau(x: np.ndarray, y: np.ndarray, variant: str) -> float:
    """:func:`weighted_tau` of two already-checked flat log priors (:func:`flat_log_prior`)."""
    if variant == "scipy":
        return float(_weightedtau()(x, y).statistic)
    return float(_weightedtau()(x, y, rank=None, additive=False).statistic)


__all__ = ["TAU_VARIANTS", "TauVariant", "check_variant", "flat_log_prior", "flat_tau", "weighted_tau"]
