"""ResNet-18/34/50/101/152 (He, Zhang, Ren & Sun, CVPR 2016) in plain ``torch.nn``.

The state dict has exactly torchvision's parameter and buffer names and shapes (``conv1``,
``bn1``, ``layer1.0.conv1``, …, ``layer2.0.downsample.0`` / ``.1``, ``fc``), so an ImageNet
checkpoint saved from ``torchvision.models.resnet50`` loads with ``load_state_dict(strict=True)``
— without torchvision, which is not importable with this project's CPU torch build. The model
is an :class:`torch.nn.Sequential` whose children are named like torchvision's attributes
(``conv1, bn1, relu, maxpool, layer1..layer4`` then ``avgpool, flatten, fc``), so cross-stitch
networks can stitch between its stages.

Outputs (``output=``):

* ``"logits"``: the ImageNet classifier ``(B, num_classes)`` (``out_dim = num_classes``);
* ``"pooled"``: the globally pooled representation ``(B, 512·e)`` with ``e = 1`` (ResNet-18/34)
  or ``4`` (ResNet-50+) (``out_dim``), for classification / regression tasks;
* ``"map"``: the stride-32 feature map ``(B, 512·e, ⌈H/32⌉, ⌈W/32⌉)`` (``out_channels``,
  ``stride``), or with ``dilated=True`` the stride-8 map of torchvision's
  ``replace_stride_with_dilation=[False, True, True]`` (DeepLab-style dense prediction;
  parameter shapes are unchanged, so the same checkpoint loads).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet34", "resnet50",
           "resnet101", "resnet152", "load_checkpoint_state"]

log = logging.getLogger(__name__)

_OUTPUTS = ("logits", "pooled", "map")


def _conv3x3(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=dilation, dilation=dilation, bias=False)


def _conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with a residual connection (ResNet-18/34); expansion 1."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        result: Tensor = self.relu(out + identity)
        return result


class Bottleneck(nn.Module):
    """1×1 → 3×3 (stride, dilation) → 1×1 convolutions with a residual (ResNet-50+); expansion 4.

    The stride sits on the 3×3 convolution (torchvision's "ResNet V1.5").
    """

    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1,
                 downsample: nn.Module | None = None, dilation: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv1x1(inplanes, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv1x1(planes, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        result: Tensor = self.relu(out + identity)
        return result


_Block = type[BasicBlock] | type[Bottleneck]

_ARCHS: dict[str, tuple[_Block, tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
    "resnet152": (Bottleneck, (3, 8, 36, 3)),
}


def load_checkpoint_state(path: str | Path) -> dict[str, Tensor]:
    """The state dict stored in a checkpoint file, read with ``torch.load(weights_only=True)``.

    Accepts a plain state dict (what ``torch.save(model.state_dict(), path)`` writes, as the
    torchvision ImageNet files are) or a dict holding one under ``"state_dict"`` or ``"model"``;
    a ``"module."`` prefix (DataParallel / DDP checkpoints) is removed.
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"weights={str(path)!r}: no such checkpoint file")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, non-tensor payloads
        raise ValueError(f"weights={str(path)!r}: cannot read it as a torch checkpoint ({exc})") from exc
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, Tensor) for v in obj.values()):
        raise ValueError(
            f"weights={str(path)!r} holds a {type(obj).__name__}, expected a state dict "
            "(parameter name -> tensor), or a dict with one under 'state_dict' or 'model'"
        )
    state = dict(obj)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    return state


