"""Shared helpers of the real-data loaders: where the files are and how bad files are reported.

Every real-data loader reads its files from a *data directory*: the ``path`` argument when given,
else the directory named by the environment variable ``CAUSALMTL_DATA`` (see
``docs/datasets.md``). The project never ships the data; a missing file raises
:class:`MissingDataError`, whose message names the file, the places searched and where to get it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from .base import DatasetSplits

#: Environment variable naming the root data directory.
DATA_ENV = "CAUSALMTL_DATA"


class MissingDataError(FileNotFoundError, ValueError):
    """A data file the loader needs is absent.

    Both a :class:`FileNotFoundError` and a :class:`ValueError` (bad input), so the command line
    reports it as a clear message. The message names the file, the expected place(s) and where
    to obtain the data.
    """


def data_root(path: str | os.PathLike[str] | None) -> Path | None:
    """The directory given as ``path``, else ``$CAUSALMTL_DATA``, else ``None``."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else None


def candidate_dirs(root: Path | None, subdirs: Sequence[str]) -> list[Path]:
    """``root`` itself followed by ``root/sub`` for each relative sub-directory in ``subdirs``."""
    if root is None:
        return []
    return [root] + [root / s for s in subdirs]


def missing_data_error(
    what: str,
    filename: str,
    searched: Iterable[Path],
    source: str,
    root_given: bool = True,
) -> MissingDataError:
    """Build the error for an absent data file (name, places searched, where to get it)."""
    places = [str(p / filename) for p in searched]
    where = ", ".join(places) if places else "(no directory given)"
    hint = (
        ""
        if root_given
        else f" No data directory was given: pass path=... or set the environment variable {DATA_ENV}."
    )
    return MissingDataError(
        f"{what}: missing file {filename!r}; expected at {where}.{hint} Get it from {source} "
        f"(see docs/datasets.md)."
    )


def find_line(path: Path, predicate: Callable[[str], bool], encoding: str = "utf-8", skip: int = 0) -> tuple[int, str]:
    """The first (1-based) line number ``>= skip + 1`` and text where ``predicate(text)`` is True.

    Used only on the error path, after a fast vectorised read failed, to name the offending line.
    Returns ``(0, "")`` when no line matches.
    """
    import gzip

    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding=encoding, errors="replace", newline="") as fh:
        for number, line in enumerate(fh, 1):
            if number <= skip:
                continue
            text = line.rstrip("\r\n")
            if predicate(text):
                return number, text
    return 0, ""


def check_no_empty_task(splits: DatasetSplits) -> None:
    """Raise ``ValueError`` when a split leaves a task without any labelled example."""
    for split_name, split in splits:
        if len(split) == 0:
            raise ValueError(
                f"{splits.name}: the {split_name} split is empty; the data are too few for the "
                f"requested split"
            )
        present = (~split.missing).sum(axis=0)
        for task, count in zip(split.tasks, present):
            if count == 0:
                raise ValueError(
                    f"{splits.name}: task {task.name!r} has no example in the {split_name} split "
                    f"({len(split)} rows, all missing this task); choose other tasks or more data"
                )


def seeded_fraction_split(
    n: int, fractions: Sequence[float], seed: int | np.random.Generator
) -> list[np.ndarray]:
    """Split ``range(n)`` at random into consecutive groups of the given fractions.

    The rows are permuted with ``numpy.random.default_rng(seed).permutation(n)``; group ``k``
    gets ``round(fractions[k] * n)`` rows and the last group the rest. Each group is returned
    sorted (original row order).
    """
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    perm = rng.permutation(n)
    sizes = [int(round(f * n)) for f in fractions[:-1]]
    edges = np.cumsum([0, *sizes])
    groups = [perm[edges[i] : edges[i + 1]] for i in range(len(sizes))]
    groups.append(perm[edges[-1] :])
    return [np.sort(g) for g in groups]


def check_fraction(value: float, name: str, low: float = 0.0, high: float = 1.0) -> float:
    """Validate a fraction in the open interval ``(low, high)``."""
    v = float(value)
    if not (np.isfinite(v) and low < v < high):
        raise ValueError(f"{name} must lie strictly between {low} and {high}, got {value!r}")
    return v
