"""The ``causalmtl`` command.

Each subcommand lives beside the code it drives, in a module exposing
``register(subparsers) -> None`` that adds its parser and sets ``func`` (a callable taking the
parsed ``argparse.Namespace`` and returning an exit code). This file only lists them, so
subcommands stay small and independent. Modules are imported when the parser is built; their
heavy imports (torch, matplotlib) belong inside ``func``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import __version__

#: Modules providing subcommands, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "causalmtl.data.cli",
    "causalmtl.experiments.cli",
    "causalmtl.gmtl.cli",
    "causalmtl.shift.cli",
)


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
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


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
    try:
        return int(args.func(args) or 0)
    except ValueError as exc:  # bad input: a clear message, no traceback
        print(f"causalmtl {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"causalmtl {args.command}: interrupted; finished work is kept", file=sys.stderr)
        return 130


def sub_names(parser: argparse.ArgumentParser) -> list[str]:
    for action in parser._actions:  # noqa: SLF001 - argparse exposes no public accessor
        if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
            return list(action.choices)
    return []


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
