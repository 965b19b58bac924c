import pandas as pd

from causalmtl.report.blocks import (
    Comparison,
    Figure,
    PaperComparison,
    Section,
    Table,
    Text,
    mean_std,
    render_html,
    render_markdown,
)


def test_mean_std_over_seeds():
    assert mean_std([0.5]) == "0.500"
    assert mean_std([0.4, 0.6]) == "0.500 ± 0.141"  # sample std (ddof = 1)
    assert mean_std([]) == "–"


def test_comparison_difference_and_missing():
    c = Comparison("acc", 0.912, 0.880, 0.01, 3)
    assert abs(c.difference - (0.880 - 0.912)) < 1e-12
    assert Comparison("acc", "qualitative", 0.5).difference is None
    assert Comparison("acc", 0.9, None).difference is None


def _sections():
    table = pd.DataFrame({"method": ["a|b", "<x>"], "acc": [0.5, 0.25]})
    comp = PaperComparison([Comparison("acc", 0.912, 0.880, 0.01, 3, "lower"),
                            Comparison("gain", "yes", None, ours_text="0.1 → 0.2"),
                            Comparison("rel", 0.081, -0.02, fmt="{:+.3f}")],
                           caption="cmp", source="paper")
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 20
    return [Section("Exp one", "exp-one", [Text("**bold** and `code`"), Table(table, "tab"), comp,
                                          Figure(png, "a figure", "f.png")])]


def test_html_is_self_contained_and_escaped():
    html = render_html("T", _sections())
    assert "<b>bold</b>" in html and "<code>code</code>" in html
    assert "&lt;x&gt;" in html and "<x>" not in html
    assert "data:image/png;base64," in html
    assert "0.880 ± 0.010" in html and "−0.032" in html  # ours and ours − paper
    assert "0.1 → 0.2" in html
    assert "−0.101" in html and "+−" not in html and "++" not in html  # signed formats


def test_markdown_links_figure_files_and_escapes_pipes():
    md, files = render_markdown("T", _sections())
    assert files == {"figures/f.png": _sections()[0].blocks[3].png}
    assert "](figures/f.png)" in md
    assert "a\\|b" in md
    assert "| acc | 0.912 | 0.880 ± 0.010 | −0.032 | 3 | lower |" in md
