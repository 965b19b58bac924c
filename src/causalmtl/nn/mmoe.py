"""Multi-gate Mixture-of-Experts (Ma, Zhao, Yi, Chen, Hong & Chi, KDD 2018)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..data.base import Task
from .base import ModelInput, ModelOutput, MultiTaskModel
from .dense import (
    check_map_tasks,
    finish_output,
    is_map_encoder,
    make_map_heads,
    map_channels,
    spatial_size,
)
from .encoders import encoder_out_dim
from .heads import make_heads

__all__ = ["MMoE"]


class MMoE(MultiTaskModel):
    """K shared experts mixed per task by a softmax gate.

    ``y_t = h_t(f^t(x))`` with ``f^t(x) = Σ_k g^t(x)_k f_k(x)`` and
    ``g^t(x) = softmax(W_{g_t} x)`` (Ma et al. 2018, Eq. 5–6). The gate input is the flattened
    raw input ``x`` (as in the paper), or the output of a shared ``gate_encoder`` for inputs
    that are not flat feature vectors (images, dicts of ids). ``features`` is the
    concatenation of the K expert outputs (the shared representation, for DANN).

    Parameters
    ----------
    expert : zero-argument callable returning a fresh expert encoder (with ``out_dim``)
    tasks : the T tasks
    n_experts : K
    gate_in_dim : width of the flattened input for the gates (default: the expert's
        ``in_dim`` attribute, e.g. :class:`~causalmtl.nn.MLPEncoder`'s)
    gate_encoder : a module (with ``out_dim``) computing the gates' input instead
    head_hidden : hidden widths of each task tower
    dense_hidden, decoder : map heads, as in :class:`~causalmtl.nn.SharedTrunk`

    Experts returning feature maps (``out_channels``, :mod:`causalmtl.nn.dense`) are mixed as
    maps, ``f^t(x) = Σ_k g^t(x)_k f_k(x)`` of shape ``(B, C, h, w)`` (the gates still come
    from the input: flattened, or through ``gate_encoder``), then read by map heads;
    ``features`` is then the K pooled expert maps concatenated, ``(B, K·C)``.
    """

    def __init__(
        self,
        expert: Callable[[], nn.Module],
        tasks: Sequence[Task],
        n_experts: int = 4,
        gate_in_dim: int | None = None,
        gate_encoder: nn.Module | None = None,
        head_hidden: Sequence[int] = (),
        dense_hidden: Sequence[int] | None = None,
        decoder: str = "conv",
    ) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        if not self.tasks:
            raise ValueError("tasks must name at least one task")
        if not isinstance(n_experts, int) or n_experts < 1:
            raise ValueError(f"n_experts must be an int >= 1, got {n_experts!r}")
        if isinstance(expert, nn.Module) or not callable(expert):
            raise ValueError(
                "expert must be a zero-argument callable returning a new encoder (called K times), "
                f"got {type(expert).__name__}"
            )
        self.experts = nn.ModuleList(expert() for _ in range(n_experts))
        self.feature_maps = is_map_encoder(self.experts[0])
        if any(is_map_encoder(e) != self.feature_maps for e in self.experts):
            raise ValueError("every expert must return vectors (out_dim) or every expert feature maps (out_channels)")
        check_map_tasks(self.tasks, self.feature_maps, "MMoE")
        width = map_channels if self.feature_maps else encoder_out_dim
        dims = {width(e) for e in self.experts}
        if len(dims) != 1:
            raise ValueError(f"all experts must have the same out_dim, got {sorted(dims)}")
        d = dims.pop()
        self.expert_dim = d
        self.n_experts = n_experts
        self.gate_encoder = gate_encoder
        if gate_encoder is not None:
            g_in = encoder_out_dim(gate_encoder)
        else:
            raw_in = gate_in_dim if gate_in_dim is not None else getattr(self.experts[0], "in_dim", None)
            if not isinstance(raw_in, int) or raw_in < 1:
                raise ValueError(
                    "MMoE gates need the input width: pass gate_in_dim (flattened input size) or a "
                    "gate_encoder (for images / dict inputs)"
                )
            g_in = raw_in
        self.gates = nn.Linear(g_in, len(self.tasks) * n_experts)
        if self.feature_maps:
            self.heads = make_map_heads(d, self.tasks, head_hidden, dense_hidden, decoder)
        else:
            self.heads = make_heads(d, self.tasks, head_hidden)
        self.feature_dim = n_experts * d

    def gate_weights(self, x: ModelInput) -> Tensor:
        """Per-task gate probabilities ``(B, T, K)``."""
        if self.gate_encoder is not None:
            g = self.gate_encoder(x)
        else:
            if isinstance(x, Mapping):
                raise ValueError("MMoE with dict inputs needs a gate_encoder")
            g = x.flatten(1).to(self.gates.weight.dtype)
        return torch.softmax(self.gates(g).view(-1, len(self.tasks), self.n_experts), dim=-1)

    def mixed_outputs(self, experts: Tensor, gates: Tensor, size: tuple[int, int] | None = None) -> list[Tensor]:
        """Task outputs from expert outputs ``(B, K, D)`` or maps ``(B, K, C, h, w)`` and gate
        weights ``(B, T, K)``: ``h_t(Σ_k gates[:, t, k] · experts[:, k])``."""
        if not self.feature_maps:
            mixed = torch.einsum("btk,bkd->btd", gates.to(experts.dtype), experts)
            return [h(mixed[:, t]) for t, h in enumerate(self.heads)]
        mixed = torch.einsum("btk,bkchw->btchw", gates.to(experts.dtype), experts)
        return [finish_output(h(mixed[:, t]), task, size)
                for t, (h, task) in enumerate(zip(self.heads, self.tasks))]

    def forward_full(self, x: ModelInput) -> ModelOutput:
        if self.feature_maps:
            experts = torch.stack([e(x) for e in self.experts], dim=1)  # (B, K, C, h, w)
            gates = self.gate_weights(x)  # (B, T, K)
            outputs = self.mixed_outputs(experts, gates, spatial_size(x))
            return ModelOutput(outputs, features=experts.mean(dim=(-2, -1)).flatten(1),
                               extra={"gates": gates})
        experts = torch.stack([e(x) for e in self.experts], dim=1)  # (B, K, D)
        gates = self.gate_weights(x)  # (B, T, K)
        mixed = torch.einsum("btk,bkd->btd", gates.to(experts.dtype), experts)
        outputs = [h(mixed[:, t]) for t, h in enumerate(self.heads)]
        return ModelOutput(outputs, features=experts.flatten(1), extra={"gates": gates})
