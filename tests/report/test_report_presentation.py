"""How the report presents results (issue 15, "Report"): a summary "At a glance", coloured
verdicts, left-aligned text, one bin order for tables and figures, no "std 0.000" for one
seed, "not run" for findings whose runs did not run, and a real-browser screenshot script."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from causalmtl.report.blocks import (
    Comparison,
    PaperComparison,
    Section,
    Table,
    comparison_verdict,
    render_html,
    render_markdown,
    verdict_class,
)
from causalmtl.report.page import at_a_glance

ROOT = Path(__file__).resolve().parents[2]


def _comparisons():
    gmtl = PaperComparison([
        Comparison("r(τ, α), STL", -0.847, -0.9, n_seeds=2, verdict="reproduces (strong negative)"),
        Comparison("r(τ, α), MMoE", -0.847, 0.2, n_seeds=2, verdict="does not reproduce"),
        Comparison("gain rises, STL", "yes", None, n_seeds=2, verdict="reproduces (monotone)",
                   ours_text="0.0 → 0.1"),
    ], caption="GMTL findings")
    # a partial sweep: the MT-CRL runs never ran, yet a verdict was computed upstream
    mtcrl = PaperComparison([
        Comparison("MT-CRL accuracy", 0.912, None, verdict="ordering does not reproduce"),
        Comparison("MTL accuracy", 0.844, 0.9, n_seeds=1),
    ], caption="MT-CRL table")
    return [Section("exp", "exp", [gmtl]), Section("exp2", "exp2", [mtcrl])]


def test_at_a_glance_summarises_instead_of_repeating():
    glance = at_a_glance(_comparisons())
    assert len(glance) == 2  # one row per comparison, not one per finding (5)
    first = glance.iloc[0]
    assert (first["findings"], first["reproduce"], first["differ"], first["not run"]) == (3, 2, 1, 0)
    assert first["which differ"] == "r(τ, α), MMoE"
    assert first["verdict"] == "partly (some differ)"
    second = glance.iloc[1]
    assert (second["reproduce"], second["differ"], second["not run"]) == (0, 0, 1)
    assert second["verdict"] == "not run"


def test_a_finding_whose_runs_did_not_run_says_not_run():
    c = Comparison("MT-CRL − MTL", 0.068, None, verdict="ordering does not reproduce")
    assert comparison_verdict(c) == "not run"
    assert comparison_verdict(Comparison("x", 0.1, float("nan"), verdict="reproduces")) == "not run"
    assert comparison_verdict(Comparison("x", "yes", None, verdict="reproduces", ours_text="a → b")) == "reproduces"
    md, _ = render_markdown("T", _comparisons())
    row = [ln for ln in md.splitlines() if ln.startswith("| MT-CRL accuracy")][0]
    assert row.endswith("| not run |") and "does not reproduce" not in row


@pytest.mark.parametrize("verdict, cls", [
    ("reproduces (monotone)", "reproduces"), ("ordering reproduces", "reproduces"),
    ("better than MTL, as in the paper", "reproduces"), ("GMTL more robust", "reproduces"),
    ("does not reproduce", "differs"), ("worse than MTL (paper: better)", "differs"),
    ("no clear difference from MTL (paper: better)", "differs"), ("DMTL more robust", "differs"),
    ("flat (no change with severity)", "differs"), ("not run", "not run"), ("–", "other"),
])
def test_verdict_classes(verdict, cls):
    assert verdict_class(verdict) == cls


def test_verdicts_are_coloured_and_text_is_left_aligned():
    html = render_html("T", _comparisons())
    cells = re.findall(r"<td class='([^']*)'>([^<]*)</td>", html)
    by_text = {text: cls for cls, text in cells}
    assert "v-reproduces" in by_text["reproduces (strong negative)"]
    assert "v-differs" in by_text["does not reproduce"]
    assert "v-not-run" in by_text["not run"]
    assert by_text["r(τ, α), STL"].split()[0] == "text"          # a text column: left
    assert by_text["−0.053"].split()[0] == "num"                 # ours − paper: right
    assert by_text["0.0 → 0.1"].split()[0] == "text"             # a mixed "ours" column: left
    for rule in ("td.v-reproduces{", "td.v-differs{", "td.v-not-run{", ".text{text-align:left}",
                 ".num{text-align:right"):
        assert rule in html, rule
    md, _ = render_markdown("T", _comparisons())
    assert "|:---|:---|:---|---:|---:|:---|" in md               # quantity, paper, ours | diff, seeds | verdict


def test_one_seed_tables_show_no_std():
    frame = pd.DataFrame({"method": ["a", "b"], "mean": [0.5, 0.4], "std": [0.0, 0.02], "n_seeds": [1, 3]})
    md, _ = render_markdown("T", [Section("s", "s", [Table(frame)])])
    assert "| a | 0.500 | – | 1 |" in md and "| b | 0.400 | 0.020 | 3 |" in md
    assert "0.000" not in md


def test_relative_table_drops_std_for_one_seed():
    from causalmtl.experiments.reporting import relative_table

    rows = [dict(method=m, seed=0, task=t, name="acc", split="test", value=v, higher_is_better=True)
            for m, t, v in [("mtl", "a", 0.8), ("mtl", "b", 0.6), ("stl", "a", 0.88), ("stl", "b", 0.54)]]
    one = relative_table(pd.DataFrame(rows), ["mtl", "stl"], "mtl")
    assert set(one["n_seeds"]) == {1} and one["std"].isna().all()
    md, _ = render_markdown("T", [Section("s", "s", [Table(one)])])
    rows_md = [ln for ln in md.splitlines() if ln.startswith("| MTL") or ln.startswith("| STL")]
    assert len(rows_md) == 2 and all(ln.endswith("| 1 | " + ln.split(" | ")[3] + " | – |") for ln in rows_md)
    two = relative_table(pd.DataFrame(rows + [{**r, "seed": 1, "value": r["value"] + 0.01 * (r["method"] == "stl")}
                                               for r in rows]), ["mtl", "stl"], "mtl")
    assert set(two["n_seeds"]) == {2} and np.isfinite(two["std"]).all()


def test_per_bin_table_runs_in_the_figures_order():
    """Both run from the mildest shift (highest τ) to the most severe."""
    from causalmtl.experiments.reporting import shift_blocks
    from causalmtl.shift import ShiftDraws, analyze

    rng = np.random.default_rng(0)
    tau = rng.uniform(-1, 1, 200)
    acc = np.stack([0.9 + 0.05 * tau, 0.9 + 0.0 * tau], axis=1)   # α = 1 wins where τ < 0
    a = analyze(ShiftDraws(tau, acc, alphas=[0.0, 1.0]), n_bins=4)
    table = next(b for b in shift_blocks({"M": a}, "toy") if isinstance(b, Table))
    lows = [float(re.match(r"\[(-?[\d.]+),", s).group(1)) for s in table.frame["τ bin"]]
    assert lows == sorted(lows, reverse=True)                      # τ descending = mild → severe
    # the figure's x axis: _severity_axis puts the highest-τ bin first too
    import matplotlib

    from causalmtl.shift.plots import _severity_axis

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    order = _severity_axis(ax, a)
    plt.close(fig)
    assert list(order) == list(range(a.n_bins))[::-1]
    assert table.frame["optimal α"].tolist() == [a.optimal_alpha[b] for b in order]


@pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
                    reason="no Chromium on this machine (scripts/screenshot_report.sh needs it)")
def test_screenshot_script_renders_a_report(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html("causalmtl report", _comparisons()), encoding="utf-8")
    out = tmp_path / "shot.png"
    subprocess.run(["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(page), str(out), "800", "600"],
                   check=True, capture_output=True, timeout=120)
    from PIL import Image

    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape[:2] == (600, 800)
    # the coloured verdict cells are on the page: some pixels of the "reproduces" green
    green = (np.abs(im.astype(int) - [0xE3, 0xF4, 0xE3]).sum(axis=2) < 6).sum()
    assert green > 200


def test_screenshot_script_refuses_a_missing_page(tmp_path):
    res = subprocess.run(["bash", str(ROOT / "scripts" / "screenshot_report.sh"), str(tmp_path / "no.html"),
                          str(tmp_path / "x.png")], capture_output=True, text=True)
    assert res.returncode == 2 and "no such file" in res.stderr
