"""Feature-map encoders and dense (per-pixel) task heads.

**Two kinds of encoder.** A *vector* encoder has an int attribute ``out_dim`` and returns
``(B, out_dim)`` (every encoder of :mod:`causalmtl.nn.encoders`); a *map* encoder has an int
attribute ``out_channels`` and no ``out_dim`` and returns a feature map ``(B, out_channels, h, w)``
(:class:`~causalmtl.nn.segnet.SegNet`, :class:`~causalmtl.nn.resnet.ResNet` with
``output="map"``, or a plain :class:`torch.nn.Conv2d`). Every architecture keeps its vector
behaviour unchanged and, given a map encoder, builds map heads:

* a classification / regression task gets a :class:`PooledHead` (global average pool, then the
  usual linear / MLP head);
* a segmentation task (``Task.kind == "segmentation"``, ``n_classes`` classes) and a dense task
  (``"dense"``, ``channels`` maps) get a :class:`ConvHead` (``3×3 conv → ReLU`` per hidden
  width, then a ``1×1`` conv; the MTAN "split" head) or a :class:`TaskonomyDecoder`.

Heads return raw values; :func:`finish_output` turns them into the contract's outputs
(``causalmtl.data.base.Task``, ARCHITECTURE.md): classification log-probabilities ``(B, C)``,
regression ``(B,)``, segmentation log-probabilities ``(B, C, H, W)`` (``log_softmax`` over the
class axis), dense maps ``(B, C, H, W)``, where ``(H, W)`` is the input's spatial size: a map
smaller than the input is upsampled bilinearly (``align_corners=False``) first — segmentation
logits are upsampled before the ``log_softmax``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..data.base import Task

__all__ = [
    "MAP_KINDS", "ConvHead", "check_map_tasks", "PooledHead", "TaskonomyDecoder", "finish_output", "is_map_encoder",
    "is_map_task", "make_map_head", "make_map_heads", "map_channels", "pool_features",
    "spatial_size", "task_out_channels",
]

MAP_KINDS = ("segmentation", "dense")


def is_map_task(task: Task) -> bool:
    """Whether the task predicts a map (segmentation or dense regression)."""
    return getattr(task, "kind", None) in MAP_KINDS


def task_out_channels(task: Task) -> int:
    """Output width of a task's head: classes (classification, segmentation), 1 (regression),
    ``channels`` (dense)."""
    if task.kind in ("classification", "segmentation"):
        return int(task.n_classes)
    if task.kind == "dense":
        c = int(getattr(task, "channels", 1))
        if c < 1:
            raise ValueError(f"task {task.name!r}: a dense task needs channels >= 1, got {c}")
        return c
    return 1


def is_map_encoder(encoder: object) -> bool:
    """``True`` for an encoder returning feature maps: an int ``out_channels``, no ``out_dim``."""
    return getattr(encoder, "out_dim", None) is None and isinstance(getattr(encoder, "out_channels", None), int)


def map_channels(encoder: nn.Module) -> int:
    """The ``out_channels`` of a map encoder (a clear error otherwise)."""
    c = getattr(encoder, "out_channels", None)
    if isinstance(c, bool) or not isinstance(c, int) or c < 1:
        raise ValueError(
            f"encoder {type(encoder).__name__} must expose an int attribute out_channels >= 1 "
            f"(the channels of its feature map), got {c!r}"
        )
    return c


def check_map_tasks(tasks: Sequence[Task], maps: bool, where: str) -> None:
    """Raise unless a model whose encoder returns vectors has no segmentation / dense task."""
    if maps:
        return
    dense = [t.name for t in tasks if is_map_task(t)]
    if dense:
        raise ValueError(
            f"{where}: tasks {dense} predict maps (segmentation / dense) but the encoder returns "
            "vectors (it has out_dim); use an encoder returning feature maps (out_channels), "
            "e.g. SegNet or resnet50(as_encoder='map') from causalmtl.nn.image.build_image_encoder"
        )


def spatial_size(x: object) -> tuple[int, int] | None:
    """``(H, W)`` of an image batch ``(B, C, H, W)`` / ``(B, H, W)``; ``None`` for other inputs."""
    if isinstance(x, Tensor) and x.dim() >= 3:
        return int(x.shape[-2]), int(x.shape[-1])
    return None


def pool_features(z: Tensor) -> Tensor:
    """Global average pool of a map ``(B, C, h, w) → (B, C)`` (vectors pass unchanged); the
    ``features`` of map models (DANN's representation)."""
    return z.mean(dim=(-2, -1)) if z.dim() == 4 else z


def _resize(y: Tensor, size: tuple[int, int] | None) -> Tensor:
    if size is None or tuple(y.shape[-2:]) == tuple(size):
        return y
    return F.interpolate(y, size=tuple(size), mode="bilinear", align_corners=False)


def finish_output(out: Tensor, task: Task, size: tuple[int, int] | None) -> Tensor:
    """A head's raw output as the contract's output of ``task`` (see the module docstring)."""
    if task.kind == "classification":
        return torch.log_softmax(out, dim=-1)
    if task.kind == "regression":
        return out.reshape(out.shape[0])
    if out.dim() != 4:
        raise ValueError(f"task {task.name!r} ({task.kind}) needs a (B, C, h, w) head output, got {tuple(out.shape)}")
    out = _resize(out, size)
    return torch.log_softmax(out, dim=1) if task.kind == "segmentation" else out


class PooledHead(nn.Module):
    """Global average pool of a feature map, then ``inner`` on the ``(B, C)`` vector."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, z: Tensor) -> Tensor:
        result: Tensor = self.inner(pool_features(z))
        return result


class ConvHead(nn.Sequential):
    """Per-task convolutional head: ``3×3 conv → ReLU`` per hidden width, then a ``1×1`` conv.

    The default ``hidden=(in_channels,)`` is the MTAN / PCGrad SegNet "split" head
    (``Conv2d(64, 64, 3) → Conv2d(64, C, 1)``; we put a ReLU between the two, which the
    reference omits, so that the head is not one linear map). Output raw ``(B, out_channels, h, w)``.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: Sequence[int] | None = None) -> None:
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be >= 1, got {in_channels}, {out_channels}")
        hidden = (in_channels,) if hidden is None else tuple(int(h) for h in hidden)
        layers: list[nn.Module] = []
        c = in_channels
        for h in hidden:
            layers += [nn.Conv2d(c, h, 3, padding=1), nn.ReLU(inplace=True)]
            c = h
        layers.append(nn.Conv2d(c, out_channels, 1))
        super().__init__(*layers)
        self.out_channels = int(out_channels)


