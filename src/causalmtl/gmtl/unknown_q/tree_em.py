"""Structured EM: estimate a *tree-structured* test prior q from unlabeled data.

With many tasks a full joint q̂ has too many cells to estimate from a few thousand unlabeled
examples. Restricting q to the tree family of :class:`~causalmtl.gmtl.priors.tree.TreePrior`
(fixed edges E, usually the Chow–Liu tree of the training prior),

    q(y) = Π_{(s,t)∈E} q(y_s, y_t) / Π_s q(y_s)^(deg_s − 1),

EM (Saerens et al. 2002, Eqs. 2.9–2.10, with the M-step of an exponential family) becomes

    E-step   r_i(y) ∝ q(y) L(y; x_i)                      (over the full joint)
    M-step   m(y) = (Σ_i r_i(y) + λ p(y)) / (N + λ)
             q    ← the tree projection of m: its edge marginals m(y_s, y_t), (s, t) ∈ E.

The projection maximises ``Σ_y m(y) log q(y)`` over tree distributions on E (moment
matching of the edge and node marginals), so each step increases the penalised
log-likelihood ``F(q) = Σ_i log Σ_y q(y) L(y; x_i) + λ Σ_y p(y) log q(y)``, exactly as in
:func:`~causalmtl.gmtl.unknown_q.em.estimate_prior_em` (whose conventions it shares: convergence on
``|ΔF| / N < tol``, a warning naming the last change at the iteration limit, divergence
detected and reported). The E-step enumerates the full joint, so this needs
``K = Π_t C_t`` small enough for an ``N × K`` float64 matrix (e.g. T = 14 binary tasks,
K = 16,384); no extrapolation is used (it would leave the tree family).
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from ..._validation import as_float, as_int, check_device
from ..priors.prior import as_any_prior
from ..priors.tree import TreePrior
from .em import (
    EMConvergenceWarning,
    as_log_likelihood,
    map_objective,
    normalised_likelihood,
    resolve_smoothing,
)

logger = logging.getLogger(__name__)

__all__ = ["TreeEMResult", "estimate_tree_prior_em", "edge_l1"]


@dataclass(frozen=True)
class TreeEMResult:
    """The outcome of :func:`estimate_tree_prior_em` (fields as :class:`~causalmtl.gmtl.unknown_q.em.EMResult`)."""

    q: TreePrior
    objective: float
    history: np.ndarray
    n_iter: int
    converged: bool
    diverged: bool
    smoothing: float
    n_examples: int


def _project(m: np.ndarray, edges: tuple[tuple[int, int], ...], n_classes: tuple[int, ...]) -> TreePrior:
    m = m.reshape(n_classes)
    T = len(n_classes)
    pairs = [m.sum(axis=tuple(a for a in range(T) if a not in (s, t))) for s, t in edges]
    nodes = [m.sum(axis=tuple(a for a in range(T) if a != t)) for t in range(T)]
    return TreePrior.from_marginals(n_classes, edges, pairs, node_probs=nodes, atol=1e-8)


def estimate_tree_prior_em(
    log_lik: Any,
    init: TreePrior,
    *,
    smoothing: float | Literal["auto"] = "auto",
    max_iter: int = 500,
    tol: float = 1e-8,
    device: str | torch.device = "cpu",
    memory_mb: float = 2048.0,
) -> TreeEMResult:
    """Estimate a tree-structured test prior by EM whose M-step refits the edge marginals.

    Parameters
    ----------
    log_lik : array ``(N, K)`` or ``(N, *n_classes)``
        Label-shift-invariant log-likelihoods (as for :func:`~causalmtl.gmtl.unknown_q.em.estimate_prior_em`).
    init : TreePrior
        The training prior p: the start, the smoothing prior, and the edges E kept fixed.
    smoothing : float ≥ 0 or ``"auto"``
        λ of the MAP M-step. ``"auto"``: one pseudo-observation per edge-table cell,
        ``λ = Σ_{(s,t)∈E} C_s C_t`` (the tree's parameters, not the K joint cells).
    max_iter, tol, device, memory_mb
        As in :func:`~causalmtl.gmtl.unknown_q.em.estimate_prior_em`.
    """
    if getattr(type(init), "structure", None) != "tree":
        raise ValueError(f"init must be a TreePrior (the training tree prior), got {type(init).__name__}")
    max_iter = as_int(max_iter, "max_iter", low=1)
    tol = as_float(tol, "tol", low=0, low_open=True)
    n_classes = init.n_classes
    arr = as_log_likelihood(log_lik, n_classes)
    n = arr.shape[0]
    K = int(np.prod(n_classes))
    if isinstance(smoothing, str) and smoothing == "auto":
        # one pseudo-observation per edge-table cell (the tree's free parameters), not per
        # joint cell: λ = Σ_{(s,t)∈E} C_s C_t (+ C_t for a task without an edge)
        linked = {v for e in init.edges for v in e}
        lam = float(sum(n_classes[a] * n_classes[b] for a, b in init.edges)
                    + sum(c for t, c in enumerate(n_classes) if t not in linked))  # fmt: skip
    else:
        lam, note = resolve_smoothing(smoothing, n, K)
        if note is not None:
            warnings.warn(note, UserWarning, stacklevel=2)
    dev = check_device(device)
    L, const = normalised_likelihood(arr, dev, memory_mb, "log_lik")
    p_np = init.probs.reshape(-1)
    p_np = p_np / p_np.sum()
    p = torch.as_tensor(p_np, dtype=torch.float64, device=dev)
    q_tree = init
    q = p.clone()
    history: list[float] = []
    best = (q_tree, -np.inf)
    converged = diverged = False
    n_iter = 0
    while n_iter < max_iter:
        d = L @ q
        f = map_objective(d, q, p, lam, const)
        n_iter += 1
        f_prev = history[-1] if history else None
        history.append(f)
        if f_prev is not None and f < f_prev - 1e-9 * max(1.0, abs(f_prev)):
            diverged = True
        if f > best[1]:
            best = (q_tree, f)
        if f_prev is not None and abs(f - f_prev) < tol * n:
            converged = True
            break
        m = (q * (L.T @ (1.0 / d)) + lam * p) / (n + lam)
        q_tree = _project(m.cpu().numpy(), init.edges, n_classes)
        qn = q_tree.probs.reshape(-1)
        q = torch.as_tensor(qn / qn.sum(), dtype=torch.float64, device=dev)
    hist = np.asarray(history)
    if diverged:
        msg = (
            "tree EM diverged: the log-likelihood fell during the iterations (min step change "
            f"{float(np.diff(hist).min()):.6g}); returned the best iterate"
        )
        warnings.warn(msg, EMConvergenceWarning, stacklevel=2)
        logger.debug(msg)  # the warning above carries it to the user
        q_tree, f = best
    elif not converged:
        change = float(hist[-1] - hist[-2]) if hist.size >= 2 else float("nan")
        msg = (
            f"tree EM did not converge in max_iter={max_iter} steps: the log-likelihood still "
            f"changed by {change:.6g} over the last step ({change / n:.3g} per example, "
            f"tolerance {tol:g}); returned the last estimate"
        )
        warnings.warn(msg, EMConvergenceWarning, stacklevel=2)
        logger.debug(msg)  # the warning above carries it to the user
    return TreeEMResult(
        q=q_tree, objective=float(f), history=hist, n_iter=n_iter, converged=converged,
        diverged=diverged, smoothing=lam, n_examples=n,
    )


def edge_l1(q_hat: TreePrior, q: Any) -> float:
    """Mean over the edges of ``q_hat`` of ``Σ |q̂(y_s, y_t) − q(y_s, y_t)|`` (q any prior or a table)."""
    qp = as_any_prior(q, name="q")
    if tuple(qp.n_classes) != tuple(q_hat.n_classes):
        raise ValueError("q and q_hat must have the same n_classes")
    errs = [float(np.abs(pst - qp.pair_marginal(s, t)).sum()) for (s, t), pst in zip(q_hat.edges, q_hat.pair_probs)]
    return float(np.mean(errs)) if errs else 0.0
