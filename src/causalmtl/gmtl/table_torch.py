"""Full-table GMTL decoding with torch (tensors on any device): joint argmax and marginals.

The torch twin of :mod:`causalmtl.gmtl.table_np`, used by
:func:`causalmtl.gmtl.decode_structured` for accelerator tensors, ``backend="torch"`` and one
joint score array. Joint decoding goes through :func:`causalmtl.gmtl.decode` (the exhaustive
chunked argmax of Eq. 6 / §3.1); the split (S1) is Eq. 6 with ``α = α_d`` after shifting each
task's scores by ``−(α_m − α_d) log p(y_t)``. Marginals are exact sums over the table.
"""

from __future__ import annotations

import numpy as np
import torch

from .prior import JointPrior

#: Working-memory bound (MB) of one chunk of full-table scores (cache-friendly).
CACHE_CHUNK_MB = 8.0


def _safe_log(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def _task_log_marginal_sum(n_classes: tuple[int, ...], prior: JointPrior, device: torch.device) -> torch.Tensor:
    """``Σ_t log p(y_t)`` over the product space, flattened (K,)."""
    T = len(n_classes)
    out = torch.zeros(n_classes, dtype=torch.float64, device=device)
    for t in range(T):
        shape = [1] * T
        shape[t] = n_classes[t]
        out = out + torch.as_tensor(_safe_log(prior.marginal(t)), device=device).reshape(shape)
    return out.reshape(-1)


def _table_directions(
    prior: JointPrior, am: np.ndarray, ad: np.ndarray, q: JointPrior | None, device: torch.device
) -> torch.Tensor:
    """The prior part of (S1) (or of F_q) for every joint class, (A, K)."""
    logp = torch.as_tensor(_safe_log(prior.probs).reshape(-1), device=device)
    if q is not None:
        return (-logp + torch.as_tensor(_safe_log(q.probs).reshape(-1), device=device))[None]
    marg = _task_log_marginal_sum(prior.n_classes, prior, device)
    a_m = torch.as_tensor(am, device=device)[:, None]
    a_d = torch.as_tensor(ad, device=device)[:, None]
    return -a_d * logp[None] - (a_m - a_d) * marg[None]


def table_marginals_torch(
    inputs: list[torch.Tensor] | torch.Tensor,
    is_joint: bool,
    prior: JointPrior,
    am: np.ndarray,
    ad: np.ndarray,
    q: JointPrior | None,
    memory_mb: float,
    device: torch.device,
    n: int,
) -> list[torch.Tensor]:
    """Exact per-task log-marginals of r(y|x) ∝ exp F(y) by summing the table, (A, N, C_t)."""
    n_classes = prior.n_classes
    T, K = len(n_classes), prior.size
    direction = _table_directions(prior, am, ad, q, device)
    A = direction.shape[0]
    out = [torch.empty((A, n, c), dtype=torch.float64, device=device) for c in n_classes]
    offsets = np.concatenate([[0], np.cumsum(n_classes)])
    # Indicator (K, ΣC): one matrix product gives every task's sums in one pass over the
    # table (when it is small enough); otherwise sum a view per task.
    indicator = None
    if K * int(offsets[-1]) * 8 <= 64 * 2**20:
        idx = torch.arange(K, device=device)
        indicator = torch.zeros((K, int(offsets[-1])), dtype=torch.float64, device=device)
        for t in range(T - 1, -1, -1):
            indicator[torch.arange(K, device=device), int(offsets[t]) + idx % n_classes[t]] = 1.0
            idx = torch.div(idx, n_classes[t], rounding_mode="floor")
    # Small chunks keep the table rows in cache (much faster than one large chunk).
    chunk = max(1, int(min(memory_mb, 4 * CACHE_CHUNK_MB) * 2**20 // (K * 8 * 3)))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        if is_joint:
            base = inputs[start:stop].reshape(stop - start, K)  # type: ignore[index]
        else:
            base = inputs[0][start:stop]  # type: ignore[index]
            for x in inputs[1:]:  # type: ignore[index]
                base = (base[:, :, None] + x[start:stop][:, None, :]).reshape(stop - start, -1)
        for a in range(A):
            s = base + direction[a]
            mx = s.amax(dim=1, keepdim=True).clamp_(min=-1e300)
            e = torch.exp_(s.sub_(mx))
            total = torch.log(e.sum(dim=1, keepdim=True))
            if indicator is not None:
                sums = e @ indicator
                for t in range(T):
                    out[t][a, start:stop] = torch.log(sums[:, offsets[t] : offsets[t + 1]]) - total
            else:
                view = e.reshape(stop - start, *n_classes)
                for t in range(T):
                    m = view.sum(dim=tuple(d + 1 for d in range(T) if d != t))
                    out[t][a, start:stop] = torch.log(m) - total
    return out


def table_joint_torch(
    inputs: list[torch.Tensor] | torch.Tensor,
    is_joint: bool,
    prior: JointPrior,
    am: np.ndarray,
    ad: np.ndarray,
    q: JointPrior | None,
    memory_mb: float,
    device: torch.device,
    n: int,
) -> torch.Tensor:
    """Joint argmax on the full table through :func:`causalmtl.gmtl.decode`.

    (S1) equals Eq. 6 with ``α = α_d`` after adding ``−(α_m − α_d) log p(y_t)`` to each task's
    scores, so each distinct ``α_m − α_d`` is one call of the exhaustive decoder; when
    ``α_m = α_d`` the shift is exactly zero and the call is the single-α decode itself.
    """
    from .decode import decode

    # Chunks of a few MB keep the score rows in cache: ~3-4x faster than one 256 MB chunk
    # for T = 16 binary tasks on a 2-core machine (benchmarks/bench_tree.py).
    memory_mb = min(memory_mb, CACHE_CHUNK_MB)
    if q is not None:
        return decode(inputs, prior, target_prior=q, normalized=False, memory_mb=memory_mb).reshape(
            1, n, prior.n_tasks
        )
    labels = torch.empty((len(am), n, prior.n_tasks), dtype=torch.int64, device=device)
    diffs = am - ad
    for d in np.unique(diffs):
        idx = np.flatnonzero(diffs == d)
        if d == 0:
            shifted = inputs
        else:
            log_m = [torch.as_tensor(_safe_log(prior.marginal(t)), device=device) for t in range(prior.n_tasks)]
            if is_joint:
                shifted = inputs - float(d) * _task_log_marginal_sum(prior.n_classes, prior, device).reshape(
                    1, *prior.n_classes
                )
            else:
                shifted = [x - float(d) * lm for x, lm in zip(inputs, log_m)]  # type: ignore[union-attr]
        labels[idx] = decode(shifted, prior, alpha=[float(a) for a in ad[idx]], normalized=False, memory_mb=memory_mb)
    return labels


__all__ = ["table_joint_torch", "table_marginals_torch", "CACHE_CHUNK_MB"]
