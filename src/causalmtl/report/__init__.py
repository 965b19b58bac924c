"""causalmtl.report: report blocks and their HTML / Markdown rendering.

This package renders only: experiments' report functions return blocks (:class:`Text`,
:class:`Table`, :class:`Figure`, :class:`PaperComparison`), and :func:`write_report` writes the
page of the sections it is given. Reading a results directory (database, registry, artefacts)
is :func:`causalmtl.experiments.build_report`'s job::

    from causalmtl.experiments import build_report
    build_report("runs")  # writes runs/report.html and runs/report.md

``causalmtl.report.build_report`` still answers for one release, with a ``DeprecationWarning``.
"""

from .. import _moved
from .blocks import (
    Block,
    Comparison,
    Figure,
    PaperComparison,
    Section,
    Table,
    Text,
    figure_png,
    mean_std,
    render_html,
    render_markdown,
)
from .page import ReportFiles, at_a_glance, glance_table, write_report
from .tables import metric_values, seed_mean, summary_table


def __getattr__(name: str) -> object:
    """Names that moved out of this package (``build_report``), through :mod:`causalmtl._moved`."""
    return _moved.moved_name(__name__, name)


__all__ = [
    "Block",
    "Comparison",
    "Figure",
    "PaperComparison",
    "ReportFiles",
    "Section",
    "Table",
    "Text",
    "at_a_glance",
    "figure_png",
    "glance_table",
    "mean_std",
    "metric_values",
    "render_html",
    "render_markdown",
    "seed_mean",
    "summary_table",
    "write_report",
]
