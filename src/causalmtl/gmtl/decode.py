"""Joint GMTL decoding (Makino et al. 2022, §3, Eq. 6 and the known-q objective of §3.1).

For per-task log-probabilities ``log p(y_t|x)`` and a joint prior ``p(y)`` it returns

    ŷ = argmax_y  Σ_t log p(y_t|x) − α · log p(y)                       (Eq. 6)

or, with a known test prior q,

    ŷ = argmax_y  Σ_t log p(y_t|x) − log p(y) + log q(y)                 (§3.1).

A model that predicts the joint class directly (full parameter sharing, Eq. 5 without
factorising) passes one joint array ``log p(y_1..y_T|x)`` of shape ``(N, C_1, …, C_T)`` in
place of the per-task list.

The argmax is exact over the whole product space. Joint classes are indexed in C-order
over ``n_classes`` (``numpy.ravel_multi_index``); ties go to the lowest joint index, which
is also what per-task argmax does at α = 0. Rows are processed in chunks so that at most
``memory_mb`` of scores exist at once. The scores are linear in α, so the α-independent
part is computed once per chunk and each extra α costs one add and one argmax.

Computation runs in PyTorch (float64): numpy inputs come back as numpy arrays, torch inputs
as tensors on their own device.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .._validation import _is_torch, check_alpha, check_decode_args
from .prior import JointPrior, as_prior

#: Tolerance of the log-probability checks (|logsumexp| and positive values).
LOG_PROB_ATOL = 1e-4


def _to_tensor(x: Any, device: torch.device | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype=torch.float64)
    return torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)


def _check_scores(t: torch.Tensor, name: str, class_dims: tuple[int, ...], normalized: bool) -> None:
    """Raise a ValueError naming ``name`` if ``t`` holds NaN/+inf or is not a log-probability."""
    if t.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)}); at least one example is needed")
    if torch.isnan(t).any():
        idx = tuple(int(i) for i in torch.nonzero(torch.isnan(t))[0])
        raise ValueError(f"{name} contains NaN at index {idx}")
    if torch.isposinf(t).any():
        idx = tuple(int(i) for i in torch.nonzero(torch.isposinf(t))[0])
        raise ValueError(f"{name} contains +inf at index {idx}; scores must be log-probabilities")
    if not normalized:
        return
    if (t > LOG_PROB_ATOL).any():
        idx = tuple(int(i) for i in torch.nonzero(t > LOG_PROB_ATOL)[0])
        raise ValueError(
            f"{name} is not a log-probability: value {float(t[idx]):.6g} > 0 at index {idx} "
            "(check failed: log p <= 0). Pass normalized=False for unnormalised logits."
        )
    lse = torch.logsumexp(t, dim=class_dims)
    bad = (lse.abs() > LOG_PROB_ATOL) | torch.isnan(lse)
    if bad.any():
        row = int(torch.nonzero(bad)[0][0])
        raise ValueError(
            f"{name} is not normalised: logsumexp over classes is {float(lse[row]):.6g} at row {row} "
            f"(check failed: |logsumexp| <= {LOG_PROB_ATOL}). Pass normalized=False for logits."
        )


def _prepare(
    log_probs: Any, n_classes: tuple[int, ...], normalized: bool
) -> tuple[list[torch.Tensor] | torch.Tensor, bool, torch.device, int]:
    """Validate inputs; return (tensors, is_joint, device, N)."""
    T = len(n_classes)
    if isinstance(log_probs, (list, tuple)):
        if len(log_probs) != T:
            raise ValueError(
                f"log_probs has {len(log_probs)} tasks but the prior has {T} (n_classes={n_classes})"
            )
        device = next((x.device for x in log_probs if isinstance(x, torch.Tensor)), torch.device("cpu"))
        tensors = [_to_tensor(x, device) for x in log_probs]
        n = tensors[0].shape[0] if tensors[0].ndim else 0
        for t, (x, c) in enumerate(zip(tensors, n_classes)):
            if x.ndim != 2 or x.shape[1] != c:
                raise ValueError(
                    f"log_probs[{t}] must have shape (N, {c}) to match the prior's n_classes[{t}]={c}, "
                    f"got {tuple(x.shape)}"
                )
            if x.shape[0] != n:
                raise ValueError(f"log_probs[{t}] has {x.shape[0]} rows but log_probs[0] has {n}")
            _check_scores(x, f"log_probs[{t}]", (1,), normalized)
        return tensors, False, device, n
    device = log_probs.device if isinstance(log_probs, torch.Tensor) else torch.device("cpu")
    joint = _to_tensor(log_probs, device)
    if joint.ndim != T + 1 or tuple(joint.shape[1:]) != n_classes:
        raise ValueError(
            f"a joint log_probs array must have shape (N, *n_classes) = (N, {', '.join(map(str, n_classes))}), "
            f"got {tuple(joint.shape)}; pass per-task scores as a list of T arrays"
        )
    _check_scores(joint, "log_probs", tuple(range(1, T + 1)), normalized)
    return joint, True, device, joint.shape[0]


def _prior_terms(
    prior: JointPrior, target_prior: Any, device: torch.device
) -> torch.Tensor:
    """The α-scaled direction ``−log p(y)`` (flattened), or ``−log p + log q`` when q is given."""
    if prior.has_zeros:
        zeros = np.argwhere(prior.probs == 0)
        raise ValueError(
            f"prior has {len(zeros)} joint cells with probability 0 (first: {tuple(zeros[0])}), so "
            "-log p(y) is +inf there; refit with pseudocount > 0 (additive smoothing, §3.2)"
        )
    direction = -np.log(prior.probs).reshape(-1)
    if target_prior is not None:
        q = as_prior(target_prior, name="target_prior")
        if q.n_classes != prior.n_classes:
            raise ValueError(
                f"target_prior has n_classes {q.n_classes} but the prior has {prior.n_classes}"
            )
        with np.errstate(divide="ignore"):
            direction = direction + np.log(q.probs).reshape(-1)
    return torch.as_tensor(direction, dtype=torch.float64, device=device)


def _joint_base(chunk: list[torch.Tensor] | torch.Tensor, is_joint: bool) -> torch.Tensor:
    """Σ_t log p(y_t|x) over the product space, shape (n, K), C-order."""
    if is_joint:
        return chunk.reshape(chunk.shape[0], -1)
    base = chunk[0]
    for x in chunk[1:]:
        base = (base[:, :, None] + x[:, None, :]).reshape(base.shape[0], -1)
    return base


def _unravel(flat: torch.Tensor, n_classes: tuple[int, ...]) -> torch.Tensor:
    out = []
    for c in reversed(n_classes):
        out.append(flat % c)
        flat = torch.div(flat, c, rounding_mode="floor")
    return torch.stack(out[::-1], dim=-1)


def decode(
    log_probs: Any,
    prior: JointPrior | Any,
    alpha: float | Sequence[float] | None = None,
    target_prior: JointPrior | Any | None = None,
    *,
    return_scores: bool = False,
    normalized: bool = True,
    memory_mb: float = 256.0,
    mode: str = "joint",
    method: str = "auto",
    alpha_marginal: float | Sequence[float] | None = None,
    alpha_dependence: float | Sequence[float] | None = None,
    return_marginals: bool = False,
    return_info: bool = False,
) -> Any:
    """Decode all tasks jointly with the GMTL objective (Eq. 6, or the known-q objective).

    Parameters
    ----------
    log_probs : list of T arrays ``(N, C_t)``, or one array ``(N, C_1, …, C_T)``
        Per-task log-probabilities ``log p(y_t|x)`` of a factorised multi-task model, or the
        joint log-probabilities of a model that predicts the joint class. numpy or torch
        (CPU or CUDA); the result has the same type and device.
    prior : JointPrior or probability table of shape ``n_classes``
        The training joint prior ``p(y)``.
    alpha : float in [0, 1] or a sequence of them, default 1.0
        Strength of the prior correction (0 = DMTL, 1 = decoding ``log p(x|y)``). Several
        values are decoded in one pass. Must be omitted when ``target_prior`` is given.
    target_prior : JointPrior or table, optional
        A known test prior q: the objective becomes ``Σ_t log p(y_t|x) − log p(y) + log q(y)``.
        Cells with ``q = 0`` are never predicted.
    return_scores : bool
        Also return the objective for every joint class, shape ``(N, C_1, …, C_T)`` (or
        ``(A, N, C_1, …)`` for several α). This materialises N·K values.
    normalized : bool
        Check that the inputs are log-probabilities (entries ≤ 0, logsumexp over classes = 0,
        to 1e-4). Pass False for unnormalised logits: the per-task normalisers are constant
        in y for each x, so the argmax is unchanged (the scores are shifted per row).
    memory_mb : float
        Upper bound on the working memory of one chunk of scores.
    mode, method, alpha_marginal, alpha_dependence, return_marginals, return_info
        Many tasks, split α and marginal decoding (a :class:`~causalmtl.gmtl.TreePrior`
        prior, ``mode="marginal"``, ...): the call goes to
        :func:`causalmtl.gmtl.decode_structured`, which documents them.

    Returns
    -------
    labels : int64 ``(N, T)``, or ``(A, N, T)`` when ``alpha`` is a sequence
    scores : float64, only when ``return_scores``

    Examples
    --------
    >>> import numpy as np
    >>> from causalmtl.gmtl import JointPrior, decode
    >>> prior = JointPrior.from_probs([[0.45, 0.05], [0.05, 0.45]])   # labels agree in training
    >>> lp = [np.log([[0.6, 0.4]]), np.log([[0.45, 0.55]])]            # one example, two tasks
    >>> decode(lp, prior, alpha=0.0)       # DMTL: independent per-task argmax
    array([[0, 1]])
    >>> decode(lp, prior, alpha=[0.0, 1.0]).tolist()
    [[[0, 1]], [[0, 1]]]
    >>> decode(lp, prior, target_prior=[[0.05, 0.45], [0.45, 0.05]])  # test labels disagree
    array([[0, 1]])
    """
    from .structured import decode_structured, needs_structured  # issue 10: trees, split α, modes

    check_decode_args(log_probs, memory_mb=memory_mb, normalized=normalized, return_scores=return_scores)

    extra = dict(mode=mode, method=method, alpha_marginal=alpha_marginal, alpha_dependence=alpha_dependence,
                 return_marginals=return_marginals, return_info=return_info)  # fmt: skip
    if needs_structured(prior, return_scores=return_scores, **extra):
        return decode_structured(log_probs, prior, alpha, target_prior, normalized=normalized,
                                 memory_mb=memory_mb, **extra)  # fmt: skip
    prior = as_prior(prior)
    n_classes = prior.n_classes
    if alpha is not None and target_prior is not None:
        raise ValueError("give either alpha or target_prior, not both (with q the objective has no α)")
    several = alpha is not None and not np.isscalar(alpha) and np.ndim(alpha) > 0
    alphas = check_alpha(1.0 if alpha is None else alpha)
    if target_prior is not None:
        alphas = np.ones(1)
    was_torch = _is_torch(log_probs) or (
        isinstance(log_probs, (list, tuple)) and any(_is_torch(x) for x in log_probs)
    )
    inputs, is_joint, device, n = _prepare(log_probs, n_classes, normalized)
    K = prior.size
    uses_prior = target_prior is not None or bool((alphas > 0).any())
    direction = _prior_terms(prior, target_prior, device) if uses_prior else None
    # Centre the direction so a uniform prior adds exactly zero (α-invariant ties).
    if direction is not None and target_prior is None:
        direction = direction - direction.max()

    if not was_torch and not return_scores:
        # numpy in, numpy out: the cache-sized, split-table numpy kernel is several times faster
        # on the CPU than the torch loop below (benchmarks/bench_decode.py) and gives the same
        # argmax (lowest C-order index on ties).
        return _decode_numpy(inputs, is_joint, n_classes, alphas, direction, target_prior, several)
    labels = torch.empty((len(alphas), n, len(n_classes)), dtype=torch.int64, device=device)
    scores_out = (
        torch.empty((len(alphas), n, K), dtype=torch.float64, device=device) if return_scores else None
    )
    bytes_per_row = K * 8 * (3 if not is_joint else 2)
    chunk = max(1, int(memory_mb * 2**20 // bytes_per_row))
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        part = inputs[start:stop] if is_joint else [x[start:stop] for x in inputs]
        base = None
        buf = None
        for a_i, a in enumerate(alphas):
            if a == 0 and target_prior is None and not is_joint and not return_scores:
                # DMTL: independent per-task argmax (exact, lowest index on ties).
                labels[a_i, start:stop] = torch.stack([x.argmax(dim=1) for x in part], dim=1)
                continue
            if base is None:
                base = _joint_base(part, is_joint)
            if a == 0 and target_prior is None:
                s = base
            else:
                if buf is None:
                    buf = torch.empty_like(base)
                s = torch.add(base, direction, alpha=float(a), out=buf)
            labels[a_i, start:stop] = _unravel(s.argmax(dim=1), n_classes)
            if scores_out is not None:
                scores_out[a_i, start:stop] = s
    if scores_out is not None and direction is not None and target_prior is None:
        # Undo the centring so the returned scores are the objective itself.
        shift = float((-np.log(prior.probs)).max())
        scores_out += torch.as_tensor(alphas * shift, device=device)[:, None, None]
    out_labels: Any = labels if several else labels[0]
    out_scores: Any = None
    if scores_out is not None:
        shaped = scores_out.reshape((len(alphas), n, *n_classes))
        out_scores = shaped if several else shaped[0]
    if not was_torch:
        out_labels = out_labels.cpu().numpy()
        out_scores = None if out_scores is None else out_scores.cpu().numpy()
    return (out_labels, out_scores) if return_scores else out_labels


def _decode_numpy(
    inputs: list[torch.Tensor] | torch.Tensor,
    is_joint: bool,
    n_classes: tuple[int, ...],
    alphas: np.ndarray,
    direction: torch.Tensor | None,
    target_prior: Any,
    several: bool,
) -> np.ndarray:
    """The CPU path of :func:`decode` for numpy inputs, through :func:`table_np.table_joint`."""
    from .table_np import table_joint

    arrays: Any = inputs.numpy() if is_joint else [x.numpy() for x in inputs]
    n = arrays.shape[0] if is_joint else arrays[0].shape[0]
    labels = np.empty((len(alphas), n, len(n_classes)), dtype=np.int64)
    # α = 0 without q is DMTL: the independent per-task argmax (exact, lowest index on ties).
    dmtl = (alphas == 0) & (target_prior is None) & (not is_joint)
    if dmtl.any():
        labels[dmtl] = np.stack([x.argmax(axis=1) for x in arrays], axis=1)
    if (~dmtl).any():
        d = np.zeros(int(np.prod(n_classes))) if direction is None else direction.numpy()
        labels[~dmtl] = table_joint(arrays, n_classes, alphas[~dmtl, None] * d[None, :])
    return labels if several else labels[0]


def joint_log_posterior(log_probs: Any, prior: JointPrior | Any, alpha: float = 1.0) -> np.ndarray:
    """The normalised GMTL-adjusted joint distribution ``∝ Π_t p(y_t|x) · p(y)^(−α)``.

    Returns ``log r(y|x)`` of shape ``(N, C_1, …, C_T)`` (numpy), normalised over y for each
    row. With ``alpha = 1`` and a factorised model this is the posterior under a uniform
    test prior (§3.1: GMTL replaces p(y) by a distribution ∝ p(y)^(1−α)).
    """
    prior = as_prior(prior)
    _, scores = decode(log_probs, prior, alpha=float(alpha), return_scores=True, normalized=False)
    s = torch.as_tensor(scores).reshape(scores.shape[0], -1)
    out = s - torch.logsumexp(s, dim=1, keepdim=True)
    return out.reshape(scores.shape).cpu().numpy()


def independent_argmax(log_probs: Sequence[Any]) -> np.ndarray:
    """Per-task argmax (DMTL), an ``(N, T)`` int64 array."""
    return np.stack([np.asarray(x).argmax(axis=1) for x in log_probs], axis=1).astype(np.int64)


__all__ = ["decode", "joint_log_posterior", "independent_argmax", "LOG_PROB_ATOL"]
