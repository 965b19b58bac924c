"""The MT-CRL regularisers as pure tensor functions (Hu et al., NeurIPS 2022, §3).

* :func:`decorrelation_penalty` — Eq. (1)–(2): squared Frobenius norm of the in-batch Pearson
  correlation between the output dimensions of every pair of different modules, summed over
  the pairs (one matrix product for all pairs);
* :func:`graph_regularizer` — Eq. (3): ``λ_sps ‖A‖₁ − λ_bal · Entropy(Σ_t A_{t,·} / Σ_{t,i} A_{t,i})``;
* :func:`graph_risk_gradients` — the graph gradients ``∇_{A_t} R_t^e`` of every task and every
  environment from ONE ``torch.autograd.grad`` call with ``create_graph=True``;
* :func:`girm_norm` — Eq. (8) and :func:`girm_variance` — Eq. (9), from those gradients;
* :func:`gaussian_kl` and :func:`beta_vae_terms` — the β-VAE objective of Higgins et al.
  (ICLR 2017, Eq. 4), the disentanglement alternative of the paper's Table 3 ablation.

None of these multiply by their λ except :func:`graph_regularizer`, whose two weights are part
of the equation; the method (:class:`causalmtl.methods.mtcrl.MTCRL`) applies the others.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ... import _parallel
from ..._validation import check_nonnegative

__all__ = [
    "balance_entropy",
    "beta_vae_terms",
    "gaussian_kl",
    "decorrelation_penalty",
    "girm_norm",
    "girm_variance",
    "graph_regularizer",
    "graph_risk_gradients",
    "module_correlation",
]


SPATIAL = ("pixels", "pooled")


def _as_module_matrix(z: Tensor | Sequence[Tensor], spatial: str = "pixels") -> tuple[Tensor, Tensor]:
    """Flatten module outputs to ``(N, D)`` and give the module index of each column.

    Vector modules ``(B, K, m)`` give ``N = B`` rows. Feature-map modules ``(B, K, m, h, w)``
    give, with ``spatial="pixels"``, one row per example and pixel (``N = B·h·w``: the channels
    of every module are correlated over batch × pixels), with ``spatial="pooled"`` one row per
    example of the spatially averaged channels (``N = B``).
    """
    if spatial not in SPATIAL:
        raise ValueError(f"spatial must be one of {list(SPATIAL)}, got {spatial!r}")
    if isinstance(z, Tensor) and z.dim() == 5:
        b, k, m, h, w = z.shape
        ids = torch.arange(k, device=z.device).repeat_interleave(m)
        if spatial == "pooled":
            return z.mean(dim=(-2, -1)).reshape(b, k * m), ids
        return z.permute(0, 3, 4, 1, 2).reshape(b * h * w, k * m), ids
    if isinstance(z, Tensor):
        if z.dim() != 3:
            raise ValueError(
                f"z must have shape (B, K, m) (batch, modules, module width) or (B, K, m, h, w) "
                f"(feature-map modules), got {tuple(z.shape)}"
            )
        b, k, m = z.shape
        ids = torch.arange(k, device=z.device).repeat_interleave(m)
        return z.reshape(b, k * m), ids
    parts = list(z)
    if len(parts) == 0:
        raise ValueError("z is an empty sequence; expected K module outputs of shape (B, d_i)")
    for i, p in enumerate(parts):
        if p.dim() != 2 or p.shape[0] != parts[0].shape[0]:
            raise ValueError(
                f"z[{i}] has shape {tuple(p.shape)}; every module output must be (B, d_i) with the "
                f"same B = {parts[0].shape[0]}"
            )
    ids = torch.cat(
        [torch.full((p.shape[1],), i, device=p.device, dtype=torch.long) for i, p in enumerate(parts)]
    )
    return torch.cat(parts, dim=1), ids


def module_correlation(z: Tensor | Sequence[Tensor], eps: float = 1e-8, spatial: str = "pixels") -> Tensor:
    """In-batch Pearson correlation between all output dimensions of all modules, Eq. (1).

    ``ρ = C / sqrt(diag(C) diag(C)ᵀ)`` with ``C = (Z − Z̄)ᵀ (Z − Z̄)``; ``eps`` is added to the
    diagonal of ``C`` inside the square root so a constant dimension gives ρ = 0, not NaN.

    Parameters
    ----------
    z : Tensor ``(B, K, m)``, ``(B, K, m, h, w)`` (feature maps) or sequence of K tensors ``(B, d_i)``
    eps : float, default 1e-8
    spatial : for feature maps, "pixels" (samples = batch × pixels) or "pooled" (spatial means)

    Returns
    -------
    Tensor ``(D, D)`` with ``D = Σ_i d_i``; block ``(i, j)`` is ``ρ(Z_i, Z_j)``.
    """
    flat, _ = _as_module_matrix(z, spatial)
    return _correlation(flat, eps)


def _correlation(flat: Tensor, eps: float) -> Tensor:
    if _parallel.active():  # data-parallel training: moments of the global batch
        return _global_correlation(flat, eps)
    if flat.shape[0] < 2:
        raise ValueError(
            f"a correlation needs a batch of at least 2 examples, got batch size {flat.shape[0]}"
        )
    centred = flat - flat.mean(dim=0, keepdim=True)
    unit = centred / torch.sqrt((centred * centred).sum(dim=0, keepdim=True) + eps)
    return unit.T @ unit


def _global_correlation(flat: Tensor, eps: float) -> Tensor:
    """:func:`_correlation` over the global batch of a data-parallel step (``docs/scaling.md``).

    The mean is held fixed (detached): ``C = Σ_i (z_i − z̄)(z_i − z̄)ᵀ`` has zero derivative in
    ``z̄`` because ``Σ_i (z_i − z̄) = 0``, so value and gradient equal the single-process ones
    while every sum stays a first-level global sum.
    """
    stats = flat.detach().float()  # counts and sums in float32 also under bfloat16 autocast
    n, total = _parallel.global_sums(stats.new_tensor([float(flat.shape[0])]), stats.sum(dim=0))
    mean = (total / n).unsqueeze(0).to(flat.dtype)
    centred = flat - mean
    cov = _parallel.global_sum(centred.T @ centred)
    scale = torch.sqrt(torch.diagonal(cov) + eps)
    return cov / (scale[:, None] * scale[None, :])


def decorrelation_penalty(z: Tensor | Sequence[Tensor], eps: float = 1e-8, spatial: str = "pixels") -> Tensor:
    """``Σ_{i<j} ‖ρ(Z_i, Z_j)‖_F²``, Eq. (2) without the factor λ_decor.

    All module pairs come from one ``(D, D)`` correlation matrix (one matrix product); the
    within-module blocks are masked out and the symmetric off-diagonal blocks are halved.

    Parameters
    ----------
    z : Tensor ``(B, K, m)`` or sequence of K tensors ``(B, d_i)`` (modules may differ in width),
        or feature-map modules ``(B, K, m, h, w)``
    eps : float, default 1e-8 (see :func:`module_correlation`)
    spatial : for feature maps, "pixels" (default: module channels correlated over batch ×
        pixels, one sample per example and location) or "pooled" (over the batch, of the
        spatially averaged channels); see docs/mtcrl.md for the choice and its cost

    Examples
    --------
    >>> import torch
    >>> z = torch.tensor([[1.0, 2.0], [2.0, 4.0], [3.0, 5.0]]).reshape(3, 2, 1)
    >>> round(float(decorrelation_penalty(z)), 4)   # ρ(Z_1, Z_2)² for two 1-d modules
    0.9643
    """
    flat, ids = _as_module_matrix(z, spatial)
    rho = _correlation(flat, eps)
    other = ids[:, None] != ids[None, :]
    return 0.5 * (rho * rho * other).sum()


def balance_entropy(graph: Tensor) -> Tensor:
    """Entropy (nats) of the module-usage distribution ``Σ_t A_{t,·} / Σ_{t,i} A_{t,i}``, Eq. (3)."""
    usage = graph.sum(dim=0)
    p = usage / usage.sum()
    ent: Tensor = -(torch.special.xlogy(p, p)).sum()
    return ent


def graph_regularizer(graph: Tensor, lambda_sps: float, lambda_bal: float) -> Tensor:
    """``λ_sps ‖A‖₁ − λ_bal · Entropy(Σ_t A_{t,·} / Σ_{t,i} A_{t,i})``, Eq. (3).

    ``‖A‖₁`` is the entry-wise L1 norm ``Σ_{t,i} |A_{t,i}|``; the entropy uses natural logs
    (``0 log 0 = 0``). The sparsity term pushes graph weights to zero; the balance term keeps
    the total weight each module receives over all tasks even, so that no module is abandoned.

    Parameters
    ----------
    graph : Tensor ``(T, K)`` with entries in [0, 1] (``A = sigmoid(θ)``)
    lambda_sps, lambda_bal : float >= 0

    Examples
    --------
    >>> import torch
    >>> a = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> float(graph_regularizer(a, lambda_sps=0.5, lambda_bal=1.0))  # 0.5·2 − 1·0
    1.0
    """
    check_nonnegative(lambda_sps, "lambda_sps")
    check_nonnegative(lambda_bal, "lambda_bal")
    if graph.dim() != 2:
        raise ValueError(f"graph must be a (T, K) matrix, got shape {tuple(graph.shape)}")
    return lambda_sps * graph.abs().sum() - lambda_bal * balance_entropy(graph)


def graph_risk_gradients(risks: Tensor, graphs: Tensor, create_graph: bool = True) -> Tensor:
    """``∇_{A_t} R_t^e`` for every environment e and task t, from ONE ``autograd.grad`` call.

    ``graphs`` holds one copy of the graph per environment, ``(E, T, K)``; ``risks[e, t]`` must
    have been computed with ``graphs[e]`` only, and ``R_t^e`` depends on the graph through the
    row ``graphs[e, t]`` only (row t routes task t). Then the gradient of ``Σ_{e,t} R_t^e``
    with respect to ``graphs`` is, row for row, exactly the stack of the per-task,
    per-environment gradients that Eq. (8)–(9) need.

    Parameters
    ----------
    risks : Tensor ``(E, T)``, per-environment per-task risks
    graphs : Tensor ``(E, T, K)``, the per-environment graph copies the risks were computed with
    create_graph : bool, default True
        Keep the graph of the gradient so a penalty built from it can be differentiated
        (with respect to Φ and A) — required for training.

    Returns
    -------
    Tensor ``(E, T, K)``
    """
    if risks.dim() != 2 or graphs.dim() != 3 or graphs.shape[:2] != risks.shape:
        raise ValueError(
            f"risks must be (E, T) and graphs (E, T, K) with matching E and T, got risks "
            f"{tuple(risks.shape)} and graphs {tuple(graphs.shape)}"
        )
    (grads,) = torch.autograd.grad(risks.sum(), graphs, create_graph=create_graph)
    return grads


def _check_envs(grads: Tensor) -> None:
    if grads.dim() != 3:
        raise ValueError(f"grads must have shape (E, T, K), got {tuple(grads.shape)}")
    if grads.shape[0] < 2:
        raise ValueError(
            f"G-IRM needs at least 2 environments, got {grads.shape[0]} (grads shape "
            f"{tuple(grads.shape)}); e.g. use the train and valid splits as two environments"
        )


def girm_norm(grads: Tensor) -> Tensor:
    """``Σ_t Σ_e ‖∇_{A_t} R_t^e‖²``, Eq. (8), from :func:`graph_risk_gradients` output ``(E, T, K)``."""
    _check_envs(grads)
    return (grads * grads).sum()


def girm_variance(grads: Tensor) -> Tensor:
    """``Σ_t Σ_e (1/|E|) ‖∇_{A_t} R_t^e − Avg_e ∇_{A_t} R_t^e‖²``, Eq. (9).

    Zero exactly when every environment gives the same graph gradient.
    """
    _check_envs(grads)
    dev = grads - grads.mean(dim=0, keepdim=True)
    return (dev * dev).sum() / grads.shape[0]


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """Closed-form ``KL(N(μ, diag σ²) ‖ N(0, I))`` per example.

    ``KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²)``, summed over every non-batch dimension
    (Kingma & Welling 2014, App. B).

    Parameters
    ----------
    mu, logvar : Tensor ``(B, ...)``
        Posterior means and log-variances ``log σ²`` of the same shape.

    Returns
    -------
    Tensor ``(B,)``

    Examples
    --------
    >>> import torch
    >>> gaussian_kl(torch.zeros(2, 3), torch.zeros(2, 3))
    tensor([0., 0.])
    """
    if mu.shape != logvar.shape or mu.dim() < 1:
        raise ValueError(
            f"mu and logvar must have the same shape (B, ...), got {tuple(mu.shape)} and {tuple(logvar.shape)}"
        )
    kl = 0.5 * (mu.square() + logvar.exp() - 1.0 - logvar)
    return kl.reshape(kl.shape[0], -1).sum(dim=1)


def beta_vae_terms(x: Tensor, x_hat: Tensor, mu: Tensor, logvar: Tensor) -> tuple[Tensor, Tensor]:
    """Batch means of the two terms of the β-VAE objective (Higgins et al. 2017, Eq. 4).

    ``L_β-VAE = E_q[−log p(x|z)] + β · KL(q(z|x) ‖ N(0, I))`` with a unit-variance Gaussian
    decoder ``p(x|z) = N(x̂(z), I)``, so ``−log p(x|z) = ½ ‖x − x̂‖² + (D/2) log 2π``; the
    constant is dropped. The expectation over q is the usual one-sample estimate (``x̂``
    decoded from one reparameterised draw of ``z``).

    Parameters
    ----------
    x, x_hat : Tensor ``(B, ...)``
        Inputs and reconstructions (same number of elements per example).
    mu, logvar : Tensor ``(B, ...)``
        Posterior means and log-variances.

    Returns
    -------
    (recon, kl) : two scalar tensors, ``mean_b ½‖x_b − x̂_b‖²`` and ``mean_b KL_b``; the method
    combines them as ``recon + β · kl``.
    """
    if x.shape[0] != x_hat.shape[0] or x.numel() != x_hat.numel():
        raise ValueError(
            f"x_hat must match x example by example: x has shape {tuple(x.shape)}, x_hat {tuple(x_hat.shape)}"
        )
    if mu.shape[0] != x.shape[0]:
        raise ValueError(f"mu has {mu.shape[0]} rows but x has {x.shape[0]}; expected one posterior per example")
    diff = (x.reshape(x.shape[0], -1) - x_hat.reshape(x.shape[0], -1)).to(mu.dtype)
    recon = 0.5 * diff.square().sum(dim=1).mean()
    return recon, gaussian_kl(mu, logvar).mean()
