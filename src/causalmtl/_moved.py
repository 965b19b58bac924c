"""Modules that moved keep importing from their old dotted path for one release.

``import causalmtl.<old path>`` (and ``from <old path> import name``) returns the module at
its new path, with a :class:`DeprecationWarning` naming both paths. :data:`MOVED` is the one
table of old → new paths; :func:`install` (called by ``causalmtl/__init__.py``) puts the
finder on :data:`sys.meta_path`. The finder answers only for the names in the table, so it
costs nothing for any other import.
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

#: old dotted module path → the path it moved to (removed in the release after the move)
MOVED: dict[str, str] = {
    "causalmtl.gmtl.evaluate_q": "causalmtl.shift.unknown_q",
    "causalmtl.methods.mtcrl_regularizers": "causalmtl.methods.mtcrl.regularizers",
    "causalmtl.methods.mtcrl_diagnostics": "causalmtl.methods.mtcrl.diagnostics",
}


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves an old module path of :data:`MOVED` to the module at its new path."""

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
        # the module object itself: the import system keeps its own __name__ / __spec__
        return importlib.import_module(new)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: :meth:`create_module` returned the imported new module."""


_FINDER = MovedModuleFinder()


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent)."""
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(_FINDER)


__all__ = ["MOVED", "MovedModuleFinder", "install"]
