"""GMTL decoding (Makino et al. 2022, §3, Eq. 6 and the known-q objective of §3.1): one entry point.

:func:`gmtl_decode` returns, for per-task log-probabilities ``log p(y_t|x)`` and a prior,

    ŷ = argmax_y  Σ_t log p(y_t|x) − α_m Σ_t log p(y_t) − α_d [log p(y) − Σ_t log p(y_t)]   (Eq. 6; S1)

(``α_m = α_d = α`` is Eq. 6), or with a known test prior q

    ŷ = argmax_y  Σ_t log p(y_t|x) − log p(y) + log q(y)                                     (§3.1),

as a :class:`Decoded` result. ``mode="marginal"`` takes, per task, the argmax of the marginal
of ``r(y|x) ∝ exp F(y)`` instead (the Bayes decision for per-task accuracy under r).

How it is computed: the objective is built once from the prior
(:class:`~causalmtl.gmtl.decoding.objective.Objective`) and handed to one of two exact kernels,
each with a numpy and a torch backend:

* ``"table"`` — the full product space of ``K = Π C_t`` joint classes, in chunks of rows
  (:mod:`~causalmtl.gmtl.decoding.table_np`, :mod:`~causalmtl.gmtl.decoding.table_torch`); ties go to the lowest
  joint index (C-order), which is what per-task argmax does at α = 0;
* ``"tree"`` — max-product / sum-product on a :class:`~causalmtl.gmtl.TreePrior`'s tree,
  ``O(N Σ_edges C_s C_t)`` (:mod:`~causalmtl.gmtl.decoding.tree_infer`).

``kernel="auto"`` decodes a :class:`~causalmtl.gmtl.JointPrior` on its table and a
:class:`~causalmtl.gmtl.TreePrior` on its tree (on its flattened table when one joint score
array or ``scores=True`` is given). Forcing ``kernel="tree"`` on a JointPrior decodes its
Chow–Liu projection (an approximation; logged and said in ``Decoded.info.reason``).
``backend="auto"`` runs numpy (single-threaded, no thread-pool barriers) for numpy inputs and
CPU tensors, torch on an accelerator; results come back in the type and on the device of the
inputs.

:func:`decode` and :func:`~causalmtl.gmtl.decoding.structured.decode_structured` are the deprecated
forms that return bare arrays / tuples (kept for one release).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeAlias, TypeVar, overload

import numpy as np
import numpy.typing as npt
import torch

from ..._validation import check_decode_args
from ..priors.prior import JointPrior, Prior, as_any_prior
from ..priors.tree import TreePrior
from ._scores import LOG_PROB_ATOL, Scores, prepare_scores
from .objective import Alphas, Objective
from .table_np import table_joint, table_marginals, table_scores
from .table_torch import table_joint_torch, table_marginals_torch, table_scores_torch
from .tree_infer import decode_tree

logger = logging.getLogger(__name__)

MODES = ("joint", "marginal")
KERNELS = ("auto", "table", "tree")

#: ``mode`` of :func:`gmtl_decode`
Mode: TypeAlias = Literal["joint", "marginal"]
#: ``kernel`` of :func:`gmtl_decode`
Kernel: TypeAlias = Literal["auto", "table", "tree"]
#: ``backend`` of :func:`gmtl_decode`
Backend: TypeAlias = Literal["auto", "numpy", "torch"]
#: a prior: any :class:`Prior`, or a probability table of shape ``n_classes``
PriorLike: TypeAlias = "Prior | npt.ArrayLike"
#: numpy scores: T arrays ``(N, C_t)`` or one joint array ``(N, C_1, …, C_T)`` (array-likes)
NumpyLogProbs: TypeAlias = "npt.ArrayLike | Sequence[npt.ArrayLike]"
#: torch scores, the same layouts as tensors (results come back as tensors on their device)
TorchLogProbs: TypeAlias = "torch.Tensor | Sequence[torch.Tensor]"

#: the array type of a :class:`Decoded`: numpy for numpy inputs, a tensor for tensor inputs
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class DecodeInfo:
    """What the decoder did.

    ``method``: the kernel, ``"table"`` or ``"tree"``; ``mode``: ``"joint"`` or
    ``"marginal"``; ``prior``: the class of the prior given; ``n_joint``: ``Π C_t``;
    ``reason``: why this kernel; ``backend``: ``"numpy"`` or ``"torch"``.
    """

    method: str
    mode: str
    prior: str
    n_joint: int
    reason: str
    backend: str = "numpy"


@dataclass(frozen=True)
class Decoded(Generic[ArrayT]):
    """The result of :func:`gmtl_decode`.

    Attributes
    ----------
    labels : int64 ``(N, T)``, or ``(A, N, T)`` when an α argument was a sequence
    marginals : list of T arrays ``(N, C_t)`` (``(A, N, C_t)``) or None
        The log-marginals ``log r(y_t|x)`` of ``r ∝ exp F``; only with ``marginals=True``.
    scores : float64 ``(N, C_1, …, C_T)`` (``(A, N, …)``) or None
        The objective F for every joint class; only with ``scores=True`` (table kernel).
    kernel : ``"table"`` or ``"tree"``, the kernel that ran
    info : :class:`DecodeInfo` (kernel, mode, prior, Π C_t, reason, backend)

    Arrays are numpy for numpy inputs, tensors on the inputs' device for tensor inputs.
    """

    labels: ArrayT
    marginals: list[ArrayT] | None
    scores: ArrayT | None
    kernel: Literal["table", "tree"]
    info: DecodeInfo


def _choose_kernel(
    prior: Prior, kernel: str, per_task: bool, want_scores: bool, kernel_name: str
) -> tuple[Literal["table", "tree"], str]:
    if kernel not in KERNELS:
        raise ValueError(f"{kernel_name} must be 'auto', 'table' or 'tree', got {kernel!r}")
    if kernel != "auto":
        return ("table" if kernel == "table" else "tree"), f"forced {kernel_name}={kernel!r}"
    if prior.structure == "tree" and not per_task:
        return "table", "one joint score array (not per-task scores) is decoded on the flattened table"
    if prior.structure == "tree" and want_scores:
        return "table", "scores for every joint class are only available on the (flattened) table"
    if prior.structure == "tree":
        return "tree", "a TreePrior is decoded exactly on its tree (O(N Σ C_s C_t))"
    return "table", "a JointPrior is decoded exactly on its table"


def _run_table(
    sc: Scores, prior: JointPrior, q: JointPrior | None, obj: Objective, mode: str,
    want_marginals: bool, want_scores: bool, memory_mb: float,
) -> tuple[Any, list[Any] | None, Any | None]:
    """The full-table kernel on the chosen backend: labels (A, N, T), marginals, scores (A, N, K)."""
    n_classes, A = prior.n_classes, obj.n_weights
    directions, offsets = obj.table_terms(prior, q)
    tch = sc.backend == "torch"
    if tch:
        directions_b: Any = torch.as_tensor(directions, dtype=torch.float64, device=sc.device)
        labels: Any = torch.empty((A, sc.n, len(n_classes)), dtype=torch.int64, device=sc.device)
    else:
        directions_b = directions
        labels = np.empty((A, sc.n, len(n_classes)), dtype=np.int64)
    marginals: list[Any] | None = None  # numpy arrays or tensors, by backend
    if mode == "marginal" or want_marginals:
        if tch:
            marginals = table_marginals_torch(sc.values, sc.is_joint, n_classes, directions_b, memory_mb)
        else:
            marginals = table_marginals(sc.values, n_classes, directions_b, memory_mb)
    if mode == "marginal":
        assert marginals is not None  # computed above for mode="marginal"
        labels = torch.stack([m.argmax(dim=2) for m in marginals], dim=2) if tch else np.stack(
            [m.argmax(axis=2) for m in marginals], axis=2)  # fmt: skip
    else:
        # DMTL (α = 0, no q): the independent per-task argmax, exact with the same tie rule
        dmtl = obj.dmtl & (not sc.is_joint)
        idx: Any = np.flatnonzero(dmtl)
        rest: Any = np.flatnonzero(~dmtl)
        if tch:
            idx = torch.as_tensor(idx, device=sc.device)
            rest = torch.as_tensor(rest, device=sc.device)
        if len(idx):
            labels[idx] = torch.stack([x.argmax(dim=1) for x in sc.values], dim=1) if tch else np.stack(
                [x.argmax(axis=1) for x in sc.values], axis=1)  # fmt: skip
        if len(rest):
            if tch:
                labels[rest] = table_joint_torch(sc.values, sc.is_joint, n_classes, directions_b[rest], memory_mb)
            else:
                labels[rest] = table_joint(sc.values, n_classes, directions_b[rest], memory_mb)
    scores: Any = None  # a numpy array or a tensor, by backend
    if want_scores:
        # Σ_t log p(y_t|x) + prior term, then the centring undone: the objective itself
        if tch:
            scores = table_scores_torch(sc.values, sc.is_joint, directions_b)
            scores += torch.as_tensor(offsets, dtype=torch.float64, device=sc.device)[:, None, None]
        else:
            scores = table_scores(sc.values, directions)
            scores += offsets[:, None, None]
        scores = scores.reshape((A, sc.n, *n_classes))
    return labels, marginals, scores


def _decode(
    log_probs: Any,
    prior: Any,
    *,
    alpha: Alphas | None,
    alpha_marginal: Alphas | None,
    alpha_dependence: Alphas | None,
    q: Any,
    mode: str,
    kernel: str,
    backend: str,
    marginals: bool,
    scores: bool,
    normalized: bool,
    memory_mb: float,
    q_name: str = "q",
    kernel_name: str = "kernel",
    flag_names: tuple[str, str] = ("scores", "marginals"),
) -> Decoded[Any]:
    """:func:`gmtl_decode` with the argument names used in messages (the deprecated forms
    call the known prior ``target_prior``, the kernel ``method`` and the flags
    ``return_scores`` / ``return_marginals``). Every call, new or deprecated, is checked here."""
    check_decode_args(log_probs, memory_mb=memory_mb, normalized=normalized,
                      **{flag_names[0]: scores, flag_names[1]: marginals})  # fmt: skip
    if mode not in MODES:
        raise ValueError(f"mode must be 'joint' or 'marginal', got {mode!r}")
    prior = as_any_prior(prior)
    q_prior = None if q is None else as_any_prior(q, name=q_name)
    obj = Objective.build(alpha, alpha_marginal, alpha_dependence, q_prior, q_name)
    per_task = isinstance(log_probs, (list, tuple))
    chosen, reason = _choose_kernel(prior, kernel, per_task, scores, kernel_name)
    if chosen == "tree" and scores:
        raise ValueError("scores=True needs the table kernel (kernel='table' or 'auto'); the tree kernel gives labels and marginals")
    if chosen == "table":
        work: Any = prior.to_joint()  # refuses (ValueError) when Π C_t is too large
    elif prior.structure == "tree":
        work = prior
    else:
        work = TreePrior.from_joint(prior)
        reason += "; the JointPrior was projected onto its Chow–Liu tree (approximation)"
        logger.warning("decode: kernel='tree' with a full JointPrior uses its Chow–Liu projection")
    sc = prepare_scores(log_probs, work.n_classes, normalized, backend)
    info = DecodeInfo(method=chosen, mode=mode, prior=type(prior).__name__, n_joint=prior.size,
                      reason=reason, backend=sc.backend)  # fmt: skip
    logger.info("decode: %s decoding (mode=%s, prior=%s, Π C_t=%d, %s kernels): %s",
                chosen, mode, info.prior, prior.size, sc.backend, reason)  # fmt: skip
    if obj.uses_prior and work.has_zeros:
        raise ValueError(
            f"prior has {work.zero_summary()}, so -log p(y) is +inf there; refit with "
            "pseudocount > 0 (additive smoothing, §3.2)"
        )
    q_work: Any = None
    if chosen == "tree":
        if sc.is_joint:
            raise ValueError("tree decoding needs per-task scores (a list of T arrays (N, C_t)), got one joint array")
        if q_prior is not None:
            if q_prior.structure != "tree":
                raise ValueError(
                    f"{q_name} must be a TreePrior on the prior's tree for tree decoding "
                    "(e.g. TreePrior.fit(q_labels, n_classes, edges=prior.edges) or "
                    "TreePrior.from_joint(q, edges=prior.edges)); or decode with the table kernel"
                )
            work.same_structure(q_prior, name=q_name)
            q_work = q_prior
        node, edge = obj.tree_terms(work, q_work)
        labels, margs = decode_tree(sc.values, work.n_classes, work.rooted, work.edges, node, edge,
                                    mode, marginals, memory_mb)  # fmt: skip
        score_table = None
    else:
        if q_prior is not None:
            q_work = q_prior.to_joint()
            if q_work.n_classes != work.n_classes:
                raise ValueError(f"{q_name} has n_classes {q_work.n_classes} but the prior has {work.n_classes}")
        labels, margs, score_table = _run_table(sc, work, q_work, obj, mode, marginals, scores, memory_mb)
    if not marginals:
        margs = None

    def out(x: Any) -> Any:
        if x is None:
            return None
        x = x if obj.several else x[0]
        if sc.was_torch and not isinstance(x, torch.Tensor):
            return torch.from_numpy(np.ascontiguousarray(x))
        if not sc.was_torch and isinstance(x, torch.Tensor):
            return x.cpu().numpy()
        return x

    return Decoded(
        labels=out(labels),
        marginals=None if margs is None else [out(m) for m in margs],
        scores=out(score_table),
        kernel=chosen,
        info=info,
    )


@overload
def gmtl_decode(  # tensors match first (a Tensor is also array-like)
    log_probs: TorchLogProbs,
    prior: PriorLike,
    *,
    alpha: Alphas | None = None,
    q: PriorLike | None = None,
    mode: Mode = "joint",
    alpha_marginal: Alphas | None = None,
    alpha_dependence: Alphas | None = None,
    kernel: Kernel = "auto",
    backend: Backend = "auto",
    marginals: bool = False,
    scores: bool = False,
    normalized: bool = True,
    memory_mb: float = 256.0,
) -> Decoded[torch.Tensor]: ...


@overload
def gmtl_decode(
    log_probs: NumpyLogProbs,
    prior: PriorLike,
    *,
    alpha: Alphas | None = None,
    q: PriorLike | None = None,
    mode: Mode = "joint",
    alpha_marginal: Alphas | None = None,
    alpha_dependence: Alphas | None = None,
    kernel: Kernel = "auto",
    backend: Backend = "auto",
    marginals: bool = False,
    scores: bool = False,
    normalized: bool = True,
    memory_mb: float = 256.0,
) -> Decoded[np.ndarray]: ...


def gmtl_decode(
    log_probs: TorchLogProbs | NumpyLogProbs,
    prior: PriorLike,
    *,
    alpha: Alphas | None = None,
    q: PriorLike | None = None,
    mode: Mode = "joint",
    alpha_marginal: Alphas | None = None,
    alpha_dependence: Alphas | None = None,
    kernel: Kernel = "auto",
    backend: Backend = "auto",
    marginals: bool = False,
    scores: bool = False,
    normalized: bool = True,
    memory_mb: float = 256.0,
) -> Decoded[Any]:
    """Decode all tasks jointly with the GMTL objective (Eq. 6, its split (S1), or known q, §3.1).

    Parameters
    ----------
    log_probs : list of T arrays ``(N, C_t)``, or one array ``(N, C_1, …, C_T)``
        Per-task log-probabilities ``log p(y_t|x)`` of a factorised multi-task model, or the
        joint log-probabilities of a model that predicts the joint class (table kernel).
        numpy or torch (CPU or CUDA); results have the same type and device.
    prior : :class:`JointPrior`, :class:`TreePrior` (any :class:`~causalmtl.gmtl.priors.prior.Prior`)
        or a probability table of shape ``n_classes``: the training prior ``p(y)``.
    alpha : float in [0, 1] or a sequence of them, default 1.0
        Strength of the prior correction (0 = DMTL, 1 = decoding ``log p(x|y)``). Several
        values are decoded in one pass. Not with ``q``.
    q : a prior or probability table, optional
        A known test prior: the objective becomes ``Σ_t log p(y_t|x) − log p(y) + log q(y)``;
        cells with ``q = 0`` are never predicted. With the tree kernel, a TreePrior on the
        prior's tree.
    mode : ``"joint"`` (the paper's argmax of F) or ``"marginal"`` (per-task argmax of the
        marginals of ``r ∝ exp F``)
    alpha_marginal, alpha_dependence : the split weights α_m, α_d of (S1); each defaults to
        ``alpha``. Scalars or sequences (broadcast against each other).
    kernel : ``"auto"``, ``"table"`` or ``"tree"`` (module docstring)
    backend : ``"auto"``, ``"numpy"`` or ``"torch"`` (module docstring)
    marginals : also return the log-marginals of r (``Decoded.marginals``)
    scores : also return the objective for every joint class (``Decoded.scores``; table
        kernel; materialises N·K values)
    normalized : check that the inputs are log-probabilities (entries ≤ 0, logsumexp over
        classes = 0, to 1e-4). Pass False for unnormalised logits: the per-task normalisers
        are constant in y for each x, so the argmax is unchanged.
    memory_mb : upper bound on the working memory of one chunk of rows

    Returns
    -------
    :class:`Decoded` (``labels`` always; ``marginals`` / ``scores`` when asked; ``kernel``,
    ``info``)

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.gmtl import JointPrior, TreePrior, gmtl_decode
    >>> prior = JointPrior.from_probs([[0.45, 0.05], [0.05, 0.45]])   # labels agree in training
    >>> lp = [np.log([[0.6, 0.4]]), np.log([[0.45, 0.55]])]            # one example, two tasks
    >>> gmtl_decode(lp, prior, alpha=0.0).labels       # DMTL: independent per-task argmax
    array([[0, 1]])
    >>> gmtl_decode(lp, prior, alpha=[0.0, 1.0]).labels.tolist()
    [[[0, 1]], [[0, 1]]]
    >>> gmtl_decode(lp, prior, q=[[0.05, 0.45], [0.45, 0.05]]).labels  # test labels disagree
    array([[0, 1]])
    >>> tree = TreePrior.from_marginals((2, 2, 2), [(0, 1), (1, 2)],
    ...     [[[0.45, 0.05], [0.05, 0.45]], [[0.45, 0.05], [0.05, 0.45]]])
    >>> lp3 = [np.log([[0.6, 0.4]]), np.log([[0.45, 0.55]]), np.log([[0.6, 0.4]])]
    >>> res = gmtl_decode(lp3, tree, alpha=1.0, mode="marginal", marginals=True)
    >>> res.kernel, res.labels.shape, len(res.marginals)
    ('tree', (1, 3), 3)
    """
    return _decode(
        log_probs, prior, alpha=alpha, alpha_marginal=alpha_marginal, alpha_dependence=alpha_dependence,
        q=q, mode=mode, kernel=kernel, backend=backend, marginals=marginals, scores=scores,
        normalized=normalized, memory_mb=memory_mb,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# deprecated forms (one release): bare arrays / tuples instead of a Decoded
# ---------------------------------------------------------------------------------------------
_LEGACY_SCORES_ERROR = (
    "return_scores is only available for single-α joint decoding on a full table; "
    "drop alpha_marginal/alpha_dependence/mode/method/return_marginals/return_info, "
    "or use return_marginals=True for the per-task marginals"
)


def _legacy_options(**kwargs: Any) -> bool:
    return (
        kwargs.get("alpha_marginal") is not None
        or kwargs.get("alpha_dependence") is not None
        or kwargs.get("mode", "joint") != "joint"
        or kwargs.get("method", "auto") != "auto"
        or bool(kwargs.get("return_marginals", False))
        or bool(kwargs.get("return_info", False))
    )


def legacy_decode(
    log_probs: Any,
    prior: Any,
    alpha: Any = None,
    target_prior: Any = None,
    *,
    return_scores: bool = False,
    normalized: bool = True,
    memory_mb: float = 256.0,
    mode: str = "joint",
    method: str = "auto",
    alpha_marginal: Any = None,
    alpha_dependence: Any = None,
    return_marginals: bool = False,
    return_info: bool = False,
    backend: str = "auto",
) -> Any:
    """The pre-0.2 return conventions of :func:`decode` / ``decode_structured``, without a warning."""
    if return_scores and _legacy_options(mode=mode, method=method, alpha_marginal=alpha_marginal,
                                         alpha_dependence=alpha_dependence, return_marginals=return_marginals,
                                         return_info=return_info):  # fmt: skip
        raise ValueError(_LEGACY_SCORES_ERROR)
    res = _decode(
        log_probs, prior, alpha=alpha, alpha_marginal=alpha_marginal, alpha_dependence=alpha_dependence,
        q=target_prior, mode=mode, kernel=method, backend=backend, marginals=return_marginals,
        scores=return_scores, normalized=normalized, memory_mb=memory_mb,
        q_name="target_prior", kernel_name="method", flag_names=("return_scores", "return_marginals"),
    )  # fmt: skip
    if return_scores:
        return res.labels, res.scores
    out: list[Any] = [res.labels]
    if return_marginals:
        out.append(res.marginals)
    if return_info:
        out.append(res.info)
    return out[0] if len(out) == 1 else tuple(out)


def needs_structured(prior: Any, **kwargs: Any) -> bool:
    """Deprecated (no router any more): whether the old ``decode`` sent a call to
    ``decode_structured`` — a :class:`TreePrior`, or any of ``alpha_marginal``,
    ``alpha_dependence``, ``mode != "joint"``, ``method != "auto"``, ``return_marginals``,
    ``return_info``; with ``return_scores`` and any of those options it raises ValueError."""
    warnings.warn("needs_structured is deprecated: gmtl_decode has no router", DeprecationWarning, stacklevel=2)
    options = _legacy_options(**kwargs)
    if kwargs.get("return_scores", False):
        if options:
            raise ValueError(_LEGACY_SCORES_ERROR)
        return False
    return options or getattr(type(prior), "structure", None) == "tree"


def decode(
    log_probs: Any,
    prior: JointPrior | Any,
    alpha: Alphas | None = None,
    target_prior: JointPrior | Any | None = None,
    *,
    return_scores: bool = False,
    normalized: bool = True,
    memory_mb: float = 256.0,
    mode: str = "joint",
    method: str = "auto",
    alpha_marginal: Alphas | None = None,
    alpha_dependence: Alphas | None = None,
    return_marginals: bool = False,
    return_info: bool = False,
) -> Any:
    """Deprecated: use :func:`gmtl_decode`, which returns a :class:`Decoded`.

    Same objective and kernels; returns the labels array (``(N, T)`` or ``(A, N, T)``), or
    ``(labels, scores)`` with ``return_scores``, or ``labels`` followed by the marginals and
    the :class:`DecodeInfo` when asked, as before. ``target_prior`` is ``q`` and ``method`` is
    ``kernel`` of :func:`gmtl_decode`. Emits a ``DeprecationWarning``.

    >>> import warnings, numpy as np
    >>> from causalmtl.gmtl import JointPrior, decode
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore", DeprecationWarning)
    ...     decode([np.log([[0.6, 0.4]]), np.log([[0.45, 0.55]])], JointPrior.uniform((2, 2)), alpha=1.0)
    array([[0, 1]])
    """
    warnings.warn(
        "causalmtl.gmtl.decode is deprecated and will be removed in the next release; use "
        "causalmtl.gmtl_decode(log_probs, prior, alpha=..., q=...), which returns a Decoded "
        "(.labels, .marginals, .scores, .kernel)",
        DeprecationWarning,
        stacklevel=2,
    )
    return legacy_decode(
        log_probs, prior, alpha, target_prior, return_scores=return_scores, normalized=normalized,
        memory_mb=memory_mb, mode=mode, method=method, alpha_marginal=alpha_marginal,
        alpha_dependence=alpha_dependence, return_marginals=return_marginals, return_info=return_info,
    )  # fmt: skip


def joint_log_posterior(log_probs: Any, prior: JointPrior | Any, alpha: float = 1.0) -> np.ndarray:
    """The normalised GMTL-adjusted joint distribution ``∝ Π_t p(y_t|x) · p(y)^(−α)``.

    Returns ``log r(y|x)`` of shape ``(N, C_1, …, C_T)`` (numpy), normalised over y for each
    row. With ``alpha = 1`` and a factorised model this is the posterior under a uniform
    test prior (§3.1: GMTL replaces p(y) by a distribution ∝ p(y)^(1−α)).
    """
    scores = gmtl_decode(log_probs, prior, alpha=float(alpha), scores=True, normalized=False).scores
    assert scores is not None  # scores=True always fills them
    s = torch.as_tensor(scores).reshape(scores.shape[0], -1)
    out = s - torch.logsumexp(s, dim=1, keepdim=True)
    return out.reshape(scores.shape).cpu().numpy()


def independent_argmax(log_probs: Sequence[Any]) -> np.ndarray:
    """Per-task argmax (DMTL), an ``(N, T)`` int64 array."""
    return np.stack([np.asarray(x).argmax(axis=1) for x in log_probs], axis=1).astype(np.int64)


__all__ = [
    "Decoded",
    "DecodeInfo",
    "LOG_PROB_ATOL",
    "decode",
    "gmtl_decode",
    "independent_argmax",
    "joint_log_posterior",
]
