"""GMTL decoding for many tasks: tree priors, split α, marginal decoding, automatic choice.

Objectives (Makino et al. 2022, Eq. 6 and §3.1, with the split of issue 10). For per-task
scores ``log p(y_t|x)`` and a prior ``p(y)`` (a full :class:`~causalmtl.gmtl.JointPrior` or a
:class:`~causalmtl.gmtl.TreePrior`):

    F_α(y)   = Σ_t log p(y_t|x) − α log p(y)                                          (Eq. 6)
    F_q(y)   = Σ_t log p(y_t|x) − log p(y) + log q(y)                                 (§3.1)
    F_am,ad(y) = Σ_t log p(y_t|x) − α_m Σ_t log p(y_t) − α_d [log p(y) − Σ_t log p(y_t)]   (S1)

(S1) separates the correction of the per-task base rates (``α_m``, "marginal" part) from the
correction of the co-occurrence (``α_d``, "dependence" part); ``α_m = α_d = α`` is Eq. 6. With
``α_m = 0`` a user removes spurious co-occurrence while keeping calibrated base rates.

``mode="joint"`` returns the paper's ``argmax_y F(y)``. ``mode="marginal"`` returns, for each
task, ``argmax_{y_t} r(y_t|x)`` where ``r(y|x) ∝ exp F(y)`` is the GMTL-adjusted distribution;
that is the Bayes decision for per-task accuracy under r (joint MAP is the one for
exact-match). On a tree both are exact: max-product with backtracking and sum-product
(:mod:`causalmtl.gmtl.tree_infer`); on a full table, a chunked exhaustive argmax and exact
sums over the table (:mod:`causalmtl.gmtl.table_np` on the CPU,
:mod:`causalmtl.gmtl.table_torch` on accelerators).

Choosing how to decode (``method``): a :class:`JointPrior` is decoded on its table; a
:class:`TreePrior` on its tree (``O(N Σ_edges C_s C_t)``, exact for the tree distribution), or
on its flattened table when forced with ``method="table"`` or given one joint score array
(only while ``Π C_t`` fits); a
:class:`JointPrior` forced with ``method="tree"`` is first projected onto its Chow–Liu tree
(an approximation; logged). Which prior to build is chosen by :func:`fit_prior`
(``structure="auto"``: the full table while ``Π C_t <= max_table_size``, the Chow–Liu tree
otherwise). The choice made is logged and returned with ``return_info=True``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .._validation import _is_torch, check_alpha, check_n_classes
from .prior import JointPrior, as_prior
from .table_np import table_joint, table_marginals
from .table_torch import table_joint_torch, table_marginals_torch
from .tree import MAX_TABLE_SIZE, TreePrior
from .tree_infer import _argmax1, _swap12, max_product, sum_product

logger = logging.getLogger(__name__)

#: Default largest ``Π C_t`` for which :func:`fit_prior` builds the full table.
AUTO_TABLE_SIZE = 2**16
#: Tolerance of the log-probability checks (same as :mod:`causalmtl.gmtl.decode`).
LOG_PROB_ATOL = 1e-4


@dataclass(frozen=True)
class DecodeInfo:
    """What :func:`decode_structured` did.

    ``method``: ``"table"`` or ``"tree"``; ``mode``: ``"joint"`` or ``"marginal"``;
    ``prior``: the class of the prior given; ``n_joint``: ``Π C_t``; ``reason``: why;
    ``backend``: ``"numpy"`` or ``"torch"`` (the kernels that ran).
    """

    method: str
    mode: str
    prior: str
    n_joint: int
    reason: str
    backend: str = "numpy"


# ---------------------------------------------------------------------------------------------
# prior choice
# ---------------------------------------------------------------------------------------------
def fit_prior(
    labels: Any,
    n_classes: Sequence[int],
    pseudocount: float = 1.0,
    *,
    structure: str = "auto",
    max_table_size: int = AUTO_TABLE_SIZE,
    **tree_kwargs: Any,
) -> JointPrior | TreePrior:
    """Fit the full joint prior when ``Π C_t`` is small, a Chow–Liu tree otherwise.

    Parameters
    ----------
    labels, n_classes, pseudocount : as :meth:`JointPrior.fit` / :meth:`TreePrior.fit`
    structure : ``"auto"`` (default), ``"full"`` or ``"tree"`` (force one)
    max_table_size : ``"auto"`` builds the full table while ``Π C_t <= max_table_size``
    **tree_kwargs : ``edges``, ``threshold``, ``missing`` for :meth:`TreePrior.fit`

    The choice is logged at INFO level; ``isinstance(prior, TreePrior)`` tells which.
    """
    n_classes = check_n_classes(n_classes)
    if structure not in ("auto", "full", "tree"):
        raise ValueError(f"structure must be 'auto', 'full' or 'tree', got {structure!r}")
    size = int(np.prod(np.asarray(n_classes, dtype=object)))
    if structure == "auto":
        structure = "full" if size <= int(max_table_size) else "tree"
        logger.info(
            "fit_prior: Π C_t = %d %s max_table_size=%d -> %s prior",
            size, "<=" if structure == "full" else ">", int(max_table_size), structure,
        )
    if structure == "full":
        if tree_kwargs:
            raise ValueError(f"{sorted(tree_kwargs)} only apply to a tree prior (structure='tree')")
        if size > MAX_TABLE_SIZE:
            raise ValueError(
                f"structure='full' needs a table of Π C_t = {size} cells, more than {MAX_TABLE_SIZE}; "
                "use structure='tree'"
            )
        return JointPrior.fit(labels, n_classes, pseudocount=pseudocount)
    return TreePrior.fit(labels, n_classes, pseudocount=pseudocount, **tree_kwargs)


# ---------------------------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------------------------
def _resolve_alphas(
    alpha: Any, alpha_marginal: Any, alpha_dependence: Any, has_q: bool
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Broadcast (α, α_m, α_d) to two equal-length grids; ``several`` if any was a sequence."""
    given = [a for a in (alpha, alpha_marginal, alpha_dependence) if a is not None]
    if has_q:
        if given:
            raise ValueError(
                "give either alpha / alpha_marginal / alpha_dependence or target_prior, not both "
                "(with q the objective has no α)"
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


def _score_tensors(
    log_probs: Any, n_classes: tuple[int, ...], normalized: bool
) -> tuple[list[torch.Tensor] | torch.Tensor, bool, torch.device, int]:
    """Validate scores as in :func:`causalmtl.gmtl.decode`; returns (tensors, is_joint, device, N)."""
    T = len(n_classes)

    def check(t: torch.Tensor, name: str, dims: tuple[int, ...]) -> None:
        if t.shape[0] == 0:
            raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); at least one example is needed")
        if torch.isnan(t).any():
            raise ValueError(f"{name} contains NaN at index {tuple(int(i) for i in torch.nonzero(torch.isnan(t))[0])}")
        if torch.isposinf(t).any():
            raise ValueError(f"{name} contains +inf; scores must be log-probabilities")
        if normalized:
            lse = torch.logsumexp(t, dim=dims)
            bad = (lse.abs() > LOG_PROB_ATOL) | (t > LOG_PROB_ATOL).flatten(1).any(dim=1)
            if bad.any():
                row = int(torch.nonzero(bad)[0][0])
                raise ValueError(
                    f"{name} is not a normalised log-probability at row {row} (logsumexp "
                    f"{float(lse[row]):.6g}, expected 0 within {LOG_PROB_ATOL}). Pass "
                    "normalized=False for unnormalised logits"
                )

    if isinstance(log_probs, (list, tuple)):
        if len(log_probs) != T:
            raise ValueError(f"log_probs has {len(log_probs)} tasks but the prior has {T} (n_classes={n_classes})")
        device = next((x.device for x in log_probs if isinstance(x, torch.Tensor)), torch.device("cpu"))
        out = [
            x.to(device=device, dtype=torch.float64)
            if isinstance(x, torch.Tensor)
            else torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)
            for x in log_probs
        ]
        n = out[0].shape[0] if out[0].ndim else 0
        for t, (x, c) in enumerate(zip(out, n_classes)):
            if x.ndim != 2 or x.shape[1] != c:
                raise ValueError(
                    f"log_probs[{t}] must have shape (N, {c}) to match n_classes[{t}]={c}, got {tuple(x.shape)}"
                )
            if x.shape[0] != n:
                raise ValueError(f"log_probs[{t}] has {x.shape[0]} rows but log_probs[0] has {n}")
            check(x, f"log_probs[{t}]", (1,))
        return out, False, device, n
    device = log_probs.device if isinstance(log_probs, torch.Tensor) else torch.device("cpu")
    joint = (
        log_probs.to(dtype=torch.float64)
        if isinstance(log_probs, torch.Tensor)
        else torch.as_tensor(np.asarray(log_probs, dtype=np.float64), device=device)
    )
    if joint.ndim != T + 1 or tuple(joint.shape[1:]) != n_classes:
        raise ValueError(
            f"a joint log_probs array must have shape (N, *n_classes) = (N, {', '.join(map(str, n_classes))}), "
            f"got {tuple(joint.shape)}; pass per-task scores as a list of T arrays"
        )
    check(joint, "log_probs", tuple(range(1, T + 1)))
    return joint, True, device, joint.shape[0]


