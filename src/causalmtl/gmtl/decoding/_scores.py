"""Checking and converting the per-task scores handed to GMTL decoding (one place for both backends).

Scores are a list of T arrays ``(N, C_t)`` of ``log p(y_t|x)`` or one joint array
``(N, C_1, …, C_T)`` (Makino et al. 2022, Eq. 5 without factorising). numpy arrays, CPU or
accelerator tensors are accepted; :func:`prepare_scores` validates them once and hands the
kernels float64 numpy arrays (``backend="numpy"``) or float64 tensors on one device
(``backend="torch"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

#: Tolerance of the log-probability checks (|logsumexp| and positive values).
LOG_PROB_ATOL = 1e-4

BACKENDS = ("auto", "numpy", "torch")


def safe_log(p: Any) -> np.ndarray:
    """``log p`` with ``log 0 = -inf`` and no divide warning."""
    with np.errstate(divide="ignore"):
        ret: np.ndarray = np.log(p)
        return ret


def is_torch_input(log_probs: Any) -> bool:
    """True when the scores (an array or a list of them) hold a torch tensor."""
    if isinstance(log_probs, (list, tuple)):
        return any(isinstance(x, torch.Tensor) for x in log_probs)
    return isinstance(log_probs, torch.Tensor)


@dataclass(frozen=True)
class Scores:
    """Validated scores: ``values`` (T arrays, or one joint array), their number of rows ``n``,
    ``is_joint``, the ``backend`` the kernels use, its ``device`` (None for numpy) and whether
    the caller gave tensors (``was_torch``: results go back as tensors)."""

    values: Any
    n: int
    is_joint: bool
    backend: str
    device: torch.device | None
    was_torch: bool


def _first_index(mask: Any) -> tuple[int, ...]:
    if isinstance(mask, torch.Tensor):
        return tuple(int(i) for i in torch.nonzero(mask)[0])
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check(x: Any, name: str, n_class_dims: int, normalized: bool) -> None:
    """Raise a ValueError naming ``name`` if ``x`` is empty, holds NaN/+inf, or (when
    ``normalized``) is not a log-probability over its last ``n_class_dims`` axes."""
    tch = isinstance(x, torch.Tensor)
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(x.shape)}); at least one example is needed")
    nan = torch.isnan(x) if tch else np.isnan(x)
    if nan.any():
        raise ValueError(f"{name} contains NaN at index {_first_index(nan)}")
    pinf = torch.isposinf(x) if tch else np.isposinf(x)
    if pinf.any():
        raise ValueError(f"{name} contains +inf at index {_first_index(pinf)}; scores must be log-probabilities")
    if not normalized:
        return
    positive = x > LOG_PROB_ATOL
    if positive.any():
        idx = _first_index(positive)
        raise ValueError(
            f"{name} is not a normalised log-probability at row {idx[0]}: value {float(x[idx]):.6g} > 0 "
            f"at index {idx} (check failed: log p <= 0). Pass normalized=False for unnormalised logits"
        )
    dims = tuple(range(1, 1 + n_class_dims))
    if tch:
        lse = torch.logsumexp(x, dim=dims)
    else:
        flat = x.reshape(x.shape[0], -1)
        mx = np.maximum(flat.max(axis=1), -1e300)
        with np.errstate(divide="ignore"):
            lse = mx + np.log(np.exp(flat - mx[:, None]).sum(axis=1))
    bad = (lse.abs() if tch else np.abs(lse)) > LOG_PROB_ATOL
    if bad.any():
        row = _first_index(bad)[0]
        raise ValueError(
            f"{name} is not a normalised log-probability at row {row}: logsumexp over classes is "
            f"{float(lse[row]):.6g}, expected 0 (check failed: |logsumexp| <= {LOG_PROB_ATOL}). "
            "Pass normalized=False for unnormalised logits"
        )


def prepare_scores(log_probs: Any, n_classes: tuple[int, ...], normalized: bool, backend: str = "auto") -> Scores:
    """Validate per-task or joint scores against ``n_classes`` and convert them for a backend.

    ``backend="auto"``: numpy for numpy inputs and CPU tensors (viewed, not copied, when
    already float64), torch for tensors on an accelerator. ``"numpy"`` refuses accelerator
    tensors. Raises ValueError naming the argument, the value and what was expected.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be 'auto', 'numpy' or 'torch', got {backend!r}")
    T = len(n_classes)
    was_torch = is_torch_input(log_probs)
    is_list = isinstance(log_probs, (list, tuple))
    items = list(log_probs) if is_list else [log_probs]
    devices = {x.device for x in items if isinstance(x, torch.Tensor)}
    on_cpu = all(d.type == "cpu" for d in devices)
    if backend == "numpy" and not on_cpu:
        raise ValueError("backend='numpy' needs numpy inputs or CPU tensors; use backend='torch' on an accelerator")
    use = "numpy" if backend == "numpy" or (backend == "auto" and on_cpu) else "torch"
    device = None
    arrays: list[Any]  # float64 numpy arrays or tensors, by backend
    if use == "numpy":
        arrays = [
            np.asarray(x.detach().numpy() if isinstance(x, torch.Tensor) else x, dtype=np.float64) for x in items
        ]
    else:
        device = next((x.device for x in items if isinstance(x, torch.Tensor)), torch.device("cpu"))
        arrays = [
            x.to(device=device, dtype=torch.float64)
            if isinstance(x, torch.Tensor)
            else torch.as_tensor(np.asarray(x, dtype=np.float64), device=device)
            for x in items
        ]
    if is_list:
        if len(arrays) != T:
            raise ValueError(f"log_probs has {len(arrays)} tasks but the prior has {T} (n_classes={n_classes})")
        n = arrays[0].shape[0] if arrays[0].ndim else 0
        for t, (x, c) in enumerate(zip(arrays, n_classes)):
            if x.ndim != 2 or x.shape[1] != c:
                raise ValueError(
                    f"log_probs[{t}] must have shape (N, {c}) to match the prior's n_classes[{t}]={c}, "
                    f"got {tuple(x.shape)}"
                )
            if x.shape[0] != n:
                raise ValueError(f"log_probs[{t}] has {x.shape[0]} rows but log_probs[0] has {n}")
            _check(x, f"log_probs[{t}]", 1, normalized)
        return Scores(arrays, n, False, use, device, was_torch)
    joint = arrays[0]
    if joint.ndim != T + 1 or tuple(joint.shape[1:]) != tuple(n_classes):
        raise ValueError(
            f"a joint log_probs array must have shape (N, *n_classes) = (N, {', '.join(map(str, n_classes))}), "
            f"got {tuple(joint.shape)}; pass per-task scores as a list of T arrays"
        )
    _check(joint, "log_probs", T, normalized)
    return Scores(joint, int(joint.shape[0]), True, use, device, was_torch)


__all__ = ["LOG_PROB_ATOL", "Scores", "is_torch_input", "prepare_scores", "safe_log"]
