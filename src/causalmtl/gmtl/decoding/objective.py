"""The GMTL decoding objective, built once from the prior and handed to a kernel (table or tree).

For per-task scores ``log p(y_t|x)`` and a training prior ``p(y)`` (Makino et al. 2022):

    F_α(y)     = Σ_t log p(y_t|x) − α log p(y)                                         (Eq. 6)
    F_am,ad(y) = Σ_t log p(y_t|x) − α_m M(y) − α_d D(y)                                 (S1)
    F_q(y)     = Σ_t log p(y_t|x) − log p(y) + log q(y)                                 (§3.1)

with the prior split into its **marginal part** ``M(y) = Σ_t log p(y_t)`` and its
**dependence part** ``D(y) = log p(y) − M(y)`` (on a tree, ``D = Σ_{(s,t)∈E} PMI_st``, (T2) of
:mod:`causalmtl.gmtl.priors.tree`). ``α_m = α_d = α`` is Eq. 6; with a known q, ``α_m = α_d = 1`` and
q's own two parts are added. Every objective is therefore

    F(y) = Σ_t log p(y_t|x) + c_m M_p(y) + c_d D_p(y) + c_q [M_q(y) + D_q(y)]

with the coefficients of :meth:`Objective.coefficients`. The kernels need the prior term in
two representations, built here from those coefficients:

* :meth:`Objective.table_terms`: one row of ``K = Π C_t`` values per α (full-table kernels,
  :mod:`causalmtl.gmtl.decoding.table_np`, :mod:`causalmtl.gmtl.decoding.table_torch`);
* :meth:`Objective.tree_terms`: node terms ``(A, C_t)`` and edge terms ``(A, C_s, C_t)``
  (:mod:`causalmtl.gmtl.decoding.tree_infer`).

Without q the table terms are centred (each part shifted so that its largest value is 0), so
that a uniform prior adds exactly zero and ties stay α-invariant; the shift is constant in y
and is returned (``offsets``) for callers that want the objective's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from ..._validation import check_alpha
from ..priors.prior import JointPrior, Prior
from ..priors.tree import TreePrior
from ._scores import safe_log

#: one α or several (decoded in one pass): a float, a sequence or a 1-d array of floats in [0, 1]
Alphas: TypeAlias = "float | Sequence[float] | npt.NDArray[np.floating[Any]]"


def resolve_alphas(
    alpha: Any, alpha_marginal: Any, alpha_dependence: Any, has_q: bool, q_name: str = "q"
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Broadcast (α, α_m, α_d) to two equal-length grids; ``several`` if any was a sequence."""
    given = [a for a in (alpha, alpha_marginal, alpha_dependence) if a is not None]
    if has_q:
        if given:
            raise ValueError(
                f"give either alpha or {q_name}, not both (nor alpha_marginal / alpha_dependence "
                f"with {q_name}: with q the objective has no α)"
            )
        return np.ones(1), np.ones(1), False
    several = any(np.ndim(a) > 0 for a in given)
    base = check_alpha(1.0 if alpha is None else alpha, "alpha")
    am = base if alpha_marginal is None else check_alpha(alpha_marginal, "alpha_marginal")
    ad = base if alpha_dependence is None else check_alpha(alpha_dependence, "alpha_dependence")
    sizes = {len(x) for x in (am, ad, base) if len(x) > 1}
    if len(sizes) > 1:
        raise ValueError(
            f"alpha grids must have one common length, got alpha={len(base)}, "
            f"alpha_marginal={len(am)}, alpha_dependence={len(ad)} values"
        )
    n = sizes.pop() if sizes else 1
    return np.broadcast_to(am, n).copy(), np.broadcast_to(ad, n).copy(), several


def _marginal_table(log_marginals: Sequence[np.ndarray], n_classes: tuple[int, ...]) -> np.ndarray:
    """``M(y) = Σ_t log p(y_t)`` over the product space, flattened in C-order, (K,)."""
    T = len(n_classes)
    out = np.zeros(n_classes)
    for t, lm in enumerate(log_marginals):
        shape = [1] * T
        shape[t] = n_classes[t]
        out = out + lm.reshape(shape)
    return out.reshape(-1)


