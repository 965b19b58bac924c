"""Image encoders by name: the built-in ResNets and SegNet, or torchvision / timm models.

:func:`build_image_encoder` is what experiment configs call (``encoder: resnet50``,
``encoder: segnet``, ``encoder: "torchvision:resnet50"``, ``encoder: "timm:convnext_tiny"``).
torchvision and timm are optional: they are imported only when such a name is asked for (never
at module import), and a clear error names the built-in alternatives when they are missing —
torchvision's wheel does not load with this project's CPU torch build.

Every encoder returned has either ``out_dim`` (``output="pooled"``: ``(B, out_dim)``) or
``out_channels`` (``output="map"`` / ``"dilated"``: ``(B, out_channels, h, w)``), the two kinds
every architecture accepts (:mod:`causalmtl.nn.dense`).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import Tensor, nn

from .resnet import _ARCHS, ResNet, load_checkpoint_state
from .segnet import SegNet

__all__ = ["BUILTIN_ENCODERS", "PooledEncoder", "build_image_encoder"]

BUILTIN_ENCODERS = tuple(sorted(_ARCHS)) + ("segnet",)
_OUTPUTS = ("pooled", "map", "dilated")


class PooledEncoder(nn.Module):
    """A map encoder followed by a global average pool: ``(B, C, h, w) → (B, C)``; ``out_dim = C``."""

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        c = getattr(encoder, "out_channels", None)
        if isinstance(c, bool) or not isinstance(c, int) or c < 1:
            raise ValueError(f"PooledEncoder needs a map encoder with an int out_channels, got {type(encoder).__name__}")
        self.encoder = encoder
        self.out_dim = int(c)

    def forward(self, x: Tensor) -> Tensor:
        result: Tensor = self.encoder(x).mean(dim=(-2, -1))
        return result


class _LastFeature(nn.Module):
    """Wrap a model returning a list of feature maps (timm ``features_only``): keep the last."""

    def __init__(self, model: nn.Module, out_channels: int) -> None:
        super().__init__()
        self.model = model
        self.out_channels = int(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        result: Tensor = self.model(x)[-1]
        return result


class _External(nn.Module):
    """A torchvision / timm network as an encoder with ``out_dim`` or ``out_channels``."""

    def __init__(self, body: nn.Module, *, out_dim: int | None = None, out_channels: int | None = None) -> None:
        super().__init__()
        self.body = body
        if out_dim is not None:
            self.out_dim = int(out_dim)
        if out_channels is not None:
            self.out_channels = int(out_channels)

    def forward(self, x: Tensor) -> Tensor:
        result: Tensor = self.body(x)
        return result


def _optional(package: str, name: str) -> ModuleType:
    try:
        return importlib.import_module(package)
    except Exception as exc:  # ImportError, or a broken install (torchvision with a CPU torch build)
        raise ValueError(
            f"encoder {name!r} needs the package {package!r}, which is not installed or does not import "
            f"here ({type(exc).__name__}: {exc}); use a built-in encoder instead: {list(BUILTIN_ENCODERS)} "
            "(the ResNets load torchvision ImageNet checkpoint files through weights=<path>)"
        ) from exc


@torch.no_grad()
def _probe_channels(body: nn.Module, in_channels: int) -> int:
    """Channels of a body's output, from a dry run on one 64×64 image in eval mode."""
    was = body.training
    body.eval()
    try:
        out = body(torch.zeros(1, in_channels, 64, 64))
    finally:
        body.train(was)
    if isinstance(out, (list, tuple)):
        out = out[-1]
    return int(out.shape[1])


def _torchvision(model_name: str, output: str, weights: str | Path | None, in_channels: int, full: str) -> nn.Module:
    tv = _optional("torchvision", full)
    try:
        model = tv.models.get_model(model_name, weights=None)
    except Exception as exc:
        raise ValueError(f"torchvision has no model {model_name!r} ({exc})") from exc
    if weights is not None:
        model.load_state_dict(load_checkpoint_state(weights), strict=True)
    if output == "pooled":
        for attr in ("fc", "classifier", "head", "heads"):
            if isinstance(getattr(model, attr, None), nn.Module):
                setattr(model, attr, nn.Identity())
                return _External(model, out_dim=_probe_channels(model, in_channels))
        raise ValueError(f"torchvision model {model_name!r}: no fc / classifier / head to remove for output='pooled'")
    if output == "dilated":
        raise ValueError("output='dilated' is built in for the ResNets only (use 'resnet50', or output='map')")
    if hasattr(model, "layer4") and hasattr(model, "fc"):  # ResNet family: drop avgpool and fc
        body: nn.Module = nn.Sequential(*list(model.children())[:-2])
    elif isinstance(getattr(model, "features", None), nn.Module):  # VGG, DenseNet, MobileNet, EfficientNet
        body = model.features
    else:
        raise ValueError(f"torchvision model {model_name!r}: cannot find its feature-map trunk for output='map'")
    return _External(body, out_channels=_probe_channels(body, in_channels))


