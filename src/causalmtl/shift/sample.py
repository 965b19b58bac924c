"""Sampling shifted joint priors q(y) around an in-distribution prior p(y).

Two protocols share one interface, :class:`QSampler` (``sampler.sample(log_p, n, seed)``
returns a :class:`QDraws`):

* :class:`ShuffleNoiseSampler` — the protocol of Makino et al. (2022), §5.6, exactly as the
  authors ran it, so that their draws are reproduced draw for draw from the same seed.
* :class:`DirichletSampler` — a modern alternative: ``q ~ Dirichlet(c · p)`` with
  concentration ``c`` (larger ``c``: q closer to p).

Both work on the flattened joint prior (K = Π_t C_t classes, C-order joint index, see
DESIGN.md) and return the log of q so that severity (:mod:`causalmtl.shift.severity`) is
computed on exactly the values that were drawn.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, cast

import numpy as np
from scipy.special import logsumexp

from .._severity import flat_log_prior

RandomLike = int | np.random.RandomState | np.random.Generator | None


def _check_n(n: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the number of draws) must be an int >= 1, got {n!r}")
    return int(n)


def random_state(seed: RandomLike) -> np.random.RandomState | np.random.Generator:
    """The random source of the samplers: a RandomState or Generator as it is, an int ``>= 0``
    seeds a ``RandomState`` (the legacy stream the published draws were made with)."""
    if isinstance(seed, (np.random.RandomState, np.random.Generator)):
        return seed
    if (
        seed is None
        or isinstance(seed, bool)
        or not isinstance(seed, (int, np.integer))
        or seed < 0
    ):
        raise ValueError(
            f"seed must be an int >= 0, a numpy RandomState or a numpy Generator, got {seed!r}"
        )
    return np.random.RandomState(int(seed))


@dataclass(frozen=True)
class QDraws:
    """A batch of sampled target priors.

    Attributes
    ----------
    log_q : ndarray ``(n, K)``
        Normalised log target priors, one row per draw (flattened joint index, C-order).
    params : dict of str to ndarray ``(n,)``
        The per-draw random parameters of the protocol (e.g. ``shuffle`` and ``sd`` for
        :class:`ShuffleNoiseSampler`, ``concentration`` for :class:`DirichletSampler`).
    """

    log_q: np.ndarray
    params: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def q(self) -> np.ndarray:
        """The target priors as probabilities, ``(n, K)``."""
        ret: np.ndarray = np.exp(self.log_q)
        return ret

    def __len__(self) -> int:
        return int(self.log_q.shape[0])


class QSampler(ABC):
    """Interface of a target-prior sampler.

    Subclasses implement :meth:`sample`; the protocol is fully determined by the
    constructor arguments and the seed.
    """

    #: Short name used by the CLI and in result files.
    name: ClassVar[str] = ""

    @abstractmethod
    def sample(self, log_p: Any, n: int, seed: RandomLike = 0) -> QDraws:
        """Draw ``n`` target priors around ``p``.

        Parameters
        ----------
        log_p : array of log-probabilities (any shape, flattened C-order) or a JointPrior
        n : number of draws (>= 1)
        seed : int, numpy RandomState or numpy Generator
        """

    def config(self) -> dict[str, Any]:
        """The constructor arguments, for result files."""
        return {"protocol": self.name}


@dataclass(frozen=True)
class ShuffleNoiseSampler(QSampler):
    """The shuffle-and-perturb protocol of Makino et al. (2022), §5.6.

    For each of the ``n`` draws, in this order, with one ``numpy.random.RandomState(seed)``
    shared by all draws::

        s   = rng.uniform(0, shuffle_ub)                 # fraction of classes shuffled
        idx = rng.choice(K, int(2 * s * K), replace=False)
        idx = idx[:-1] if len(idx) is odd
        a, b = idx[:m], idx[m:]                          # m = len(idx) // 2
        z = log_p.copy(); z[a], z[b] = log_p[b], log_p[a]  # pairwise swap
        sd  = rng.uniform(1e-12, sd_ub)                  # noise scale σ ~ U(1e-12, 5)
        z  += rng.normal(0, sd, K)                       # ε ~ N(0, σ²)
        q   = softmax(z)

    i.e. ``q(y) ∝ exp(log p_{π(f(y))} + ε)`` of §5.6. Every draw starts from the unshuffled
    ``log p``. An int seed reproduces the authors' draws exactly; a ``numpy.random.Generator``
    runs the same algorithm on its own stream (different numbers).

    Parameters
    ----------
    shuffle_ub : upper bound of ``s`` (default 0.5; must lie in (0, 0.5] so ``2sK <= K``)
    sd_ub : upper bound of the noise standard deviation (default 5; must exceed 1e-12)

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.shift import ShuffleNoiseSampler
    >>> draws = ShuffleNoiseSampler().sample(np.log([0.4, 0.3, 0.2, 0.1]), n=3, seed=0)
    >>> draws.q.shape, bool(np.allclose(draws.q.sum(axis=1), 1.0))
    ((3, 4), True)
    """

    shuffle_ub: float = 0.5
    sd_ub: float = 5.0
    name: ClassVar[str] = "shuffle"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.shuffle_ub) and 0 < self.shuffle_ub <= 0.5):
            raise ValueError(f"shuffle_ub must lie in (0, 0.5], got {self.shuffle_ub!r}")
        if not (np.isfinite(self.sd_ub) and self.sd_ub > 1e-12):
            raise ValueError(f"sd_ub must be a finite number > 1e-12, got {self.sd_ub!r}")

    def config(self) -> dict[str, Any]:
        return {"protocol": self.name, "shuffle_ub": self.shuffle_ub, "sd_ub": self.sd_ub}

    def sample(self, log_p: Any, n: int, seed: RandomLike = 0) -> QDraws:
        base = flat_log_prior(log_p)
        n = _check_n(n)
        rng = random_state(seed)
        K = base.size
        z = np.empty((n, K))
        shuffles = np.empty(n)
        sds = np.empty(n)
        for d in range(n):  # draws are sequential in the RNG stream; each is vectorised over K
            s = rng.uniform(0, self.shuffle_ub)
            idx = rng.choice(K, int(2 * s * K), replace=False)
            if len(idx) % 2 == 1:
                idx = idx[:-1]
            m = len(idx) // 2
            row = base.copy()
            row[idx[:m]], row[idx[m:]] = base[idx[m:]], base[idx[:m]]
            sd = rng.uniform(1e-12, self.sd_ub)
            z[d] = row + rng.normal(0, sd, K)
            shuffles[d], sds[d] = s, sd
        log_q = z - logsumexp(z, axis=1, keepdims=True)
        return QDraws(log_q=log_q, params={"shuffle": shuffles, "sd": sds})


@dataclass(frozen=True)
class DirichletSampler(QSampler):
    """Dirichlet shift around p: ``q ~ Dirichlet(c · p)``.

    ``E[q] = p`` and ``Var[q_k] = p_k (1 − p_k) / (c + 1)``: a large concentration ``c``
    gives mild shifts, a small one severe shifts. ``concentration`` may be one number or a
    range ``(low, high)``; with a range each draw takes ``c = exp(U(log low, log high))``
    (log-uniform) so that one batch spans mild to severe shifts, as the evaluation needs.

    Sampling goes through Gamma variates computed in log space
    (``log G = log G' + log(U) / a`` for shape ``a < 1``) so that classes with tiny ``c·p_k``
    keep a finite ``log q`` instead of underflowing to ``-inf``.

    Parameters
    ----------
    concentration : float > 0, or (low, high) with 0 < low <= high

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.shift import DirichletSampler
    >>> draws = DirichletSampler(concentration=(1.0, 1000.0)).sample(np.log([0.5, 0.3, 0.2]), 4, seed=1)
    >>> draws.log_q.shape, bool(np.allclose(draws.q.sum(axis=1), 1.0))
    ((4, 3), True)
    """

    concentration: float | tuple[float, float] = (1.0, 1000.0)
    name: ClassVar[str] = "dirichlet"

    def _bounds(self) -> tuple[float, float]:
        c = self.concentration
        if np.isscalar(c):
            return float(cast(float, c)), float(cast(float, c))
        lo, hi = tuple(cast("tuple[float, float]", c))
        return float(lo), float(hi)

    def __post_init__(self) -> None:
        try:
            lo, hi = self._bounds()
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"concentration must be a number > 0 or a pair (low, high), got {self.concentration!r}"
            ) from exc
        if not (np.isfinite(lo) and np.isfinite(hi) and 0 < lo <= hi):
            raise ValueError(
                f"concentration must be > 0 (a pair needs 0 < low <= high), got {self.concentration!r}"
            )

    def config(self) -> dict[str, Any]:
        lo, hi = self._bounds()
        return {"protocol": self.name, "concentration": [lo, hi]}

    def sample(self, log_p: Any, n: int, seed: RandomLike = 0) -> QDraws:
        base = flat_log_prior(log_p)
        n = _check_n(n)
        rng = random_state(seed)
        if isinstance(rng, np.random.RandomState):
            rng = np.random.Generator(np.random.PCG64(rng.randint(0, 2**31 - 1)))
        p = np.exp(base - logsumexp(base))
        if (p <= 0).any():
            k = int(np.flatnonzero(p <= 0)[0])
            raise ValueError(f"log_p gives p = 0 at flat index {k}; a Dirichlet(c·p) needs p > 0")
        lo, hi = self._bounds()
        c = np.exp(rng.uniform(math.log(lo), math.log(hi), size=n)) if hi > lo else np.full(n, lo)
        shape = c[:, None] * p[None, :]
        # log Gamma(a) = log Gamma(a + 1) + log(U) / a  (Marsaglia & Tsang boost for a < 1)
        log_g = (
            np.log(rng.standard_gamma(shape + 1.0)) + np.log(rng.uniform(size=shape.shape)) / shape
        )
        log_q = log_g - logsumexp(log_g, axis=1, keepdims=True)
        return QDraws(log_q=log_q, params={"concentration": c})


_SAMPLERS: dict[str, type[QSampler]] = {
    "shuffle": ShuffleNoiseSampler,
    "dirichlet": DirichletSampler,
}


def make_sampler(protocol: str = "shuffle", **kwargs: Any) -> QSampler:
    """Build a sampler by name: ``"shuffle"`` (§5.6, default) or ``"dirichlet"``."""
    if protocol not in _SAMPLERS:
        raise ValueError(f"protocol must be one of {sorted(_SAMPLERS)}, got {protocol!r}")
    return _SAMPLERS[protocol](**kwargs)


def sample_q(
    log_p: Any, n: int, seed: RandomLike = 0, protocol: str = "shuffle", **kwargs: Any
) -> QDraws:
    """Draw ``n`` target priors around ``p`` with the named protocol (see :func:`make_sampler`).

    ``sample_q(log_p, n, seed)`` reproduces the draws of Makino et al. (2022), §5.6.
    """
    return make_sampler(protocol, **kwargs).sample(log_p, n, seed)


__all__ = [
    "QDraws",
    "QSampler",
    "ShuffleNoiseSampler",
    "DirichletSampler",
    "make_sampler",
    "sample_q",
    "flat_log_prior",
    "random_state",
]
