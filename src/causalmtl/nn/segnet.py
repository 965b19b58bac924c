"""SegNet (Badrinarayanan, Kendall & Cipolla, 2015) as the shared encoder–decoder of the
MTAN / PCGrad / LibMTL NYUv2 and CityScapes setups (which MT-CRL follows, Appendix C).

A VGG-16-style encoder of five levels (``3×3 conv → BN → ReLU`` blocks, 2, 2, 3, 3, 3 per level
with 64, 128, 256, 512, 512 channels), each followed by a 2×2 max-pool that remembers its
indices; a mirrored decoder that max-unpools with those indices and applies the same number
of conv blocks, ending with ``widths[0]`` channels at the input resolution. The task heads
(:mod:`causalmtl.nn.dense`) read that shared map — in the MTAN "split" baseline each head is a
3×3 conv then a 1×1 conv to the task's channels.

Initialisation as in the MTAN reference code: Xavier-normal conv weights, zero biases,
BN weight 1 and bias 0. ``width="tiny"`` (channels 8, 8, 16, 16, 16; one conv per level) is for
CPU tests only.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["SegNet", "SEGNET_WIDTHS"]

#: named channel configurations: (widths per level, conv blocks per level)
SEGNET_WIDTHS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "standard": ((64, 128, 256, 512, 512), (2, 2, 3, 3, 3)),   # VGG-16 / MTAN "standard"
    "wide": ((64, 128, 256, 512, 1024), (2, 2, 3, 3, 3)),      # MTAN "wide"
    "tiny": ((8, 8, 16, 16, 16), (1, 1, 1, 1, 1)),             # CPU tests
}


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


def _stack(cin: int, cout: int, n: int) -> nn.Sequential:
    return nn.Sequential(*[_block(cin if i == 0 else cout, cout) for i in range(n)])


class SegNet(nn.Module):
    """SegNet encoder–decoder: ``(B, C_in, H, W) → (B, out_channels, H, W)``.

    Parameters
    ----------
    in_channels : input channels (3 for RGB)
    width : "standard" (default), "wide", "tiny", or explicit per-level channel widths
    depths : conv blocks per level (default: the named configuration's; 2, 2, 3, 3, 3 for VGG-16)

    Attributes
    ----------
    out_channels : channels of the output map (``widths[0]``)
    stride : 1 (the map is at input resolution)

    ``H`` and ``W`` must be at least ``2 ** levels`` (32 for five levels); sizes that are not
    multiples of it are handled (the unpooling restores each level's exact size).
    """

    stride = 1

    def __init__(self, in_channels: int = 3, width: str | Sequence[int] = "standard",
                 depths: Sequence[int] | None = None) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels must be an int >= 1, got {in_channels!r}")
        if isinstance(width, str):
            if width not in SEGNET_WIDTHS:
                raise ValueError(f"width must be one of {sorted(SEGNET_WIDTHS)} or a sequence of ints, got {width!r}")
            widths, default_depths = SEGNET_WIDTHS[width]
        else:
            widths = tuple(int(w) for w in width)
            default_depths = (2, 2, 3, 3, 3)[: len(widths)] if len(widths) <= 5 else (2,) * len(widths)
        depths = tuple(int(d) for d in (default_depths if depths is None else depths))
        if not widths or any(w < 1 for w in widths):
            raise ValueError(f"width must be positive channel counts, got {width!r}")
        if len(depths) != len(widths) or any(d < 1 for d in depths):
            raise ValueError(f"depths must give one positive count per level ({len(widths)}), got {depths!r}")
        self.widths, self.depths = widths, depths
        self.encoder = nn.ModuleList(
            _stack(in_channels if j == 0 else widths[j - 1], widths[j], depths[j]) for j in range(len(widths))
        )
        # decoder level j: first block widths[j] -> widths[j-1] (widths[0] at level 0), then the rest
        self.decoder = nn.ModuleList(
            _stack(widths[j], widths[max(j - 1, 0)], depths[j]) for j in range(len(widths))
        )
        self.in_channels = in_channels
        self.out_channels = int(widths[0])
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:  # every SegNet convolution has a bias
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def levels(self) -> int:
        return len(self.widths)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"SegNet expects input (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        need = 2 ** self.levels
        if x.shape[-2] < need or x.shape[-1] < need:
            raise ValueError(
                f"SegNet with {self.levels} pooling levels needs H, W >= {need}, got {tuple(x.shape[-2:])}"
            )
        sizes, indices = [], []
        h = x
        for enc in self.encoder:
            h = enc(h)
            sizes.append(h.shape[-2:])
            h, idx = F.max_pool2d(h, 2, 2, return_indices=True)
            indices.append(idx)
        for j in reversed(range(self.levels)):
            h = F.max_unpool2d(h, indices[j], (2, 2), (2, 2), output_size=sizes[j])
            h = self.decoder[j](h)
        return h
