"""Modules that moved keep importing from their old dotted path for one release.

``import causalmtl.<old path>`` (and ``from <old path> import name``) returns the module at
its new path, with a :class:`DeprecationWarning` naming both paths. :data:`MOVED` is the one
table of old → new paths; :func:`install` (called by ``causalmtl/__init__.py``) puts the
finder on :data:`sys.meta_path`. The finder answers only for the names in the table, so it
costs nothing for any other import.

A *name* that moved out of a module that stays (``causalmtl.report.build_report`` →
``causalmtl.experiments.report.build_report``) is listed in :data:`MOVED_NAMES` and served by
the old module's ``__getattr__`` through :func:`moved_name`. Both tables resolve by dotted
path at the moment of use: the old module holds no import of the new one, so a name moving to
a higher layer leaves no upward import behind (``tests/test_import_graph.py``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType
from typing import Any

#: old dotted module path → the path it moved to (removed in the release after the move)
MOVED: dict[str, str] = {
    "causalmtl.gmtl.evaluate_q": "causalmtl.shift.unknown_q",
    # issue 16: gmtl/ split into priors/ ← decoding/ ← unknown_q/ (ARCHITECTURE.md)
    "causalmtl.gmtl._scores": "causalmtl.gmtl.decoding._scores",
    "causalmtl.gmtl.adapt": "causalmtl.gmtl.unknown_q.adapt",
    "causalmtl.gmtl.calibrate": "causalmtl.gmtl.unknown_q.calibrate",
    "causalmtl.gmtl.decode": "causalmtl.gmtl.decoding.decode",
    "causalmtl.gmtl.em": "causalmtl.gmtl.unknown_q.em",
    "causalmtl.gmtl.objective": "causalmtl.gmtl.decoding.objective",
    "causalmtl.gmtl.prior": "causalmtl.gmtl.priors.prior",
    "causalmtl.gmtl.score_model": "causalmtl.gmtl.unknown_q.score_model",
    "causalmtl.gmtl.select": "causalmtl.gmtl.decoding.select",
    "causalmtl.gmtl.sklearn": "causalmtl.gmtl.decoding.sklearn",
    "causalmtl.gmtl.smoothing_cv": "causalmtl.gmtl.unknown_q.smoothing_cv",
    "causalmtl.gmtl.structured": "causalmtl.gmtl.decoding.structured",
    "causalmtl.gmtl.table_np": "causalmtl.gmtl.decoding.table_np",
    "causalmtl.gmtl.table_torch": "causalmtl.gmtl.decoding.table_torch",
    "causalmtl.gmtl.tree": "causalmtl.gmtl.priors.tree",
    "causalmtl.gmtl.tree_em": "causalmtl.gmtl.unknown_q.tree_em",
    "causalmtl.gmtl.tree_infer": "causalmtl.gmtl.decoding.tree_infer",
    # the built-in experiments moved under experiments/builtin/ (issue 16)
    "causalmtl.experiments.quickstart": "causalmtl.experiments.builtin.quickstart",
    "causalmtl.experiments.gmtl_toy": "causalmtl.experiments.builtin.gmtl_toy",
    "causalmtl.experiments.gmtl_shift": "causalmtl.experiments.builtin.gmtl_shift",
    "causalmtl.experiments.multi_sem": "causalmtl.experiments.builtin.multi_sem",
    "causalmtl.experiments.mtcrl_digits": "causalmtl.experiments.builtin.mtcrl_digits",
    "causalmtl.experiments.movielens": "causalmtl.experiments.builtin.movielens",
    "causalmtl.experiments.yeast_gmtl": "causalmtl.experiments.builtin.yeast_gmtl",
    "causalmtl.experiments.unknown_q": "causalmtl.experiments.builtin.unknown_q",
    "causalmtl.experiments.many_tasks": "causalmtl.experiments.builtin.many_tasks",
    "causalmtl.experiments.gmtl_images": "causalmtl.experiments.builtin.gmtl_images",
    "causalmtl.experiments.dense_benchmarks": "causalmtl.experiments.builtin.dense_benchmarks",
    # reads the database and the registry, so it is experiments' (report/ only renders)
    "causalmtl.report.build": "causalmtl.experiments.report",
    # MT-CRL's method side became the methods/mtcrl/ sub-package (issue 16)
    "causalmtl.methods.mtcrl_regularizers": "causalmtl.methods.mtcrl.regularizers",
    "causalmtl.methods.mtcrl_diagnostics": "causalmtl.methods.mtcrl.diagnostics",
}

#: old dotted path of a moved name (the module that held it stays) → its new dotted path
#: (removed in the release after the move); the old module's ``__getattr__`` calls :func:`moved_name`
MOVED_NAMES: dict[str, str] = {
    # the report builder reads the results database and the registry: it lives in experiments
    "causalmtl.report.build_report": "causalmtl.experiments.report.build_report",
}


def moved_name(module: str, name: str) -> object:
    """For a module's ``__getattr__``: the object ``module.name`` moved to, with a
    :class:`DeprecationWarning`; ``AttributeError`` for a name that is not in :data:`MOVED_NAMES`."""
    old = f"{module}.{name}"
    new = MOVED_NAMES.get(old)
    if new is None:
        raise AttributeError(f"module {module!r} has no attribute {name!r}")
    new_module, _, new_name = new.rpartition(".")
    warnings.warn(
        f"{old} moved to {new}; the old name is removed in the next release",
        DeprecationWarning,
        stacklevel=3,  # the caller's attribute access, past moved_name and the module's __getattr__
    )
    obj: object = getattr(importlib.import_module(new_module), new_name)
    return obj


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path of :data:`MOVED` to the module at its new path."""

    def __init__(self) -> None:
        self._specs: dict[str, tuple[importlib.machinery.ModuleSpec | None, Any]] = {}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new}; the old path is removed in the next release",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(new)
        # the import system stamps the old path's spec on the module it gets back; remember the
        # module's own, which exec_module puts back
        self._specs[spec.name] = (module.__spec__, getattr(module, "__loader__", None))
        parent_name, _, leaf = spec.name.rpartition(".")
        parent = sys.modules.get(parent_name)
        if parent is not None and type(parent) is ModuleType:
            # after loading, the import system sets ``parent.<leaf> = module``; where the parent
            # has a public name of that leaf (``causalmtl.gmtl.adapt``, the function), keep it
            parent.__class__ = _KeepsNames
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (:meth:`create_module` returned the imported new module); restore its spec."""
        spec, loader = self._specs.pop(getattr(module.__spec__, "name", ""), (None, None))
        if spec is not None:
            module.__spec__ = spec
            module.__loader__ = loader


class _KeepsNames(ModuleType):
    """A package that keeps a non-module attribute when an old module path of the same leaf
    name is imported (see :meth:`MovedModuleFinder.create_module`)."""

    def __setattr__(self, name: str, value: object) -> None:
        if (
            isinstance(value, ModuleType)
            and f"{self.__name__}.{name}" in MOVED
            and not isinstance(self.__dict__.get(name, value), ModuleType)
        ):
            return
        super().__setattr__(name, value)


_FINDER = MovedModuleFinder()


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_FINDER)


__all__ = ["MOVED", "MOVED_NAMES", "MovedModuleFinder", "install", "moved_name"]
