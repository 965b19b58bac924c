"""Building blocks of the report and their HTML / Markdown rendering.

An experiment's report function returns a list of blocks: :class:`Text` (Markdown-ish
paragraphs), :class:`Table` (a pandas DataFrame), :class:`Figure` (PNG bytes, e.g. from
:func:`figure_png`) and :class:`PaperComparison` (quantities with the paper's value beside
ours and the difference). :func:`render_html` writes one self-contained page (figures
embedded as base64 PNG); :func:`render_markdown` a summary whose figures are PNG files.
"""

from __future__ import annotations

import base64
import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import pandas as pd
    from matplotlib.figure import Figure as MplFigure


@dataclass
class Text:
    """A paragraph; ``**bold**`` and ``code`` backticks are rendered in HTML."""

    text: str
    kind: str = "p"  # "p" or "note" or "warning"


@dataclass
class Table:
    """A table (pandas DataFrame); floats are formatted with ``digits`` decimals."""

    frame: pd.DataFrame
    caption: str = ""
    digits: int = 3


@dataclass
class Figure:
    """A PNG figure with a caption; ``name`` is its file name in the Markdown output."""

    png: bytes
    caption: str
    name: str


@dataclass
class Comparison:
    """One quantity: the paper's value, ours (mean ± std over seeds) and whether it reproduces."""

    quantity: str
    paper: float | str | None
    ours: float | None
    ours_std: float | None = None
    n_seeds: int = 0
    verdict: str = ""  # e.g. "reproduces", "does not reproduce", "qualitative"
    fmt: str = "{:.3f}"
    ours_text: str | None = None  # a qualitative finding of ours (shown instead of a number)

    @property
    def difference(self) -> float | None:
        if isinstance(self.paper, (int, float)) and self.ours is not None and math.isfinite(self.ours):
            return float(self.ours) - float(self.paper)
        return None


@dataclass
class PaperComparison:
    """Our numbers beside the paper's, with the difference (ours − paper)."""

    rows: list[Comparison]
    caption: str = ""
    source: str = ""


#: what a report function returns a list of, and what a section holds
Block = Text | Table | Figure | PaperComparison


@dataclass
class Section:
    """One experiment's part of the report."""

    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)


def figure_png(fig: MplFigure, dpi: int = 110) -> bytes:
    """Render a matplotlib figure to PNG bytes and close it."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def fmt_value(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            return "–"
        return f"{float(v):.{digits}f}"
    return str(v)


def mean_std(values: Sequence[float] | np.ndarray, digits: int = 3) -> str:
    """``"0.912 ± 0.018"`` (sample std over seeds; no ± for one value)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    std = float(v.std(ddof=1)) if v.size > 1 else 0.0
    return format_mean_std(float(v.mean()) if v.size else 0.0, std, int(v.size), digits)


def format_mean_std(mean: float, std: float, n: int, digits: int = 3) -> str:
    """:func:`mean_std` from its summary: ``mean ± std`` over ``n`` seeds (no ± for one seed,
    ``–`` for none)."""
    if not n:
        return "–"
    return f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}"


#: Verdict classes: how a verdict string is coloured and counted in the "At a glance" summary.
VERDICT_CLASSES = ("reproduces", "differs", "not run", "other")


def verdict_class(verdict: str) -> str:
    """``"reproduces"``, ``"differs"``, ``"not run"`` or ``"other"`` (neutral) for a verdict text.

    >>> [verdict_class(v) for v in ("reproduces (monotone)", "ordering does not reproduce",
    ...                              "not run", "qualitative", "DMTL more robust", "GMTL more robust")]
    ['reproduces', 'differs', 'not run', 'other', 'differs', 'reproduces']
    """
    v = (verdict or "").strip().lower()
    if not v or v in ("–", "-"):
        return "other"
    if v.startswith("not run") or v.startswith("not implemented"):
        return "not run"
    if v.startswith("undefined") or v.startswith("too few"):
        return "other"
    if any(k in v for k in ("does not", "differs", "worse", "no clear difference", "flat", "opposite",
                            "weaker", "mostly", "partly", "dmtl more robust")):
        return "differs"
    if any(k in v for k in ("reproduces", "as in the paper", "same sign", "more robust", "same")):
        return "reproduces"
    return "other"


