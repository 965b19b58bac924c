"""Exact inference on tree-structured GMTL objectives: max-product and sum-product.

The GMTL objective with a tree prior (:mod:`causalmtl.gmtl.priors.tree`, (T1)–(T2)) is a pairwise
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
:class:`~causalmtl.gmtl.priors.tree.TreePrior`), then back down.

The same code runs on numpy arrays (single-threaded, no thread-pool barriers: the fast
choice on a small, busy CPU) and on torch tensors (on their device; there is no host copy and
no ``.item()`` in these functions), through the few backend helpers below. Both work in
float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..priors.tree import RootedTree

Array = Any  # numpy.ndarray or torch.Tensor (all inputs of one call share the type)


def _is_t(x: Array) -> bool:
    return isinstance(x, torch.Tensor)


def _exp(x: Array) -> Array:
    return torch.exp(x) if _is_t(x) else np.exp(x)


def _log(x: Array) -> Array:
    if _is_t(x):
        return torch.log(x)
    with np.errstate(divide="ignore"):
        return np.log(x)


def _swap12(x: Array) -> Array:
    return x.transpose(1, 2) if _is_t(x) else x.transpose(0, 2, 1)


def _sum1(x: Array) -> Array:
    return x.sum(dim=1, keepdim=True) if _is_t(x) else x.sum(axis=1, keepdims=True)


def _finite_max(h: Array) -> Array:
    """Max over the class axis (1), floored at -1e300 so that ``h − max`` is never NaN.

    Where every class is ``-inf`` this gives ``exp(h − max) = 0`` and a ``-inf`` result.
    """
    if _is_t(h):
        return h.amax(dim=1, keepdim=True).clamp_(min=-1e300)
    return np.maximum(h.max(axis=1, keepdims=True), -1e300)


def _where(cond: Array, a: Array, b: Array) -> Array:
    return torch.where(cond, a, b) if _is_t(cond) else np.where(cond, a, b)


def _argmax1(x: Array) -> Array:
    """Argmax over the class axis 1 of (A, C, N), lowest class on ties, by a loop over C.

    Elementwise passes over contiguous rows of examples; faster than a strided argmax.
    """
    best = x[:, 0]
    arg = torch.zeros_like(best, dtype=torch.int64) if _is_t(x) else np.zeros(best.shape, dtype=np.int64)
    for b in range(1, x.shape[1]):
        v = x[:, b]
        better = v > best
        best = _where(better, v, best)
        arg[better] = b
    return arg


def _select1(table: Array, index: Array) -> Array:
    """``table[a, index[a, n], n]`` for a table (A, C, N) and an index (A, N)."""
    out = table[:, 0]
    for a in range(1, table.shape[1]):
        out = _where(index == a, table[:, a], out)
    return out


def _lse_matmul(h: Array, exp_w: Array) -> Array:
    """``log Σ_a exp(W[b, a] + h[a, :])`` as ``log(exp(W) @ exp(h − max)) + max``.

    ``h``: (A, Ca, N); ``exp_w``: (A, Cb, Ca). Returns (A, Cb, N).
    """
    mx = _finite_max(h)
    return _log(exp_w @ _exp(h - mx)) + mx


def _oriented(edge_pot: Sequence[Array], rooted: RootedTree, edges: Sequence[tuple[int, int]], t: int) -> Array:
    """Potential of the edge (parent(t), t) as (A, C_parent, C_t)."""
    e = rooted.parent_edge[t]
    w = edge_pot[e]
    return w if edges[e][1] == t else _swap12(w)


def max_product(
    unary: Sequence[Array],
    edge_pot: Sequence[Array],
    rooted: RootedTree,
    edges: Sequence[tuple[int, int]],
) -> Array:
    """Exact ``argmax_y Σ_t φ_t(y_t) + Σ_e ψ_e(y_s, y_t)`` by max-product with backtracking.

    Parameters
    ----------
    unary : T tensors (A, C_t, N)
    edge_pot : one tensor (A, C_s, C_t) per edge ``(s, t)`` of ``edges`` (s < t)
    rooted, edges : the forest (:class:`~causalmtl.gmtl.priors.tree.TreePrior` internals)

    Returns
    -------
    labels : int64 (A, T, N)
    """
    T = len(unary)
    h = list(unary)
    back: list[Array | None] = [None] * T
    for t in reversed(rooted.order):
        s = rooted.parent[t]
        if s < 0:
            continue
        w = _oriented(edge_pot, rooted, edges, t)  # (A, C_s, C_t)
        ht = h[t]  # (A, C_t, N)
        # m[a, y_s, n] = max_{y_t} h_t[a, y_t, n] + w[a, y_s, y_t]: a running max over y_t
        best = ht[:, None, 0, :] + w[:, :, 0, None]  # (A, C_s, N)
        arg = torch.zeros_like(best, dtype=torch.int64) if _is_t(best) else np.zeros(best.shape, dtype=np.int64)
        for b in range(1, ht.shape[1]):
            v = ht[:, None, b, :] + w[:, :, b, None]
            better = v > best  # strict: the lowest y_t wins ties
            best = _where(better, v, best)
            arg[better] = b
        back[t] = arg
        h[s] = h[s] + best
    a, _, n = unary[0].shape
    labels: Array
    if _is_t(unary[0]):
        labels = torch.empty((a, T, n), dtype=torch.int64, device=unary[0].device)
    else:
        labels = np.empty((a, T, n), dtype=np.int64)
    for t in rooted.order:
        s = rooted.parent[t]
        labels[:, t] = _argmax1(h[t]) if s < 0 else _select1(back[t], labels[:, s])
    return labels


def sum_product(
    unary: Sequence[Array],
    edge_pot: Sequence[Array],
    rooted: RootedTree,
    edges: Sequence[tuple[int, int]],
    normalize: bool = True,
) -> list[Array]:
    """Exact log-marginals ``log r(y_t|x)`` of ``r(y|x) ∝ exp(Σ_t φ_t + Σ_e ψ_e)``.

    Same arguments as :func:`max_product`. Returns T tensors (A, C_t, N), each normalised
    over the class axis (with ``normalize=False``: the unnormalised log-beliefs, enough
    for their argmax). The message excluding a child is built from prefix and suffix sums of
    the children's messages (no subtraction, so ``-inf`` potentials are safe).
    """
    T = len(unary)
    exp_w = [_exp(w) for w in edge_pot]
    up: list[Array | None] = [None] * T  # message t -> parent(t), (A, C_parent, N)
    inc = list(unary)  # unary + messages from children
    for t in reversed(rooted.order):
        s = rooted.parent[t]
        if s < 0:
            continue
        e = rooted.parent_edge[t]
        ew = exp_w[e] if edges[e][1] == t else _swap12(exp_w[e])  # (A, C_s, C_t)
        up[t] = _lse_matmul(inc[t], ew)
        inc[s] = inc[s] + up[t]
    down: list[Array | None] = [None] * T  # message parent(t) -> t, (A, C_t, N)
    out: list[Array] = [unary[0]] * T
    for s in rooted.order:
        belief = inc[s] if down[s] is None else inc[s] + down[s]
        if normalize:
            mx = _finite_max(belief)
            belief = belief - (_log(_sum1(_exp(belief - mx))) + mx)
        out[s] = belief
        kids = rooted.children[s]
        if not kids:
            continue
        base = unary[s] if down[s] is None else unary[s] + down[s]
        suffix: list[Array | None] = [None] * (len(kids) + 1)
        for i in range(len(kids) - 1, -1, -1):
            msg, later = up[kids[i]], suffix[i + 1]
            suffix[i] = msg if later is None else later + msg
        prefix = base
        for i, c in enumerate(kids):
            cavity = prefix if suffix[i + 1] is None else prefix + suffix[i + 1]
            e = rooted.parent_edge[c]
            ew = exp_w[e] if edges[e][1] == c else _swap12(exp_w[e])  # (A, C_s, C_c)
            down[c] = _lse_matmul(cavity, _swap12(ew))
            prefix = prefix + up[c]
    return out


def decode_tree(
    values: list[Array],
    n_classes: tuple[int, ...],
    rooted: RootedTree,
    edges: Sequence[tuple[int, int]],
    node: list[Array],
    edge: list[Array],
    mode: str,
    want_marginals: bool,
    memory_mb: float,
) -> tuple[Array, list[Array] | None]:
    """The tree kernel: chunks of rows through :func:`max_product` / :func:`sum_product`.

    ``values``: T score arrays (N, C_t), all numpy or all torch (on one device); ``node``
    (A, C_t) and ``edge`` (A, C_s, C_t): the prior term of
    :meth:`causalmtl.gmtl.decoding.objective.Objective.tree_terms`. ``mode="joint"``: exact argmax;
    ``"marginal"``: argmax of each task's marginal of ``r ∝ exp F``. Returns labels int64
    (A, N, T) and, when ``want_marginals``, the normalised log-marginals (A, N, C_t).
    """
    tch = _is_t(values[0])
    if tch:
        device = values[0].device
        node = [torch.as_tensor(x, dtype=torch.float64, device=device) for x in node]
        edge = [torch.as_tensor(x, dtype=torch.float64, device=device) for x in edge]
    else:
        node = [np.ascontiguousarray(x, dtype=np.float64) for x in node]
        edge = [np.ascontiguousarray(x, dtype=np.float64) for x in edge]
    A, T, n = node[0].shape[0], len(n_classes), values[0].shape[0]
    sum_c = sum(n_classes)
    max_pair = max((n_classes[s] * n_classes[t] for s, t in edges), default=1)
    bytes_per_row = A * 8 * (6 * sum_c + 2 * max_pair)
    chunk = max(1, int(memory_mb * 2**20 // bytes_per_row))
    if tch:
        labels: Any = torch.empty((A, T, n), dtype=torch.int64, device=device)
        margs: Any = (
            [torch.empty((A, c, n), dtype=torch.float64, device=device) for c in n_classes]
            if want_marginals
            else None
        )
        stack: Any = torch.stack
        cols = [x.T.contiguous() for x in values]
    else:
        labels = np.empty((A, T, n), dtype=np.int64)
        margs = [np.empty((A, c, n)) for c in n_classes] if want_marginals else None
        stack = np.stack
        cols = [np.ascontiguousarray(x.T) for x in values]  # (C_t, N): rows of examples
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        # class-major unary terms (A, C_t, n): log p(y_t|x) + node term
        unary = [x[None, :, start:stop] + nt[:, :, None] for x, nt in zip(cols, node)]
        if mode == "joint":
            labels[:, :, start:stop] = max_product(unary, edge, rooted, edges)
        if mode == "joint" and not want_marginals:
            continue
        marg = sum_product(unary, edge, rooted, edges, normalize=want_marginals)
        if mode == "marginal":
            labels[:, :, start:stop] = stack([_argmax1(m) for m in marg], 1)
        if margs is not None:
            for t in range(T):
                margs[t][:, :, start:stop] = marg[t]
    # back to example-major (A, N, T) and (A, N, C_t)
    labels = _swap12(labels)
    if margs is not None:
        margs = [_swap12(m) for m in margs]
    return labels, margs


__all__ = ["decode_tree", "max_product", "sum_product"]
