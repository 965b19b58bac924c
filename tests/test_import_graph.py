"""The dependency rules of ARCHITECTURE.md, checked on the source with ``ast``.

Every ``import`` / ``from … import`` of a ``causalmtl`` module, at module level or inside a
function (a late import hides a dependency, it does not remove it), is an edge between the
packages it connects. An edge may only point to a lower layer:

    cli → experiments → {report, train} → methods → nn → {shift → gmtl → data, metrics} → core

(core: the package root, ``_validation``, ``_parallel``, ``_hparams``, ``_severity``, ``_moved``). Inside gmtl, the
sub-packages are layers too (:data:`GMTL_RANK`: ``priors`` ← ``decoding`` ← ``unknown_q`` ← the top
modules ``cli``, ``demo``, ``scaling`` and the package ``__init__``), modules must not form an
import cycle, and gmtl modules import each other at module level only (no import inside a
function to dodge a cycle; ``gmtl/cli.py`` imports its command lazily, as every package's CLI
does). No module imports an old path of ``_moved.MOVED`` (it would work, with a warning).

Private names stay in their module: no module imports a ``_name`` from another causalmtl
module, nor reads ``alias._name`` of an imported causalmtl module (private *modules* such as
``_validation`` with public names are fine); :data:`KNOWN_PRIVATE` lists the tolerated ones.
"""

from __future__ import annotations

import ast
import functools
import pathlib
from collections import defaultdict

SRC = pathlib.Path(__file__).resolve().parents[1] / "src"

#: rank of each top-level part of the package; an import must go to a lower rank (or the same
#: package). Equal ranks of different packages may not import each other.
RANK = {
    "cli": 9,
    "experiments": 8,
    "report": 7,
    "train": 7,
    "methods": 6,
    "nn": 5,
    "shift": 4,  # evaluates GMTL's decoders, so it may use gmtl
    "gmtl": 3,
    "data": 2,
    "metrics": 2,
    "<root>": 0,
    "_validation": 0,
    "_parallel": 0,
    "_hparams": 0,  # HParam: declared by nn, methods and train next to the code that reads them
    "_moved": -1,  # old module paths of moved modules; imported by the package root, imports by name only
    "_severity": 1,  # shared by gmtl and shift: weighted τ and the log-prior convention
}

#: Known violations, each with the reason it is tolerated. Anything else fails the test.
KNOWN: set[tuple[str, str]] = set()


#: layers inside gmtl: an import between two gmtl modules goes to the same or a lower rank
GMTL_RANK = {"priors": 0, "decoding": 1, "unknown_q": 2, "<top>": 3}

#: private names imported across modules outside gmtl and shift, each (module, name) with the
#: reason it is tolerated until its package's owner makes it public or moves the code
KNOWN_PRIVATE = {
    ("causalmtl.data.nyuv2", "_find"): "experiments.dense_benchmarks checks the data early with the loader's search",
    ("causalmtl.data.cityscapes", "_find"): "experiments.dense_benchmarks checks the data early with the loader's search",
    ("causalmtl.data.taskonomy", "_find_root"): "experiments.dense_benchmarks checks the data early with the loader's search",
    ("causalmtl.data.movielens", "_find_directory"): "experiments.movielens checks the data early with the loader's search",
    ("causalmtl.experiments.reporting", "_corr_verdict"): "gmtl_images and gmtl_shift share the τ–α verdict",
    ("causalmtl.experiments.hparams", "_base"): "experiments.common maps a method family to its registry entry",
    ("causalmtl.nn.resnet", "_ARCHS"): "nn.image lists the ResNet variants",
    ("causalmtl.train.evaluate", "_accumulate"): "train.distributed reuses the evaluation accumulator",
    ("causalmtl.train.evaluate", "_dense_results"): "train.distributed reuses the dense evaluation results",
}


def modules(src: pathlib.Path, top: str = "causalmtl") -> dict[str, tuple[pathlib.Path, bool]]:
    out = {}
    for f in (src / top).rglob("*.py"):
        parts = list(f.relative_to(src).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (f, is_pkg)
    return out


@functools.cache
def import_edges(src: pathlib.Path, top: str = "causalmtl") -> list[tuple[str, str, int, bool]]:
    """``(importer, imported module, line, at module level)`` for every import of ``top``."""
    mods = modules(src, top)
    edges = []
    for name, (path, is_pkg) in mods.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(n) for n in tree.body}
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                if node.level:
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                targets = [f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target for a in node.names]
            for t in targets:
                if t == top or t.startswith(top + "."):
                    edges.append((name, t, node.lineno, id(node) in top_level))
    return edges