def _score_arrays(log_probs: Any, n_classes: tuple[int, ...], normalized: bool) -> tuple[list[np.ndarray], int]:
    """The numpy twin of :func:`_score_tensors` for per-task lists (tree decoding on the CPU)."""
    T = len(n_classes)
    if len(log_probs) != T:
        raise ValueError(f"log_probs has {len(log_probs)} tasks but the prior has {T} (n_classes={n_classes})")
    out = [np.asarray(x, dtype=np.float64) for x in log_probs]
    n = out[0].shape[0] if out[0].ndim else 0
    for t, (x, c) in enumerate(zip(out, n_classes)):
        name = f"log_probs[{t}]"
        if x.ndim != 2 or x.shape[1] != c:
            raise ValueError(f"{name} must have shape (N, {c}) to match n_classes[{t}]={c}, got {x.shape}")
        if x.shape[0] != n:
            raise ValueError(f"{name} has {x.shape[0]} rows but log_probs[0] has {n}")
        if n == 0:
            raise ValueError(f"{name} is empty (shape {x.shape}); at least one example is needed")
        if np.isnan(x).any():
            raise ValueError(f"{name} contains NaN at index {tuple(int(i) for i in np.argwhere(np.isnan(x))[0])}")
        if np.isposinf(x).any():
            raise ValueError(f"{name} contains +inf; scores must be log-probabilities")
        if normalized:
            mx = np.maximum(x.max(axis=1), -1e300)
            with np.errstate(divide="ignore"):
                lse = mx + np.log(np.exp(x - mx[:, None]).sum(axis=1))
            bad = (np.abs(lse) > LOG_PROB_ATOL) | (x > LOG_PROB_ATOL).any(axis=1)
            if bad.any():
                row = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"{name} is not a normalised log-probability at row {row} (logsumexp "
                    f"{float(lse[row]):.6g}, expected 0 within {LOG_PROB_ATOL}). Pass "
                    "normalized=False for unnormalised logits"
                )
    return out, n


