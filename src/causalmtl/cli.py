"""The ``causalmtl`` command.

Each subcommand lives beside the code it drives, in a module exposing
``register(subparsers) -> None`` that adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code). This file only lists them, so
subcommands stay small and independent. The command modules are loaded from their files when
the parser is built *without* importing their packages (whose ``__init__`` pulls in torch,
scipy and pandas), so ``causalmtl --help`` and argument errors are instant; heavy imports
(torch, matplotlib) belong inside ``func``.

Errors: a ``ValueError`` (bad input) prints one line and exits 2; an ``OSError`` (unwritable
directory, full disk, unreadable file) prints one line naming the file and exits 1; any other
exception prints one line and "run with --debug for the traceback" and exits 1.
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from . import __version__

#: Modules providing subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "causalmtl.data.cli",
    "causalmtl.experiments.cli",
    "causalmtl.gmtl.cli",
    "causalmtl.shift.cli",
)


def _load_command_module(name: str) -> ModuleType:
    """The module ``name`` (``causalmtl.<pkg>.cli``) loaded from its file, without its package.

    Importing ``causalmtl.gmtl.cli`` the usual way runs ``causalmtl/gmtl/__init__.py`` (torch);
    the command modules import their package's code inside ``func`` only, so loading the file
    alone is enough to build the parser. An already imported module is reused.
    """
    if name in sys.modules:
        return sys.modules[name]
    parts = name.split(".")
    path = Path(__file__).resolve().parent.joinpath(*parts[1:]).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:  # pragma: no cover - the files ship with the package
        raise ImportError(f"cannot load command module {name} from {path}")
    module = importlib.util.module_from_spec(spec)
    module.__package__ = ".".join(parts[:-1])  # relative imports inside func resolve normally
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="causalmtl",
        description=(
            "Multi-task learning robust to shifts in the relationship between tasks: "
            "GMTL inference, MT-CRL training, baselines, target-shift evaluation, experiments."
        ),
    )
    parser.add_argument("--version", action="version", version=f"causalmtl {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-v info, -vv debug)"
    )
    parser.add_argument(
        "--debug", action="store_true", help="show the Python traceback of an error (for bug reports)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        _load_command_module(name).register(sub)
    return parser


def _one_line(text: str) -> str:
    return " ".join(str(text).split()) if "\n" not in str(text).strip() else str(text).strip()


def _os_error_line(exc: OSError) -> str:
    """``FILE: what is wrong`` for an ``OSError`` (the file first, as the shell does)."""
    what = exc.strerror or str(exc)
    if exc.filename is not None:
        where = os.fsdecode(exc.filename)
        if exc.filename2 is not None:
            where += f" -> {os.fsdecode(exc.filename2)}"
        return f"{where}: {what}"
    return what


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = {0: logging.WARNING, 1: logging.INFO}.get(args.verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if getattr(args, "func", None) is None:
        if "run" in sub_names(parser):  # `causalmtl` alone runs the default experiment
            return main(["run"])
        parser.print_help()
        return 0
    prog = f"causalmtl {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; finished work is kept", file=sys.stderr)
        return 130
    except Exception as exc:  # one line for the user; the traceback only with --debug
        if args.debug:
            raise
        if isinstance(exc, ValueError):  # bad input: a clear message
            print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
            return 2
        if isinstance(exc, OSError):  # unwritable, missing or unreadable file, full disk
            print(f"{prog}: error: {_os_error_line(exc)}", file=sys.stderr)
            return 1
        if getattr(exc, "user_facing", False):  # e.g. a broken results database
            print(f"{prog}: error: {_one_line(str(exc))}", file=sys.stderr)
            return 1
        print(f"{prog}: error: {type(exc).__name__}: {_one_line(str(exc)) or '(no message)'} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1


def sub_names(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:  # noqa: SLF001 - argparse exposes no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return list(action.choices)
    return []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
