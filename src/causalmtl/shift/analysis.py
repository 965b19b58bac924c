"""The optimal-α analysis of Makino et al. (2022), §6 and Figure 3.

Draws of q are split into equal-width bins of severity τ (default 5). Per bin:

* the accuracy-vs-α curve: the mean, over the draws in the bin, of the importance-sampled
  accuracy at each α;
* the optimal α: the α with the highest mean accuracy (ties go to the smaller α);
* the DMTL accuracy (α = 0) and the gain GMTL − DMTL at the optimal α.

Across bins, the Pearson correlation between the bin midpoints of τ and the optimal α (the
paper reports −0.847 over all its runs; negative because low τ = severe shift = large α).
:func:`pooled_correlation` computes it over several analyses at once, as the paper does.

Bins are ``numpy.histogram``-style: ``[e_0, e_1), …, [e_{B−1}, e_B]`` (the last one closed),
with ``e_0 = min τ`` and ``e_B = max τ`` unless a ``tau_range`` is given. An empty bin is
reported (count 0, NaN statistics, listed in ``empty_bins``, and logged), not an error.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import as_float, check_alpha

logger = logging.getLogger(__name__)


def alpha_label(alpha: float) -> str:
    """Column label of an α: ``acc_0.0``, ``acc_0.1``, …, ``acc_1.0``."""
    return f"acc_{round(float(alpha), 10)!r}"


@dataclass(frozen=True)
class ShiftDraws:
    """Per-draw results of a target-shift evaluation.

    Attributes
    ----------
    tau : ``(D,)`` severity τ(p, q_d) of each draw
    accuracy : ``(D, A)`` importance-sampled main-task accuracy of each draw at each α
    alphas : ``(A,)`` the α of each accuracy column
    params : per-draw protocol parameters (e.g. ``shuffle``, ``sd``), each ``(D,)``
    meta : free-form description (protocol, seed, τ variant, …) for result files
    """

    tau: np.ndarray
    accuracy: np.ndarray
    alphas: np.ndarray
    params: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tau = np.asarray(self.tau, dtype=np.float64).reshape(-1)
        acc = np.asarray(self.accuracy, dtype=np.float64)
        alphas = check_alpha(self.alphas, "alphas")
        if acc.ndim != 2 or acc.shape != (tau.size, alphas.size):
            raise ValueError(
                f"accuracy must have shape (D, A) = ({tau.size}, {alphas.size}) to match tau and "
                f"alphas, got {acc.shape}"
            )
        if len(np.unique(alphas)) != alphas.size:
            raise ValueError(f"alphas must be distinct, got {alphas.tolist()}")
        if not np.isfinite(tau).all():
            d = int(np.flatnonzero(~np.isfinite(tau))[0])
            raise ValueError(f"tau must be finite (a severity in [-1, 1]), got {float(tau[d])} at draw {d}")
        if not np.isfinite(acc).all():
            d, a = (int(i) for i in np.argwhere(~np.isfinite(acc))[0])
            raise ValueError(
                f"accuracy must be finite, got {float(acc[d, a])} at draw {d}, alpha={float(alphas[a]):g}; "
                "a NaN accuracy would make every gain and optimal α of its τ bin NaN (drop the draw "
                "or fix the evaluation that produced it)"
            )
        object.__setattr__(self, "tau", tau)
        object.__setattr__(self, "accuracy", acc)
        object.__setattr__(self, "alphas", alphas)

    def __len__(self) -> int:
        return int(self.tau.size)

    @classmethod
    def concatenate(cls, runs: Sequence[ShiftDraws]) -> ShiftDraws:
        """Pool the draws of several runs (e.g. seeds evaluated separately); α must match."""
        if not runs:
            raise ValueError("runs is empty; give at least one ShiftDraws")
        alphas = runs[0].alphas
        for i, r in enumerate(runs):
            if not np.array_equal(r.alphas, alphas):
                raise ValueError(
                    f"runs[{i}] has alphas {r.alphas.tolist()} but runs[0] has {alphas.tolist()}"
                )
        keys = set.intersection(*(set(r.params) for r in runs))
        return cls(
            tau=np.concatenate([r.tau for r in runs]),
            accuracy=np.concatenate([r.accuracy for r in runs]),
            alphas=alphas,
            params={k: np.concatenate([r.params[k] for r in runs]) for k in sorted(keys)},
            meta={"pooled": [r.meta for r in runs]},
        )

    def columns(self) -> list[str]:
        """CSV header: ``tau``, then one ``acc_<α>`` column per α."""
        return ["tau", *(alpha_label(a) for a in self.alphas)]

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write one row per draw, in draw order, columns :meth:`columns`."""
        table = np.column_stack([self.tau, self.accuracy])
        np.savetxt(
            path, table, delimiter=",", header=",".join(self.columns()), comments="", fmt="%.17g"
        )

    @classmethod
    def read_csv(cls, path: str | os.PathLike[str]) -> ShiftDraws:
        """Read a file written by :meth:`to_csv` (α are parsed from the column names)."""
        with open(path) as fh:
            header = fh.readline().strip().split(",")
        if not header or header[0] != "tau" or not all(h.startswith("acc_") for h in header[1:]):
            raise ValueError(
                f"{os.fspath(path)!r}: expected columns tau, acc_<alpha>, …; got {header}"
            )
        table = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        return cls(
            tau=table[:, 0], accuracy=table[:, 1:], alphas=np.asarray([float(h[4:]) for h in header[1:]])
        )


