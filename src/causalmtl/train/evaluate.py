"""Evaluation of a multi-task model on a split: masked per-task losses and accuracies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

import numpy as np
import torch
from torch import Tensor

from ..data.base import MultiTaskDataset
from ..methods.batch import Batch
from ..metrics.dense import DenseMetrics, dense_metrics_for_task
from ..nn.base import MultiTaskModel
from .streaming import eval_batches

__all__ = ["evaluate", "predict_log_probs"]


class _Sums(TypedDict):
    """What :func:`_accumulate` gathers over a split (per-task tensors of shape ``(T,)``)."""

    risk: Tensor
    correct: Tensor
    count: Tensor
    loss: Tensor
    dense: dict[int, DenseMetrics]


@torch.no_grad()
def _accumulate(
    model: MultiTaskModel, batches: Iterable[Batch], device: torch.device, task_weights: Tensor | None
) -> _Sums:
    t_count = len(model.tasks)
    dev = device
    loss_sum = torch.zeros(t_count, device=dev)
    count = torch.zeros(t_count, device=dev)
    correct = torch.zeros(t_count, device=dev)
    dense = {t: dense_metrics_for_task(task) for t, task in enumerate(model.tasks) if task.is_dense}
    for b in batches:
        out = model.forward_full(b.x)
        obs = ~torch.isnan(b.y)
        loss_sum += model.row_losses(out, b.y, b.maps).sum(0)
        for t, acc in dense.items():
            acc.update(out.outputs[t].float(), b.maps[t])
        count += obs.sum(0)
        y0 = torch.nan_to_num(b.y, nan=-1.0)
        for t, task in enumerate(model.tasks):
            if task.kind == "classification":
                pred = out.outputs[t].argmax(1).to(y0.dtype)
                correct[t] += ((pred == y0[:, t]) & obs[:, t]).sum()
    risk = loss_sum / count.clamp(min=1)
    w = torch.ones(t_count, device=dev) if task_weights is None else task_weights.to(dev)
    return {"risk": risk, "correct": correct, "count": count, "loss": (risk * w).sum(), "dense": dense}


def _dense_results(model: MultiTaskModel, dense: dict[int, DenseMetrics]) -> dict[str, float]:
    """``"<metric>/<task>"`` for every dense task's split-level metrics (NaN without any map)."""
    out: dict[str, float] = {}
    for t, acc in dense.items():
        name = model.tasks[t].name
        if not acc.state_tensors():
            continue
        for k, v in acc.compute().items():
            out[f"{k}/{name}"] = float(v)
    return out


def evaluate(
    model: MultiTaskModel,
    data: MultiTaskDataset | Batch,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
    task_weights: Sequence[float] | Tensor | None = None,
) -> dict[str, float]:
    """Masked mean loss per task (NLL or squared error), their weighted sum, and accuracies.

    Returns ``{"loss": Σ_t w_t R_t, "loss/<task>": R_t, "acc/<task>": accuracy}`` (accuracy
    for classification tasks only; over labelled rows; NaN when a task has no label) and, for
    dense tasks, the split-level metrics of :mod:`causalmtl.metrics.dense` as
    ``"<metric>/<task>"`` (``miou``, ``pix_acc``, ``abs_err``, ``rel_err``, ``mean_angle``, …;
    accumulated over the whole split, not averaged per batch).
    The model is put in eval mode for the call and restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    if isinstance(data, Batch):
        dev = data.y.device
    w = None if task_weights is None else torch.as_tensor(task_weights, dtype=torch.float32)
    was = model.training
    model.eval()
    try:
        acc = _accumulate(model, eval_batches(data, batch_size, dev), dev, w)
    finally:
        model.train(was)
    risk = acc["risk"].cpu().numpy()
    count = acc["count"].cpu().numpy()
    correct = acc["correct"].cpu().numpy()
    out = {"loss": float(acc["loss"])}
    for t, task in enumerate(model.tasks):
        out[f"loss/{task.name}"] = float(risk[t]) if count[t] > 0 else float("nan")
        if task.kind == "classification":
            out[f"acc/{task.name}"] = float(correct[t] / count[t]) if count[t] > 0 else float("nan")
    out.update(_dense_results(model, acc["dense"]))
    return out


@torch.no_grad()
def predict_log_probs(
    model: MultiTaskModel,
    data: MultiTaskDataset,
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> list[np.ndarray]:
    """Per-task outputs of ``model`` on ``data`` as numpy arrays (e.g. for GMTL decoding).

    Streamed datasets are read chunk by chunk; dense tasks give ``(N, C, H, W)`` arrays, so
    for a large split prefer iterating over :func:`~causalmtl.train.streaming.eval_batches`.
    """
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    was = model.training
    model.eval()
    chunks: list[list[Tensor]] = [[] for _ in model.tasks]
    try:
        for b in eval_batches(data, batch_size, dev):
            for t, o in enumerate(model(b.x)):
                chunks[t].append(o.float())
    finally:
        model.train(was)
    return [torch.cat(c).cpu().numpy() for c in chunks]
