"""A generative model of a multi-task model's scores given the joint label, ``p(s | y)``.

Under label shift ``p(x|y)`` is unchanged, hence so is the distribution of any function of x,
in particular the vector ``s(x)`` of all tasks' scores. A model of ``p(s|y)`` fitted on
labelled held-out in-distribution data therefore stays valid on the shifted test set, and
involves no prior at all, so it is invariant to label shift by construction. The posterior
used by EM (:mod:`causalmtl.gmtl.unknown_q.em`) and decoding is ``∝ p(s|y) q(y)``; this is the
"generative score model" of issue 11, the multi-task analogue of fitting class-conditional
densities to classifier outputs (Saerens et al. 2002, §2.3 use the classifier posterior;
here the classifier's scores are the observation).

:class:`GaussianScoreModel`:

    s = [log p(y_t = c|x) − log p(y_t = C_t − 1|x)]_{t, c < C_t − 1}   ∈ R^D,  D = Σ_t (C_t − 1)
    s | y ~ N(a + B φ(y), Σ),   φ(y) = [1{y_t = c}]_{t, c ≥ 1}          ∈ R^D

a mean linear in the one-hot encodings of every task's label (main effects; optionally with
all pairwise interactions of two tasks' one-hots) and a covariance Σ shared by all cells.
It is fitted by least squares (the Gaussian maximum-likelihood estimate of a, B) with
``Σ = RᵀR / (n − P)`` from the residuals, plus a ridge ``shrinkage · tr(Σ)/D · I``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..._validation import as_numpy, check_labels, check_n_classes, check_nonnegative
from ..priors.prior import as_prior

logger = logging.getLogger(__name__)

__all__ = ["GaussianScoreModel", "score_features"]


def score_features(log_probs: Sequence[Any], n_classes: tuple[int, ...] | None = None) -> np.ndarray:
    """Stack per-task scores into ``s`` of shape ``(N, Σ_t (C_t − 1))`` (log-ratios to the last class).

    Logits and log-probabilities give the same features (the per-row normaliser cancels).
    """
    if not isinstance(log_probs, (list, tuple)) or len(log_probs) == 0:
        raise ValueError("log_probs must be a non-empty list of T arrays (N, C_t)")
    arrs = [np.asarray(as_numpy(x), dtype=np.float64) for x in log_probs]
    got = tuple(a.shape[1] if a.ndim == 2 else -1 for a in arrs)
    if any(a.ndim != 2 for a in arrs):
        raise ValueError(f"log_probs must hold 2-D arrays (N, C_t), got shapes {[a.shape for a in arrs]}")
    if n_classes is not None and got != tuple(n_classes):
        raise ValueError(
            f"log_probs has classes per task {got} ({len(got)} tasks) but the score model was "
            f"fitted for n_classes={tuple(n_classes)}"
        )
    check_n_classes(got, name="log_probs classes per task")
    n = arrs[0].shape[0]
    for t, a in enumerate(arrs):
        if a.shape[0] != n:
            raise ValueError(f"log_probs[{t}] has {a.shape[0]} rows but log_probs[0] has {n}")
        if not np.all(np.isfinite(a)):
            r, c = np.argwhere(~np.isfinite(a))[0]
            raise ValueError(f"log_probs[{t}] has a non-finite score {a[r, c]!r} at row {r}, class {c}")
    return np.concatenate([a[:, :-1] - a[:, -1:] for a in arrs], axis=1)


def _design(lab: np.ndarray, n_classes: tuple[int, ...], interactions: bool) -> np.ndarray:
    """φ(y): intercept, one-hots of classes ≥ 1 of every task, optional pairwise products."""
    n = lab.shape[0]
    blocks = [np.ones((n, 1))]
    hots = []
    for t, c in enumerate(n_classes):
        h = (lab[:, t][:, None] == np.arange(1, c)[None, :]).astype(np.float64)
        hots.append(h)
        blocks.append(h)
    if interactions:
        for a, b in itertools.combinations(range(len(n_classes)), 2):
            blocks.append((hots[a][:, :, None] * hots[b][:, None, :]).reshape(n, -1))
    return np.concatenate(blocks, axis=1)


class GaussianScoreModel:
    """``s | y ~ N(a + B φ(y), Σ)``, a label-shift-invariant likelihood of the joint label.

    Parameters
    ----------
    interactions : bool
        Add pairwise task interactions to the mean (``Σ_{t<u} (C_t−1)(C_u−1)`` columns).
    shrinkage : float ≥ 0
        Ridge added to Σ, relative to its mean variance (keeps Σ invertible).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, size=(500, 2))
    >>> lp = [np.stack([np.zeros(500), 2 * y[:, t] - 1 + rng.normal(size=500)], 1) for t in range(2)]
    >>> sm = GaussianScoreModel().fit(lp, y)
    >>> sm.log_likelihood(lp).shape      # (N, C_1, C_2)
    (500, 2, 2)
    """

    def __init__(self, interactions: bool = False, shrinkage: float = 1e-6) -> None:
        self.interactions = bool(interactions)
        self.shrinkage = check_nonnegative(shrinkage, "shrinkage")
        self.n_classes: tuple[int, ...] | None = None
        self.coef_: np.ndarray | None = None
        self.cov_: np.ndarray | None = None
        self.n_fitted_: int = 0

    def fit(self, log_probs: Sequence[Any], labels: Any) -> GaussianScoreModel:
        """Fit on labelled held-out scores (rows with any missing label are skipped)."""
        s = score_features(log_probs)
        n_classes = tuple(np.asarray(as_numpy(x)).shape[1] for x in log_probs)
        lab = check_labels(labels, n_classes, name="labels")
        if lab.shape[0] != s.shape[0]:
            raise ValueError(f"labels has {lab.shape[0]} rows but log_probs has {s.shape[0]}")
        full = (lab >= 0).all(axis=1)
        lab, s = lab[full], s[full]
        for t, c in enumerate(n_classes):
            seen = np.bincount(lab[:, t], minlength=c)
            if (seen == 0).any():
                miss = int(np.argmin(seen))
                raise ValueError(
                    f"labels never contain class {miss} of task {t} among the {lab.shape[0]} fully "
                    "labelled rows; the score model cannot place that class"
                )
        X = _design(lab, n_classes, self.interactions)
        n, P = X.shape
        if n <= P:
            raise ValueError(
                f"labels: only {n} fully labelled rows for {P} mean parameters per score; "
                "need more held-out data (or interactions=False)"
            )
        coef, *_ = np.linalg.lstsq(X, s, rcond=None)
        resid = s - X @ coef
        D = s.shape[1]
        cov = resid.T @ resid / (n - P)
        cov += self.shrinkage * max(np.trace(cov) / D, 1e-12) * np.eye(D)
        self.n_classes, self.coef_, self.cov_, self.n_fitted_ = n_classes, coef, cov, n
        self._chol = np.linalg.cholesky(cov)
        K = int(np.prod(n_classes))
        grid = np.stack(np.unravel_index(np.arange(K), n_classes), axis=1)
        means = _design(grid, n_classes, self.interactions) @ coef  # (K, D)
        self._whitened_means = np.linalg.solve(self._chol, means.T).T  # L⁻¹ μ_y, (K, D)
        self._logdet = 2.0 * float(np.log(np.diag(self._chol)).sum())
        logger.info("GaussianScoreModel: n=%d, D=%d, K=%d", n, D, K)
        return self

    @property
    def means(self) -> np.ndarray:
        """``μ_y`` of every joint cell, shape ``(*n_classes, D)``."""
        self._check_fitted()
        assert self.n_classes is not None
        return (self._chol @ self._whitened_means.T).T.reshape(*self.n_classes, -1)

    def _check_fitted(self) -> None:
        if self.coef_ is None:
            raise ValueError("GaussianScoreModel is not fitted; call fit(log_probs, labels) first")

    def log_likelihood(
        self, log_probs: Sequence[Any], *, flat: bool = False, memory_mb: float = 512.0
    ) -> np.ndarray:
        """``log p(s(x_i) | y)`` for every row and joint cell, float64.

        Returns shape ``(N, *n_classes)``, or ``(N, K)`` with ``flat=True``. The full Gaussian
        log-density is returned (including ``−½ log|2πΣ|``), computed in chunks of rows.
        """
        self._check_fitted()
        assert self.n_classes is not None
        s = score_features(log_probs, self.n_classes)
        n, D = s.shape
        K = self._whitened_means.shape[0]
        z = np.linalg.solve(self._chol, s.T).T  # (N, D)
        half_m2 = 0.5 * (self._whitened_means**2).sum(axis=1)  # (K,)
        const = -0.5 * (D * np.log(2 * np.pi) + self._logdet)
        out = np.empty((n, K), dtype=np.float64)
        rows = max(1, int(memory_mb * 2**20 // (8 * K)))
        for a in range(0, n, rows):
            zc = z[a : a + rows]
            np.matmul(zc, self._whitened_means.T, out=out[a : a + rows])
            out[a : a + rows] -= half_m2[None, :]
            out[a : a + rows] += (const - 0.5 * (zc**2).sum(axis=1))[:, None]
        return out if flat else out.reshape(n, *self.n_classes)

    def posterior(self, log_probs: Sequence[Any], prior: Any) -> np.ndarray:
        """``p(y | s) ∝ p(s|y) q(y)`` for a prior table ``q`` of shape ``n_classes``."""
        self._check_fitted()
        q = as_prior(prior, name="prior")
        if q.n_classes != self.n_classes:
            raise ValueError(f"prior has n_classes {q.n_classes} but the score model was fitted for {self.n_classes}")
        ll = self.log_likelihood(log_probs, flat=True)
        with np.errstate(divide="ignore"):
            ll = ll + np.log(q.probs.reshape(-1))[None, :]
        ll -= ll.max(axis=1, keepdims=True)
        post = np.exp(ll)
        post /= post.sum(axis=1, keepdims=True)
        ret: np.ndarray = post.reshape(-1, *q.n_classes)
        return ret
