"""Cross-stitch networks (Misra, Shrivastava, Gupta & Hebert, CVPR 2016; GMTL §5.2)."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, cast

import torch
from torch import Tensor, nn

from .._hparams import HParam, log_uniform
from ..data.base import Task
from .base import ModelInput, ModelOutput, MultiTaskModel
from .dense import (
    check_map_tasks,
    finish_output,
    is_map_encoder,
    make_map_heads,
    map_channels,
    pool_features,
    spatial_size,
)
from .encoders import encoder_out_dim
from .heads import make_heads

__all__ = ["CrossStitch", "CrossStitchNetwork"]

_ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.GELU, nn.ELU, nn.Tanh, nn.Sigmoid, nn.SiLU)


class CrossStitch(nn.Module):
    """A cross-stitch unit: per-channel linear mixing of the T columns' activations.

    ``h'_i[:, c] = Σ_j α[i, j, c] · h_j[:, c]`` (Misra et al. 2016, §3, with one
    coefficient matrix per channel ``c``; channels are axis 1 of the activations).
    Initialised with ``α[i, i] = init_self`` and ``α[i, j] = (1 - init_self) / (T - 1)``
    (the paper's (0.9, 0.1) for two tasks); ``init_self = 1`` is identity stitching.
    """

    def __init__(self, n_tasks: int, channels: int, init_self: float = 0.9) -> None:
        super().__init__()
        if n_tasks < 1 or channels < 1:
            raise ValueError(f"n_tasks and channels must be >= 1, got {n_tasks}, {channels}")
        if not 0.0 <= init_self <= 1.0:
            raise ValueError(f"init_self must be in [0, 1], got {init_self}")
        off = (1.0 - init_self) / (n_tasks - 1) if n_tasks > 1 else 0.0
        alpha = torch.full((n_tasks, n_tasks), off)
        alpha.fill_diagonal_(init_self if n_tasks > 1 else 1.0)
        self.alpha = nn.Parameter(alpha.unsqueeze(-1).repeat(1, 1, channels))

    def forward(self, hs: Sequence[Tensor]) -> list[Tensor]:
        h = torch.stack(list(hs))  # (T, B, C, ...)
        t, b, c = h.shape[:3]
        mixed = torch.einsum("ijc,jbcr->ibcr", self.alpha.to(h.dtype), h.reshape(t, b, c, -1))
        return list(mixed.reshape(h.shape).unbind(0))


def _width(layer: nn.Module) -> int | None:
    for m in reversed(list(layer.modules())):
        for attr in ("out_features", "out_channels", "num_features", "embedding_dim"):
            v = getattr(m, attr, None)
            if isinstance(v, int):
                return v
    return None


def _infer_channels(layers: Sequence[nn.Module], upto: int) -> int | None:
    for layer in reversed(layers[: upto + 1]):
        w = _width(layer)
        if w is not None:
            return w
    return None


class CrossStitchNetwork(MultiTaskModel):
    """T columns (any sequences of layers) joined by cross-stitch units after chosen layers.

    "CSN takes two trained STL networks, and takes a linear combination of the activations at
    each layer during the forward pass. Training CSN involves learning the coefficients of the
    linear combinations, as well as fine-tuning the STL network weights" (GMTL §5.2; Misra et
    al. 2016). Columns are :class:`torch.nn.Sequential` (or any sequence of modules) with the
    same number of layers and matching activation shapes at the stitch points. Stitch units
    get their own learning rate ``lr * stitch_lr_mult`` (Misra et al. train them with a much
    larger rate than the network). Column parameters influence every task through the
    stitches and count as shared; the heads are task-specific.

    Parameters
    ----------
    columns : T sequences of layers (e.g. T encoders)
    tasks : the T tasks
    heads : T heads (default: fresh heads on the columns' ``out_dim``)
    stitch_after : layer indices after which to stitch (default: after every activation layer,
        or after the last layer if the columns have none)
    channels : the channel count at each stitch point (default: inferred from the preceding
        Linear / Conv layer; give it, or ``example_input``, for other layers)
    example_input : a batch to infer the channel counts by a dry run
    init_self : initial self weight α_ii (0.9 by default; 1.0 = identity stitching)
    stitch_lr_mult : learning-rate multiplier of the stitch units (default 100)
    feature_maps : whether the columns end in feature maps ``(B, C, h, w)`` (default: when the
        first column is a map encoder, :func:`~causalmtl.nn.dense.is_map_encoder`, e.g.
        ``resnet18(as_encoder="map")`` whose stages ``layer1..layer4`` are stitched on maps).
        Then default heads are map heads (:class:`~causalmtl.nn.SharedTrunk`'s), outputs are at
        the input resolution and ``features`` concatenates the pooled columns.
    dense_hidden, decoder : map heads, as in :class:`~causalmtl.nn.SharedTrunk`
    """

    #: hyperparameters the experiments search for this architecture (read by the trainer's param groups)
    HPARAMS: ClassVar[dict[str, HParam]] = {
        "stitch_lr_mult": HParam(100.0, log_uniform(10.0, 1000.0), "learning-rate multiplier of the stitch units"),
    }

    def __init__(
        self,
        columns: Sequence[Iterable[nn.Module]],
        tasks: Sequence[Task],
        heads: Sequence[nn.Module] | None = None,
        stitch_after: Sequence[int] | None = None,
        channels: Sequence[int] | None = None,
        example_input: ModelInput | None = None,
        init_self: float = 0.9,
        stitch_lr_mult: float = HPARAMS["stitch_lr_mult"].default,  # declared once, in HPARAMS
        head_hidden: Sequence[int] = (),
        feature_maps: bool | None = None,
        dense_hidden: Sequence[int] | None = None,
        decoder: str = "conv",
    ) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        n = len(self.tasks)
        self.feature_maps = is_map_encoder(columns[0]) if feature_maps is None else bool(feature_maps)
        check_map_tasks(self.tasks, self.feature_maps, "CrossStitchNetwork")
        if len(columns) != n:
            raise ValueError(f"columns has {len(columns)} entries but there are {n} tasks (one column each)")
        layer_lists = [list(c) for c in columns]
        n_layers = {len(c) for c in layer_lists}
        if len(n_layers) != 1 or 0 in n_layers:
            raise ValueError(f"every column must have the same, non-zero number of layers, got {[len(c) for c in layer_lists]}")
        n_layers_ = n_layers.pop()
        if stitch_after is None:
            stitch_after = [i for i, m in enumerate(layer_lists[0]) if isinstance(m, _ACTIVATIONS)] or [n_layers_ - 1]
        stitch_after = sorted({int(i) for i in stitch_after})
        bad = [i for i in stitch_after if not 0 <= i < n_layers_]
        if bad:
            raise ValueError(f"stitch_after indices {bad} are outside the columns' {n_layers_} layers")
        if not stitch_after:
            raise ValueError("stitch_after must name at least one layer")
        if stitch_lr_mult <= 0:
            raise ValueError(f"stitch_lr_mult must be > 0, got {stitch_lr_mult}")
        self.columns = nn.ModuleList(nn.ModuleList(c) for c in layer_lists)
        self.stitch_after = tuple(stitch_after)
        if channels is None:
            if example_input is not None:
                channels = self._dry_run_channels(example_input)
            else:
                inferred = [_infer_channels(layer_lists[0], i) for i in stitch_after]
                if any(c is None for c in inferred):
                    raise ValueError(
                        f"cannot infer the channel count after layers {stitch_after}; "
                        "pass channels=[...] or example_input"
                    )
                channels = [int(c) for c in inferred]  # type: ignore[arg-type]
        if len(channels) != len(stitch_after):
            raise ValueError(f"channels has {len(channels)} entries, stitch_after {len(stitch_after)}")
        self.stitches = nn.ModuleDict({
            str(i): CrossStitch(n, int(c), init_self) for i, c in zip(stitch_after, channels)
        })
        self.stitch_lr_mult = float(stitch_lr_mult)
        self.init_self = float(init_self)
        if self.feature_maps:
            out_c = getattr(columns[0], "out_channels", None) if is_map_encoder(columns[0]) else None
            out_c = out_c or _infer_channels(layer_lists[0], n_layers_ - 1)
            if out_c is None:
                raise ValueError("cannot infer the columns' output channels; pass heads")
            self.heads = make_map_heads(int(out_c), self.tasks, head_hidden, dense_hidden, decoder) \
                if heads is None else nn.ModuleList(heads)
            if len(self.heads) != n:
                raise ValueError(f"heads has {len(self.heads)} entries but there are {n} tasks")
            self.feature_dim = n * int(out_c)
        elif heads is None:
            out_dim = getattr(columns[0], "out_dim", None) or _infer_channels(layer_lists[0], n_layers_ - 1)
            if out_dim is None:
                raise ValueError("cannot infer the columns' output width; pass heads")
            self.heads = make_heads(int(out_dim), self.tasks, head_hidden)
            self.feature_dim = n * int(out_dim)
        else:
            if len(heads) != n:
                raise ValueError(f"heads has {len(heads)} entries but there are {n} tasks")
            self.heads = nn.ModuleList(heads)
            out_dim = getattr(columns[0], "out_dim", None) or _infer_channels(layer_lists[0], n_layers_ - 1)
            self.feature_dim = n * int(out_dim or 0)

    @torch.no_grad()
    def _dry_run_channels(self, x: ModelInput) -> list[int]:
        h = x
        out = []
        for i, layer in enumerate(self._columns()[0]):
            h = layer(h)
            if i in self.stitch_after:
                out.append(int(h.shape[1]))
        return out

    def _columns(self) -> list[nn.ModuleList]:
        # `columns` is the nn.ModuleList of per-column nn.ModuleLists built in __init__;
        # iterating a ModuleList is typed as giving any nn.Module
        return cast(list[nn.ModuleList], list(self.columns))

    @classmethod
    def from_stl(cls, model: MultiTaskModel, **kwargs: Any) -> CrossStitchNetwork:
        """Initialise the columns and heads from trained single-task networks (copies).

        ``model`` is an :class:`~causalmtl.nn.STL` (columns = its encoders and heads) or an
        :class:`~causalmtl.nn.NPS` of single-task models with ``encoder`` and ``heads``.
        With ``init_self=1.0`` the result reproduces the STL outputs exactly.
        """
        from .stl import NPS, STL

        if isinstance(model, STL):
            encoders, heads = list(model.encoders), list(model.heads)
        elif isinstance(model, NPS) and all(m.n_tasks == 1 and hasattr(m, "encoder") for m in model.members):
            # members with `encoder` and `heads` (checked just above); an attribute of an
            # nn.Module is typed as Tensor | Module
            encoders = [cast(nn.Module, m.encoder) for m in model.members]
            heads = [cast(nn.ModuleList, m.heads)[0] for m in model.members]
        else:
            raise ValueError(
                f"from_stl needs an STL model or an NPS of single-task encoder+head models, got {type(model).__name__}"
            )
        for e in encoders:
            if not isinstance(e, Iterable):
                raise TypeError(f"from_stl stitches encoders layer by layer; the encoder {type(e).__name__} "
                                "is not a sequence of layers (e.g. an nn.Sequential)")
        columns = [copy.deepcopy(e) for e in encoders if isinstance(e, Iterable)]
        net = cls(columns, model.tasks, heads=[copy.deepcopy(h) for h in heads], **kwargs)
        net.feature_dim = sum(map_channels(e) if is_map_encoder(e) else encoder_out_dim(e) for e in encoders)
        return net

    def stitch_parameters(self) -> list[nn.Parameter]:
        return list(self.stitches.parameters())

    def param_groups(self, lr: float) -> list[dict[str, Any]]:
        stitch = {id(p) for p in self.stitch_parameters()}
        rest = [p for p in self.parameters() if id(p) not in stitch]
        return [{"params": rest, "lr": lr},
                {"params": self.stitch_parameters(), "lr": lr * self.stitch_lr_mult}]

    def forward_full(self, x: ModelInput) -> ModelOutput:
        hs: list[Any] = [x] * self.n_tasks
        columns = self._columns()
        n_layers = len(columns[0])
        for i in range(n_layers):
            hs = [col[i](h) for col, h in zip(columns, hs)]
            if i in self.stitch_after:
                hs = self.stitches[str(i)](hs)
        if self.feature_maps:
            size = spatial_size(x)
            outs = [finish_output(head(h), t, size) for head, h, t in zip(self.heads, hs, self.tasks)]
            return ModelOutput(outs, features=torch.cat([pool_features(h) for h in hs], dim=1))
        return ModelOutput([head(h) for head, h in zip(self.heads, hs)], features=torch.cat(hs, dim=1))