class TaskonomyDecoder(nn.Module):
    """The upsampling decoder of the Taskonomy multi-task setups (MT-CRL Appendix C: "ResNet-50
    as base encoder, and 15-layer CNN model with upsampling blocks as the per-task predictor").

    Neither paper lists the layers. We follow the Taskonomy decoder of Standley et al. (ICML
    2020, whose ResNet-50 Taskonomy setup Balaji et al. and MT-CRL build on): five upsampling
    blocks with 256, 128, 64, 48, 32 channels, each a ``2×2`` stride-2 transposed convolution
    (×2 resolution, stride 32 → 1 after five blocks). Standley's blocks have one ``3×3`` conv
    after the transposed one (10 layers); to match MT-CRL's "15 layers" each block here has
    ``convs_per_block=2`` ``3×3`` convs, so 5 × (1 + 2) = 15 conv layers, all followed by
    BN and ReLU except the last ``3×3`` conv, which outputs the task's ``out_channels``
    raw. :func:`finish_output` resizes to the input size when the input is not a multiple of 32.

    Parameters
    ----------
    in_channels : channels of the encoder map (2048 for ResNet-50)
    out_channels : the task's channels (classes for segmentation)
    widths : channels of the five blocks (default Standley's; scale down for tests)
    convs_per_block : ``3×3`` convs after each transposed conv (2 = 15 layers)
    """

    def __init__(self, in_channels: int, out_channels: int, widths: Sequence[int] = (256, 128, 64, 48, 32),
                 convs_per_block: int = 2) -> None:
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if in_channels < 1 or out_channels < 1 or not widths or any(w < 1 for w in widths):
            raise ValueError(
                f"in_channels, out_channels and widths must be positive, got {in_channels}, {out_channels}, {widths}"
            )
        if convs_per_block < 1:
            raise ValueError(f"convs_per_block must be >= 1, got {convs_per_block}")
        layers: list[nn.Module] = []
        c = in_channels
        n_blocks = len(widths)
        for b, w in enumerate(widths):
            layers += [nn.ConvTranspose2d(c, w, 2, stride=2), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            for j in range(convs_per_block):
                last = b == n_blocks - 1 and j == convs_per_block - 1
                if last:
                    layers.append(nn.Conv2d(w, out_channels, 3, padding=1))
                else:
                    layers += [nn.Conv2d(w, w, 3, padding=1), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
            c = w
        self.net = nn.Sequential(*layers)
        self.out_channels = int(out_channels)
        self.n_layers = n_blocks * (1 + convs_per_block)
        self.upsampling = 2 ** n_blocks

    def forward(self, z: Tensor) -> Tensor:
        result: Tensor = self.net(z)
        return result


def make_map_head(in_channels: int, task: Task, hidden: Sequence[int] = (),
                  dense_hidden: Sequence[int] | None = None, decoder: str = "conv") -> nn.Module:
    """The raw head of ``task`` on a ``(B, in_channels, h, w)`` map (see the module docstring).

    Scalar tasks: :class:`PooledHead` with an MLP of hidden widths ``hidden`` (default: one
    linear layer). Map tasks: ``decoder="conv"`` gives a :class:`ConvHead` with conv widths
    ``dense_hidden`` (default ``(in_channels,)``), ``decoder="taskonomy"`` a
    :class:`TaskonomyDecoder` (``dense_hidden`` then gives its block widths).
    """
    if decoder not in ("conv", "taskonomy"):
        raise ValueError(f"decoder must be 'conv' or 'taskonomy', got {decoder!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an int >= 1, got {in_channels!r}")
    out = task_out_channels(task)
    if not is_map_task(task):
        layers: list[nn.Module] = []
        d = in_channels
        for h in hidden:
            layers += [nn.Linear(d, int(h)), nn.ReLU()]
            d = int(h)
        layers.append(nn.Linear(d, out))
        return PooledHead(nn.Sequential(*layers))
    if decoder == "conv":
        return ConvHead(in_channels, out, dense_hidden)
    if dense_hidden is None:
        return TaskonomyDecoder(in_channels, out)
    return TaskonomyDecoder(in_channels, out, widths=dense_hidden)


def make_map_heads(in_channels: int, tasks: Sequence[Task], hidden: Sequence[int] = (),
                   dense_hidden: Sequence[int] | None = None, decoder: str = "conv") -> nn.ModuleList:
    """One :func:`make_map_head` per task."""
    return nn.ModuleList(make_map_head(in_channels, t, hidden, dense_hidden, decoder) for t in tasks)