def _timm(model_name: str, output: str, weights: str | Path | None, in_channels: int, full: str) -> nn.Module:
    timm = _optional("timm", full)
    kwargs: dict[str, Any] = {"in_chans": in_channels}
    if weights is not None:  # timm loads a local file through its pretrained-config overlay
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(weights)})
    if output == "pooled":
        model = timm.create_model(model_name, num_classes=0, **kwargs)
        return _External(model, out_dim=int(model.num_features))
    if output == "dilated":
        kwargs["output_stride"] = 8
    model = timm.create_model(model_name, features_only=True, out_indices=(-1,), **kwargs)
    return _LastFeature(model, int(model.feature_info.channels()[-1]))


def build_image_encoder(name: str, *, output: str = "pooled", weights: str | Path | None = None,
                        in_channels: int = 3, width: str | int | None = None) -> nn.Module:
    """An image encoder by name.

    Parameters
    ----------
    name : "resnet18", "resnet34", "resnet50", "resnet101", "resnet152" (built in,
        torchvision's state-dict layout, :mod:`causalmtl.nn.resnet`), "segnet"
        (:class:`~causalmtl.nn.segnet.SegNet`), "torchvision:<model>" or "timm:<model>"
        (only where those packages import)
    output : "pooled" (``(B, out_dim)``), "map" (``(B, out_channels, h, w)``; stride 32 for
        ResNets, 1 for SegNet) or "dilated" (stride-8 map, ResNets)
    weights : local checkpoint file (ResNets / torchvision: a torchvision-layout state dict,
        loaded strictly; timm: the model's own checkpoint). ``None``: trains from scratch (logged).
        SegNet has no standard pretrained weights.
    in_channels : input channels (3 for RGB)
    width : ResNets: ``base_width`` (int, 64 = torchvision's; smaller for tests); SegNet: "standard",
        "wide" or "tiny"

    Examples
    --------
    >>> enc = build_image_encoder("segnet", output="map", width="tiny")
    >>> enc.out_channels, tuple(enc(torch.zeros(2, 3, 32, 32)).shape)
    (8, (2, 8, 32, 32))
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if output not in _OUTPUTS:
        raise ValueError(f"output must be one of {list(_OUTPUTS)}, got {output!r}")
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ValueError(f"in_channels must be an int >= 1, got {in_channels!r}")
    prefix, _, model_name = name.partition(":")
    if model_name:
        if prefix not in ("torchvision", "timm"):
            raise ValueError(f"encoder {name!r}: the prefix must be 'torchvision:' or 'timm:', got {prefix!r}")
        build = _torchvision if prefix == "torchvision" else _timm
        return build(model_name, output, weights, in_channels, name)
    if name in _ARCHS:
        kwargs: dict[str, Any] = {}
        if width is not None:
            if isinstance(width, bool) or not isinstance(width, int):
                raise ValueError(f"width of a ResNet is its base width (int, 64 = torchvision's), got {width!r}")
            kwargs["base_width"] = width
        return ResNet(name, output="map" if output == "dilated" else output, dilated=output == "dilated",
                      weights=weights, in_channels=in_channels, **kwargs)
    if name == "segnet":
        if weights is not None:
            raise ValueError("segnet has no standard pretrained weights; weights must be None")
        if output == "dilated":
            raise ValueError("segnet's map is already at input resolution; use output='map'")
        net = SegNet(in_channels, "standard" if width is None else width)  # type: ignore[arg-type]
        return net if output == "map" else PooledEncoder(net)
    raise ValueError(
        f"unknown encoder {name!r}; built in: {list(BUILTIN_ENCODERS)}, or 'torchvision:<name>' / "
        "'timm:<name>' where those packages are installed"
    )
