"""The illustrative example of GMTL (Makino, Geras & Cho, NeurIPS 2022, §4 and Figure 2).

Data-generating process (§4, verbatim parameters):

* ``Y, Y' ∈ {0, 1}`` are bivariate Bernoulli with ``P(Y = 1) = θ``, ``P(Y' = 1) = θ'`` and
  ``Cov[Y, Y'] = c``, i.e. the joint table

  ===========  =======================  =======================
  \\            ``Y' = 0``               ``Y' = 1``
  ===========  =======================  =======================
  ``Y = 0``    ``(1-θ)(1-θ') + c``      ``(1-θ)θ' - c``
  ``Y = 1``    ``θ(1-θ') - c``          ``θθ' + c``
  ===========  =======================  =======================

  which is a distribution iff ``max(-θθ', -(1-θ)(1-θ')) ≤ c ≤ min(θ(1-θ'), (1-θ)θ')``
  (for θ = θ' = 0.5: ``c ∈ [-0.25, 0.25]``).
* ``Z = 2Y + Y'`` and ``X | z ~ N(z, σ_z²)`` with ``σ² = (σ_0², σ_1², σ_2², σ_3²)``;
  the paper fixes θ = θ' = 0.5, σ_0² = σ_1² = 0.4, σ_2² = σ_3² = 0.6 and varies
  ``c`` from −0.2 to 0.2.

Everything is exact:

* ``log p(x | y, y') = log N(x; 2y + y', σ²_{2y+y'})`` — shape ``(N, 2, 2)``;
* ``log p(y, y' | x) = log p(x | y, y') + log p(y, y') − log p(x)`` (Bayes) — ``(N, 2, 2)``;
* ``log p(y | x)`` and ``log p(y' | x)`` by marginalising the joint posterior.

Decision boundaries (Figure 2):

* **DMTL** — the ``x`` where ``argmax_y p(y | x)`` (``Y'`` marginalised) changes, i.e. a root
  of ``log p(Y=1 | x) − log p(Y=0 | x)``; it moves with ``Cov[Y, Y']``.
* **GMTL, α = 1** — the ``x`` where the ``Y`` component of ``argmax_{y,y'} log p(x | y, y')``
  changes, i.e. a root of ``max_{y'} log p(x|1,y') − max_{y'} log p(x|0,y')``; it does not
  depend on ``Cov[Y, Y']`` at all.

Both functions have further roots far in the tails (the class with the larger variance wins
again as ``|x| → ∞``), so *the* decision boundary is the root inside an interval, by default
``[0, 3]`` (between the smallest and the largest mean ``z``). A boundary that does not exist
there is reported as ``NaN`` (and logged); :func:`boundary_roots` lists every root in any
interval.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import brentq
from scipy.special import logsumexp

from ._common import SPLIT_ENV, SeedLike, as_generator, check_positive_int, check_unit_interval
from .base import DatasetSplits, MultiTaskDataset, Task

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

PAPER_SIGMA2: tuple[float, float, float, float] = (0.4, 0.4, 0.6, 0.6)
PAPER_COV_RANGE: tuple[float, float] = (-0.2, 0.2)
Method = Literal["dmtl", "gmtl"]


def covariance_range(theta: float, theta_prime: float) -> tuple[float, float]:
    """Feasible ``[c_min, c_max]`` of ``Cov[Y, Y']`` for Bernoulli marginals θ, θ'.

    All four cells of the joint table (module docstring) are non-negative iff
    ``max(-θθ', -(1-θ)(1-θ')) ≤ c ≤ min(θ(1-θ'), (1-θ)θ')``.
    """
    t = check_unit_interval(theta, "theta")
    tp = check_unit_interval(theta_prime, "theta_prime")
    return max(-t * tp, -(1 - t) * (1 - tp)), min(t * (1 - tp), (1 - t) * tp)


def bivariate_bernoulli(theta: float, theta_prime: float, cov: float) -> np.ndarray:
    """The joint table ``p[y, y']`` of a bivariate Bernoulli (GMTL §4), shape ``(2, 2)``.

    Raises
    ------
    ValueError
        If θ or θ' lie outside [0, 1] or ``cov`` is outside the feasible range for them.
    """
    lo, hi = covariance_range(theta, theta_prime)
    c = float(cov)
    tol = 1e-12
    if not np.isfinite(c) or c < lo - tol or c > hi + tol:
        raise ValueError(
            f"cov = {cov!r} is infeasible for theta = {theta!r}, theta_prime = {theta_prime!r}: "
            f"Cov[Y, Y'] must lie in [{lo:.6g}, {hi:.6g}] so that every cell of p(y, y') is >= 0"
        )
    t, tp = float(theta), float(theta_prime)
    p = np.array(
        [[(1 - t) * (1 - tp) + c, (1 - t) * tp - c], [t * (1 - tp) - c, t * tp + c]],
        dtype=np.float64,
    )
    return np.maximum(p, 0.0)  # only removes rounding noise of size <= tol at the range ends


def _check_sigma2(sigma2: Sequence[float]) -> np.ndarray:
    arr = np.asarray(sigma2, dtype=np.float64)
    if arr.shape != (4,):
        raise ValueError(f"sigma2 must hold 4 variances (σ_0², …, σ_3² for z = 2y + y'), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)) or (arr <= 0).any():
        raise ValueError(f"sigma2 must hold finite variances > 0, got {arr.tolist()}")
    return arr


def _sigma4(sigma2: Sequence[float]) -> tuple[float, float, float, float]:
    """The 4 checked variances as the tuple :class:`GaussianToy` stores."""
    s0, s1, s2, s3 = (float(v) for v in _check_sigma2(sigma2))
    return s0, s1, s2, s3


@dataclass(frozen=True)
class GaussianToy:
    """GMTL's illustrative example (§4): bivariate Bernoulli targets, Gaussian-mixture input.

    Parameters
    ----------
    theta, theta_prime : float
        ``P(Y = 1)`` and ``P(Y' = 1)`` (paper: 0.5 and 0.5).
    cov : float
        ``Cov[Y, Y']``, the target-causing confounder; must be feasible for θ, θ'
        (see :func:`covariance_range`).
    sigma2 : sequence of 4 floats
        Variances ``σ_z²`` of ``X | z`` for ``z = 2y + y' = 0, 1, 2, 3`` (paper: 0.4, 0.4, 0.6, 0.6).

    Examples
    --------
    >>> toy = GaussianToy(cov=0.1)
    >>> toy.joint_probs
    array([[0.35, 0.15],
           [0.15, 0.35]])
    >>> labels, x = toy.sample(5, seed=0)
    >>> labels.shape, x.shape
    ((5, 2), (5,))
    """

    theta: float = 0.5
    theta_prime: float = 0.5
    cov: float = 0.0
    sigma2: tuple[float, float, float, float] = PAPER_SIGMA2

    def __post_init__(self) -> None:
        object.__setattr__(self, "sigma2", tuple(float(s) for s in _check_sigma2(self.sigma2)))
        bivariate_bernoulli(self.theta, self.theta_prime, self.cov)  # validates

    # --- distribution ---------------------------------------------------------------------
    @property
    def joint_probs(self) -> np.ndarray:
        """``p(y, y')`` as a ``(2, 2)`` table indexed ``[y, y']``."""
        return bivariate_bernoulli(self.theta, self.theta_prime, self.cov)

    @property
    def means(self) -> np.ndarray:
        """``E[X | y, y'] = 2y + y'`` as a ``(2, 2)`` table."""
        return np.array([[0.0, 1.0], [2.0, 3.0]])

    @property
    def variances(self) -> np.ndarray:
        """``Var[X | y, y'] = σ²_{2y+y'}`` as a ``(2, 2)`` table."""
        return np.asarray(self.sigma2, dtype=np.float64).reshape(2, 2)

    def sample(self, n: int, seed: SeedLike = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``n`` examples.

        Returns
        -------
        labels : int64 array ``(n, 2)``, columns ``(y, y')``
        x : float64 array ``(n,)``
        """
        n = check_positive_int(n, "n")
        rng = as_generator(seed)
        z = rng.choice(4, size=n, p=self.joint_probs.reshape(-1))  # C-order index of (y, y') = 2y + y'
        x = rng.normal(loc=z.astype(np.float64), scale=np.sqrt(np.asarray(self.sigma2))[z])
        labels = np.stack([z // 2, z % 2], axis=1).astype(np.int64)
        return labels, x

    # --- exact densities ------------------------------------------------------------------
    def log_likelihood(self, x: npt.ArrayLike) -> np.ndarray:
        """``log p(x | y, y') = log N(x; 2y + y', σ²_{2y+y'})``, shape ``(N, 2, 2)``."""
        xa = np.asarray(x, dtype=np.float64).reshape(-1)
        mu = self.means[None]
        var = self.variances[None]
        d = xa[:, None, None] - mu
        result: np.ndarray = -0.5 * (np.log(2 * np.pi * var) + d * d / var)
        return result

    def log_joint_posterior(self, x: npt.ArrayLike) -> np.ndarray:
        """``log p(y, y' | x)`` by Bayes' rule, shape ``(N, 2, 2)`` (``-inf`` where p(y, y') = 0)."""
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.joint_probs)
        joint = self.log_likelihood(x) + log_prior[None]
        result: np.ndarray = joint - logsumexp(joint, axis=(1, 2), keepdims=True)
        return result

    def log_marginal(self, x: npt.ArrayLike) -> np.ndarray:
        """``log p(x) = log Σ_{y,y'} p(x | y, y') p(y, y')``, shape ``(N,)``."""
        with np.errstate(divide="ignore"):
            log_prior = np.log(self.joint_probs)
        result: np.ndarray = logsumexp(self.log_likelihood(x) + log_prior[None], axis=(1, 2))
        return result

    def log_posteriors(self, x: npt.ArrayLike) -> list[np.ndarray]:
        """Per-task posteriors ``[log p(y | x), log p(y' | x)]``, each ``(N, 2)``.

        This is the per-task score contract of DESIGN.md (feed it to ``gmtl.decode``).
        """
        post = self.log_joint_posterior(x)
        return [logsumexp(post, axis=2), logsumexp(post, axis=1)]

    # --- decision functions ---------------------------------------------------------------
    def decision_function(self, x: npt.ArrayLike, method: Method) -> np.ndarray:
        """Score whose sign gives the predicted ``Y`` (positive: ``Y = 1``), shape ``(N,)``.

        ``"dmtl"``: ``log p(Y=1 | x) − log p(Y=0 | x)`` (``Y'`` marginalised).
        ``"gmtl"``: ``max_{y'} log p(x|1,y') − max_{y'} log p(x|0,y')``, the sign of the ``Y``
        component of ``argmax_{y,y'} log p(x|y,y')`` (GMTL with α = 1; ties favour ``Y = 0``).
        """
        if method == "dmtl":
            lp = self.log_posteriors(x)[0]
            result: np.ndarray = lp[:, 1] - lp[:, 0]
            return result
        if method == "gmtl":
            ll = self.log_likelihood(x)
            result = ll[:, 1].max(axis=1) - ll[:, 0].max(axis=1)
            return result
        raise ValueError(f"method must be 'dmtl' or 'gmtl', got {method!r}")

    def predict(self, x: npt.ArrayLike, method: Method) -> np.ndarray:
        """Predicted ``Y`` (int64 ``(N,)``) of DMTL or of GMTL with α = 1."""
        return (self.decision_function(x, method) > 0).astype(np.int64)

    def boundary_roots(
        self, method: Method, interval: tuple[float, float] = (-1.0, 4.0), n_grid: int = 2001
    ) -> np.ndarray:
        """All decision boundaries of ``method`` inside ``interval``, sorted.

        The decision function is evaluated on a grid of ``n_grid`` points; every sign change is
        refined with Brent's method (``scipy.optimize.brentq``, ``xtol = 1e-13``). Roots closer
        together than the grid spacing may be missed (not the case for the paper's settings).
        """
        lo, hi = float(interval[0]), float(interval[1])
        if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
            raise ValueError(f"interval must be (lo, hi) with finite lo < hi, got {interval!r}")
        n_grid = check_positive_int(n_grid, "n_grid", minimum=3)
        grid = np.linspace(lo, hi, n_grid)
        f = self.decision_function(grid, method)
        roots = grid[f == 0.0].tolist()
        sign = np.sign(f)
        idx = np.flatnonzero(sign[:-1] * sign[1:] < 0)

        def fun(v: float) -> float:
            return float(self.decision_function(np.array([v]), method)[0])

        roots += [brentq(fun, grid[i], grid[i + 1], xtol=1e-13, rtol=4 * np.finfo(float).eps) for i in idx]
        return np.array(sorted(roots), dtype=np.float64)

    def boundary(self, method: Method, interval: tuple[float, float] = (0.0, 3.0)) -> float:
        """The decision boundary of ``method`` inside ``interval`` (Figure 2), or ``NaN``.

        Returns ``NaN`` (and logs a warning) when there is no boundary in ``interval`` (the
        prediction of ``Y`` is constant there) or more than one (ambiguous).
        """
        roots = self.boundary_roots(method, interval)
        if len(roots) == 1:
            return float(roots[0])
        logger.warning(
            "%s decision boundary for Cov[Y, Y'] = %g: %d roots in %s (%s); returning NaN",
            method, self.cov, len(roots), interval,
            "no boundary exists there" if len(roots) == 0 else "ambiguous",
        )
        return float("nan")

    # --- datasets -------------------------------------------------------------------------
    def dataset(self, n: int, seed: SeedLike = None, env: int = 0, name: str = "") -> MultiTaskDataset:
        """``n`` examples as a :class:`MultiTaskDataset` (inputs ``(n, 1)``, tasks ``y`` and ``y'``)."""
        labels, x = self.sample(n, seed)
        return MultiTaskDataset(
            inputs=x[:, None],
            targets=labels,
            tasks=(Task("y", n_classes=2), Task("y_prime", n_classes=2)),
            env=np.full(n, env, dtype=np.int64),
            name=name,
        )


def decision_boundaries(
    covs: npt.ArrayLike | None = None,
    theta: float = 0.5,
    theta_prime: float = 0.5,
    sigma2: Sequence[float] = PAPER_SIGMA2,
    interval: tuple[float, float] = (0.0, 3.0),
) -> dict[str, np.ndarray]:
    """Decision boundaries of DMTL and GMTL (α = 1) as functions of ``Cov[Y, Y']`` (Figure 2).

    Parameters
    ----------
    covs : array-like, optional
        Covariances to evaluate (default: 41 values from −0.2 to 0.2, the paper's range).
        Each must be feasible for θ, θ'.

    Returns
    -------
    dict with ``"cov"``, ``"dmtl"`` and ``"gmtl"``: float arrays of the same length; ``NaN``
    where a boundary does not exist (or is not unique) in ``interval``.
    """
    covs = np.linspace(*PAPER_COV_RANGE, 41) if covs is None else np.atleast_1d(np.asarray(covs, dtype=np.float64))
    if covs.ndim != 1 or covs.size == 0:
        raise ValueError(f"covs must be a non-empty 1-D sequence, got shape {covs.shape}")
    toys = [GaussianToy(theta, theta_prime, float(c), _sigma4(sigma2)) for c in covs]
    return {
        "cov": covs,
        "dmtl": np.array([t.boundary("dmtl", interval) for t in toys]),
        "gmtl": np.array([t.boundary("gmtl", interval) for t in toys]),
    }


def plot_decision_boundaries(
    path: str | os.PathLike[str] | None = None,
    covs: npt.ArrayLike | None = None,
    theta: float = 0.5,
    theta_prime: float = 0.5,
    sigma2: Sequence[float] = PAPER_SIGMA2,
    dpi: int = 150,
) -> Figure:
    """Figure 2 of GMTL: decision boundary in ``x`` against ``Cov[Y, Y']`` for DMTL and GMTL.

    Returns the matplotlib ``Figure`` (built without pyplot, so no global state is touched);
    when ``path`` is given it is also written there as PNG.
    """
    from matplotlib.figure import Figure

    res = decision_boundaries(covs, theta, theta_prime, sigma2)
    fig = Figure(figsize=(4.5, 3.2))
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(res["cov"], res["dmtl"], label="DMTL", color="tab:blue", lw=2)
    ax.plot(res["cov"], res["gmtl"], label="GMTL (α = 1)", color="tab:orange", lw=2, ls="--")
    ax.set_xlabel("Cov[Y, Y']")
    ax.set_ylabel("decision boundary (x)")
    ax.set_title("GMTL Fig. 2: boundary vs. target-causing confounder", fontsize=9)
    ax.legend(frameon=False)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    if path is not None:
        fig.savefig(os.fspath(path), format="png", dpi=dpi)
    return fig


def make_gaussian_toy(
    n_train: int = 1000,
    n_valid: int = 500,
    n_test: int = 1000,
    cov_train: float = 0.2,
    cov_valid: float | None = None,
    cov_test: float = -0.2,
    theta: float = 0.5,
    theta_prime: float = 0.5,
    sigma2: Sequence[float] = PAPER_SIGMA2,
    seed: SeedLike = 0,
) -> DatasetSplits:
    """Train/valid/test splits of the §4 example with a target shift in ``Cov[Y, Y']``.

    ``cov_valid`` defaults to ``cov_train`` (in-distribution validation). Environment ids:
    train 0, valid 1, test 2. ``meta`` holds each split's true ``p(y, y')`` under
    ``"true_joint"`` and the :class:`GaussianToy` of each split under ``"toys"``.
    """
    rng = as_generator(seed)
    covs = {"train": cov_train, "valid": cov_train if cov_valid is None else cov_valid, "test": cov_test}
    sizes = {"train": n_train, "valid": n_valid, "test": n_test}
    toys = {k: GaussianToy(theta, theta_prime, float(c), _sigma4(sigma2)) for k, c in covs.items()}
    parts = {k: toys[k].dataset(sizes[k], rng, env=SPLIT_ENV[k], name=f"gaussian-toy/{k}") for k in toys}
    return DatasetSplits(
        train=parts["train"], valid=parts["valid"], test=parts["test"], name="gaussian-toy",
        meta={"true_joint": {k: t.joint_probs for k, t in toys.items()}, "toys": toys},
    )
