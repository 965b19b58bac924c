"""Encoders for the project's data: MLP (tabular), small CNN (images of any size), the
Multi-MNIST LeNet (Sener & Koltun 2018; Yu et al. 2020), embeddings.

Every encoder is an :class:`torch.nn.Sequential` with an ``out_dim`` attribute, so that
cross-stitch networks can stitch after any of its layers and architectures can size heads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLPEncoder", "CNNEncoder", "LeNetEncoder", "EmbeddingEncoder", "encoder_out_dim", "lenet_min_size"]


def encoder_out_dim(encoder: nn.Module) -> int:
    """The ``out_dim`` attribute of an encoder (raises a clear error if it has none)."""
    d = getattr(encoder, "out_dim", None)
    if not isinstance(d, int) or d < 1:
        raise ValueError(
            f"encoder {type(encoder).__name__} must expose an int attribute out_dim >= 1 "
            f"(the width of its output), got {d!r}"
        )
    return d


def _check_widths(name: str, widths: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(w) for w in widths)
    if any(w < 1 for w in out):
        raise ValueError(f"{name} must be positive ints, got {list(widths)}")
    return out


class MLPEncoder(nn.Sequential):
    """Flatten, then ``Linear → ReLU`` (→ Dropout) per hidden width; ``out_dim`` = last width.

    Parameters
    ----------
    in_dim : number of input features (after flattening)
    hidden : widths of the layers, e.g. ``(64, 64)``
    dropout : dropout probability after each layer (0 = none)
    """

    def __init__(self, in_dim: int, hidden: Sequence[int] = (64, 64), dropout: float = 0.0) -> None:
        if in_dim < 1:
            raise ValueError(f"in_dim must be >= 1, got {in_dim}")
        hidden = _check_widths("hidden", hidden)
        if not hidden:
            raise ValueError("hidden must name at least one layer width")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        layers: list[nn.Module] = [nn.Flatten()]
        d = in_dim
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = h
        super().__init__(*layers)
        self.in_dim = int(in_dim)
        self.out_dim = int(d)


class _AddChannel(nn.Module):
    """``(B, H, W) → (B, 1, H, W)``; 4-D inputs pass unchanged."""

    def forward(self, x: Tensor) -> Tensor:
        return x.unsqueeze(1) if x.ndim == 3 else x


def _pair(name: str, value: int | Sequence[int]) -> tuple[int, int]:
    v = (value, value) if isinstance(value, int) else tuple(value)
    if len(v) != 2 or not all(isinstance(a, int) and not isinstance(a, bool) and a >= 1 for a in v):
        raise ValueError(f"{name} must be a positive int or a pair (height, width) of positive ints, got {value!r}")
    return int(v[0]), int(v[1])


class CNNEncoder(nn.Sequential):
    """A small CNN for images of any size that keeps *where* things are.

    Each block is ``Conv2d(3×3, stride 2, padding 1) → ReLU`` (any ``H, W >= 1`` works: the
    spatial size roughly halves per block and never reaches 0); then an adaptive average pool
    to a fixed ``pool_size`` grid (default 4×4), flattened, and a ``Linear → ReLU`` to
    ``out_dim``. The grid keeps position: on side-by-side two-digit images the left and right
    digits land in different cells, so a task can read "the left digit". ``pool_size=1`` is
    a global average pool, which discards position (an STL model with it could not tell the
    left digit from the right one: 0.35 train accuracy on Multi-Digits); it is kept only for
    position-free inputs. Inputs ``(B, C, H, W)`` or ``(B, H, W)`` (one channel).
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32), out_dim: int = 64,
                 pool_size: int | Sequence[int] = 4) -> None:
        if in_channels < 1 or out_dim < 1:
            raise ValueError(f"in_channels and out_dim must be >= 1, got {in_channels}, {out_dim}")
        channels = _check_widths("channels", channels)
        if not channels:
            raise ValueError("channels must name at least one conv block")
        grid = _pair("pool_size", pool_size)
        layers: list[nn.Module] = [_AddChannel()]
        c = in_channels
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.ReLU()]
            c = ch
        layers += [nn.AdaptiveAvgPool2d(grid), nn.Flatten(), nn.Linear(c * grid[0] * grid[1], out_dim), nn.ReLU()]
        super().__init__(*layers)
        self.pool_size = grid
        self.out_dim = int(out_dim)


def lenet_min_size(kernel: int = 5, blocks: int = 2) -> int:
    """Smallest side a :class:`LeNetEncoder` accepts: ``blocks`` × (conv ``kernel``, no padding,
    then 2×2 max-pool) must leave at least one pixel. 16 for the default 5×5 kernels.

    >>> lenet_min_size()
    16
    """
    size = 1
    for _ in range(blocks):
        size = 2 * size + kernel - 1
    return size


class _CheckImage(nn.Module):
    """Add a channel axis to ``(B, H, W)``; refuse an image size other than the built one."""

    def __init__(self, channels: int, size: tuple[int, int]) -> None:
        super().__init__()
        self.channels, self.size = channels, size

    def forward(self, x: Tensor) -> Tensor:
        x = x.unsqueeze(1) if x.ndim == 3 else x
        if x.ndim != 4 or tuple(x.shape[1:]) != (self.channels, *self.size):
            raise ValueError(f"LeNetEncoder was built for images (B, {self.channels}, {self.size[0]}, "
                             f"{self.size[1]}), got a batch of shape {tuple(x.shape)}")
        return x