def _did_not_run(r: Comparison) -> bool:
    """No number and no qualitative finding of ours: the runs behind it did not run."""
    return r.ours_text is None and (r.ours is None or not math.isfinite(r.ours))


def comparison_verdict(r: Comparison) -> str:
    """The verdict to show: ``"not run"`` whenever our side is missing, whatever was passed."""
    return "not run" if _did_not_run(r) else (r.verdict or "–")


def _comparison_frame(block: PaperComparison) -> pd.DataFrame:
    import pandas as pd

    rows = []
    for r in block.rows:
        paper = r.paper if isinstance(r.paper, str) else (None if r.paper is None else r.fmt.format(r.paper))
        if r.ours_text is not None:
            ours = r.ours_text
        elif r.ours is None or not math.isfinite(r.ours):
            ours = "not run"
        else:
            ours = r.fmt.format(r.ours)
            if r.ours_std is not None and r.n_seeds > 1:
                ours += " ± " + r.fmt.format(r.ours_std).lstrip("+")
        d = r.difference
        rows.append({
            "quantity": r.quantity,
            "paper": paper if paper is not None else "–",
            "ours": ours,
            "ours − paper": "–" if d is None else ("+" if d >= 0 else "−") + r.fmt.format(abs(d)).lstrip("+"),
            "seeds": r.n_seeds if r.n_seeds or _did_not_run(r) else "–",
            "verdict": comparison_verdict(r),
        })
    return pd.DataFrame(rows)


_SEED_COLUMNS = ("n_seeds", "seeds", "n")


def _format_frame(frame: pd.DataFrame, digits: int) -> list[list[str]]:
    """Cells as text; a ``std`` over one seed is shown as ``–`` (there is no spread to report)."""
    cols = [str(c) for c in frame.columns]
    seeds_col = next((cols.index(c) for c in _SEED_COLUMNS if c in cols), None)
    std_cols = [i for i, c in enumerate(cols) if c == "std" or c.endswith(" std")]
    out = []
    for row in frame.itertuples(index=False):
        cells = [fmt_value(v, digits) for v in row]
        if seeds_col is not None:
            try:
                one = int(row[seeds_col]) <= 1
            except (TypeError, ValueError):
                one = False
            if one:
                for i in std_cols:
                    cells[i] = "–"
        out.append(cells)
    return out


_NUMERIC_CELL = re.compile(r"^[+\-−]?(\d[\d,]*\.?\d*|\.\d+)(e[+-]?\d+)?%?(\s*±\s*[\d.,]+%?)?$")
_PLACEHOLDERS = ("–", "", "not run", "nan")


def _numeric_columns(cells: list[list[str]], n_cols: int) -> list[bool]:
    """A column is numeric (right-aligned) when every cell is a number, ``a ± b`` or a placeholder."""
    numeric = []
    for j in range(n_cols):
        col = [row[j] for row in cells]
        real = [c for c in col if c.strip() not in _PLACEHOLDERS]
        numeric.append(bool(real) and all(_NUMERIC_CELL.match(c.strip()) for c in real))
    return numeric


def _inline(text: str) -> str:
    out = html.escape(text)
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"`(.+?)`", r"<code>\1</code>", out)
    return out


def _html_table(frame: pd.DataFrame, caption: str, digits: int) -> str:
    cells = _format_frame(frame, digits)
    cols = [str(c) for c in frame.columns]
    numeric = _numeric_columns(cells, len(cols))
    align = ["num" if n else "text" for n in numeric]
    head = "".join(f"<th class='{a}'>{html.escape(c)}</th>" for c, a in zip(cols, align))

    def td(j: int, c: str) -> str:
        cls = align[j]
        if cols[j] == "verdict":
            cls += " verdict v-" + verdict_class(c).replace(" ", "-")
        return f"<td class='{cls}'>{html.escape(c)}</td>"

    body = "".join("<tr>" + "".join(td(j, c) for j, c in enumerate(row)) + "</tr>" for row in cells)
    cap = f"<caption>{_inline(caption)}</caption>" if caption else ""
    return f"<table>{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _md_table(frame: pd.DataFrame, caption: str, digits: int) -> str:
    cols = [str(c) for c in frame.columns]
    lines = []
    if caption:
        lines.append(f"*{caption}*\n")
    cells = _format_frame(frame, digits)
    numeric = _numeric_columns(cells, len(cols))
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
    for row in cells:
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in row) + " |")
    return "\n".join(lines)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2em;border-bottom:1px solid #bbb}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}caption{text-align:left;font-style:italic;
