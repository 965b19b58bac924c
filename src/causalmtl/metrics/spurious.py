"""Gradient saliency and the spurious score ρ_spur (Hu et al., NeurIPS 2022, §2.2).

For a model ``f(Φ(x))`` and a dataset ``D`` whose input features have a known causal
structure, the saliency of a factor ``F`` (a block of input dimensions) is

    Grad(F) = Σ_{(x, y) ∈ D} | ∂ f(Φ(x))[y] / ∂F |       (Simonyan et al., 2014)

and the spurious score of a task is the share of saliency on the task's non-causal factors

    ρ_spur = Σ_{F ∈ F^S} Grad(F) / Σ_{F ∈ F} Grad(F).

Here a factor is any set of input dimensions, so ``Grad`` is computed per input dimension
(absolute gradient of each example, summed over the data) and the blocks are summed
afterwards. The functions take a callable and arrays; they know nothing about the library's
models or trainers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor

from .._validation import as_numpy

__all__ = ["input_saliency", "model_spurious_score", "spurious_score"]

Score = Literal["raw", "log_softmax"]
#: inputs, labels and saliencies: anything numpy turns into an array, or a torch tensor
ArrayOrTensor = npt.ArrayLike | Tensor


def _outputs_as_list(out: object, n_tasks: int | None) -> list[Tensor]:
    if isinstance(out, Tensor):
        outs = [out]
    elif isinstance(out, (list, tuple)) and all(isinstance(o, Tensor) for o in out):
        outs = list(out)
    else:
        raise ValueError(
            "model must return a tensor (one task) or a list/tuple of T tensors (B, C_t), got "
            f"{type(out).__name__}"
        )
    if n_tasks is not None and len(outs) != n_tasks:
        raise ValueError(f"model returned {len(outs)} task outputs but labels has {n_tasks} task columns")
    return outs


def input_saliency(
    model: Callable[[Tensor], Tensor | Sequence[Tensor]],
    inputs: ArrayOrTensor,
    labels: ArrayOrTensor,
    *,
    score: Score = "raw",
    batch_size: int = 256,
    device: str | torch.device | None = None,
) -> np.ndarray:
    """Summed absolute input gradient of each task's true-class output, per input dimension.

    ``Grad_t[j] = Σ_n |∂ f_t(x_n)[y_{n,t}] / ∂x_{n,j}|`` over the examples whose label for task
    ``t`` is present (§2.2). Regression tasks (a one-column output and float targets) use the
    output itself.

    Parameters
    ----------
    model : callable
        Maps a float tensor ``(B, ...)`` to a list of T tensors ``(B, C_t)`` (or one tensor for
        one task). It must treat examples independently; an ``nn.Module`` is put in eval
        mode for the call and restored afterwards.
    inputs : array ``(N, ...)`` of floats (numpy or torch)
    labels : array ``(N, T)`` (or ``(N,)`` for one task); ``-1`` or ``NaN`` = missing
    score : ``"raw"`` (default) differentiates the model output at the true class as returned;
        ``"log_softmax"`` normalises it to a log-probability first.
    batch_size : int, default 256
    device : torch device for the computation (default: where the model's parameters live,
        else CPU)

    Returns
    -------
    ndarray ``(T, D)``, ``D`` = number of input features (inputs flattened after axis 0).
    """
    if score not in ("raw", "log_softmax"):
        raise ValueError(f"score must be 'raw' or 'log_softmax', got {score!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if isinstance(inputs, dict):
        raise ValueError("inputs must be one float array; a dict of (id) arrays has no input gradient")
    x_all = torch.as_tensor(as_numpy(inputs))
    if not torch.is_floating_point(x_all):
        raise ValueError(f"inputs must be a float array to take gradients, got dtype {x_all.dtype}")
    y_all = np.asarray(as_numpy(labels))
    if y_all.ndim == 1:
        y_all = y_all[:, None]
    if y_all.ndim != 2 or y_all.shape[0] != x_all.shape[0]:
        raise ValueError(
            f"labels must have shape (N, T) with N = {x_all.shape[0]} (the number of inputs), got "
            f"{y_all.shape}"
        )
    missing = np.isnan(y_all) if y_all.dtype.kind == "f" else y_all < 0
    y_filled = torch.as_tensor(np.where(missing, 0, y_all).astype(np.int64))
    present = torch.as_tensor(~missing)
    params = list(model.parameters()) if isinstance(model, torch.nn.Module) else []
    if device is None:
        device = params[0].device if params else torch.device("cpu")
    if params and params[0].is_floating_point():
        x_all = x_all.to(params[0].dtype)  # numpy float64 inputs for a float32 model
    module = model if isinstance(model, torch.nn.Module) else None
    was_training = module is not None and module.training
    if module is not None and was_training:
        module.eval()  # dropout / batch-norm statistics must not mix examples
    try:
        return _accumulate_saliency(model, x_all, y_all, y_filled, present, score, batch_size, device)
    finally:
        if module is not None and was_training:
            module.train(True)


def _accumulate_saliency(
    model: Callable[[Tensor], Tensor | Sequence[Tensor]],
    x_all: Tensor,
    y_all: np.ndarray,
    y_filled: Tensor,
    present: Tensor,
    score: Score,
    batch_size: int,
    device: torch.device | str | None,
) -> np.ndarray:
    n, t_count = y_all.shape
    total = torch.zeros(t_count, int(np.prod(x_all.shape[1:], dtype=np.int64)), dtype=torch.float64, device=device)
    for start in range(0, n, batch_size):
        xb = x_all[start : start + batch_size].to(device).requires_grad_(True)
        outs = _outputs_as_list(model(xb), t_count)
        for t, out in enumerate(outs):
            if out.dim() == 1:
                out = out[:, None]
            mask = present[start : start + batch_size, t].to(device)
            if out.shape[1] == 1 and y_all.dtype.kind == "f":
                chosen = out[:, 0]
            else:
                if score == "log_softmax":
                    out = torch.log_softmax(out, dim=1)
                idx = y_filled[start : start + batch_size, t].to(device)
                if (idx >= out.shape[1]).any():
                    raise ValueError(
                        f"labels for task {t} reach {int(idx.max())} but the model outputs only "
                        f"{out.shape[1]} classes"
                    )
                chosen = out.gather(1, idx[:, None])[:, 0]
            # examples are independent, so d(Σ_n chosen_n)/dx_n is the per-example gradient
            (grad,) = torch.autograd.grad(
                (chosen * mask.to(chosen.dtype)).sum(), xb, retain_graph=t + 1 < t_count
            )
            total[t] += grad.abs().reshape(grad.shape[0], -1).sum(dim=0).to(torch.float64)
    return total.cpu().numpy()


def _block_mask(block: npt.ArrayLike, d: int, t: int) -> np.ndarray:
    arr = np.asarray(block)
    if arr.dtype == bool:
        if arr.shape != (d,):
            raise ValueError(f"causal_blocks[{t}] is a boolean mask of shape {arr.shape}, expected ({d},)")
        return arr
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"causal_blocks[{t}] must hold integer feature indices or a boolean mask, got {arr.dtype}")
    idx = arr.astype(np.int64).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= d):
        bad = idx[(idx < 0) | (idx >= d)][0]
        raise ValueError(f"causal_blocks[{t}] contains feature index {bad}, outside [0, {d})")
    mask = np.zeros(d, dtype=bool)
    mask[idx] = True
    return mask


def spurious_score(saliency: ArrayOrTensor, causal_blocks: Sequence[npt.ArrayLike]) -> np.ndarray:
    """Per-task share of saliency on non-causal input dimensions, ρ_spur (§2.2).

    Parameters
    ----------
    saliency : array ``(T, D)`` of non-negative saliencies (:func:`input_saliency`)
    causal_blocks : sequence of T index arrays (or boolean masks of length D): the input
        dimensions causal for each task (``DatasetSplits.meta["causal_blocks"]``)

    Returns
    -------
    ndarray ``(T,)`` with values in [0, 1]; NaN for a task with zero total saliency.

    Examples
    --------
    >>> spurious_score([[3.0, 1.0, 0.0, 0.0]], [[0, 2]])
    array([0.25])
    """
    sal = np.asarray(as_numpy(saliency), dtype=np.float64)
    if sal.ndim == 1:
        sal = sal[None, :]
    if sal.ndim != 2:
        raise ValueError(f"saliency must be a (T, D) array, got shape {sal.shape}")
    if (sal < 0).any() or not np.isfinite(sal).all():
        raise ValueError("saliency must be finite and non-negative (sums of absolute gradients)")
    if len(causal_blocks) != sal.shape[0]:
        raise ValueError(
            f"causal_blocks has {len(causal_blocks)} entries but saliency has {sal.shape[0]} tasks"
        )
    causal = np.stack([_block_mask(b, sal.shape[1], t) for t, b in enumerate(causal_blocks)])
    total = sal.sum(axis=1)
    spurious = np.where(causal, 0.0, sal).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, spurious / np.where(total > 0, total, 1.0), np.nan)


def model_spurious_score(
    model: Callable[[Tensor], Tensor | Sequence[Tensor]],
    inputs: ArrayOrTensor,
    labels: ArrayOrTensor,
    causal_blocks: Sequence[npt.ArrayLike],
    **saliency_kwargs: Any,
) -> np.ndarray:
    """:func:`spurious_score` of :func:`input_saliency` — ρ_spur per task for a model and data."""
    return spurious_score(input_saliency(model, inputs, labels, **saliency_kwargs), causal_blocks)
