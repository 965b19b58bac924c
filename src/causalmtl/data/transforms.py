"""Seeded transforms applied consistently to an image and every dense target of a row.

A transform is a callable ``(sample, rng) -> sample`` on a :class:`~causalmtl.data.streamed.Sample`
(``x`` ``(C, H, W)``, maps ``(H, W)`` class maps or ``(C, H, W)`` regression maps). Random
transforms draw from the ``rng`` they are given; the trainer passes
``default_rng([seed, epoch, row])`` (:func:`~causalmtl.data.streamed.row_rng`), so the same
seed gives the same crops and flips whatever the number of workers or the batch order.

Geometry is applied identically to ``x`` and to every map. Resizing uses bilinear
interpolation for the image and for regression maps (invalid ``NaN`` pixels stay invalid:
a resized pixel that touches an invalid one is invalid) and nearest neighbour for class maps
(labels are never blended). Horizontal flips negate the x component (channel 0) of maps named
in ``flip_sign`` (surface normals), as the NYUv2 MTL code does.

Examples
--------
>>> import numpy as np
>>> from causalmtl.data.streamed import Sample
>>> t = Compose([RandomCrop((4, 4)), HorizontalFlip(0.5), Normalize([0.5], [0.25])])
>>> s = Sample(np.ones((1, 6, 6), np.float32), {"seg": np.zeros((6, 6), np.int64)})
>>> out = t(s, np.random.default_rng(0))
>>> out.x.shape, out.maps["seg"].shape, float(out.x[0, 0, 0])
((1, 4, 4), (4, 4), 2.0)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .streamed import Sample

__all__ = [
    "Compose", "Resize", "RandomCrop", "CenterCrop", "HorizontalFlip", "Normalize", "ToFloat",
    "IMAGENET_MEAN", "IMAGENET_STD", "train_eval_transforms",
]

#: ImageNet channel statistics (torchvision's), for images scaled to [0, 1]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _pair(size: int | Sequence[int], name: str) -> tuple[int, int]:
    arr = np.asarray(size)
    hw = (int(arr), int(arr)) if np.isscalar(size) else tuple(int(v) for v in arr)
    if len(hw) != 2 or min(hw) < 1:
        raise ValueError(f"{name} must be a positive int or (height, width), got {size!r}")
    return hw[0], hw[1]


class Compose:
    """Apply transforms in order (each with the same generator, consumed in turn)."""

    def __init__(self, transforms: Sequence[object]) -> None:
        self.transforms = list(transforms)

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        for t in self.transforms:
            s = t(s, rng)  # type: ignore[operator]
        return s

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def _resize_linear(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of ``(C, H, W)`` (align_corners=False, like torch's default)."""
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))[None]
    invalid = torch.isnan(t)
    out = F.interpolate(torch.nan_to_num(t), size=hw, mode="bilinear", align_corners=False)
    if invalid.any():
        touched = F.interpolate(invalid.float(), size=hw, mode="bilinear", align_corners=False) > 0
        out = out.masked_fill(touched, float("nan"))
    return out[0].numpy()