def private_crossings(src: pathlib.Path, top: str = "causalmtl") -> list[tuple[str, int, str, str]]:
    """``(importer, line, module, name)`` for every private name one module takes from another:
    ``from m import _name`` and ``alias._name`` where ``alias`` is an imported causalmtl module."""
    mods = modules(src, top)
    out = []
    for name, (path, is_pkg) in sorted(mods.items()):
        tree = ast.parse(path.read_text(), filename=str(path))
        alias: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                if node.level:
                    base = base[: len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target != top and not target.startswith(top + "."):
                    continue
                for a in node.names:
                    if f"{target}.{a.name}" in mods:  # a module (private modules are fine)
                        alias[a.asname or a.name] = f"{target}.{a.name}"
                    elif a.name.startswith("_") and not a.name.startswith("__"):
                        out.append((name, node.lineno, target, a.name))
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.asname and (a.name == top or a.name.startswith(top + ".")):
                        alias[a.asname] = a.name
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in alias
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and f"{alias[node.value.id]}.{node.attr}" not in mods):  # fmt: skip
                out.append((name, node.lineno, alias[node.value.id], node.attr))
    return out


def gmtl_layer(module: str) -> str | None:
    """The gmtl layer of a module (``None`` outside gmtl)."""
    bits = module.split(".")
    if bits[:2] != ["causalmtl", "gmtl"]:
        return None
    return bits[2] if len(bits) > 3 or (len(bits) == 3 and bits[2] in GMTL_RANK) else "<top>"


def gmtl_upward_imports(edges: list[tuple[str, str, int, bool]]) -> list[str]:
    bad = []
    for src, dst, line, _ in edges:
        a, b = gmtl_layer(src), gmtl_layer(dst)
        if a is None or b is None or a == b or GMTL_RANK[b] < GMTL_RANK[a]:
            continue
        bad.append(f"{src}:{line} imports {dst} (gmtl.{a} may not depend on gmtl.{b})")
    return bad


def part(module: str) -> str:
    bits = module.split(".")
    return bits[1] if len(bits) > 1 else "<root>"


def upward_imports(edges: list[tuple[str, str, int, bool]], rank: dict[str, int]) -> list[str]:
    bad = []
    for src, dst, line, _ in edges:
        a, b = part(src), part(dst)
        if a == b or rank[b] < rank[a]:
            continue
        if any(src == k_src and (dst == k_dst or dst.startswith(k_dst + ".")) for k_src, k_dst in KNOWN):
            continue
        bad.append(f"{src}:{line} imports {dst} ({a} may not depend on {b})")
    return bad


