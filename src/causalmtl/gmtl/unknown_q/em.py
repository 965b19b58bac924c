"""Estimating an unknown test joint prior q from unlabeled data: EM / MLLS and BBSE.

EM / MLLS (Saerens, Latinne & Decaestecker 2002, "Adjusting the outputs of a classifier to
new a priori probabilities", Eqs. 2.9–2.10), run over the *joint* label space
``y = (y_1, …, y_T)`` with ``K = Π_t C_t`` cells. Given a likelihood ``L(y; x)`` that is the
same in training and test (label shift leaves ``p(x|y)`` unchanged), the unlabeled test
inputs ``x_1..x_N`` have the marginal log-likelihood

    ℓ(q) = Σ_i log Σ_y q(y) L(y; x_i).

EM maximises it from a start ``q⁰`` (the training prior p):

    E-step   r_i(y) = q(y) L(y; x_i) / Σ_y' q(y') L(y'; x_i)
    M-step   q(y)  ← (Σ_i r_i(y) + λ p(y)) / (N + λ).

With ``λ = 0`` the M-step is the mean posterior of Saerens et al.; with ``λ > 0`` it is the
MAP estimate under a Dirichlet prior with concentration ``λ p + 1`` (an extra ``λ p(y)``
pseudo-observations), which maximises the penalised objective

    F(q) = ℓ(q) + λ Σ_y p(y) log q(y)

and keeps ``q`` from overfitting when K is large compared with N. Each EM step increases F,
so convergence is tested on the change of F per example (``|ΔF| / N < tol``), not on an
absolute change of q, which is met at once when K is large and every cell is tiny. A fall of
F (beyond round-off) means the likelihood was not what EM assumes; it is detected, logged
as a warning, and reported in :attr:`EMResult.diverged`, and the best estimate seen is
returned. The steps are optionally accelerated with SQUAREM (Varadhan & Roland 2008,
scheme S3) with a monotonicity safeguard (an extrapolation that lowers F is discarded), so
the sequence of F values stays non-decreasing.

Implementation: the likelihood is stored once as ``exp(log L − max_y log L)`` in float64,
rows processed in chunks of at most ``memory_mb``; each EM step is then two matrix–vector
products (``L q`` and ``Lᵀ (1 / L q)``), run in PyTorch on the ``device`` given.

BBSE (Lipton, Wang & Smola 2018, "Detecting and correcting for label shift with black box
predictors", Eq. 3): with the joint confusion matrix ``C[i, j] = p(ŷ = i, y = j)`` on
labelled held-out data and the distribution ``μ[i]`` of the predictions on the unlabeled
test set, ``w = C⁻¹ μ`` and ``q(y) = w(y) p(y)``. Its error grows with the condition number
of C, which is reported.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from ..._validation import (
    as_float,
    as_int,
    as_numpy,
    check_device,
    check_labels,
    check_n_classes,
    check_nonnegative,
)
from ..priors.prior import JointPrior, as_prior

logger = logging.getLogger(__name__)

__all__ = [
    "EMResult",
    "BBSEResult",
    "RawScoresWarning",
    "EMConvergenceWarning",
    "estimate_prior_em",
    "marginal_log_likelihood",
    "bbse",
    # the EM's building blocks, shared with tree_em (the same E-step / objective on a tree)
    "as_log_likelihood",
    "map_objective",
    "normalised_likelihood",
    "resolve_smoothing",
]


#: Bytes of likelihood rows per block of the fused CPU E-step (kept in cache between products).
_CPU_BLOCK_BYTES = 2**23


class EMConvergenceWarning(UserWarning):
    """EM stopped at the iteration limit, or its objective fell (divergence)."""


class RawScoresWarning(UserWarning):
    """EM was run on raw, uncalibrated GMTL scores (see :mod:`causalmtl.gmtl.unknown_q.calibrate`)."""


@dataclass(frozen=True)
class EMResult:
    """The outcome of :func:`estimate_prior_em`.

    Attributes
    ----------
    q : ndarray of shape ``n_classes``
        The estimated test prior (float64, sums to 1).
    objective : float
        The penalised log-likelihood ``F(q)`` at the returned ``q`` (the plain marginal
        log-likelihood when ``smoothing == 0``).
    history : ndarray
        ``F`` at every evaluated iterate, in order (non-decreasing unless ``diverged``).
    n_iter : int
        Number of EM steps taken (an accelerated cycle counts its three steps).
    converged : bool
        ``|ΔF| / N < tol`` was reached before ``max_iter``.
    diverged : bool
        ``F`` fell by more than round-off at some step; ``q`` is then the best iterate seen.
    smoothing : float
        The λ used (after resolving ``"auto"``).
    n_examples : int
        N, the number of unlabeled examples.
    """

    q: np.ndarray
    objective: float
    history: np.ndarray
    n_iter: int
    converged: bool
    diverged: bool
    smoothing: float
    n_examples: int
    notes: tuple[str, ...] = field(default=())

    @property
    def prior(self) -> JointPrior:
        """``q`` as a :class:`~causalmtl.gmtl.JointPrior`."""
        return JointPrior.from_probs(self.q)

    @property
    def last_change(self) -> float:
        """The change of the objective over the last step (NaN before two evaluations)."""
        return float(self.history[-1] - self.history[-2]) if self.history.size >= 2 else float("nan")


def as_log_likelihood(log_lik: Any, n_classes: tuple[int, ...], name: str = "log_lik") -> np.ndarray:
    """Validate ``log_lik`` (``(N, K)`` or ``(N, *n_classes)``); return a float64 ``(N, K)`` view."""
    arr = as_numpy(log_lik)
    K = int(np.prod(n_classes))
    if arr.ndim == 2 and arr.shape[1] == K:
        pass
    elif arr.ndim == len(n_classes) + 1 and tuple(arr.shape[1:]) == n_classes:
        arr = arr.reshape(arr.shape[0], K)
    else:
        raise ValueError(
            f"{name} must have shape (N, K={K}) or (N, *n_classes)=(N, {', '.join(map(str, n_classes))}), "
            f"got {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one unlabeled example is needed")
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{name} must be a real array, got dtype {arr.dtype}")
    return arr


def normalised_likelihood(
    arr: np.ndarray, device: torch.device, memory_mb: float, name: str
) -> tuple[torch.Tensor, float]:
    """``exp(log L − rowmax)`` in float64 (chunked) and ``Σ_i rowmax_i``."""
    n, K = arr.shape
    out = torch.empty((n, K), dtype=torch.float64, device=device)
    total_max = torch.zeros((), dtype=torch.float64, device=device)
    rows = max(1, int(memory_mb * 2**20 // (8 * K)))
    for s in range(0, n, rows):
        chunk = torch.as_tensor(np.asarray(arr[s : s + rows], dtype=np.float64), device=device)
        if torch.isnan(chunk).any() or torch.isposinf(chunk).any():
            bad = torch.nonzero(torch.isnan(chunk) | torch.isposinf(chunk))[0]
            raise ValueError(
                f"{name} contains NaN or +inf at row {s + int(bad[0])}, cell {int(bad[1])}; "
                "log-likelihoods must be finite or -inf"
            )
        m = chunk.max(dim=1).values
        if torch.isneginf(m).any():
            r = s + int(torch.nonzero(torch.isneginf(m))[0][0])
            raise ValueError(f"{name} row {r} is -inf in every cell: that example has zero likelihood")
        dst = out[s : s + rows]
        torch.sub(chunk, m[:, None], out=dst)
        dst.exp_()
        total_max += m.sum()
    return out, float(total_max)


def resolve_smoothing(smoothing: float | str, n: int, K: int) -> tuple[float, str | None]:
    """λ of the MAP M-step; ``"auto"`` is λ = K (on average one pseudo-observation per cell)."""
    if isinstance(smoothing, str):
        if smoothing != "auto":
            raise ValueError(f"smoothing must be a number >= 0 or 'auto', got {smoothing!r}")
        if n >= K:
            return float(K), None
        note = (
            f"only N={n} unlabeled examples for K={K} joint cells: smoothing='auto' used λ={K} "
            "(MAP with λ·p(y) pseudo-observations), so the estimate leans on the training prior "
            "p where the data are silent; pass smoothing=... to choose"
        )
        return float(K), note
    lam = check_nonnegative(smoothing, "smoothing")
    if lam == 0 and n < K:
        return 0.0, (
            f"only N={n} unlabeled examples for K={K} joint cells and smoothing=0: fitted the "
            "unsmoothed maximum-likelihood q, which can put mass on at most N cells and overfits; "
            "pass smoothing=λ>0 (e.g. λ=K) for a MAP estimate"
        )
    return lam, None


def map_objective(
    d: torch.Tensor, q: torch.Tensor, p: torch.Tensor, lam: float, const: float
) -> float:
    """The MAP objective EM ascends: ``Σ_i log d_i + const + λ Σ_y p(y) log q(y)`` (cells with
    p = 0 left out), where ``d_i = Σ_y L̃_i(y) q(y)`` for the row-max-normalised likelihood L̃
    and ``const = Σ_i rowmax_i`` (:func:`normalised_likelihood`)."""
    ll = float(torch.log(d).sum()) + const
    if lam > 0:
        mask = p > 0
        ll += lam * float((p[mask] * torch.log(q[mask])).sum())
    return ll


#: EM problems with fewer than this many likelihood values (N·K) run with one torch thread on
#: the CPU: their tensors are so small that a second thread only adds hand-off latency
#: (issue 15: 25–32 ms instead of < 1 ms with 2 threads; benchmarks/bench_em_threads.py).
SMALL_EM_CELLS = 2**18


def _one_thread_when_small(fn: Any) -> Any:
    """Run ``fn(log_lik, …)`` with one torch thread when ``log_lik`` is small and on the CPU.

    The caller's thread count is restored afterwards (also on error).
    """
    import functools

    @functools.wraps(fn)
    def wrapper(log_lik: Any, *args: Any, **kwargs: Any) -> Any:
        size = int(np.prod(getattr(log_lik, "shape", (SMALL_EM_CELLS,))))
        on_cpu = check_device(kwargs.get("device", "cpu")).type == "cpu"
        threads = torch.get_num_threads()
        if not (on_cpu and size < SMALL_EM_CELLS and threads > 1):
            return fn(log_lik, *args, **kwargs)
        torch.set_num_threads(1)
        try:
            return fn(log_lik, *args, **kwargs)
        finally:
            torch.set_num_threads(threads)

    return wrapper


@_one_thread_when_small
def estimate_prior_em(
    log_lik: Any,
    init: JointPrior | Any,
    *,
    smoothing: float | Literal["auto"] = "auto",
    smoothing_prior: JointPrior | Any | None = None,
    max_iter: int = 2000,
    tol: float = 1e-8,
    accelerate: bool = True,
    device: str | torch.device = "cpu",
    memory_mb: float = 2048.0,
) -> EMResult:
    """Estimate the test joint prior q by EM / MLLS (Saerens et al. 2002, Eqs. 2.9–2.10).

    Parameters
    ----------
    log_lik : array ``(N, K)`` or ``(N, C_1, …, C_T)``
        A label-shift-invariant log-likelihood ``log L(y; x_i)`` of every joint cell for every
        unlabeled example, up to a constant per row: e.g.
        :meth:`~causalmtl.gmtl.unknown_q.score_model.GaussianScoreModel.log_likelihood` or
        :func:`~causalmtl.gmtl.gmtl_log_likelihood` on calibrated heads. ``-inf``
        marks impossible cells.
    init : JointPrior or table of shape ``n_classes``
        The starting point ``q⁰`` (the training prior p), which fixes ``n_classes``.
    smoothing : float ≥ 0 or ``"auto"``
        λ of the MAP M-step ``q ← (Σ_i r_i + λ p) / (N + λ)``. ``"auto"``: λ = K, on
        average one pseudo-observation per joint cell (negligible when N ≫ K; a warning
        says so when N < K, where the estimate leans on p). 0 gives the maximum-likelihood
        estimate of Saerens et al.; an explicit 0 with N < K warns that the unsmoothed MLE
        was fitted.
    smoothing_prior : JointPrior or table, optional
        The p of the smoothing term (default: ``init``).
    max_iter : int
        Maximum number of EM steps. When reached, the last estimate is returned with an
        :class:`EMConvergenceWarning` naming the last change of the log-likelihood.
    tol : float
        Convergence when the objective changes by less than ``tol · N`` over a step (cycle).
    accelerate : bool
        Use SQUAREM (S3) extrapolation with a monotone safeguard; False gives plain EM.
    device : torch device
        Where the matrix–vector products run (e.g. ``"cuda"``); results come back as numpy.
    memory_mb : float
        Chunk size of the float64 conversion of ``log_lik`` (the normalised likelihood itself
        takes ``8·N·K`` bytes on ``device``).

    Returns
    -------
    EMResult

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> q = np.array([0.7, 0.1, 0.1, 0.1]); means = np.array([-3.0, -1.0, 1.0, 3.0])
    >>> y = rng.choice(4, size=4000, p=q); x = rng.normal(means[y], 1.0)
    >>> log_lik = -0.5 * (x[:, None] - means[None, :]) ** 2
    >>> res = estimate_prior_em(log_lik, init=np.full(4, 0.25))
    >>> bool(np.abs(res.q - q).sum() < 0.1), res.converged
    (True, True)
    """
    p0 = as_prior(init, name="init")
    n_classes = p0.n_classes
    K = p0.size
    max_iter = as_int(max_iter, "max_iter", low=1)
    tol = as_float(tol, "tol", low=0, low_open=True)
    arr = as_log_likelihood(log_lik, n_classes)
    n = arr.shape[0]
    lam, note = resolve_smoothing(smoothing, n, K)
    notes: list[str] = []
    if note is not None:
        warnings.warn(note, UserWarning, stacklevel=2)
        notes.append(note)
    sp = p0 if smoothing_prior is None else as_prior(smoothing_prior, name="smoothing_prior")
    if sp.n_classes != n_classes:
        raise ValueError(f"smoothing_prior has n_classes {sp.n_classes} but init has {n_classes}")
    dev = check_device(device)
    L, const = normalised_likelihood(arr, dev, memory_mb, "log_lik")
    p = torch.as_tensor(sp.probs.reshape(-1), dtype=torch.float64, device=dev)
    q = torch.as_tensor(p0.probs.reshape(-1), dtype=torch.float64, device=dev)

    # On CPU the two products are fused over blocks of rows that stay in cache (one pass over
    # L per step instead of two); on an accelerator two full products are faster.
    block = max(1, int(_CPU_BLOCK_BYTES // (8 * K))) if dev.type == "cpu" else n

    def step(qv: torch.Tensor) -> tuple[torch.Tensor, float]:
        if block >= n:
            d = L @ qv
            g = L.T @ (1.0 / d)
        else:
            d = torch.empty(n, dtype=torch.float64, device=dev)
            g = torch.zeros(K, dtype=torch.float64, device=dev)
            for a in range(0, n, block):
                blk = L[a : a + block]
                torch.mv(blk, qv, out=d[a : a + block])
                g.addmv_(blk.T, 1.0 / d[a : a + block])
        f = map_objective(d, qv, p, lam, const)
        q_new = (qv * g + lam * p) / (n + lam)
        return q_new / q_new.sum(), f

    history: list[float] = []
    best_q, best_f = q, -np.inf
    converged = diverged = False
    n_iter = 0
    slack = 1e-12  # relative round-off allowance of the objective

    def record(q_at: torch.Tensor, f: float) -> bool:
        """Log the objective ``f`` at ``q_at``: keep the best q, flag a decrease beyond
        round-off as divergence; True when ``f`` moved less than ``tol · n`` (converged)."""
        nonlocal best_q, best_f, diverged
        f_prev = history[-1] if history else None
        history.append(f)
        if f_prev is not None and f < f_prev - slack * max(1.0, abs(f_prev)) * 1e3:
            diverged = True
        if f > best_f:
            best_q, best_f = q_at, f
        return f_prev is not None and abs(f - f_prev) < tol * n

    while n_iter < max_iter:
        if accelerate and n_iter + 3 <= max_iter:
            q1, f0 = step(q)
            q2, f1 = step(q1)
            n_iter += 2
            r = q1 - q
            v = q2 - q1 - r
            vn = float(torch.linalg.vector_norm(v))
            cand_q = q2
            if vn > 0:
                a = -float(torch.linalg.vector_norm(r)) / vn
                a = min(a, -1.0)
                for _ in range(30):
                    qx = q - 2 * a * r + a * a * v
                    if bool((qx >= 0).all()) and float(qx.sum()) > 0:
                        break
                    a = (a - 1.0) / 2.0
                else:
                    qx = q2
                    a = -1.0
                if a < -1.0:
                    qx = qx / qx.sum()
                    q3, fx = step(qx)
                    n_iter += 1
                    if fx >= f1 - slack * max(1.0, abs(f1)):  # monotone safeguard
                        cand_q = q3
            if record(q, f0):
                converged = True
                break
            q = cand_q
        else:
            q_new, f = step(q)
            n_iter += 1
            if record(q, f):
                converged = True
                break
            q = q_new
    hist = np.asarray(history, dtype=np.float64)
    change = float(hist[-1] - hist[-2]) if hist.size >= 2 else float("nan")
    if diverged:
        msg = (
            "EM diverged: the log-likelihood fell during the iterations (min step change "
            f"{float(np.diff(hist).min()):.6g}); the likelihood is probably not shift-invariant "
            "or not finite; returned the best iterate"
        )
        warnings.warn(msg, EMConvergenceWarning, stacklevel=2)
        logger.debug(msg)  # the warning above carries it to the user
        notes.append(msg)
        q_out, f_out = best_q, best_f
    else:
        q_out, f_out = q, history[-1]
        if not converged:
            msg = (
                f"EM did not converge in max_iter={max_iter} steps: the log-likelihood still "
                f"changed by {change:.6g} over the last step ({change / n:.3g} per example, "
                f"tolerance {tol:g}); returned the last estimate"
            )
            warnings.warn(msg, EMConvergenceWarning, stacklevel=2)
            logger.debug(msg)  # the warning above carries it to the user
            notes.append(msg)
    q_np = q_out.cpu().numpy()
    q_np = (q_np / q_np.sum()).reshape(n_classes)
    logger.info("EM: %d steps, objective %.6f, converged=%s", n_iter, f_out, converged)
    return EMResult(
        q=q_np,
        objective=float(f_out),
        history=hist,
        n_iter=n_iter,
        converged=converged,
        diverged=diverged,
        smoothing=lam,
        n_examples=n,
        notes=tuple(notes),
    )


def marginal_log_likelihood(
    log_lik: Any, q: JointPrior | Any, *, smoothing: float = 0.0, smoothing_prior: Any = None
) -> float:
    """The objective EM maximises: ``Σ_i log Σ_y q(y) L(y; x_i) + λ Σ_y p(y) log q(y)``.

    A direct, unchunked float64 evaluation (used by the tests to check EM's fixed point).
    """
    qp = as_prior(q, name="q")
    arr = np.asarray(as_log_likelihood(log_lik, qp.n_classes), dtype=np.float64)
    with np.errstate(divide="ignore"):
        logq = np.log(qp.probs.reshape(-1))
    m = arr.max(axis=1, keepdims=True)
    val = float((np.log(np.exp(arr - m) @ np.exp(logq)) + m[:, 0]).sum())
    lam = check_nonnegative(smoothing, "smoothing")
    if lam > 0:
        sp = qp if smoothing_prior is None else as_prior(smoothing_prior, name="smoothing_prior")
        pv = sp.probs.reshape(-1)
        val += lam * float((pv[pv > 0] * logq[pv > 0]).sum())
    return val


@dataclass(frozen=True)
class BBSEResult:
    """The outcome of :func:`bbse`.

    Attributes
    ----------
    q : ndarray of shape ``n_classes``
        The estimate ``w ⊙ p`` with negative weights set to 0 and renormalised (counted in
        ``n_clipped``; a warning is issued when any were).
    weights : ndarray (K,)
        The raw solution ``w = C⁻¹ μ`` before clipping.
    condition_number : float
        2-norm condition number of the confusion matrix C (``inf`` when singular); the
        estimation error of BBSE scales with it (Lipton et al. 2018, Thm. 3).
    n_clipped : int
        Number of negative weights set to 0.
    rank : int
        Numerical rank of C.
    """

    q: np.ndarray
    weights: np.ndarray
    condition_number: float
    n_clipped: int
    rank: int


def _joint_index(labels: Any, n_classes: tuple[int, ...], name: str) -> np.ndarray:
    arr = as_numpy(labels)
    if arr.ndim == 1 and len(n_classes) > 1:
        arr = arr.astype(np.int64)
        K = int(np.prod(n_classes))
        if (arr < 0).any() or (arr >= K).any():
            bad = int(np.argmax((arr < 0) | (arr >= K)))
            raise ValueError(f"{name}[{bad}] = {arr[bad]} is not a joint index in [0, {K})")
        return arr
    lab = check_labels(arr, n_classes, name=name, allow_missing=False)
    ret: np.ndarray = np.ravel_multi_index(lab.T, n_classes)
    return ret


def bbse(
    val_pred: Any,
    val_labels: Any,
    test_pred: Any,
    n_classes: Sequence[int],
    *,
    max_cells: int = 4096,
) -> BBSEResult:
    """Black-box shift estimation of q (Lipton et al. 2018, Eq. 3) over the joint labels.

    Parameters
    ----------
    val_pred, val_labels : int arrays ``(N_val, T)`` (or joint indices ``(N_val,)``)
        Hard predictions of the model and true labels on labelled held-out data drawn from
        the training distribution (no missing labels).
    test_pred : int array ``(N_test, T)`` (or joint indices)
        Hard predictions on the unlabeled test data.
    n_classes : classes per task.
    max_cells : int
        Refuse more than this many joint cells (C is K × K and is inverted).

    Returns
    -------
    BBSEResult
    """
    n_classes = check_n_classes(n_classes)
    K = int(np.prod(n_classes))
    if K > max_cells:
        raise ValueError(
            f"n_classes={n_classes} has K={K} joint cells > max_cells={max_cells}; BBSE inverts a "
            "K x K confusion matrix (raise max_cells to force it)"
        )
    vp = _joint_index(val_pred, n_classes, "val_pred")
    vl = _joint_index(val_labels, n_classes, "val_labels")
    tp = _joint_index(test_pred, n_classes, "test_pred")
    if vp.shape != vl.shape:
        raise ValueError(f"val_pred has {vp.shape[0]} rows but val_labels has {vl.shape[0]}")
    C = np.bincount(vp * K + vl, minlength=K * K).reshape(K, K).astype(np.float64) / vp.shape[0]
    mu = np.bincount(tp, minlength=K).astype(np.float64) / tp.shape[0]
    p_val = C.sum(axis=0)
    sv = np.linalg.svd(C, compute_uv=False)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else float("inf")
    rank = int((sv > sv[0] * K * np.finfo(np.float64).eps).sum())
    w, *_ = np.linalg.lstsq(C, mu, rcond=None)
    n_clipped = int((w < 0).sum())
    q = np.where(w > 0, w, 0.0) * p_val
    if q.sum() <= 0:
        raise ValueError("BBSE produced no positive weight: the confusion matrix is too ill-conditioned")
    if n_clipped:
        msg = (
            f"BBSE: {n_clipped} of {K} importance weights were negative (condition number "
            f"{cond:.3g}) and were set to 0 before renormalising q"
        )
        warnings.warn(msg, UserWarning, stacklevel=2)
        logger.debug(msg)  # the warning above carries it to the user
    return BBSEResult(
        q=(q / q.sum()).reshape(n_classes), weights=w, condition_number=cond,
        n_clipped=n_clipped, rank=rank,
    )