@dataclass(frozen=True)
class Objective:
    """One GMTL objective for a grid of A weights (module docstring).

    ``am``, ``ad``: α_m and α_d, float64 ``(A,)``; ``q``: the known test prior or None;
    ``several``: whether the caller asked for a grid (results keep the A axis).
    """

    am: np.ndarray
    ad: np.ndarray
    several: bool
    q: Prior | None = None

    @classmethod
    def build(
        cls,
        alpha: Alphas | None = None,
        alpha_marginal: Alphas | None = None,
        alpha_dependence: Alphas | None = None,
        q: Prior | None = None,
        q_name: str = "q",
    ) -> Objective:
        am, ad, several = resolve_alphas(alpha, alpha_marginal, alpha_dependence, q is not None, q_name)
        return cls(am=am, ad=ad, several=several, q=q)

    @property
    def n_weights(self) -> int:
        return len(self.am)

    @property
    def uses_prior(self) -> bool:
        """False only for DMTL (every α = 0, no q): the prior then plays no part."""
        return self.q is not None or bool((self.am > 0).any() or (self.ad > 0).any())

    @property
    def dmtl(self) -> np.ndarray:
        """Which weights are DMTL (α_m = α_d = 0 without q): bool ``(A,)``."""
        ret: np.ndarray = (self.am == 0) & (self.ad == 0) & (self.q is None)
        return ret

    def coefficients(self) -> tuple[np.ndarray, np.ndarray, float]:
        """``(c_m, c_d, c_q)`` of ``F = Σ_t log p(y_t|x) + c_m M_p + c_d D_p + c_q (M_q + D_q)``."""
        if self.q is not None:
            return -np.ones(1), -np.ones(1), 1.0
        return -self.am, -self.ad, 0.0

    # --- the two representations of the prior term ---------------------------------------
    def table_terms(self, prior: JointPrior, q: JointPrior | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The prior term for every joint class: ``(directions (A, K), offsets (A,))``.

        ``c_m M + c_d D = c_d L + (c_m − c_d) M`` with ``L = log p(y)``; without q each of
        ``L`` and ``M`` is centred first (``F = base + directions + offsets``).
        """
        c_m, c_d, c_q = self.coefficients()
        A, K = self.n_weights, prior.size
        if not self.uses_prior:
            return np.zeros((A, K)), np.zeros(A)
        L = safe_log(prior.probs).reshape(-1)
        M = _marginal_table(prior.log_marginals(), prior.n_classes)
        split = c_m - c_d
        if q is not None:
            directions = (c_d[:, None] * L[None]) + c_q * safe_log(q.probs).reshape(-1)[None]
            if (split != 0).any():
                directions = directions + split[:, None] * M[None]
            return directions, np.zeros(A)
        low_l = L.min()
        directions = c_d[:, None] * (L - low_l)[None]
        offsets = c_d * low_l
        if (split != 0).any():
            low_m = M.min()
            directions = directions + split[:, None] * (M - low_m)[None]
            offsets = offsets + split * low_m
        return directions, offsets

    def tree_terms(self, prior: TreePrior, q: TreePrior | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The prior term on a tree: node terms ``(A, C_t)`` (``c_m log p(y_t) + c_q log q(y_t)``)
        and edge terms ``(A, C_s, C_t)`` (``c_d PMI_st + c_q PMI^q_st``), by (T2)."""
        c_m, c_d, c_q = self.coefficients()
        log_node = prior.log_marginals()
        pmi = [prior.pmi(e) for e in range(len(prior.edges))]
        node = [c_m[:, None] * ln[None, :] for ln in log_node]
        edge = [c_d[:, None, None] * w[None] for w in pmi]
        if q is not None:
            node = [x + c_q * lq[None] for x, lq in zip(node, q.log_marginals())]
            for e in range(len(prior.edges)):
                qp = q.pair_probs[e]
                q_pmi = np.where(qp > 0, q.pmi(e), -np.inf) if (qp == 0).any() else q.pmi(e)
                edge[e] = edge[e] + c_q * q_pmi[None]
        return node, edge


__all__ = ["Objective", "resolve_alphas"]
