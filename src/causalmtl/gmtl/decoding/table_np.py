"""Full-table GMTL decoding on the CPU with numpy: exhaustive argmax and exact marginals.

For per-task scores the objective over the product space is
``F(y) = Σ_t log p(y_t|x) + D(y)`` with ``D`` the prior part (α-scaled ``−log p``, the split
(S1), or ``−log p + log q``; built by :meth:`causalmtl.gmtl.decoding.objective.Objective.table_terms`). The tasks are split in two
halves ``y = (u, v)``; per example ``F = A(u) + B(v) + D(u, v)`` with ``A``, ``B`` the outer sums
of each half's scores, so a chunk of rows costs three passes over ``n · K`` numbers (write,
add, argmax/exp), in chunks of a few MB that stay in cache. numpy is single-threaded: no
thread-pool barriers on a small, busy CPU.

Ties go to the lowest joint index (C-order), as in :func:`causalmtl.gmtl.gmtl_decode`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Working memory (MB) of one chunk of scores.
CHUNK_MB = 8.0


def _outer_sum(parts: Sequence[np.ndarray], n: int) -> np.ndarray:
    """Σ_t x_t(y_t) over the product of the parts' classes, (n, Π C_t) in C-order; (n, 1)
    zeros for no parts (the second half of a one-task table)."""
    base = np.zeros((n, 1))
    for x in parts:
        base = (base[:, :, None] + x[:, None, :]).reshape(n, -1)
    return base


def _split(n_classes: Sequence[int]) -> int:
    """Index splitting the tasks into two halves of about equal table size."""
    logs = np.cumsum(np.log(np.asarray(n_classes, dtype=np.float64)))
    return int(np.argmin(np.abs(logs - logs[-1] / 2))) + 1 if len(n_classes) > 1 else 1


def _scores(
    log_probs: list[np.ndarray] | np.ndarray, start: int, stop: int, cut: int, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray | None]:
    """(A(u) or the joint scores (n, K1, K2), B(v) or None) for rows start:stop."""
    if isinstance(log_probs, np.ndarray):
        return log_probs[start:stop].reshape(stop - start, *shape), None
    a = _outer_sum([x[start:stop] for x in log_probs[:cut]], stop - start)
    b = _outer_sum([x[start:stop] for x in log_probs[cut:]], stop - start)
    return a[:, :, None], b[:, None, :]


def table_joint(
    log_probs: list[np.ndarray] | np.ndarray,
    n_classes: tuple[int, ...],
    directions: np.ndarray,
    memory_mb: float = CHUNK_MB,
) -> np.ndarray:
    """``argmax_y Σ_t log p(y_t|x) + D_a(y)`` for each row of ``directions`` (A, K).

    ``log_probs``: T arrays (N, C_t), or one joint array (N, C_1, …, C_T). Returns int64
    labels (A, N, T).
    """
    K = int(np.prod(n_classes))
    cut = _split(n_classes)
    shape = (int(np.prod(n_classes[:cut])), int(np.prod(n_classes[cut:])))
    n = log_probs.shape[0] if isinstance(log_probs, np.ndarray) else log_probs[0].shape[0]
    A = directions.shape[0]
    flat = np.empty((A, n), dtype=np.int64)
    d = directions.reshape(A, *shape)
    rows = max(1, int(min(memory_mb, CHUNK_MB) * 2**20 // (K * 8)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        first, second = _scores(log_probs, start, stop, cut, shape)
        buf = np.empty((stop - start, *shape))
        for a in range(A):
            np.add(first, d[a][None], out=buf)
            if second is not None:
                buf += second
            flat[a, start:stop] = buf.reshape(stop - start, K).argmax(axis=1)
    return np.stack(np.unravel_index(flat, n_classes), axis=-1).astype(np.int64)


def table_marginals(
    log_probs: list[np.ndarray] | np.ndarray,
    n_classes: tuple[int, ...],
    directions: np.ndarray,
    memory_mb: float = CHUNK_MB,
) -> list[np.ndarray]:
    """Per-task log-marginals of ``r(y|x) ∝ exp(Σ_t log p(y_t|x) + D_a(y))``, (A, N, C_t) each.

    Exact sums over the table: ``e = exp(F − max F)`` per row, then the row sums over each
    half give the marginal tables of the two halves, whose per-task sums are the marginals.
    """
    K = int(np.prod(n_classes))
    T = len(n_classes)
    cut = _split(n_classes)
    shape = (int(np.prod(n_classes[:cut])), int(np.prod(n_classes[cut:])))
    n = log_probs.shape[0] if isinstance(log_probs, np.ndarray) else log_probs[0].shape[0]
    A = directions.shape[0]
    out = [np.empty((A, n, c)) for c in n_classes]
    d = directions.reshape(A, *shape)
    rows = max(1, int(min(memory_mb, CHUNK_MB) * 2**20 // (K * 8)))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        m = stop - start
        first, second = _scores(log_probs, start, stop, cut, shape)
        buf = np.empty((m, *shape))
        for a in range(A):
            np.add(first, d[a][None], out=buf)
            if second is not None:
                buf += second
            mx = np.maximum(buf.reshape(m, K).max(axis=1), -1e300)
            buf -= mx[:, None, None]
            np.exp(buf, out=buf)
            halves = (buf.sum(axis=2), buf.sum(axis=1))  # (m, K1), (m, K2)
            total = halves[0].sum(axis=1, keepdims=True)
            with np.errstate(divide="ignore"):
                for t in range(T):
                    h, tasks = (halves[0], n_classes[:cut]) if t < cut else (halves[1], n_classes[cut:])
                    local = t if t < cut else t - cut
                    view = h.reshape(m, *tasks)
                    axes = tuple(i + 1 for i in range(len(tasks)) if i != local)
                    marg = view.sum(axis=axes) if axes else view
                    out[t][a, start:stop] = np.log(marg / total)
    return out


def table_scores(log_probs: list[np.ndarray] | np.ndarray, directions: np.ndarray) -> np.ndarray:
    """The objective ``Σ_t log p(y_t|x) + D_a(y)`` for every joint class, (A, N, K)."""
    if isinstance(log_probs, np.ndarray):
        base = log_probs.reshape(log_probs.shape[0], -1)
    else:
        base = log_probs[0]
        for x in log_probs[1:]:
            base = (base[:, :, None] + x[:, None, :]).reshape(base.shape[0], -1)
    ret: np.ndarray = base[None] + directions[:, None, :]
    return ret


__all__ = ["table_joint", "table_marginals", "table_scores"]