def bin_by_tau(
    tau: Any, n_bins: int = 5, tau_range: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Equal-width τ bins: returns ``(edges (n_bins + 1,), bin index per draw (D,))``.

    Raises
    ------
    ValueError
        Fewer than 2 draws, ``n_bins < 1``, all τ equal (with no ``tau_range``), or a τ outside
        ``tau_range``.
    """
    t = np.asarray(tau, dtype=np.float64).reshape(-1)
    if t.size < 2:
        raise ValueError(f"tau has {t.size} draw(s); the analysis needs at least 2 draws")
    if isinstance(n_bins, bool) or not isinstance(n_bins, (int, np.integer)) or n_bins < 1:
        raise ValueError(f"n_bins must be an int >= 1, got {n_bins!r}")
    if not np.isfinite(t).all():
        raise ValueError("tau contains non-finite values")
    if tau_range is None:
        lo, hi = float(t.min()), float(t.max())
        if lo == hi:
            raise ValueError(f"all {t.size} tau values equal {lo}; give tau_range to bin them")
    else:
        if np.ndim(tau_range) != 1 or len(tau_range) != 2:
            raise ValueError(f"tau_range must be a pair (low, high), got {tau_range!r}")
        lo, hi = (as_float(v, "tau_range[]") for v in tau_range)
        if not lo < hi:
            raise ValueError(f"tau_range must be (low, high) with low < high, got {tau_range!r}")
        outside = (t < lo) | (t > hi)
        if outside.any():
            d = int(np.flatnonzero(outside)[0])
            raise ValueError(f"tau[{d}] = {t[d]!r} lies outside tau_range {tau_range!r}")
    edges = np.linspace(lo, hi, n_bins + 1)
    idx = np.searchsorted(edges, t, side="right") - 1
    idx[t == hi] = n_bins - 1  # the last bin is closed on the right
    return edges, idx.astype(np.int64)


@dataclass(frozen=True)
class ShiftAnalysis:
    """Per-τ-bin summary of a target-shift evaluation (§6, Figure 3).

    Bins are ordered by increasing τ (bin 0 = most severe shift). Statistics of an empty
    bin are NaN.

    Attributes
    ----------
    alphas : ``(A,)``
    edges : ``(B + 1,)`` bin edges in τ
    midpoints : ``(B,)``
    counts : ``(B,)`` number of draws per bin
    mean_accuracy : ``(B, A)`` accuracy-vs-α curve of each bin
    optimal_alpha : ``(B,)`` α with the highest mean accuracy (smallest α on ties)
    accuracy_dmtl : ``(B,)`` mean accuracy at α = 0
    accuracy_optimal : ``(B,)`` mean accuracy at the optimal α
    gain : ``(B,)`` ``accuracy_optimal − accuracy_dmtl`` (≥ 0)
    correlation : Pearson correlation of ``midpoints`` and ``optimal_alpha`` over the
        non-empty bins (NaN when fewer than 2 or when either is constant)
    empty_bins : indices of bins with no draw
    """

    alphas: np.ndarray
    edges: np.ndarray
    midpoints: np.ndarray
    counts: np.ndarray
    mean_accuracy: np.ndarray
    optimal_alpha: np.ndarray
    accuracy_dmtl: np.ndarray
    accuracy_optimal: np.ndarray
    gain: np.ndarray
    correlation: float
    empty_bins: tuple[int, ...]

    @property
    def n_bins(self) -> int:
        return int(self.midpoints.size)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary (NaN becomes None)."""

        def clean(x: Any) -> Any:
            arr = np.asarray(x, dtype=np.float64)
            return (
                [None if not np.isfinite(v) else float(v) for v in arr.reshape(-1)]
                if arr.ndim
                else (None if not np.isfinite(arr) else float(arr))
            )

        return {
            "alphas": clean(self.alphas),
            "edges": clean(self.edges),
            "midpoints": clean(self.midpoints),
            "counts": [int(c) for c in self.counts],
            "optimal_alpha": clean(self.optimal_alpha),
            "accuracy_dmtl": clean(self.accuracy_dmtl),
            "accuracy_optimal": clean(self.accuracy_optimal),
            "gain": clean(self.gain),
            "correlation": clean(self.correlation),
            "empty_bins": list(self.empty_bins),
            "mean_accuracy": [clean(row) for row in self.mean_accuracy],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The :meth:`to_dict` as JSON text; written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            with open(path, "w") as fh:
                fh.write(text + "\n")
        return text

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """One row per bin: bounds, count, optimal α, DMTL/optimal accuracy, gain, curve."""
        header = [
            "bin", "tau_low", "tau_high", "tau_mid", "n_draws", "optimal_alpha",
            "acc_dmtl", "acc_optimal", "gain", *(alpha_label(a) for a in self.alphas),
        ]  # fmt: skip
        table = np.column_stack([
            np.arange(self.n_bins), self.edges[:-1], self.edges[1:], self.midpoints, self.counts,
            self.optimal_alpha, self.accuracy_dmtl, self.accuracy_optimal, self.gain,
            self.mean_accuracy,
        ])  # fmt: skip
        np.savetxt(path, table, delimiter=",", header=",".join(header), comments="", fmt="%.17g")


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if x.size < 2 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def analyze(
    draws: ShiftDraws,
    n_bins: int = 5,
    tau_range: tuple[float, float] | None = None,
) -> ShiftAnalysis:
    """Bin draws by τ and find the optimal α and the GMTL − DMTL gain per bin (§6, Figure 3).

    Parameters
    ----------
    draws : the per-draw τ and accuracies (pool seeds with :meth:`ShiftDraws.concatenate`,
        or evaluate them on concatenated examples as the paper does)
    n_bins : number of equal-width τ bins (the paper uses 5)
    tau_range : fixed ``(low, high)`` for the bins (default: the range of the observed τ)

    Raises
    ------
    ValueError
        If ``draws.alphas`` lacks α = 0 (DMTL is the reference), fewer than 2 draws, etc.

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.shift import ShiftDraws, analyze
    >>> tau = np.array([-0.9, -0.7, 0.7, 0.9])
    >>> acc = np.array([[0.5, 0.6], [0.5, 0.7], [0.8, 0.7], [0.9, 0.8]])
    >>> res = analyze(ShiftDraws(tau, acc, alphas=[0.0, 1.0]), n_bins=2)
    >>> res.optimal_alpha.tolist(), res.gain.round(2).tolist()
    ([1.0, 0.0], [0.15, 0.0])
    """
    if not isinstance(draws, ShiftDraws):
        raise ValueError(f"draws must be a ShiftDraws, got {type(draws).__name__}")
    zero = np.flatnonzero(draws.alphas == 0.0)
    if zero.size == 0:
        raise ValueError(
            f"alphas must include 0.0 (DMTL, the reference of the gain), got {draws.alphas.tolist()}"
        )
    edges, idx = bin_by_tau(draws.tau, n_bins, tau_range)
    B, A = n_bins, draws.alphas.size
    counts = np.bincount(idx, minlength=B)
    sums = np.zeros((B, A))
    np.add.at(sums, idx, draws.accuracy)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_acc = sums / counts[:, None]
    empty = tuple(int(b) for b in np.flatnonzero(counts == 0))
    if empty:
        logger.warning(
            "τ bins %s have no draw (edges %s); their statistics are NaN",
            list(empty),
            edges.round(4).tolist(),
        )
    full = counts > 0
    best = np.zeros(B, dtype=np.int64)
    best[full] = np.argmax(mean_acc[full], axis=1)
    optimal = np.where(full, draws.alphas[best], np.nan)
    acc_dmtl = mean_acc[:, zero[0]]
    acc_opt = np.where(full, mean_acc[np.arange(B), best], np.nan)
    mid = 0.5 * (edges[:-1] + edges[1:])
    return ShiftAnalysis(
        alphas=draws.alphas.copy(),
        edges=edges,
        midpoints=mid,
        counts=counts,
        mean_accuracy=mean_acc,
        optimal_alpha=optimal,
        accuracy_dmtl=acc_dmtl,
        accuracy_optimal=acc_opt,
        gain=acc_opt - acc_dmtl,
        correlation=_pearson(mid[full], optimal[full]),
        empty_bins=empty,
    )


def pooled_correlation(analyses: Sequence[ShiftAnalysis]) -> float:
    """Pearson correlation of τ-bin midpoints and optimal α pooled over several analyses.

    This is the paper's aggregate statistic (−0.847 "over all of our results"): every
    non-empty bin of every analysis (dataset × task pair × method) contributes one point.
    """
    if not analyses:
        raise ValueError("analyses is empty; give at least one ShiftAnalysis")
    mids = np.concatenate([a.midpoints[a.counts > 0] for a in analyses])
    opts = np.concatenate([a.optimal_alpha[a.counts > 0] for a in analyses])
    return _pearson(mids, opts)


__all__ = [
    "ShiftDraws",
    "ShiftAnalysis",
    "analyze",
    "bin_by_tau",
    "pooled_correlation",
    "alpha_label",
]
