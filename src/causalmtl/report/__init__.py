"""causalmtl.report: the HTML / Markdown report built from a results database.

Example (not run as a doctest: it reads a results directory)::

    from causalmtl.report import build_report
    build_report("runs")  # writes runs/report.html and runs/report.md
"""

from .blocks import (
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
from .tables import metric_values, seed_mean, summary_table


def build_report(out, title: str = "causalmtl report"):  # noqa: ANN001, ANN201 - thin lazy wrapper
    """Build the report of output directory ``out`` (see :mod:`causalmtl.report.build`)."""
    from .build import build_report as _build

    return _build(out, title=title)


__all__ = [
    "Comparison",
    "Figure",
    "PaperComparison",
    "Section",
    "Table",
    "Text",
    "build_report",
    "figure_png",
    "mean_std",
    "metric_values",
    "render_html",
    "render_markdown",
    "seed_mean",
    "summary_table",
]