def _refuse_zeros(prior: JointPrior | TreePrior) -> None:
    if prior.has_zeros:
        raise ValueError(
            "prior has cells with probability 0, so -log p(y) is +inf there; refit with "
            "pseudocount > 0 (additive smoothing, §3.2)"
        )


# ---------------------------------------------------------------------------------------------
# tree path
# ---------------------------------------------------------------------------------------------
def _safe_log(p: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(p)


def _tree_potentials(
    prior: TreePrior, am: np.ndarray, ad: np.ndarray, q: TreePrior | None, device: torch.device | None
) -> tuple[list[Any], list[Any]]:
    """Node terms (A, C_t) and edge terms (A, C_s, C_t) of (S1) or of F_q, by (T2).

    numpy arrays when ``device`` is None, else tensors on ``device``.
    """
    def tens(x: np.ndarray) -> Any:
        if device is None:
            return np.ascontiguousarray(x, dtype=np.float64)
        return torch.as_tensor(x, dtype=torch.float64, device=device)

    log_node = [_safe_log(p) for p in prior.node_probs]
    pmi = [prior.pmi(e) for e in range(len(prior.edges))]
    if q is None:
        node = [tens(-am[:, None] * ln[None, :]) for ln in log_node]
        edge = [tens(-ad[:, None, None] * w[None]) for w in pmi]
        return node, edge
    qn = [_safe_log(p) for p in q.node_probs]
    node = [tens((-ln + lq)[None]) for ln, lq in zip(log_node, qn)]
    edge = []
    for e, (_s, _t) in enumerate(prior.edges):
        qp = q.pair_probs[e]
        q_pmi = np.where(qp > 0, q.pmi(e), -np.inf) if (qp == 0).any() else q.pmi(e)
        edge.append(tens((-pmi[e] + q_pmi)[None]))
    return node, edge


def _decode_tree(
    inputs: list[Any],
    prior: TreePrior,
    am: np.ndarray,
    ad: np.ndarray,
    q: TreePrior | None,
    mode: str,
    want_marginals: bool,
    memory_mb: float,
    device: torch.device | None,
    n: int,
) -> tuple[Any, list[Any] | None]:
    """Tree decoding in chunks of rows; numpy when ``device`` is None, else torch on it."""
    node, edge = _tree_potentials(prior, am, ad, q, device)
    A, T = len(am), prior.n_tasks
    sum_c = sum(prior.n_classes)
    max_pair = max((prior.n_classes[s] * prior.n_classes[t] for s, t in prior.edges), default=1)
    bytes_per_row = A * 8 * (6 * sum_c + 2 * max_pair)
    chunk = max(1, int(memory_mb * 2**20 // bytes_per_row))
    if device is None:
        labels: Any = np.empty((A, T, n), dtype=np.int64)
        margs: Any = [np.empty((A, c, n)) for c in prior.n_classes] if want_marginals else None
        stack: Any = np.stack
        cols = [np.ascontiguousarray(x.T) for x in inputs]  # (C_t, N): rows of examples
    else:
        labels = torch.empty((A, T, n), dtype=torch.int64, device=device)
        margs = (
            [torch.empty((A, c, n), dtype=torch.float64, device=device) for c in prior.n_classes]
            if want_marginals
            else None
        )
        stack = torch.stack
        cols = [x.T.contiguous() for x in inputs]
    rooted, edges = prior._rooted, prior.edges
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


# ---------------------------------------------------------------------------------------------
# table path
# ---------------------------------------------------------------------------------------------
def _table_directions_np(
    prior: JointPrior, am: np.ndarray, ad: np.ndarray, q: JointPrior | None
) -> np.ndarray:
    """numpy twin of :func:`_table_directions`, centred (max 0) per α so that a uniform prior
    adds exactly zero; (A, K)."""
    logp = _safe_log(prior.probs).reshape(-1)
    if q is not None:
        return (-logp + _safe_log(q.probs).reshape(-1))[None]
    marg = np.zeros(prior.n_classes)
    for t in range(prior.n_tasks):
        shape = [1] * prior.n_tasks
        shape[t] = prior.n_classes[t]
        marg = marg + _safe_log(prior.marginal(t)).reshape(shape)
    d = -ad[:, None] * logp[None] - (am - ad)[:, None] * marg.reshape(1, -1)
    return d - d.max(axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def decode_structured(
    log_probs: Any,
    prior: JointPrior | TreePrior | Any,
    alpha: float | Sequence[float] | None = None,
    target_prior: JointPrior | TreePrior | Any | None = None,
    *,
    alpha_marginal: float | Sequence[float] | None = None,
    alpha_dependence: float | Sequence[float] | None = None,
    mode: str = "joint",
    method: str = "auto",
    normalized: bool = True,
    memory_mb: float = 256.0,
    return_marginals: bool = False,
    return_info: bool = False,
    backend: str = "auto",
) -> Any:
    """GMTL decoding with a full or tree prior, split α, joint or marginal mode.

    Parameters
    ----------
    log_probs : list of T arrays ``(N, C_t)`` (numpy or torch), or one joint array
        ``(N, C_1, …, C_T)`` (table method only)
    prior : :class:`JointPrior`, :class:`TreePrior` or a probability table
    alpha : float or sequence in [0, 1], default 1.0 — Eq. 6
    target_prior : a known test prior q (F_q, §3.1). With tree decoding it must be a
        :class:`TreePrior` on the prior's tree.
    alpha_marginal, alpha_dependence : the split weights of (S1); each defaults to ``alpha``.
        Scalars or sequences (broadcast against each other and ``alpha``).
    mode : ``"joint"`` (argmax of F, the paper's decoding) or ``"marginal"`` (per-task argmax
        of the marginals of ``r ∝ exp F``)
    method : ``"auto"``, ``"table"`` or ``"tree"`` (module docstring)
    normalized : check that the inputs are log-probabilities (as in ``decode``)
    memory_mb : bound on the working memory of one chunk of examples
    return_marginals : also return the log-marginals of r, T arrays ``(N, C_t)`` (``(A, N,
        C_t)`` for several α)
    return_info : also return a :class:`DecodeInfo` saying which method was used and why
    backend : tree-decoding kernels: ``"numpy"``, ``"torch"`` or ``"auto"`` (numpy for numpy
        inputs and CPU tensors, which it shares memory with; torch for tensors on an
        accelerator). numpy is single-threaded, which avoids torch's thread-pool barriers on a
        small, busy CPU (10x slower there); torch keeps the work on the device.

    Returns
    -------
    labels : int64 ``(N, T)``, or ``(A, N, T)`` when an α argument is a sequence;
    then the marginals and the info when asked for, in that order.

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.gmtl import TreePrior
    >>> from causalmtl.gmtl.structured import decode_structured
    >>> prior = TreePrior.from_marginals((2, 2, 2), [(0, 1), (1, 2)],
    ...     [[[0.45, 0.05], [0.05, 0.45]], [[0.45, 0.05], [0.05, 0.45]]])
    >>> lp = [np.log([[0.6, 0.4]]), np.log([[0.45, 0.55]]), np.log([[0.6, 0.4]])]
    >>> decode_structured(lp, prior, alpha=0.0)           # DMTL: per-task argmax
    array([[0, 1, 0]])
    >>> labels, info = decode_structured(lp, prior, alpha=1.0, mode="marginal", return_info=True)
    >>> info.method, labels.shape
    ('tree', (1, 3))
    """
    if mode not in ("joint", "marginal"):
        raise ValueError(f"mode must be 'joint' or 'marginal', got {mode!r}")
    if method not in ("auto", "table", "tree"):
        raise ValueError(f"method must be 'auto', 'table' or 'tree', got {method!r}")
    if not isinstance(prior, TreePrior):
        prior = as_prior(prior)
    am, ad, several = _resolve_alphas(alpha, alpha_marginal, alpha_dependence, target_prior is not None)
    K = prior.size
    kind = type(prior).__name__
    if method == "auto":
        method = "tree" if isinstance(prior, TreePrior) else "table"
        reason = (
            "a TreePrior is decoded exactly on its tree (O(N Σ C_s C_t))"
            if method == "tree"
            else "a JointPrior is decoded exactly on its table"
        )
        if method == "tree" and not isinstance(log_probs, (list, tuple)):
            method = "table"
            reason = "one joint score array (not per-task scores) is decoded on the flattened table"
    else:
        reason = f"forced method={method!r}"
    if method == "table" and isinstance(prior, TreePrior):
        prior = prior.to_joint()  # refuses (ValueError) when Π C_t is too large
    elif method == "tree" and isinstance(prior, JointPrior):
        prior = TreePrior.from_joint(prior)
        reason += "; the JointPrior was projected onto its Chow–Liu tree (approximation)"
        logger.warning("decode: method='tree' with a full JointPrior uses its Chow–Liu projection")
    was_torch = _is_torch(log_probs) or (
        isinstance(log_probs, (list, tuple)) and any(_is_torch(x) for x in log_probs)
    )
    if backend not in ("auto", "numpy", "torch"):
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    is_list = isinstance(log_probs, (list, tuple))
    on_cpu = not was_torch or (is_list and all(not _is_torch(x) or x.device.type == "cpu" for x in log_probs))
    if backend == "numpy" and not on_cpu:
        raise ValueError("backend='numpy' needs numpy inputs or CPU tensors; use backend='torch' on an accelerator")
    use_numpy = is_list and (backend == "numpy" or (backend == "auto" and on_cpu))
    if use_numpy:
        # CPU tensors are viewed as numpy arrays (shared memory, no copy for float64)
        arrays = [x.detach().numpy() if _is_torch(x) else x for x in log_probs]
        inputs, n = _score_arrays(arrays, prior.n_classes, normalized)
        is_joint, device = False, None
    else:
        inputs, is_joint, device, n = _score_tensors(log_probs, prior.n_classes, normalized)
    info = DecodeInfo(method=method, mode=mode, prior=kind, n_joint=K, reason=reason,
                      backend="numpy" if use_numpy else "torch")  # fmt: skip
    logger.info("decode: %s decoding (mode=%s, prior=%s, Π C_t=%d, %s kernels): %s",
                method, mode, kind, K, info.backend, reason)  # fmt: skip
    uses_prior = target_prior is not None or bool((am > 0).any() or (ad > 0).any())
    if uses_prior:
        _refuse_zeros(prior)

    marginals: list[torch.Tensor] | None = None
    if method == "tree":
        if is_joint:
            raise ValueError("tree decoding needs per-task scores (a list of T arrays (N, C_t)), got one joint array")
        q = None
        if target_prior is not None:
            if not isinstance(target_prior, TreePrior):
                raise ValueError(
                    "target_prior must be a TreePrior on the prior's tree for tree decoding "
                    "(e.g. TreePrior.fit(q_labels, n_classes, edges=prior.edges) or "
                    "TreePrior.from_joint(q, edges=prior.edges)); or decode with method='table'"
                )
            prior.same_structure(target_prior)
            q = target_prior
        labels, marginals = _decode_tree(
            inputs, prior, am, ad, q, mode, return_marginals, memory_mb, device, n  # type: ignore[arg-type]
        )
    else:
        q_joint = None
        if target_prior is not None:
            q_joint = target_prior.to_joint() if isinstance(target_prior, TreePrior) else as_prior(target_prior, "target_prior")
            if q_joint.n_classes != prior.n_classes:
                raise ValueError(f"target_prior has n_classes {q_joint.n_classes} but the prior has {prior.n_classes}")
        if device is None:  # numpy kernels (CPU)
            directions = _table_directions_np(prior, am, ad, q_joint)
            if mode == "marginal" or return_marginals:
                marginals = table_marginals(inputs, prior.n_classes, directions, memory_mb)
            if mode == "marginal":
                labels = np.stack([m.argmax(axis=2) for m in marginals], axis=2)  # type: ignore[union-attr]
            else:
                labels = table_joint(inputs, prior.n_classes, directions, memory_mb)
        else:
            if mode == "marginal" or return_marginals:
                marginals = table_marginals_torch(inputs, is_joint, prior, am, ad, q_joint, memory_mb, device, n)
            if mode == "marginal":
                labels = torch.stack([m.argmax(dim=2) for m in marginals], dim=2)  # type: ignore[union-attr]
            else:
                labels = table_joint_torch(inputs, is_joint, prior, am, ad, q_joint, memory_mb, device, n)

    out_labels: Any = labels if several else labels[0]
    out_marg: Any = None
    if marginals is not None:
        out_marg = [m if several else m[0] for m in marginals]
    if not was_torch and device is not None:
        out_labels = out_labels.cpu().numpy()
        out_marg = None if out_marg is None else [m.cpu().numpy() for m in out_marg]
    elif was_torch and device is None:  # numpy kernels on CPU tensors: hand back tensors
        out_labels = torch.from_numpy(np.ascontiguousarray(out_labels))
        out_marg = None if out_marg is None else [torch.from_numpy(np.ascontiguousarray(m)) for m in out_marg]
    result: list[Any] = [out_labels]
    if return_marginals:
        result.append(out_marg)
    if return_info:
        result.append(info)
    return result[0] if len(result) == 1 else tuple(result)


def needs_structured(prior: Any, **kwargs: Any) -> bool:
    """True when a :func:`causalmtl.gmtl.decode` call must go to :func:`decode_structured`.

    That is: a :class:`TreePrior`, or any of ``alpha_marginal``, ``alpha_dependence``,
    ``mode != "joint"``, ``method != "auto"``, ``return_marginals``, ``return_info``. With
    ``return_scores=True`` (which only the full-table decoder offers) a :class:`TreePrior`
    and nothing else stays with ``decode`` (it uses the flattened table); combined with any
    of the options above it raises ``ValueError``.
    """
    options = (
        kwargs.get("alpha_marginal") is not None
        or kwargs.get("alpha_dependence") is not None
        or kwargs.get("mode", "joint") != "joint"
        or kwargs.get("method", "auto") != "auto"
        or bool(kwargs.get("return_marginals", False))
        or bool(kwargs.get("return_info", False))
    )
    if kwargs.get("return_scores", False):
        if options:
            raise ValueError(
                "return_scores is only available for single-α joint decoding on a full table; "
                "drop alpha_marginal/alpha_dependence/mode/method/return_marginals/return_info, "
                "or use return_marginals=True for the per-task marginals"
            )
        return False
    return options or isinstance(prior, TreePrior)


__all__ = ["DecodeInfo", "decode_structured", "fit_prior", "needs_structured", "AUTO_TABLE_SIZE"]
