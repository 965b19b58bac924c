"""Task-to-module diagnostics of MT-CRL's case study (Hu et al., NeurIPS 2022, §4, Figure 4).

For a modular model — :class:`~causalmtl.nn.mtcrl.MTCRLNet` or the vanilla
:class:`~causalmtl.nn.mmoe.MMoE` — the *task-to-module gradient* ``G[t, i]`` measures how the
risk of task ``t`` changes when module ``i``'s contribution to task ``t`` grows:

* ``wrt="scale"`` (any modular model): put a multiplier ``s_{t,i}`` on the routing weight of
  module ``i`` for task ``t`` (MMoE's gate ``g^t(x)_i`` or MT-CRL's ``A_{t,i}``) and take
  ``∂R_t / ∂s_{t,i}`` at ``s = 1``;
* ``wrt="graph"`` (MTCRLNet only): ``∂R_t / ∂A_{t,i}``, the quantity G-IRM penalises
  (Eq. 8–9); it equals the scale gradient divided by ``A_{t,i}``.

A negative entry means that using module ``i`` more lowers task ``t``'s risk. Figure 4 shows
the gradients on the training split ("how much each module is used to fit the training set")
and "valid − train" ("how generalisable each module is"): a module that helps on train but
whose valid gradient is much larger (more positive) is spurious for that task.
:func:`plot_heatmap` draws such ``T × K`` tables (and the learned graph A) as PNG files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor

from ...data.base import MultiTaskDataset
from ...nn.base import MultiTaskModel, row_losses
from ...nn.dense import spatial_size
from ...nn.mmoe import MMoE
from ...nn.mtcrl import MTCRLNet
from ..batch import Batch

__all__ = ["ModuleGradients", "module_factor_saliency", "module_gradient_report", "plot_graph", "plot_heatmap",
           "task_factor_weights", "task_module_gradients"]

Wrt = Literal["scale", "graph"]


def _routed_outputs(model: MultiTaskModel, x: Any, scale: Tensor, wrt: Wrt) -> list[Tensor]:
    """Outputs of ``model`` with ``scale`` (T, K) multiplying the task-to-module routing."""
    if isinstance(model, MTCRLNet):
        z = model.encode(x)
        graph = model.graph
        routing = scale if wrt == "graph" else graph * scale  # wrt="graph": scale *is* A
        return model.predict_from_mixed(model.mix(z, routing))
    if isinstance(model, MMoE):
        experts = torch.stack([e(x) for e in model.experts], dim=1)  # (B, K, D) or (B, K, C, h, w)
        gates = model.gate_weights(x) * scale  # (B, T, K)
        return model.mixed_outputs(experts, gates, spatial_size(x))
    raise ValueError(
        f"task-to-module gradients need a modular model (MTCRLNet or MMoE), got {type(model).__name__}"
    )


def _as_dtype(x: Any, dtype: torch.dtype) -> Any:
    """Floating inputs in the model's dtype (integer ids pass unchanged)."""
    if isinstance(x, dict):
        return {k: _as_dtype(v, dtype) for k, v in x.items()}
    return x.to(dtype) if torch.is_floating_point(x) else x