class ResNet(nn.Sequential):
    """A ResNet with torchvision's state-dict layout (see the module docstring).

    Parameters
    ----------
    arch : "resnet18", "resnet34", "resnet50", "resnet101" or "resnet152"
    output : "logits" (ImageNet classifier), "pooled" (``(B, out_dim)``) or "map"
        (``(B, out_channels, h, w)``)
    weights : path of a local checkpoint file (e.g. torchvision's ImageNet weights); loaded
        strictly with :func:`load_checkpoint_state` before the classifier is dropped for
        ``output="pooled"`` / ``"map"``. ``None``: random initialisation (logged).
    num_classes : classifier width for ``output="logits"`` (default 1000, ImageNet)
    dilated : with ``output="map"``, replace the strides of layer3 and layer4 by dilation
        (stride 8 instead of 32), as torchvision's ``replace_stride_with_dilation=[F, T, T]``
    in_channels : input channels (3 for RGB; another value cannot load ImageNet weights)
    base_width : channels of layer1 (64 = torchvision; smaller only for fast tests — the
        state dict then has torchvision's names with smaller shapes)
    zero_init_residual : zero the last BN weight of each residual branch (torchvision option)

    Initialisation follows torchvision (Kaiming-normal fan-out convolutions, BN weight 1 and
    bias 0, default ``nn.Linear`` init for ``fc``).
    """

    def __init__(self, arch: str = "resnet50", *, output: str = "pooled", weights: str | Path | None = None,
                 num_classes: int = 1000, dilated: bool = False, in_channels: int = 3,
                 base_width: int = 64, zero_init_residual: bool = False) -> None:
        if arch not in _ARCHS:
            raise ValueError(f"arch must be one of {sorted(_ARCHS)}, got {arch!r}")
        if output not in _OUTPUTS:
            raise ValueError(f"output must be one of {list(_OUTPUTS)}, got {output!r}")
        if dilated and output != "map":
            raise ValueError(f"dilated=True only applies to output='map' (a dense feature map), got output={output!r}")
        for name, v in (("num_classes", num_classes), ("in_channels", in_channels), ("base_width", base_width)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        block, layers = _ARCHS[arch]
        state = load_checkpoint_state(weights) if weights is not None else None
        if state is not None and output != "logits" and isinstance(state.get("fc.weight"), Tensor):
            num_classes = int(state["fc.weight"].shape[0])  # load strictly, then drop the classifier
        self._inplanes = base_width
        self._dilation = 1
        widths = [base_width, 2 * base_width, 4 * base_width, 8 * base_width]
        dilate = (False, dilated, dilated)
        mods: list[tuple[str, nn.Module]] = [
            ("conv1", nn.Conv2d(in_channels, base_width, 7, stride=2, padding=3, bias=False)),
            ("bn1", nn.BatchNorm2d(base_width)),
            ("relu", nn.ReLU(inplace=True)),
            ("maxpool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
            ("layer1", self._make_layer(block, widths[0], layers[0])),
            ("layer2", self._make_layer(block, widths[1], layers[1], 2, dilate[0])),
            ("layer3", self._make_layer(block, widths[2], layers[2], 2, dilate[1])),
            ("layer4", self._make_layer(block, widths[3], layers[3], 2, dilate[2])),
            ("avgpool", nn.AdaptiveAvgPool2d((1, 1))),
            ("flatten", nn.Flatten(1)),
            ("fc", nn.Linear(widths[3] * block.expansion, num_classes)),
        ]
        super().__init__(OrderedDict(mods))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.zeros_(m.bn3.weight)
                elif isinstance(m, BasicBlock):
                    nn.init.zeros_(m.bn2.weight)
        self.arch = arch
        self.output = output
        channels = widths[3] * block.expansion
        if state is not None:
            self._load(state, weights)
            log.info("%s: loaded weights from %s", arch, weights)
        else:
            log.info("%s: no weights given, training from scratch (random initialisation)", arch)
        self.weights = None if weights is None else str(weights)
        if output == "logits":
            self.out_dim = int(num_classes)
        elif output == "pooled":
            del self.fc
            self.out_dim = int(channels)
        else:
            del self.fc
            del self.flatten
            del self.avgpool
            self.out_channels = int(channels)
            self.stride = 8 if dilated else 32

    def _make_layer(self, block: _Block, planes: int, blocks: int, stride: int = 1, dilate: bool = False) -> nn.Sequential:
        downsample = None
        previous = self._dilation
        if dilate:
            self._dilation *= stride
            stride = 1
        if stride != 1 or self._inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                _conv1x1(self._inplanes, planes * block.expansion, stride),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self._inplanes, planes, stride, downsample, previous)]
        self._inplanes = planes * block.expansion
        layers += [block(self._inplanes, planes, dilation=self._dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _load(self, state: Mapping[str, Tensor], path: str | Path | None) -> None:
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if missing or unexpected:
            raise ValueError(
                f"weights={str(path)!r} does not fit {self.arch}: {len(missing)} missing key(s) "
                f"{missing[:5]} and {len(unexpected)} unexpected key(s) {unexpected[:5]} "
                "(expected a torchvision-layout state dict of the same architecture)"
            )
        wrong = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in own.items()
                 if tuple(state[k].shape) != tuple(v.shape)]
        if wrong:
            k, got, want = wrong[0]
            raise ValueError(
                f"weights={str(path)!r} does not fit {self.arch}: {len(wrong)} tensor(s) of another "
                f"shape, first {k!r} is {got} in the file and {want} in the model "
                "(in_channels / base_width / num_classes differ from the checkpoint's?)"
            )
        self.load_state_dict(state, strict=True)


def _factory(arch: str) -> Callable[..., ResNet]:
    def build(weights: str | Path | None = None, *, as_encoder: str | None = None, **kwargs: Any) -> ResNet:
        if as_encoder is None:
            output = kwargs.pop("output", "logits")
        elif as_encoder in ("pooled", "map"):
            output = as_encoder
        elif as_encoder == "dilated":
            output, kwargs["dilated"] = "map", True
        else:
            raise ValueError(f"as_encoder must be None, 'pooled', 'map' or 'dilated', got {as_encoder!r}")
        return ResNet(arch, output=output, weights=weights, **kwargs)

    build.__name__ = arch
    build.__doc__ = (
        f"{arch} with torchvision's state-dict layout.\n\n"
        "``weights``: a local checkpoint path (strict load); ``as_encoder``: ``None`` (ImageNet "
        "classifier), ``'pooled'`` (``(B, out_dim)``), ``'map'`` (stride 32, ``out_channels``) or "
        "``'dilated'`` (stride 8). Other keywords go to :class:`ResNet`."
    )
    return build


resnet18 = _factory("resnet18")
resnet34 = _factory("resnet34")
resnet50 = _factory("resnet50")
resnet101 = _factory("resnet101")
resnet152 = _factory("resnet152")