def _resize_nearest(a: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a class map ``(H, W)`` (pixel centres, like PIL's NEAREST)."""
    h, w = a.shape
    rows = np.minimum((np.arange(hw[0]) + 0.5) * h / hw[0], h - 1).astype(np.int64)
    cols = np.minimum((np.arange(hw[1]) + 0.5) * w / hw[1], w - 1).astype(np.int64)
    result: np.ndarray = a[rows[:, None], cols[None, :]]
    return result


class Resize:
    """Resize ``x`` and every map to ``size`` = ``(height, width)``."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "size")

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        if s.x.shape[-2:] == self.size:
            return s
        x = _resize_linear(s.x, self.size)
        maps = {k: _resize_nearest(m, self.size) if m.ndim == 2 else _resize_linear(m, self.size)
                for k, m in s.maps.items()}
        return Sample(x, maps)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


def _crop(s: Sample, top: int, left: int, hw: tuple[int, int]) -> Sample:
    sl = (slice(top, top + hw[0]), slice(left, left + hw[1]))
    return Sample(s.x[(..., *sl)], {k: m[(..., *sl)] for k, m in s.maps.items()})


def _check_fits(s: Sample, hw: tuple[int, int], name: str) -> tuple[int, int]:
    h, w = s.x.shape[-2:]
    if h < hw[0] or w < hw[1]:
        raise ValueError(f"{name} size {hw} is larger than the image {(h, w)}")
    for k, m in s.maps.items():
        if m.shape[-2:] != (h, w):
            raise ValueError(f"map {k!r} has spatial size {m.shape[-2:]} but the image has {(h, w)}")
    return h, w


class RandomCrop:
    """A ``size`` crop at a uniformly drawn position (same window for ``x`` and every map)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "size")

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        h, w = _check_fits(s, self.size, "RandomCrop")
        top = int(rng.integers(0, h - self.size[0] + 1))
        left = int(rng.integers(0, w - self.size[1] + 1))
        return _crop(s, top, left, self.size)

    def __repr__(self) -> str:
        return f"RandomCrop({self.size})"


class CenterCrop:
    """The central ``size`` window (evaluation counterpart of :class:`RandomCrop`)."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _pair(size, "size")

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        h, w = _check_fits(s, self.size, "CenterCrop")
        return _crop(s, (h - self.size[0]) // 2, (w - self.size[1]) // 2, self.size)

    def __repr__(self) -> str:
        return f"CenterCrop({self.size})"


class HorizontalFlip:
    """Mirror left–right with probability ``p``; maps in ``flip_sign`` get channel 0 negated."""

    def __init__(self, p: float = 0.5, flip_sign: Sequence[str] = ("normal",)) -> None:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p!r}")
        self.p = float(p)
        self.flip_sign = tuple(flip_sign)

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        if rng.random() >= self.p:
            return s
        maps = {}
        for k, m in s.maps.items():
            m = m[..., ::-1].copy()
            if k in self.flip_sign and m.ndim == 3:
                m[0] = -m[0]
            maps[k] = m
        return Sample(s.x[..., ::-1].copy(), maps)

    def __repr__(self) -> str:
        return f"HorizontalFlip(p={self.p})"


class ToFloat:
    """``uint8`` pixels to float32 in ``[0, 1]`` (other dtypes: cast to float32)."""

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        x = s.x.astype(np.float32) / 255.0 if s.x.dtype == np.uint8 else s.x.astype(np.float32)
        return Sample(x, s.maps)

    def __repr__(self) -> str:
        return "ToFloat()"


class Normalize:
    """``(x − mean) / std`` per channel (after :class:`ToFloat` for ``uint8`` images)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float32)[:, None, None]
        self.std = np.asarray(std, dtype=np.float32)[:, None, None]
        if self.mean.shape != self.std.shape or (self.std <= 0).any():
            raise ValueError(f"mean and std need one value per channel and std > 0, got {mean!r}, {std!r}")

    def __call__(self, s: Sample, rng: np.random.Generator) -> Sample:
        if s.x.shape[0] != len(self.mean):
            raise ValueError(f"Normalize has {len(self.mean)} channels but the image has {s.x.shape[0]}")
        return Sample((s.x.astype(np.float32) - self.mean) / self.std, s.maps)

    def __repr__(self) -> str:
        return f"Normalize({self.mean.ravel().tolist()}, {self.std.ravel().tolist()})"


def train_eval_transforms(resize: int | Sequence[int] | None = None, crop: int | Sequence[int] | None = None,
                          flip: bool = True, normalize: bool = True) -> dict[str, Compose]:
    """The usual image pipeline as ``{"train": ..., "eval": ...}``.

    Train: optional :class:`Resize`, a :class:`RandomCrop` of ``crop`` (if given), a
    :class:`HorizontalFlip` (p = 0.5, if ``flip``), then with ``normalize`` ``uint8`` → [0, 1]
    and ImageNet normalisation. Eval: the same without randomness (:class:`CenterCrop`, no flip).
    """
    head = [Resize(resize)] if resize is not None else []
    tail = [ToFloat(), Normalize(IMAGENET_MEAN, IMAGENET_STD)] if normalize else []
    train: list[object] = [*head]
    evaluation: list[object] = [*head]
    if crop is not None:
        train.append(RandomCrop(crop))
        evaluation.append(CenterCrop(crop))
    if flip:
        train.append(HorizontalFlip(0.5))
    return {"train": Compose([*train, *tail]), "eval": Compose([*evaluation, *tail])}
