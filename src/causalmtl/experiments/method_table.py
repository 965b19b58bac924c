"""The experiments' method table: the one place an experiment method is named.

Each row of :data:`METHODS` says which architecture (:func:`causalmtl.experiments.common.build_model`),
which training method (:data:`causalmtl.methods.METHODS`), which fixed hyperparameter values, which
search family and which label an experiment method has. Nothing else about a method is written
here: its hyperparameters, defaults and search ranges are declared once as :class:`~causalmtl._hparams.HParam`
next to the code that reads them — ``Trainer.HPARAMS`` (lr, weight decay), the architecture's
``HPARAMS`` (:data:`ARCH_MODELS`) and the method class's ``HPARAMS`` — and
:func:`search_space` derives an experiment method's random-search space from them.

Adding a method: a :class:`~causalmtl.methods.Method` subclass with ``HPARAMS``, one entry in
:data:`causalmtl.methods.METHODS` and one row here (docs/training.md, "Adding a method").

Heavy imports (torch, the model and method classes) happen inside the functions, so importing
the experiments stays light.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._hparams import HParam

if TYPE_CHECKING:
    from ..methods.base import Method


@dataclass(frozen=True)
class MethodDef:
    """One experiment method: architecture, training method, fixed hyperparameters, search family, label."""

    arch: str
    method: str
    fixed: dict[str, Any] = field(default_factory=dict)
    family: str = ""
    label: str = ""


METHODS: dict[str, MethodDef] = {
    "stl": MethodDef("stl", "erm", family="stl", label="STL"),
    "nps": MethodDef("stl", "erm", family="nps", label="NPS"),
    "shared": MethodDef("shared", "erm", family="shared", label="Shared trunk"),
    "mtl": MethodDef("mmoe", "erm", family="mtl", label="MTL"),
    "mmoe": MethodDef("mmoe", "erm", family="mmoe", label="MMoE"),
    "mtl-shared": MethodDef("shared", "erm", family="shared", label="MTL (shared-bottom)"),
    "mmoe-k": MethodDef("mmoe-k", "erm", family="mtl", label="MTL (MMoE, K = MT-CRL's modules)"),
    "cross_stitch": MethodDef("cross_stitch", "erm", family="cross_stitch", label="Cross-stitch"),
    "fps": MethodDef("fps", "erm", family="fps", label="FPS"),
    "pcgrad": MethodDef("mmoe", "pcgrad", family="pcgrad", label="PCGrad"),
    "gradvac": MethodDef("mmoe", "gradvac", family="gradvac", label="GradVac"),
    "irm": MethodDef("mmoe", "irm", family="irm", label="IRM"),
    "vrex": MethodDef("mmoe", "vrex", family="vrex", label="VREx"),
    "dann": MethodDef("mmoe", "dann", family="dann", label="DANN"),
    "mtcrl": MethodDef("mtcrl", "mtcrl", {"girm": "var"}, family="mtcrl", label="MT-CRL"),
    "mtcrl-var": MethodDef("mtcrl", "mtcrl", {"girm": "var"}, family="mtcrl", label="MT-CRL (G-IRM var)"),
    "mtcrl-norm": MethodDef("mtcrl", "mtcrl", {"girm": "norm"}, family="mtcrl", label="MT-CRL (G-IRM norm)"),
    "mtcrl-none": MethodDef("mtcrl", "mtcrl", {"girm": "none"}, family="mtcrl", label="MT-CRL w/o G-IRM"),
}

#: architectures whose model class declares ``HPARAMS`` (hyperparameters the trainer reads from
#: the model, e.g. the stitch units' learning-rate multiplier): arch → "module:Class" in causalmtl.nn
ARCH_MODELS: dict[str, str] = {
    "cross_stitch": "causalmtl.nn.cross_stitch:CrossStitchNetwork",
}


def method_def(name: str) -> MethodDef:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; valid methods are: {', '.join(METHODS)}")
    return METHODS[name]


def method_class(name: str) -> type[Method]:
    """The training-method class behind experiment method ``name`` (e.g. ``mtcrl-var`` → MTCRL)."""
    from ..methods import METHODS as CLASSES

    return CLASSES[method_def(name).method]


def trainer_hparams() -> dict[str, HParam]:
    """The trainer's declared hyperparameters (``Trainer.HPARAMS``)."""
    from ..train.trainer import Trainer

    return dict(Trainer.HPARAMS)


def arch_hparams(arch: str) -> dict[str, HParam]:
    """The hyperparameters the model class of ``arch`` declares (none for most architectures)."""
    if arch not in ARCH_MODELS:
        return {}
    module, cls = ARCH_MODELS[arch].split(":")
    params: dict[str, HParam] = getattr(importlib.import_module(module), cls).HPARAMS
    return dict(params)


def families() -> dict[str, MethodDef]:
    """Search family → the first method of the table in that family (its members share one space)."""
    out: dict[str, MethodDef] = {}
    for d in METHODS.values():
        out.setdefault(d.family, d)
    return out


def search_space(family: str) -> dict[str, HParam]:
    """The searched hyperparameters of ``family``, in draw order: trainer, architecture, method.

    Derived from the ``HPARAMS`` declarations: only hyperparameters with a sampler are searched
    (the others keep their class default in every trial).
    """
    fams = families()
    if family not in fams:
        raise ValueError(f"unknown method family {family!r}; known: {', '.join(sorted(fams))}")
    d = fams[family]
    from ..methods import METHODS as CLASSES

    merged = {**trainer_hparams(), **arch_hparams(d.arch), **CLASSES[d.method].HPARAMS}
    return {k: p for k, p in merged.items() if p.searched}


__all__ = ["ARCH_MODELS", "METHODS", "MethodDef", "arch_hparams", "families", "method_class", "method_def",
           "search_space", "trainer_hparams"]
