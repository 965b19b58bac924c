"""Importance-sampled metrics under shifted target priors (Makino et al. 2022, §5.4).

Under target shift ``q(x, y) = p(x | y) q(y)`` the expected metric is estimated from the
test set drawn from ``p`` with self-normalised importance weights (the last line of the §5.4
derivation):

    E_q[l] ≈ Σ_n w_n l_n / Σ_m w_m,        w_n = q(y^(n)) / p(y^(n)).

**Missing labels.** When example n lacks the labels of some tasks M (its observed tasks are
O), its weight uses the marginals over the missing tasks,
``w_n = q_O(y_O^(n)) / p_O(y_O^(n))`` with ``q_O(y_O) = Σ_{y_M} q(y_O, y_M)``. The metric of
a task is averaged over the examples that have a label for that task (``valid``).

**Vectorisation.** ``w_n`` depends on example n only through its partial label pattern
(which tasks are observed and their values). :class:`LabelPatterns` groups the N examples
into G ≤ Σ_O Π_{t∈O} C_t patterns once; for D priors q and A metric columns (e.g. one per
α) the estimate is then

    est[d, a] = (W @ S)[d, a] / (W @ c)[d],    W[d, g] = q_d,O(g) / p_O(g),

with ``S[g, a] = Σ_{n∈g, valid} l_{a,n}`` and ``c[g] = #{n ∈ g, valid}``: a (D × G)·(G × A)
product, no loop over examples. Weights are formed in log space and rescaled per draw by
their maximum (which cancels in the ratio), so tiny q's do not underflow.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from .._validation import as_int, as_numpy, check_labels, check_n_classes
from .sample import QDraws


def _log_table(x: Any, n_classes: tuple[int, ...], name: str, log: bool) -> np.ndarray:
    """Flatten one prior (or a batch) to ``(D, K)`` log-probabilities."""
    K = int(np.prod(n_classes))
    if hasattr(x, "probs") and hasattr(x, "n_classes"):  # a JointPrior
        if tuple(x.n_classes) != n_classes:
            raise ValueError(
                f"{name} has n_classes {tuple(x.n_classes)} but the labels have {n_classes}"
            )
        arr, log = np.asarray(x.probs, dtype=np.float64), False
    else:
        arr = np.asarray(as_numpy(x), dtype=np.float64)
    if arr.size == 0 or arr.size % K:
        raise ValueError(
            f"{name} has {arr.size} entries (shape {arr.shape}); expected a multiple of "
            f"K = {K} joint classes for n_classes {n_classes}"
        )
    arr = arr.reshape(-1, K)
    if np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN")
    if log:
        if np.isposinf(arr).any():
            raise ValueError(f"{name} (log-probabilities) contains +inf")
        out = arr
    else:
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ValueError(f"{name} must hold finite, non-negative probabilities")
        with np.errstate(divide="ignore"):
            out = np.log(arr)
    ret: np.ndarray = out - logsumexp(out, axis=1, keepdims=True)
    return ret


def _as_log_q(q: Any, n_classes: tuple[int, ...]) -> np.ndarray:
    if isinstance(q, QDraws):
        return _log_table(q.log_q, n_classes, "q", log=True)
    return _log_table(q, n_classes, "q", log=False)


@dataclass(frozen=True)
class LabelPatterns:
    """Examples grouped by partial label pattern (the observed tasks and their values).

    Build with :meth:`from_labels`.

    Attributes
    ----------
    n_classes : classes per task
    labels : ``(G, T)`` int64, the distinct partial label vectors (``-1`` = missing)
    inverse : ``(N,)`` int64, the pattern of each example
    mask_id : ``(G,)`` int64, index into :attr:`masks` of each pattern's observation mask
    masks : ``(M, T)`` bool, the distinct observation masks
    flat_index : ``(G,)`` int64, index of the observed labels in the C-order table of the
        observed tasks' marginal
    """

    n_classes: tuple[int, ...]
    labels: np.ndarray
    inverse: np.ndarray
    mask_id: np.ndarray
    masks: np.ndarray
    flat_index: np.ndarray

    @classmethod
    def from_labels(cls, labels: Any, n_classes: Sequence[int]) -> LabelPatterns:
        """Group ``labels`` ``(N, T)`` (``-1`` = missing) by partial pattern."""
        n_classes = check_n_classes(n_classes)
        lab = check_labels(labels, n_classes)
        obs = lab >= 0
        T = len(n_classes)
        mask_code = (obs * (1 << np.arange(T, dtype=np.int64))).sum(axis=1)
        filled = np.where(obs, lab, 0)
        key = mask_code * int(np.prod(n_classes)) + np.ravel_multi_index(filled.T, n_classes)
        uniq, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        pat_labels = lab[first]
        pat_obs = obs[first]
        masks, mask_id = np.unique(pat_obs, axis=0, return_inverse=True)
        flat_index = np.zeros(len(uniq), dtype=np.int64)
        for m, mask in enumerate(masks):  # at most 2^T masks
            sel = mask_id == m
            dims = tuple(c for c, o in zip(n_classes, mask) if o)
            if dims:
                flat_index[sel] = np.ravel_multi_index(pat_labels[sel][:, mask].T, dims)
        return cls(
            n_classes=n_classes,
            labels=pat_labels,
            inverse=inverse.reshape(-1).astype(np.int64),
            mask_id=mask_id.reshape(-1).astype(np.int64),
            masks=masks.astype(bool),
            flat_index=flat_index,
        )

    @property
    def n_patterns(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_examples(self) -> int:
        return int(self.inverse.shape[0])

    def group_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum ``values`` ``(A, N)`` (or ``(N,)``) within each pattern: ``(A, G)`` (or ``(G,)``)."""
        v = np.asarray(values, dtype=np.float64)
        if v.shape[-1] != self.n_examples:
            raise ValueError(
                f"values has {v.shape[-1]} examples but the labels have {self.n_examples}"
            )
        if v.ndim == 1:
            return np.bincount(self.inverse, weights=v, minlength=self.n_patterns)
        flat = v.reshape(-1, self.n_examples)
        out = np.stack(
            [np.bincount(self.inverse, weights=r, minlength=self.n_patterns) for r in flat]
        )
        return out.reshape(*v.shape[:-1], self.n_patterns)

    def marginal_log(self, log_tables: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Marginal log-probabilities of the observed tasks of ``mask``: ``(D, K_O)``."""
        D = log_tables.shape[0]
        missing = tuple(1 + t for t, o in enumerate(mask) if not o)
        if not missing:
            return log_tables
        if len(missing) == len(self.n_classes):
            return np.zeros((D, 1))
        with np.errstate(divide="ignore"):
            marg = logsumexp(log_tables.reshape(D, *self.n_classes), axis=missing)
        ret: np.ndarray = marg.reshape(D, -1)
        return ret

    def log_weights(
        self, log_p: np.ndarray, log_q: np.ndarray, patterns: np.ndarray | None = None
    ) -> np.ndarray:
        """``log q_O(y_O) − log p_O(y_O)`` per draw and pattern, ``(D, G')``.

        ``log_p`` is ``(1, K)``, ``log_q`` is ``(D, K)`` (both normalised log tables).
        ``patterns`` restricts the output to those pattern ids (default: all).
        Raises ``ValueError`` if p gives zero probability to an observed pattern.
        """
        ids = np.arange(self.n_patterns) if patterns is None else np.asarray(patterns)
        out = np.empty((log_q.shape[0], ids.size))
        mids = self.mask_id[ids]
        for m in np.unique(mids):
            cols = np.flatnonzero(mids == m)
            fi = self.flat_index[ids[cols]]
            lp = self.marginal_log(log_p, self.masks[m])[0, fi]
            if np.isneginf(lp).any():
                g = ids[cols[np.flatnonzero(np.isneginf(lp))[0]]]
                raise ValueError(
                    f"p gives probability 0 to the observed label pattern {self.labels[g].tolist()} "
                    "(-1 = missing); importance weights q/p are undefined. Use a smoothed p "
                    "(pseudocount > 0) or the distribution the test labels were drawn from."
                )
            out[:, cols] = self.marginal_log(log_q, self.masks[m])[:, fi] - lp[None, :]
        return out


class ImportanceEstimator:
    """Self-normalised importance-sampled means of per-example metrics under many q (§5.4).

    The example grouping and per-pattern sums are computed once; :meth:`estimate` then costs
    O(D·G·A) for D priors, G patterns and A metric columns, independent of N.

    Parameters
    ----------
    labels : ``(N, T)`` int labels, ``-1`` where missing
    values : ``(A, N)`` (or ``(N,)``) per-example metric values, e.g. 0/1 correctness per α
    n_classes : classes per task
    valid : ``(N,)`` bool, the examples the metric is averaged over (default: all)

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.shift import ImportanceEstimator
    >>> labels = np.array([[0, 0], [0, 1], [1, 1], [1, -1]])
    >>> correct = np.array([[1.0, 0.0, 1.0, 1.0]])
    >>> p = np.full((2, 2), 0.25)
    >>> est = ImportanceEstimator(labels, correct, n_classes=(2, 2))
    >>> est.estimate(p, p[None])     # q = p: the plain mean
    array([[0.75]])
    """

    def __init__(
        self, labels: Any, values: Any, n_classes: Sequence[int], valid: Any | None = None
    ) -> None:
        self.patterns = LabelPatterns.from_labels(labels, n_classes)
        self.n_classes = self.patterns.n_classes
        N = self.patterns.n_examples
        v = np.asarray(as_numpy(values), dtype=np.float64)
        self._squeeze = v.ndim == 1
        v = v.reshape(1, -1) if v.ndim == 1 else v
        if v.ndim != 2 or v.shape[1] != N:
            raise ValueError(
                f"values must have shape (A, N) with N = {N} (the labels' rows), got {v.shape}"
            )
        if not np.isfinite(v).all():
            raise ValueError("values contains non-finite entries")
        if valid is None:
            ok = np.ones(N, dtype=bool)
        else:
            ok = np.asarray(as_numpy(valid), dtype=bool).reshape(-1)
            if ok.shape != (N,):
                raise ValueError(f"valid must have shape ({N},), got {ok.shape}")
        if not ok.any():
            raise ValueError("valid selects no example; the metric would be undefined")
        counts = self.patterns.group_sum(ok.astype(np.float64))
        sums = self.patterns.group_sum(np.where(ok[None, :], v, 0.0))  # (A, G)
        self._used = np.flatnonzero(counts > 0)
        self._counts = counts[self._used]
        self._sums = sums[:, self._used].T.copy()  # (G', A)
        self.n_values = v.shape[0]

    @property
    def n_patterns(self) -> int:
        """Number of label patterns among the valid examples (G')."""
        return int(self._used.size)

    def estimate(self, p: Any, q: Any, *, p_is_log: bool = False) -> np.ndarray:
        """Importance-sampled means under each q: ``(D, A)`` (``(D,)`` for 1-D ``values``).

        Parameters
        ----------
        p : the prior the test labels were drawn from: a ``JointPrior``, or probabilities of
            shape ``n_classes`` or ``(K,)`` (log-probabilities if ``p_is_log``)
        q : a :class:`QDraws`, or ``(D, K)`` / ``(D, *n_classes)`` / ``(K,)`` probabilities
        """
        log_p = _log_table(p, self.n_classes, "p", log=p_is_log)
        if log_p.shape[0] != 1:
            raise ValueError(
                f"p must be one prior of {log_p.shape[1]} joint classes, got {log_p.shape[0]}"
            )
        log_q = _as_log_q(q, self.n_classes)
        lw = self.patterns.log_weights(log_p, log_q, self._used)
        lw -= lw.max(axis=1, keepdims=True)
        w = np.exp(lw)
        den = w @ self._counts
        if (den <= 0).any() or not np.isfinite(den).all():
            d = int(np.flatnonzero(~(den > 0))[0])
            raise ValueError(f"q[{d}] gives probability 0 to every labelled example; no estimate")
        out = (w @ self._sums) / den[:, None]
        ret: np.ndarray = out[:, 0] if self._squeeze else out
        return ret


def _prediction_matrix(predictions: Any, labels: np.ndarray, task: int) -> np.ndarray:
    """Main-task predictions as ``(A, N)`` from ``(A, N, T)``, ``(N, T)`` or ``(A, N)``."""
    pred = np.asarray(as_numpy(predictions))
    N, T = labels.shape
    if pred.dtype.kind not in "iu":
        raise ValueError(f"predictions must be an integer array, got dtype {pred.dtype}")
    if pred.ndim == 3:
        if pred.shape[1:] != (N, T):
            raise ValueError(
                f"predictions has shape {pred.shape}; expected (A, N, T) = (A, {N}, {T}) to match labels"
            )
        return pred[:, :, task]
    if pred.ndim == 2 and pred.shape == (N, T) and T > 1:
        return pred[None, :, task]
    if pred.ndim == 2 and pred.shape[1] == N:
        return pred
    raise ValueError(
        f"predictions has shape {pred.shape}; expected (A, N, T), (N, T) or (A, N) main-task "
        f"predictions with N = {N}, T = {T} to match labels"
    )


def correctness(
    labels: Any, predictions: Any, n_classes: Sequence[int], task: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """0/1 correctness of the ``task`` predictions per α, and which examples have that label.

    Returns ``(correct (A, N) float64, valid (N,) bool)``.
    """
    n_classes = check_n_classes(n_classes)
    lab = check_labels(labels, n_classes)
    if not 0 <= as_int(task, "task", low=0) < len(n_classes):
        raise ValueError(f"task must be in [0, {len(n_classes)}), got {task!r}")
    pred = _prediction_matrix(predictions, lab, int(task))
    bad = (pred < 0) | (pred >= n_classes[task])
    if bad.any():
        a, n = np.argwhere(bad)[0]
        raise ValueError(
            f"predictions for task {task} hold {pred[a, n]} at (alpha {a}, row {n}); expected [0, {n_classes[task]})"
        )
    valid = lab[:, task] >= 0
    return (pred == lab[None, :, task]).astype(np.float64), valid


def importance_mean(
    values: Any, labels: Any, p: Any, q: Any, n_classes: Sequence[int], valid: Any | None = None
) -> np.ndarray:
    """One-shot :class:`ImportanceEstimator`: ``Σ w_n l_n / Σ w_n`` under each q (§5.4)."""
    return ImportanceEstimator(labels, values, n_classes, valid).estimate(p, q)


def importance_accuracy(
    labels: Any,
    predictions: Any,
    p: Any,
    q: Any,
    n_classes: Sequence[int] | None = None,
    task: int = 0,
) -> np.ndarray:
    """Importance-sampled accuracy of one task under many q and many α at once (§5.4).

    Parameters
    ----------
    labels : ``(N, T)`` int, ``-1`` where missing
    predictions : ``(A, N, T)`` predicted labels per α (or ``(N, T)``, or ``(A, N)`` for
        the ``task`` column only)
    p : prior the test labels follow (``JointPrior`` or probabilities of shape n_classes)
    q : :class:`QDraws` or ``(D, K)`` probabilities
    n_classes : classes per task (default: ``p.n_classes`` or ``p.shape``)
    task : the main task whose accuracy is estimated over the examples labelled for it

    Returns
    -------
    ndarray ``(D, A)``: accuracy under q_d of the predictions for α_a.
    """
    if n_classes is None:
        n_classes = tuple(p.n_classes) if hasattr(p, "n_classes") else np.shape(as_numpy(p))
    correct, valid = correctness(labels, predictions, n_classes, task)
    return ImportanceEstimator(labels, correct, n_classes, valid).estimate(p, q)


__all__ = [
    "LabelPatterns",
    "ImportanceEstimator",
    "correctness",
    "importance_mean",
    "importance_accuracy",
]