padding:.3em 0}th,td{border:1px solid #ccc;padding:.25em .6em}th{background:#f0f0f0}
.num{text-align:right;font-variant-numeric:tabular-nums}.text{text-align:left}
td.v-reproduces{background:#e3f4e3;color:#14521a}td.v-differs{background:#fde4e1;color:#8a1c12}
td.v-not-run{background:#eeeeee;color:#666;font-style:italic}td.v-other{color:#444}
.legend span{padding:0 .4em;margin-right:.5em}figure{margin:1em 0}figcaption{font-size:.9em;color:#444}
img{max-width:100%}.note{color:#555;font-size:.92em}.warning{background:#fff4e0;border-left:4px solid
#e69500;padding:.4em .8em}code{background:#f4f4f4;padding:0 .2em}nav li{margin:.1em 0}
"""


def render_html(title: str, sections: Sequence[Section], preamble: Sequence[Block] = ()) -> str:
    """One self-contained HTML page (figures embedded)."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
    ]
    parts += [_html_block(b) for b in preamble]
    if sections:
        parts.append("<nav><ul>" + "".join(
            f"<li><a href='#{s.anchor}'>{html.escape(s.title)}</a></li>" for s in sections
        ) + "</ul></nav>")
    for s in sections:
        parts.append(f"<section id='{s.anchor}'><h2>{html.escape(s.title)}</h2>")
        parts += [_html_block(b) for b in s.blocks]
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)


def _html_block(b: Block) -> str:
    if isinstance(b, Text):
        cls = "" if b.kind == "p" else f" class='{b.kind}'"
        return f"<p{cls}>{_inline(b.text)}</p>"
    if isinstance(b, Table):
        return _html_table(b.frame, b.caption, b.digits)
    if isinstance(b, PaperComparison):
        cap = b.caption + (f" (paper: {b.source})" if b.source else "")
        return _html_table(_comparison_frame(b), cap, 3)
    if isinstance(b, Figure):
        data = base64.b64encode(b.png).decode()
        return (f"<figure><img alt='{html.escape(b.caption)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
    raise TypeError(f"unknown report block {type(b).__name__}")


def render_markdown(
    title: str, sections: Sequence[Section], figure_dir: str = "figures", preamble: Sequence[Block] = ()
) -> tuple[str, dict[str, bytes]]:
    """The Markdown summary and the figure files it links (``{relative path: png bytes}``)."""
    lines = [f"# {title}", ""]
    files: dict[str, bytes] = {}
    blocks_by_section: list[tuple[str | None, Sequence[Block]]] = [(None, preamble)]
    blocks_by_section += [(s.title, s.blocks) for s in sections]
    for sec_title, blocks in blocks_by_section:
        if sec_title is not None:
            lines += [f"## {sec_title}", ""]
        for b in blocks:
            if isinstance(b, Text):
                prefix = "> " if b.kind in ("note", "warning") else ""
                lines += [prefix + b.text, ""]
            elif isinstance(b, Table):
                lines += [_md_table(b.frame, b.caption, b.digits), ""]
            elif isinstance(b, PaperComparison):
                cap = b.caption + (f" (paper: {b.source})" if b.source else "")
                lines += [_md_table(_comparison_frame(b), cap, 3), ""]
            elif isinstance(b, Figure):
                path = f"{figure_dir}/{b.name}"
                files[path] = b.png
                lines += [f"![{b.caption}]({path})", "", f"*{b.caption}*", ""]
    return "\n".join(lines), files


__all__ = [
    "Block",
    "Comparison",
    "Figure",
    "PaperComparison",
    "Section",
    "Table",
    "Text",
    "figure_png",
    "fmt_value",
    "mean_std",
    "format_mean_std",
    "render_html",
    "render_markdown",
]