def cycles(edges: list[tuple[str, str, int, bool]], prefix: str) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), among ``prefix``."""
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst, _, _ in edges:
        if src.startswith(prefix) and dst.startswith(prefix) and src != dst:
            graph[src].add(dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_every_part_has_a_rank():
    parts = {part(m) for m in modules(SRC)}
    assert parts <= set(RANK), f"add {sorted(parts - set(RANK))} to RANK (and to ARCHITECTURE.md)"


def test_no_upward_import():
    assert upward_imports(import_edges(SRC), RANK) == []


def test_no_cycle_between_gmtl_modules():
    edges = [e for e in import_edges(SRC) if e[0] != "causalmtl.gmtl"]  # the package re-exports all
    assert cycles(edges, "causalmtl.gmtl.") == []


def test_gmtl_imports_gmtl_at_module_level():
    late = [f"{s}:{line} imports {d} inside a function" for s, d, line, top in import_edges(SRC)
            if s.startswith("causalmtl.gmtl.") and d.startswith("causalmtl.gmtl") and not top
            and s != "causalmtl.gmtl.cli"]  # fmt: skip
    assert late == []


def test_gmtl_layers_import_downwards_only():
    assert gmtl_upward_imports(import_edges(SRC)) == []


def test_every_gmtl_subpackage_has_a_rank():
    subs = {m.split(".")[2] for m in modules(SRC) if m.count(".") >= 3 and m.startswith("causalmtl.gmtl.")}
    assert subs <= set(GMTL_RANK), f"add {sorted(subs - set(GMTL_RANK))} to GMTL_RANK (and ARCHITECTURE.md)"


def test_no_import_of_a_moved_path():
    from causalmtl._moved import MOVED

    stale = [f"{s}:{line} imports {d}" for s, d, line, _ in import_edges(SRC)
             if any(d == old or d.startswith(old + ".") for old in MOVED)]  # fmt: skip
    assert stale == []


def test_no_private_name_crosses_a_module():
    bad = [f"{s}:{line} uses {m}.{n}" for s, line, m, n in private_crossings(SRC) if (m, n) not in KNOWN_PRIVATE]
    assert bad == []


BUILTIN = "causalmtl.experiments.builtin"


def builtin_experiment_imports(edges: list[tuple[str, str, int, bool]]) -> list[str]:
    """Imports of a built-in experiment module by anything but the module itself: the experiment
    infrastructure (and everything else) reaches them by name through the registry only, and one
    built-in experiment does not import another."""
    return [f"{s}:{line} imports {d} (only the registry names built-in experiments)"
            for s, d, line, _ in edges if d.startswith(BUILTIN + ".") and d != s]


def test_experiment_infrastructure_imports_no_builtin_experiment():
    assert builtin_experiment_imports(import_edges(SRC)) == []


def test_the_checks_catch_violations(tmp_path):
    """A tiny package with an upward import, a late import and a cycle: each is reported."""
    pkg = tmp_path / "causalmtl"
    (pkg / "gmtl").mkdir(parents=True)
    (pkg / "experiments").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "experiments" / "__init__.py").write_text("")
    (pkg / "gmtl" / "__init__.py").write_text("")
    (pkg / "gmtl" / "a.py").write_text("from .b import x\n")
    (pkg / "gmtl" / "b.py").write_text("def f():\n    from .a import y\n    from ..experiments import z\n")
    edges = import_edges(tmp_path)
    assert upward_imports(edges, RANK) == [
        "causalmtl.gmtl.b:3 imports causalmtl.experiments (gmtl may not depend on experiments)"
    ]
    assert cycles(edges, "causalmtl.gmtl.") == [["causalmtl.gmtl.a", "causalmtl.gmtl.b"]]
    assert [(s, d, top) for s, d, _, top in edges if s == "causalmtl.gmtl.b"] == [
        ("causalmtl.gmtl.b", "causalmtl.gmtl.a", False),
        ("causalmtl.gmtl.b", "causalmtl.experiments", False),
    ]


def test_the_gmtl_checks_catch_violations(tmp_path):
    """An upward import between gmtl layers and private names taken from another module are reported."""
    pkg = tmp_path / "causalmtl"
    for sub in ("gmtl/priors", "gmtl/decoding"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "gmtl" / "__init__.py").write_text("from .decoding.decode import f\n")
    (pkg / "gmtl" / "priors" / "prior.py").write_text("from ..decoding.decode import _g\nfrom ..decoding import decode\n")
    (pkg / "gmtl" / "decoding" / "decode.py").write_text(
        "import causalmtl.gmtl.priors.prior as pr\nfrom .. import priors\nx = pr._h\nfrom ..priors.prior import _p\n"
    )
    edges = import_edges(tmp_path)
    assert gmtl_upward_imports(edges) == [
        "causalmtl.gmtl.priors.prior:1 imports causalmtl.gmtl.decoding.decode (gmtl.priors may not depend on gmtl.decoding)",
        "causalmtl.gmtl.priors.prior:2 imports causalmtl.gmtl.decoding.decode (gmtl.priors may not depend on gmtl.decoding)",
    ]
    assert sorted(private_crossings(tmp_path)) == [
        ("causalmtl.gmtl.decoding.decode", 3, "causalmtl.gmtl.priors.prior", "_h"),
        ("causalmtl.gmtl.decoding.decode", 4, "causalmtl.gmtl.priors.prior", "_p"),
        ("causalmtl.gmtl.priors.prior", 1, "causalmtl.gmtl.decoding.decode", "_g"),
    ]


def test_the_builtin_check_catches_violations(tmp_path):
    """Infrastructure importing a built-in experiment, or one built-in importing another, is reported."""
    pkg = tmp_path / "causalmtl" / "experiments"
    (pkg / "builtin").mkdir(parents=True)
    for f in ("../__init__.py", "__init__.py", "builtin/__init__.py", "registry.py", "builtin/b.py"):
        (pkg / f).write_text("")
    (pkg / "runner.py").write_text("def f():\n    from .builtin import a\n")
    (pkg / "builtin" / "a.py").write_text("from .. import registry\nfrom . import b\n")
    assert sorted(builtin_experiment_imports(import_edges(tmp_path))) == [
        "causalmtl.experiments.builtin.a:2 imports causalmtl.experiments.builtin.b (only the registry names built-in experiments)",
        "causalmtl.experiments.runner:2 imports causalmtl.experiments.builtin.a (only the registry names built-in experiments)",
    ]


def test_imports_at_run_time_follow_the_layers():
    """What the ast check cannot see (imports by dotted-path string): importing ``report`` loads no
    experiments module, and importing the experiment infrastructure loads no built-in experiment
    until the registry is asked for one."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import causalmtl.report\n"
        "assert not [m for m in sys.modules if m.startswith('causalmtl.experiments')], 'report loaded experiments'\n"
        "import causalmtl.experiments as e\n"
        "assert not [m for m in sys.modules if m.startswith('causalmtl.experiments.builtin.')], 'builtin loaded'\n"
        "e.names()\n"
        "assert 'causalmtl.experiments.builtin.quickstart' in sys.modules\n"
    )
    path = os.pathsep.join(p for p in (str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": path})
