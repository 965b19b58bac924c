"""Full-table GMTL decoding with torch (tensors on any device): joint argmax and marginals.

The torch twin of :mod:`causalmtl.gmtl.decoding.table_np`: the objective ``F(y) = Σ_t log p(y_t|x) +
D_a(y)`` for every joint class, with the prior term ``D_a`` (one row per α, Eq. 6 / (S1) /
§3.1) built by :meth:`causalmtl.gmtl.decoding.objective.Objective.table_terms`. Joint decoding is the
exhaustive chunked argmax (ties to the lowest C-order index); marginals are exact sums over
the table. Rows are processed in chunks so that at most ``memory_mb`` of scores exist at once
(marginals: at most 4 × :data:`CACHE_CHUNK_MB`, which keeps rows in cache). No host syncs in
the loops.
"""

from __future__ import annotations

import numpy as np
import torch

#: Working-memory unit (MB) of the cache-friendly chunks of the marginals.
CACHE_CHUNK_MB = 8.0


def _joint_base(values: list[torch.Tensor] | torch.Tensor, is_joint: bool, start: int, stop: int) -> torch.Tensor:
    """``Σ_t log p(y_t|x)`` over the product space for rows start:stop, (n, K) in C-order."""
    if isinstance(values, torch.Tensor):  # one joint array (is_joint)
        part = values[start:stop]
        return part.reshape(part.shape[0], -1)
    base = values[0][start:stop]
    for x in values[1:]:
        base = (base[:, :, None] + x[start:stop][:, None, :]).reshape(base.shape[0], -1)
    return base


def _unravel(flat: torch.Tensor, n_classes: tuple[int, ...]) -> torch.Tensor:
    out = []
    for c in reversed(n_classes):
        out.append(flat % c)
        flat = torch.div(flat, c, rounding_mode="floor")
    return torch.stack(out[::-1], dim=-1)


def table_joint_torch(
    values: list[torch.Tensor] | torch.Tensor,
    is_joint: bool,
    n_classes: tuple[int, ...],
    directions: torch.Tensor,
    memory_mb: float,
) -> torch.Tensor:
    """``argmax_y Σ_t log p(y_t|x) + D_a(y)`` for each row of ``directions`` (A, K).

    Returns int64 labels (A, N, T) on the inputs' device.
    """
    A, K = directions.shape
    first = values if isinstance(values, torch.Tensor) else values[0]  # joint array or T arrays
    n, device = first.shape[0], first.device
    labels = torch.empty((A, n, len(n_classes)), dtype=torch.int64, device=device)
    # chunks of memory_mb: few, large tensor ops (each torch op has a fixed cost, large on a
    # busy CPU; the CPU default is the numpy kernel anyway)
    chunk = max(1, int(memory_mb * 2**20 // (K * 8 * (2 if is_joint else 3))))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        base = _joint_base(values, is_joint, start, stop)
        buf = torch.empty_like(base)
        for a in range(A):
            s = torch.add(base, directions[a], out=buf)
            labels[a, start:stop] = _unravel(s.argmax(dim=1), n_classes)
        del base, buf, s  # free this chunk before the next one is built (peak: one chunk)
    return labels


def table_scores_torch(
    values: list[torch.Tensor] | torch.Tensor, is_joint: bool, directions: torch.Tensor
) -> torch.Tensor:
    """The objective ``Σ_t log p(y_t|x) + D_a(y)`` for every joint class, (A, N, K)."""
    first = values if isinstance(values, torch.Tensor) else values[0]  # joint array or T arrays
    return _joint_base(values, is_joint, 0, first.shape[0])[None] + directions[:, None, :]


def table_marginals_torch(
    values: list[torch.Tensor] | torch.Tensor,
    is_joint: bool,
    n_classes: tuple[int, ...],
    directions: torch.Tensor,
    memory_mb: float,
) -> list[torch.Tensor]:
    """Exact per-task log-marginals of ``r(y|x) ∝ exp F(y)`` by summing the table, (A, N, C_t)."""
    T = len(n_classes)
    A, K = directions.shape
    first = values if isinstance(values, torch.Tensor) else values[0]  # joint array or T arrays
    n, device = first.shape[0], first.device
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
        base = _joint_base(values, is_joint, start, stop)
        for a in range(A):
            s = base + directions[a]
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
        del base  # free this chunk before the next one is built
    return out


__all__ = ["table_joint_torch", "table_marginals_torch", "table_scores_torch", "CACHE_CHUNK_MB"]
