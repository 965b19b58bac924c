"""Exact inference on tree-structured GMTL objectives: max-product and sum-product.

The GMTL objective with a tree prior (:mod:`causalmtl.gmtl.tree`, (T1)–(T2)) is a pairwise
score on a tree (or forest):

    F(y) = Σ_t φ_t(y_t) + Σ_{(s,t)∈E} ψ_st(y_s, y_t),

with unary ``φ_t = log p(y_t|x) + node term`` (one per example) and pairwise ``ψ_st`` (the same
for every example). Max-product (Viterbi on a tree) with backtracking returns
``argmax_y F(y)`` exactly; sum-product returns the marginals of ``r(y|x) ∝ exp F(y)``. Both
cost ``O(N · Σ_edges C_s C_t)`` and are vectorised over examples and over a batch of A
objectives (α values). Tensors are class-major, ``(A, C_t, N)`` for unary terms and messages
and ``(A, C_s, C_t)`` for edges, so every operation runs over long contiguous rows of
examples. Messages are passed
from the leaves to the root of each component (the rooting of
:class:`~causalmtl.gmtl.tree.TreePrior`), then back down.

Everything runs in PyTorch on the device of the inputs (float64); there is no host copy and
no ``.item()`` in these functions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .tree import _Rooted


def _finite_max(h: torch.Tensor) -> torch.Tensor:
    """Max over the class axis (1), floored at -1e300 so that ``h − max`` is never NaN.

    Where every class is ``-inf`` this gives ``exp(h − max) = 0`` and a ``-inf`` result.
    """
    return h.amax(dim=1, keepdim=True).clamp_(min=-1e300)


def _lse_matmul(h: torch.Tensor, exp_w: torch.Tensor) -> torch.Tensor:
    """``log Σ_a exp(W[b, a] + h[a, :])`` as ``log(exp(W) @ exp(h − max)) + max``.

    ``h``: (A, Ca, N); ``exp_w``: (A, Cb, Ca). Returns (A, Cb, N).
    """
    mx = _finite_max(h)
    return torch.log(torch.matmul(exp_w, torch.exp(h - mx))) + mx


def _oriented(edge_pot: Sequence[torch.Tensor], rooted: _Rooted, edges: Sequence[tuple[int, int]], t: int) -> torch.Tensor:
    """Potential of the edge (parent(t), t) as (A, C_parent, C_t)."""
    e = rooted.parent_edge[t]
    w = edge_pot[e]
    return w if edges[e][1] == t else w.transpose(1, 2)


def max_product(
    unary: Sequence[torch.Tensor],
    edge_pot: Sequence[torch.Tensor],
    rooted: _Rooted,
    edges: Sequence[tuple[int, int]],
) -> torch.Tensor:
    """Exact ``argmax_y Σ_t φ_t(y_t) + Σ_e ψ_e(y_s, y_t)`` by max-product with backtracking.

    Parameters
    ----------
    unary : T tensors (A, C_t, N)
    edge_pot : one tensor (A, C_s, C_t) per edge ``(s, t)`` of ``edges`` (s < t)
    rooted, edges : the forest (:class:`~causalmtl.gmtl.tree.TreePrior` internals)

    Returns
    -------
    labels : int64 (A, T, N)
    """
    T = len(unary)
    h = list(unary)
    back: list[torch.Tensor | None] = [None] * T
    for t in reversed(rooted.order):
        s = rooted.parent[t]
        if s < 0:
            continue
        w = _oriented(edge_pot, rooted, edges, t)
        cand = h[t].unsqueeze(1) + w.unsqueeze(3)  # (A, C_s, C_t, N)
        m, back[t] = cand.max(dim=2)
        h[s] = h[s] + m
    a, _, n = unary[0].shape
    labels = torch.empty((a, T, n), dtype=torch.int64, device=unary[0].device)
    for t in rooted.order:
        s = rooted.parent[t]
        if s < 0:
            labels[:, t] = h[t].argmax(dim=1)
        else:
            labels[:, t] = back[t].gather(1, labels[:, s : s + 1]).squeeze(1)  # type: ignore[union-attr]
    return labels


def sum_product(
    unary: Sequence[torch.Tensor],
    edge_pot: Sequence[torch.Tensor],
    rooted: _Rooted,
    edges: Sequence[tuple[int, int]],
    normalize: bool = True,
) -> list[torch.Tensor]:
    """Exact log-marginals ``log r(y_t|x)`` of ``r(y|x) ∝ exp(Σ_t φ_t + Σ_e ψ_e)``.

    Same arguments as :func:`max_product`. Returns T tensors (A, C_t, N), each normalised
    over the class axis (with ``normalize=False``: the unnormalised log-beliefs, enough
    for their argmax). The message excluding a child is built from prefix and suffix sums of
    the children's messages (no subtraction, so ``-inf`` potentials are safe).
    """
    T = len(unary)
    exp_w = [torch.exp(w) for w in edge_pot]
    up: list[torch.Tensor | None] = [None] * T  # message t -> parent(t), (A, C_parent, N)
    inc = list(unary)  # unary + messages from children
    for t in reversed(rooted.order):
        s = rooted.parent[t]
        if s < 0:
            continue
        e = rooted.parent_edge[t]
        ew = exp_w[e] if edges[e][1] == t else exp_w[e].transpose(1, 2)  # (A, C_s, C_t)
        up[t] = _lse_matmul(inc[t], ew)
        inc[s] = inc[s] + up[t]
    down: list[torch.Tensor | None] = [None] * T  # message parent(t) -> t, (A, C_t, N)
    out: list[torch.Tensor] = [unary[0]] * T
    for s in rooted.order:
        belief = inc[s] if down[s] is None else inc[s] + down[s]
        if normalize:
            mx = _finite_max(belief)
            belief = belief - (torch.log(torch.exp(belief - mx).sum(dim=1, keepdim=True)) + mx)
        out[s] = belief
        kids = rooted.children[s]
        if not kids:
            continue
        base = unary[s] if down[s] is None else unary[s] + down[s]
        suffix: list[torch.Tensor | None] = [None] * (len(kids) + 1)
        for i in range(len(kids) - 1, -1, -1):
            msg = up[kids[i]]
            suffix[i] = msg if suffix[i + 1] is None else suffix[i + 1] + msg  # type: ignore[operator]
        prefix = base
        for i, c in enumerate(kids):
            cavity = prefix if suffix[i + 1] is None else prefix + suffix[i + 1]
            e = rooted.parent_edge[c]
            ew = exp_w[e] if edges[e][1] == c else exp_w[e].transpose(1, 2)  # (A, C_s, C_c)
            down[c] = _lse_matmul(cavity, ew.transpose(1, 2))
            prefix = prefix + up[c]  # type: ignore[operator]
    return out


__all__ = ["max_product", "sum_product"]
