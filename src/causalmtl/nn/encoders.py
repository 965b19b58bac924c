"""Encoders for the project's data: MLP (tabular), small CNN (images of any size), embeddings.

Every encoder is an :class:`torch.nn.Sequential` with an ``out_dim`` attribute, so that
cross-stitch networks can stitch after any of its layers and architectures can size heads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

__all__ = ["MLPEncoder", "CNNEncoder", "EmbeddingEncoder", "encoder_out_dim"]


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


class CNNEncoder(nn.Sequential):
    """A small CNN for images of any size: stride-2 3×3 conv blocks, global average pool, linear.

    Each block is ``Conv2d(3×3, stride 2, padding 1) → ReLU``, so any ``H, W >= 1`` works
    (the spatial size roughly halves per block and never reaches 0); a global average pool
    then a ``Linear → ReLU`` to ``out_dim``. Inputs ``(B, C, H, W)`` or ``(B, H, W)`` (one
    channel).
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32), out_dim: int = 64) -> None:
        if in_channels < 1 or out_dim < 1:
            raise ValueError(f"in_channels and out_dim must be >= 1, got {in_channels}, {out_dim}")
        channels = _check_widths("channels", channels)
        if not channels:
            raise ValueError("channels must name at least one conv block")
        layers: list[nn.Module] = [_AddChannel()]
        c = in_channels
        for ch in channels:
            layers += [nn.Conv2d(c, ch, 3, stride=2, padding=1), nn.ReLU()]
            c = ch
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, out_dim), nn.ReLU()]
        super().__init__(*layers)
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
