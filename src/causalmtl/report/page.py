"""The report page from the sections it is given: "At a glance" and the files written.

This module renders only: it never opens a results database, the registry or an artefact
file (``causalmtl.experiments.report`` reads those and hands the sections here). ``write_report``
writes ``OUT/report.html`` (self-contained: figures embedded as base64 PNG), ``OUT/report.md``
(Markdown summary) and ``OUT/figures/*.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from .blocks import (
    VERDICT_CLASSES,
    Block,
    PaperComparison,
    Section,
    Table,
    comparison_verdict,
    render_html,
    render_markdown,
    verdict_class,
)

if TYPE_CHECKING:
    import pandas as pd

#: caption of the table :func:`glance_table` returns
GLANCE_CAPTION = ("At a glance: per comparison with a paper, how many of its findings reproduce here, "
                  "differ, or did not run (each finding, with the numbers, is in its section)")


class ReportFiles(TypedDict):
    """The paths :func:`write_report` wrote."""

    html: Path
    markdown: Path
    figures: Path


def at_a_glance(sections: Sequence[Section]) -> pd.DataFrame:
    """A summary, not a copy: one row per paper comparison (a group of findings), with how many
    of its findings reproduce, differ or did not run, and which ones differ.

    The per-finding rows stay in each section; verdicts are classed by
    :func:`~causalmtl.report.blocks.verdict_class`, and a finding whose runs did not run counts
    as "not run" whatever verdict it carries.
    """
    import pandas as pd

    rows = []
    for s in sections:
        for b in s.blocks:
            if not isinstance(b, PaperComparison) or not b.rows:
                continue
            classes = [verdict_class(comparison_verdict(r)) for r in b.rows]
            counts = {c: classes.count(c) for c in VERDICT_CLASSES}
            if counts["reproduces"] + counts["differs"] + counts["not run"] == 0:
                continue  # descriptive only, no verdict to summarise
            differ = [r.quantity for r, c in zip(b.rows, classes) if c == "differs"]
            if counts["reproduces"] and not counts["differs"]:
                overall = "reproduces" if not counts["not run"] else "reproduces (where run)"
            elif counts["differs"] and not counts["reproduces"]:
                overall = "differs"
            elif counts["differs"]:
                overall = "partly (some differ)"
            else:
                overall = "not run"
            rows.append({
                "experiment": s.anchor,
                "comparison": b.caption or "paper comparison",
                "findings": len(b.rows),
                "reproduce": counts["reproduces"],
                "differ": counts["differs"],
                "not run": counts["not run"],
                "which differ": "; ".join(differ) if differ else "–",
                "verdict": overall,
            })
    return pd.DataFrame(rows)


def glance_table(sections: Sequence[Section]) -> Table | None:
    """:func:`at_a_glance` as a report table, or ``None`` when no section compares with a paper."""
    glance = at_a_glance(sections)
    return None if glance.empty else Table(glance, caption=GLANCE_CAPTION)


def write_report(out: Path, title: str, sections: Sequence[Section], preamble: Sequence[Block]) -> ReportFiles:
    """Write ``report.html``, ``report.md`` and ``figures/`` of ``sections`` in ``out``; return their paths."""
    page = render_html(title, sections, preamble)
    md, files = render_markdown(title, sections, preamble=preamble)
    (out / "figures").mkdir(exist_ok=True)
    for rel, data in files.items():
        (out / rel).write_bytes(data)
    (out / "report.html").write_text(page, encoding="utf-8")
    (out / "report.md").write_text(md, encoding="utf-8")
    return {"html": out / "report.html", "markdown": out / "report.md", "figures": out / "figures"}


__all__ = ["GLANCE_CAPTION", "ReportFiles", "at_a_glance", "glance_table", "write_report"]
