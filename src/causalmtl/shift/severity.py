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

Both lie in [−1, 1].

Computation: :func:`weighted_tau` calls scipy. :func:`severity` (a batch of q's) by default
uses an exact vectorised numpy evaluation of the same formulas (``method="fast"``; pinned to
scipy to 1e-12 in the tests, with and without ties, ``-inf`` included) because scipy takes
~30–60 ms per call at K = 6,400 joint classes, too slow for thousands of draws. The multiplicative weights concentrate almost all the mass on the few
most probable classes of p, so "shieh" values are typically far more extreme than "scipy".
"""

from __future__ import annotations

from typing import Any

import numpy as np

# the shared core (below gmtl and shift): weighted_tau and the prior convention
from .._severity import (
    TAU_VARIANTS,
    TauVariant,
    check_variant,
    flat_log_prior,
    flat_tau,
    weighted_tau,
)
from .sample import QDraws


def _gather(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``a[d, idx[d, k]]`` for a C-contiguous 2-D ``a`` (a faster ``take_along_axis``)."""
    a = np.ascontiguousarray(a)
    off = (np.arange(a.shape[0], dtype=np.int64) * a.shape[1])[:, None]
    ret: np.ndarray = a.reshape(-1)[off + idx]
    return ret


def _left_smaller(
    seq: np.ndarray, u: np.ndarray | None, distinct: bool = False, block: int = 128
) -> np.ndarray:
    """``out[d, k] = Σ_{j < k, seq[d, j] < seq[d, k]} u[d, j]`` (``u = 1`` when None) for rows
    ``seq`` of integer ranks in ``[0, K)`` (repeats allowed unless ``distinct``). Positions are processed in blocks;
    pairs across blocks via a prefix sum over the ranks already seen, pairs inside a block
    directly."""
    D, K = seq.shape
    out = np.empty((D, K))
    hist = np.zeros((D, K), dtype=np.int32 if u is None else np.float64)
    rows = np.arange(D)[:, None]
    flat_rows = (rows * K).astype(np.int64)
    tri = np.tri(block, k=-1, dtype=bool)
    for start in range(0, K, block):
        s = seq[:, start : start + block]
        b = s.shape[1]
        seen = _gather(np.cumsum(hist, axis=1, dtype=hist.dtype), s)
        if not distinct:  # equal ranks seen earlier are not smaller
            seen = seen - _gather(hist, s)
        less = (s[:, None, :] < s[:, :, None]) & tri[:b, :b]
        w = np.ones((D, b), dtype=hist.dtype) if u is None else u[:, start : start + b]
        out[:, start : start + b] = seen + (
            less.sum(axis=2) if u is None else np.einsum("dkj,dj->dk", less, w)
        )
        if distinct:
            hist[rows, s] = w
        else:  # repeated ranks may share a cell
            hist += (
                np.bincount((flat_rows + s).ravel(), weights=w.ravel(), minlength=D * K)
                .reshape(D, K)
                .astype(hist.dtype)
            )
    return out


def _runs(keys: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) position of the run of equal ``keys`` each position is in,
    for rows sorted by those keys: two ``(D, K)`` int arrays."""
    D, K = keys[0].shape
    change = np.zeros((D, K), dtype=bool)
    change[:, 0] = True
    for k in keys:
        change[:, 1:] |= k[:, 1:] != k[:, :-1]
    pos = np.arange(K)
    start = np.maximum.accumulate(np.where(change, pos, 0), axis=1)
    nxt = np.ones((D, K + 1), dtype=bool)
    nxt[:, 1:K] = change[:, 1:]
    end = np.minimum.accumulate(np.where(nxt[:, 1:], pos + 1, K)[:, ::-1], axis=1)[:, ::-1]
    return start, end


def _tau_general(x: np.ndarray, Y: np.ndarray, variant: str) -> np.ndarray:
    """Both τ variants for a batch of rows ``Y`` with any ties (and ``-inf``), exactly.

    With ``S_i = Σ_j u_j sgn(x_i − x_j) sgn(y_i − y_j)`` the additive numerator is
    ``Σ_{i<j} (w_i + w_j) sgn·sgn = Σ_i w_i S_i`` (u = 1) and the multiplicative one is
    ``Σ_{i<j} w_i w_j sgn·sgn = ½ Σ_i w_i S_i`` (u = w). Splitting the partners j of i by the
    order of their (x, y) relative to i's,

        S_i = 4A − L + H − 2L_y + 2E + T_L − T_H,

    where u is summed over: A ``x_j < x_i, y_j < y_i``; L ``x_j < x_i``; H ``x_j > x_i``;
    ``L_y`` ``y_j < y_i``; E ``x_j = x_i, y_j < y_i``; ``T_L`` ``y_j = y_i, x_j < x_i``;
    ``T_H`` ``y_j = y_i, x_j > x_i``. A is a dominance count (:func:`_left_smaller` in the
    (x, y) order); the rest are prefix sums over runs of the (x, y) and (y, x) orders. Elements
    tied in both x and y get different ranks in an arbitrary order, but their S are equal, so
    the sums do not depend on that order (as in scipy).
    """
    D, K = Y.shape
    rows = np.arange(D)[:, None]
    pos = np.arange(K)
    small = np.uint16 if K < 2**16 else np.int64
    # dense ranks of x (shared) and y (per row)
    _, xd, xcount = np.unique(x, return_inverse=True, return_counts=True)
    xd = xd.reshape(-1)
    yorder = np.argsort(Y, axis=1, kind="stable")
    ys = _gather(Y, yorder)
    yd_sorted = np.cumsum(np.concatenate([np.zeros((D, 1), bool), ys[:, 1:] != ys[:, :-1]], 1), 1)
    yd = np.empty((D, K), dtype=np.int64)
    yd[rows, yorder] = yd_sorted
    # order 1: (x, y) increasing; order 2: (y, x) increasing (stable radix sorts on small ints)
    o1 = _gather(yorder, np.argsort(xd[yorder].astype(small), axis=1, kind="stable"))
    xorder = np.argsort(xd, kind="stable")
    o2 = xorder[np.argsort(yd[:, xorder].astype(small), axis=1, kind="stable")]

    def to_elements(order: np.ndarray, values: np.ndarray) -> np.ndarray:
        out = np.empty((D, K))
        out[rows, order] = values
        return out

    w_pos = 1.0 / (K - pos)  # weight of the element at position k of a decreasing ranking
    w1 = to_elements(o1, np.broadcast_to(w_pos, (D, K)))  # rank by decreasing (x, y)
    u = np.ones((D, K)) if variant == "scipy" else w1
    # order-1 quantities: A + E, E, L, H
    seq1 = _gather(yd, o1)
    xs1 = np.broadcast_to(xd[xorder], (D, K))  # x groups sit at fixed positions in order 1
    u1 = _gather(u, o1)
    cu1 = np.concatenate([np.zeros((D, 1)), np.cumsum(u1, axis=1)], axis=1)
    gstart = np.repeat(np.cumsum(xcount) - xcount, xcount)
    gend = gstart + np.repeat(xcount, xcount)
    run1, _ = _runs([xs1, seq1])
    A_plus_E = _left_smaller(seq1, None if variant == "scipy" else u1)
    E = _gather(cu1, run1) - cu1[:, gstart]
    L = cu1[:, gstart]
    W = cu1[:, -1:]
    GX = cu1[:, gend] - L
    # order-2 quantities: L_y, T_L, T_H, y-group sums
    ys2 = _gather(yd, o2)
    xs2 = xd[o2]
    u2 = _gather(u, o2)
    cu2 = np.concatenate([np.zeros((D, 1)), np.cumsum(u2, axis=1)], axis=1)
    ystart, yend = _runs([ys2])
    rstart, rend = _runs([ys2, xs2])
    def c(idx: np.ndarray) -> np.ndarray:
        return _gather(cu2, idx)

    Ly, TL, TH, GY = c(ystart), c(rstart) - c(ystart), c(yend) - c(rend), c(yend) - c(ystart)
    S = to_elements(o1, 4 * (A_plus_E - E) - L + (W - L - GX) + 2 * E) + to_elements(
        o2, -2 * Ly + TL - TH
    )
    if variant == "scipy":
        mx = to_elements(o1, np.broadcast_to(gend - gstart, (D, K)))
        my = to_elements(o2, yend - ystart)
        w2 = to_elements(o2, np.broadcast_to(w_pos, (D, K)))  # rank by decreasing (y, x)
        taus = [
            (w * S).sum(1) / np.sqrt((w * (K - mx)).sum(1) * (w * (K - my)).sum(1))
            for w in (w1, w2)
        ]
        symmetrised: np.ndarray = 0.5 * (taus[0] + taus[1])
        return symmetrised
    GXe, GYe = to_elements(o1, GX), to_elements(o2, GY)
    ret: np.ndarray = (w1 * S).sum(1) / np.sqrt((w1 * (W - GXe)).sum(1) * (w1 * (W - GYe)).sum(1))
    return ret


def _tau_untied(x: np.ndarray, Y: np.ndarray, variant: str) -> np.ndarray:
    """Both τ variants for rows ``Y`` without ties (NaN for rows with ties): the fast path.

    With ``S_i = Σ_j u_j sgn(x_i − x_j) sgn(y_i − y_j)`` the additive numerator is
    ``Σ_{i<j} (w_i + w_j) sgn·sgn = Σ_i w_i S_i`` (u = 1) and the multiplicative one is
    ``Σ_{i<j} w_i w_j sgn·sgn = ½ Σ_i w_i S_i`` (u = w). ``S_i = 4A − L + H − 2L_y + 2E`` where
    A sums u over ``x_j < x_i, y_j < y_i``, L over ``x_j < x_i``, H over ``x_j > x_i``, ``L_y``
    over ``y_j < y_i`` and E over ``x_j = x_i, y_j < y_i`` (valid when y has no ties). All is
    computed in the order of increasing (x, y), where the x tie groups sit at fixed positions.
    """
    D, K = Y.shape
    rows = np.arange(D)[:, None]
    yorder = np.argsort(Y, axis=1)
    ys = _gather(Y, yorder)
    tied = (ys[:, 1:] == ys[:, :-1]).any(axis=1)  # not np.diff: -inf - -inf is NaN
    ry = np.empty((D, K), dtype=np.int64)
    ry[rows, yorder] = np.arange(K)
    _, xdense, xcount = np.unique(x, return_inverse=True, return_counts=True)
    xdense = xdense.reshape(-1)
    if xcount.size == K:  # no ties in x: the (x, y) order is the x order
        order = np.broadcast_to(np.argsort(x), (D, K))
    else:  # stable sort of the y order by x group (radix sort on small ints)
        gx = xdense[yorder].astype(np.uint16 if xcount.size < 2**16 else np.int64)
        order = np.take_along_axis(yorder, np.argsort(gx, axis=1, kind="stable"), axis=1)
    seq = np.take_along_axis(ry, order, axis=1)  # y-rank at each position of the (x, y) order
    gsize = np.repeat(xcount, xcount)
    gstart = np.repeat(np.cumsum(xcount) - xcount, xcount)
    pos = np.arange(K)
    w1 = np.broadcast_to(1.0 / (K - pos), (D, K))  # rank by decreasing (x, y) = K − 1 − pos
    if variant == "scipy":
        E = (pos - gstart).astype(np.float64)
        A = _left_smaller(seq, None, distinct=True) - E
        L = gstart.astype(np.float64)
        H = K - L - gsize
        S = 4 * A - L + H - 2 * seq + 2 * E
        w2 = 1.0 / (K - seq)  # rank by decreasing (y, x) = K − 1 − y-rank
        taus = [
            (w * S).sum(1) / np.sqrt((w * (K - gsize)).sum(1) * w.sum(1) * (K - 1))
            for w in (w1, w2)
        ]
        out = 0.5 * (taus[0] + taus[1])
    else:
        u = np.array(w1)
        cu = np.concatenate([np.zeros((D, 1)), np.cumsum(u, axis=1)], axis=1)
        E = cu[:, pos] - cu[:, gstart]
        A = _left_smaller(seq, u, distinct=True) - E
        L = cu[:, gstart]
        gsum = cu[:, gstart + gsize] - L
        W = cu[:, -1:]
        by_rank = np.empty((D, K))
        np.put_along_axis(by_rank, seq, u, axis=1)
        Ly = np.take_along_axis(np.cumsum(by_rank, axis=1) - by_rank, seq, axis=1)
        S = 4 * A - L + (W - L - gsum) - 2 * Ly + 2 * E
        num = (w1 * S).sum(1)
        out = num / np.sqrt((w1 * (W - gsum)).sum(1) * (w1 * (W - w1)).sum(1))
    out[tied] = np.nan
    ret: np.ndarray = out
    return ret


def _fast_tau(x: np.ndarray, Y: np.ndarray, variant: str) -> np.ndarray:
    """τ for a batch: the fast path for rows without ties, the general one for the rest."""
    out = _tau_untied(x, Y, variant)
    tied = np.flatnonzero(np.isnan(out))
    if tied.size:
        out[tied] = _tau_general(x, Y[tied], variant)
    return out


def severity(
    log_p: Any,
    log_q: Any | QDraws,
    variant: TauVariant = "scipy",
    method: str = "fast",
    chunk_size: int = 128,
) -> np.ndarray:
    """τ(p, q_d) for a batch of target priors: one value per row of ``log_q``.

    Parameters
    ----------
    log_p : the reference log prior (K values, any shape) or a ``JointPrior``
    log_q : ``(D, K)`` log priors (or ``(D, *n_classes)``), or a :class:`QDraws`
    variant : see :func:`weighted_tau`
    method : ``"fast"`` (default): a vectorised numpy computation of the same statistic,
        equal to :func:`scipy.stats.weightedtau` to ~1e-15 and about 5–10× faster at
        K = 6,400, ties and ``-inf`` (zero-probability classes) included; ``"scipy"``: one
        :func:`scipy.stats.weightedtau` call per row.
    chunk_size : rows processed at once by the fast method (bounds memory at about
        ``12 · chunk_size · K`` floats)

    Returns
    -------
    ndarray ``(D,)`` of τ values.
    """
    check_variant(variant)
    if method not in ("fast", "scipy"):
        raise ValueError(f"method must be 'fast' or 'scipy', got {method!r}")
    x = flat_log_prior(log_p, "log_p")
    lq = log_q.log_q if isinstance(log_q, QDraws) else np.asarray(log_q, dtype=np.float64)
    if lq.ndim < 1 or lq.size % x.size or lq.size == 0:
        raise ValueError(f"log_q must have shape (D, {x.size}) to match log_p, got {lq.shape}")
    lq = lq.reshape(-1, x.size)
    if np.isnan(lq).any():
        raise ValueError("log_q contains NaN")
    if method == "scipy":
        return np.array([flat_tau(x, row, variant) for row in lq], dtype=np.float64)
    if (
        isinstance(chunk_size, bool)
        or not isinstance(chunk_size, (int, np.integer))
        or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be an int >= 1, got {chunk_size!r}")
    return np.concatenate(
        [_fast_tau(x, lq[i : i + chunk_size], variant) for i in range(0, lq.shape[0], chunk_size)]
    )


__all__ = ["weighted_tau", "severity", "TAU_VARIANTS", "TauVariant"]
