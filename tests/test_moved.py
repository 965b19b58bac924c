"""Old module paths of moved modules (causalmtl._moved): same module object, one warning."""

import importlib
import subprocess
import sys

import pytest

from causalmtl import _moved


@pytest.mark.parametrize("old,new", sorted(_moved.MOVED.items()))
def test_old_path_imports_the_new_module_with_a_warning(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        mod = importlib.import_module(old)
    assert mod is importlib.import_module(new)


def test_from_old_path_import_name_works():
    """``from old import name`` in a fresh interpreter (a name of the new module's __all__, or
    any public one), for every entry at once: one subprocess, not one per entry."""
    lines = []
    for old, new in sorted(_moved.MOVED.items()):
        mod = importlib.import_module(new)
        names = getattr(mod, "__all__", None) or [n for n in vars(mod) if not n.startswith("_")]
        lines.append(f"from {old} import {names[0]} as x; import {new} as m; assert x is m.{names[0]}, {old!r}")
    subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", "\n".join(lines)], check=True)


def test_unlisted_paths_are_not_answered():
    assert _moved.MovedModuleFinder().find_spec("causalmtl.no_such_module") is None
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("causalmtl.gmtl.no_such_module")


def test_install_is_idempotent():
    _moved.install()
    _moved.install()
    assert sum(isinstance(f, _moved.MovedModuleFinder) for f in sys.meta_path) == 1


def test_old_path_keeps_the_parents_name_and_the_modules_spec():
    """``causalmtl.gmtl.adapt`` is a function and was a module path: importing the old path
    leaves the function in place (as before the move) and the new module keeps its own spec."""
    code = (
        "import importlib, warnings; warnings.simplefilter('ignore')\n"
        "import causalmtl.gmtl as g\n"
        "f, d = g.adapt, g.decode\n"
        "m = importlib.import_module('causalmtl.gmtl.adapt')\n"
        "importlib.import_module('causalmtl.gmtl.decode')\n"
        "assert g.adapt is f and g.decode is d and callable(g.adapt)\n"
        "assert m is importlib.import_module('causalmtl.gmtl.unknown_q.adapt')\n"
        "assert m.__spec__.name == 'causalmtl.gmtl.unknown_q.adapt', m.__spec__\n"
        "importlib.reload(m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("old,new", sorted(_moved.MOVED_NAMES.items()))
def test_old_name_is_the_new_object_with_a_warning(old, new):
    old_mod, _, old_name = old.rpartition(".")
    new_mod, _, new_name = new.rpartition(".")
    with pytest.warns(DeprecationWarning, match=f"{old} moved to {new}"):
        obj = getattr(importlib.import_module(old_mod), old_name)
    assert obj is getattr(importlib.import_module(new_mod), new_name)
    code = f"from {old_mod} import {old_name} as x; from {new_mod} import {new_name} as y; assert x is y"
    subprocess.run([sys.executable, "-W", "ignore::DeprecationWarning", "-c", code], check=True)


def test_unlisted_names_raise_attribute_error():
    import causalmtl.report

    with pytest.raises(AttributeError, match="'causalmtl.report' has no attribute 'no_such_name'"):
        causalmtl.report.no_such_name  # noqa: B018 - the attribute access is the test
    assert not hasattr(causalmtl.report, "no_such_name")