def task_module_gradients(
    model: MultiTaskModel,
    data: MultiTaskDataset | Batch,
    *,
    wrt: Wrt = "scale",
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> np.ndarray:
    """``G[t, i] = ∂R_t / ∂s_{t,i}`` (or ``∂R_t / ∂A_{t,i}``) over a whole dataset, ``(T, K)``.

    ``R_t`` is the masked mean loss of task ``t`` over ``data`` (NLL or squared error, as in
    training); the gradient is accumulated over mini-batches of ``batch_size`` rows with the
    model in eval mode (restored afterwards). A task without any label gets a row of NaN.

    Parameters
    ----------
    model : :class:`~causalmtl.nn.mtcrl.MTCRLNet` or :class:`~causalmtl.nn.mmoe.MMoE`
    data : a dataset split or a :class:`~causalmtl.methods.batch.Batch`
    wrt : ``"scale"`` (default; any modular model) or ``"graph"`` (MTCRLNet)
    batch_size : int, default 1024
    device : default: where the model's parameters are
    """
    if wrt not in ("scale", "graph"):
        raise ValueError(f"wrt must be 'scale' or 'graph', got {wrt!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if not isinstance(model, (MTCRLNet, MMoE)):
        raise ValueError(
            f"task-to-module gradients need a modular model (MTCRLNet or MMoE), got {type(model).__name__}"
        )
    if wrt == "graph" and not isinstance(model, MTCRLNet):
        raise ValueError("wrt='graph' needs an MTCRLNet (MMoE has per-example gates, no graph A)")
    dev = torch.device(device) if device is not None else next(model.parameters()).device
    n_tasks = model.n_tasks
    n_modules = model.n_modules if isinstance(model, MTCRLNet) else model.n_experts
    dtype = next(model.parameters()).dtype
    total = torch.zeros(n_tasks, n_modules, dtype=torch.float64, device=dev)
    count = torch.zeros(n_tasks, dtype=torch.float64, device=dev)
    was = model.training
    model.eval()
    try:
        for part in Batch.chunks(data, batch_size, dev):
            if wrt == "graph":
                # wrt='graph' was checked to come with an MTCRLNet above
                scale = cast(MTCRLNet, model).graph.detach().clone().requires_grad_(True)
            else:
                scale = torch.ones(n_tasks, n_modules, dtype=dtype, device=dev, requires_grad=True)
            outs = _routed_outputs(model, _as_dtype(part.x, dtype), scale, wrt)
            losses = row_losses(outs, part.y, model.tasks, part.maps)  # (B, T), 0 where missing
            # row t of `scale` routes task t only, so one gradient gives every task's row
            (g,) = torch.autograd.grad(losses.sum(), scale)
            total += g.to(torch.float64)
            count += (~torch.isnan(part.y)).sum(0).to(torch.float64)
    finally:
        model.train(was)
    out = total / count[:, None]
    out[count == 0] = float("nan")
    return out.cpu().numpy()


@dataclass
class ModuleGradients:
    """Task-to-module gradients on the train and valid splits (Figure 4).

    Attributes
    ----------
    train, valid : ndarray ``(T, K)``
    task_names : the T task names
    wrt : ``"scale"`` or ``"graph"`` (see :func:`task_module_gradients`)
    """

    train: np.ndarray
    valid: np.ndarray
    task_names: tuple[str, ...]
    wrt: str = "scale"

    @property
    def valid_minus_train(self) -> np.ndarray:
        """``valid − train`` ``(T, K)``: positive where a module helps less (hurts) on valid."""
        diff: np.ndarray = self.valid - self.train
        return diff

    def to_frame(self) -> Any:
        """A long pandas table: task, module, train, valid, valid_minus_train."""
        import pandas as pd

        t_count, k = self.train.shape
        return pd.DataFrame({
            "task": np.repeat(np.asarray(self.task_names, dtype=object), k),
            "module": np.tile(np.arange(k), t_count),
            "train": self.train.ravel(),
            "valid": self.valid.ravel(),
            "valid_minus_train": self.valid_minus_train.ravel(),
        })

    def plot(self, path: str | Path, title: str = "Task-to-module gradients") -> Path:
        """Figure 4's two heat maps, "train" and "valid − train", side by side, as a PNG."""
        return plot_heatmap(
            [self.train, self.valid_minus_train],
            path,
            row_labels=self.task_names,
            titles=["train", "valid − train"],
            suptitle=f"{title} (∂R_t/∂{'A' if self.wrt == 'graph' else 's'}_ti)",
            diverging=True,
        )


def module_gradient_report(
    model: MultiTaskModel,
    train: MultiTaskDataset | Batch,
    valid: MultiTaskDataset | Batch,
    *,
    wrt: Wrt = "scale",
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> ModuleGradients:
    """:func:`task_module_gradients` on ``train`` and ``valid`` (the Figure 4 case study)."""
    kw: dict[str, Any] = dict(wrt=wrt, batch_size=batch_size, device=device)
    return ModuleGradients(
        train=task_module_gradients(model, train, **kw),
        valid=task_module_gradients(model, valid, **kw),
        task_names=tuple(t.name for t in model.tasks),
        wrt=wrt,
    )


def plot_heatmap(
    matrices: np.ndarray | Sequence[np.ndarray],
    path: str | Path,
    *,
    row_labels: Sequence[str] | None = None,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    diverging: bool = False,
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = True,
) -> Path:
    """Write one or more ``T × K`` matrices as side-by-side heat maps to a PNG file.

    Rows are tasks, columns modules. ``diverging=True`` centres a red–blue colour map at 0
    with symmetric limits (for gradients); otherwise a sequential map from ``vmin`` to
    ``vmax`` (e.g. 0 and 1 for the graph A). Cells carry their value when ``annotate``.
    Uses matplotlib's object API (no global pyplot state). Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mats = [np.asarray(matrices, dtype=float)] if isinstance(matrices, np.ndarray) and np.ndim(matrices) == 2 \
        else [np.asarray(m, dtype=float) for m in matrices]
    if not mats or any(m.ndim != 2 for m in mats):
        raise ValueError(f"matrices must be one or more 2-D (T, K) arrays, got shapes {[np.shape(m) for m in mats]}")
    t_count, k = mats[0].shape
    if row_labels is not None and len(row_labels) != t_count:
        raise ValueError(f"row_labels has {len(row_labels)} names but the matrices have {t_count} rows")
    if titles is not None and len(titles) != len(mats):
        raise ValueError(f"titles has {len(titles)} entries for {len(mats)} matrices")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = Figure(figsize=(1.0 + 0.55 * k * len(mats) + 1.2 * len(mats), 1.2 + 0.45 * t_count), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(mats), squeeze=False)[0]
    for j, (ax, m) in enumerate(zip(axes, mats)):
        finite = m[np.isfinite(m)]
        if diverging:
            lim = float(np.abs(finite).max()) if finite.size and np.abs(finite).max() > 0 else 1.0
            lo, hi, cmap = -lim, lim, "RdBu_r"
        else:
            lo = vmin if vmin is not None else (float(finite.min()) if finite.size else 0.0)
            hi = vmax if vmax is not None else (float(finite.max()) if finite.size else 1.0)
            cmap = "viridis"
        im = ax.imshow(m, cmap=cmap, vmin=lo, vmax=hi, aspect="auto")
        ax.set_xticks(range(m.shape[1]), [str(i) for i in range(m.shape[1])])
        ax.set_xlabel("module")
        ax.set_yticks(range(m.shape[0]), list(row_labels) if row_labels is not None else [str(i) for i in range(m.shape[0])])
        if titles is not None:
            ax.set_title(titles[j])
        if annotate and m.size <= 400:
            for (r, c), v in np.ndenumerate(m):
                frac = (v - lo) / (hi - lo) if hi > lo else 0.5
                dark = abs(2 * frac - 1) > 0.6 if diverging else frac < 0.6  # dark cell: white text
                ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        fig.colorbar(im, ax=ax, shrink=0.8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.savefig(path, dpi=120)
    return path


def plot_graph(model: MTCRLNet, path: str | Path, title: str = "Learned task-to-module graph A") -> Path:
    """The learned biadjacency matrix ``A = sigmoid(θ)`` of an MTCRLNet as a heat map PNG."""
    if not isinstance(model, MTCRLNet):
        raise ValueError(f"plot_graph needs an MTCRLNet, got {type(model).__name__}")
    a = model.graph.detach().cpu().numpy()
    return plot_heatmap(a, path, row_labels=[t.name for t in model.tasks], titles=[title], vmin=0.0, vmax=1.0)


def module_factor_saliency(model: MTCRLNet, data: MultiTaskDataset, blocks: Sequence[Any], device: str = "cpu",
                           max_rows: int = 500) -> np.ndarray:
    """``S[k, f]``: module ``k``'s share of input-gradient saliency on factor block ``f``.

    ``S[k, f] ∝ mean_rows Σ_{i ∈ block f} Σ_j |∂Z_kj / ∂x_i|`` (the Jacobian of every module
    output, by ``torch.func.jacrev`` vectorised over at most ``max_rows`` rows), normalised
    so that each module's row sums to 1. On Multi-SEM the blocks are the tasks' causal factors
    (``meta["causal_blocks"]``), so ``S`` says which factor each module reads.
    """
    from torch.func import jacrev, vmap

    n = min(len(data), int(max_rows))
    # array inputs (Multi-SEM's factor vectors); a dict input has no row slice
    x = torch.as_tensor(np.asarray(cast(np.ndarray, data.inputs)[:n], dtype=np.float32), device=device)
    model = model.to(device).eval()
    jac = vmap(jacrev(lambda xi: model.encode(xi[None])[0]))(x)  # (B, K, m, *input)
    mass = jac.detach().abs().sum(2).mean(0).reshape(model.n_modules, -1).cpu().numpy()  # (K, D)
    sal = np.stack([mass[:, np.asarray(b)].sum(1) for b in blocks], axis=1)  # (K, F)
    out: np.ndarray = sal / np.maximum(sal.sum(1, keepdims=True), 1e-30)
    return out


def task_factor_weights(model: MTCRLNet, data: MultiTaskDataset, blocks: Sequence[Any], device: str = "cpu",
                        max_rows: int = 500) -> np.ndarray:
    """The graph seen in factor space: ``W[t, f] = Σ_k A_tk S[k, f] / Σ_k A_tk`` (T × F).

    ``A`` is the learned graph, ``S`` :func:`module_factor_saliency`. Row ``t`` is how much of
    task ``t``'s routed representation comes from each factor block; on Multi-SEM the truth is
    the identity (task ``t`` is caused by factor ``t`` alone). With a graph that did not learn
    (every ``A_tk`` equal) every row is the same average of ``S``.
    """
    a = model.graph.detach().cpu().numpy()
    s = module_factor_saliency(model, data, blocks, device, max_rows)
    w: np.ndarray = (a @ s) / np.maximum(a.sum(1, keepdims=True), 1e-30)
    return w