class LeNetEncoder(nn.Sequential):
    """The Multi-MNIST network of Sener & Koltun (2018) and Yu et al. (2020, PCGrad).

    LeNet-style: ``Conv2d(C→10, 5×5) → MaxPool(2) → ReLU → Conv2d(10→20, 5×5) → MaxPool(2) →
    ReLU → Flatten → Linear(→hidden) → ReLU → Linear(hidden→out_dim) → ReLU``. No global
    pooling: the fully connected layers see every position, so side-by-side digits stay apart.
    The reference code uses 28×28 overlaid digits (20·4·4 = 320 features into a 50-wide layer);
    for MT-CRL's 28×56 side-by-side images (App. C.1) the first linear layer takes
    20·4·11 = 880 features. ``out_dim = hidden`` reproduces the reference's 50-wide shared
    representation; MT-CRL's modules use ``out_dim = d/K``.

    Parameters
    ----------
    in_channels : image channels
    input_size : ``(H, W)`` of the images (the linear layer's width depends on it); each side
        must be at least :func:`lenet_min_size` (16)
    out_dim : output width
    hidden : width of the hidden fully connected layer (50 in the reference)
    """

    def __init__(self, in_channels: int = 1, input_size: int | Sequence[int] = (28, 56), out_dim: int = 50,
                 hidden: int = 50) -> None:
        if in_channels < 1 or out_dim < 1 or hidden < 1:
            raise ValueError(f"in_channels, out_dim and hidden must be >= 1, got {in_channels}, {out_dim}, {hidden}")
        h, w = _pair("input_size", input_size)
        low = lenet_min_size()
        if min(h, w) < low:
            raise ValueError(f"LeNetEncoder needs images of at least {low}×{low} pixels (two 5×5 convolutions, "
                             f"each followed by a 2×2 max-pool), got input_size={(h, w)}; use CNNEncoder "
                             "(any size) or upsample the images")
        fh, fw = ((h - 4) // 2 - 4) // 2, ((w - 4) // 2 - 4) // 2
        super().__init__(
            _CheckImage(int(in_channels), (h, w)),
            nn.Conv2d(in_channels, 10, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Conv2d(10, 20, 5), nn.MaxPool2d(2), nn.ReLU(),
            nn.Flatten(), nn.Linear(20 * fh * fw, hidden), nn.ReLU(), nn.Linear(hidden, out_dim), nn.ReLU(),
        )
        self.input_size = (h, w)
        self.out_dim = int(out_dim)


class _FieldEmbedding(nn.Module):
    """Embed each field of a dict input and concatenate.

    A field of shape ``(B,)`` is one id per row; ``(B, L)`` is a bag of ids (e.g. title words)
    averaged with the padding id ignored (``nn.EmbeddingBag(mode="mean")``).
    """

    def __init__(self, vocab_sizes: Mapping[str, int], dim: int, padding_idx: int | None) -> None:
        super().__init__()
        self.fields = tuple(vocab_sizes)
        self.padding_idx = padding_idx
        self.bags = nn.ModuleDict({
            k: nn.EmbeddingBag(int(n), dim, mode="mean", padding_idx=padding_idx)
            for k, n in vocab_sizes.items()
        })
        self.vocab = {k: int(n) for k, n in vocab_sizes.items()}

    def forward(self, x: Mapping[str, Tensor]) -> Tensor:
        if not isinstance(x, Mapping):
            raise ValueError(f"EmbeddingEncoder expects a dict input with fields {list(self.fields)}, got {type(x).__name__}")
        missing = [k for k in self.fields if k not in x]
        if missing:
            raise ValueError(f"input dict lacks field(s) {missing}; expected {list(self.fields)}")
        parts = []
        for k in self.fields:
            ids = x[k].long()
            if ids.ndim == 1:
                ids = ids.unsqueeze(1)
            parts.append(self.bags[k](ids))
        return torch.cat(parts, dim=1)


class EmbeddingEncoder(nn.Sequential):
    """Embeddings of id fields and bags of words, concatenated, then an MLP.

    For dict inputs such as MovieLens ``{"user": (B,), "item": (B,), "title": (B, L)}``.

    Parameters
    ----------
    vocab_sizes : field name -> number of ids (ids must lie in ``[0, n)``)
    dim : embedding width per field
    hidden : MLP widths after the concatenated embeddings (``out_dim`` = last)
    padding_idx : id ignored in bags (MovieLens pads titles with 0); ``None``: no padding.
        A single-id field equal to ``padding_idx`` embeds to zeros.
    """

    def __init__(self, vocab_sizes: Mapping[str, int], dim: int = 32, hidden: Sequence[int] = (64, 64),
                 padding_idx: int | None = 0) -> None:
        if not vocab_sizes:
            raise ValueError("vocab_sizes must name at least one field")
        bad = {k: n for k, n in vocab_sizes.items() if int(n) < 1}
        if bad:
            raise ValueError(f"vocab_sizes must be >= 1, got {bad}")
        if dim < 1:
            raise ValueError(f"dim must be >= 1, got {dim}")
        hidden = _check_widths("hidden", hidden)
        layers: list[nn.Module] = [_FieldEmbedding(vocab_sizes, dim, padding_idx)]
        d = dim * len(vocab_sizes)
        for h in hidden:
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        super().__init__(*layers)
        self.out_dim = int(d)
