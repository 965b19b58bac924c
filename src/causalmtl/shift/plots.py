"""Figures of the target-shift evaluation (Makino et al. 2022, Figure 3).

* :func:`plot_figure3` — the two panels of Figure 3: optimal α per τ bin (left) and the
  accuracy gain of GMTL at that α over DMTL (α = 0), in percentage points (right).
* :func:`plot_accuracy_vs_alpha` — the full accuracy-vs-α curve of every τ bin.

As in the paper, bins run from the mildest shift (highest τ) on the left to the most severe
(lowest τ) on the right. Figures are built with :class:`matplotlib.figure.Figure` (no pyplot
global state, no display needed); pass ``path`` to write a PNG. Several analyses (e.g. MTL
methods) can be overlaid by passing a mapping ``{label: analysis}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from .analysis import ShiftAnalysis

_SEVERITY_LABEL = "weighted Kendall's τ(p, q) bin  (shift more severe →)"


def _as_mapping(
    analysis: ShiftAnalysis | Mapping[str, ShiftAnalysis],
) -> dict[str | None, ShiftAnalysis]:
    if isinstance(analysis, ShiftAnalysis):
        return {None: analysis}
    if (
        isinstance(analysis, Mapping)
        and analysis
        and all(isinstance(a, ShiftAnalysis) for a in analysis.values())
    ):
        return {k: v for k, v in analysis.items()}
    raise ValueError(
        f"analysis must be a ShiftAnalysis or a non-empty mapping of label -> ShiftAnalysis, got {type(analysis).__name__}"
    )


def _bin_labels(a: ShiftAnalysis) -> list[str]:
    e = a.edges
    return [
        f"[{e[b]:.2f}, {e[b + 1]:.2f}{']' if b == a.n_bins - 1 else ')'}" for b in range(a.n_bins)
    ]


def _severity_axis(ax: Axes, a: ShiftAnalysis) -> np.ndarray:
    """x positions: the bin with the highest τ (mildest) at 0, the most severe last."""
    order = np.arange(a.n_bins)[::-1]
    ax.set_xticks(np.arange(a.n_bins))
    ax.set_xticklabels([_bin_labels(a)[b] for b in order], rotation=20, ha="right", fontsize=8)
    ax.set_xlabel(_SEVERITY_LABEL)
    return order


def _check_bins(analyses: dict[str | None, ShiftAnalysis]) -> ShiftAnalysis:
    first = next(iter(analyses.values()))
    for a in analyses.values():
        if a.n_bins != first.n_bins or not np.allclose(a.edges, first.edges):
            raise ValueError(
                "overlaid analyses must share τ bins (same n_bins and edges); pass tau_range to analyze()"
            )
    return first


def plot_optimal_alpha(analysis: ShiftAnalysis | Mapping[str, ShiftAnalysis], ax: Axes) -> Axes:
    """Optimal α per τ bin (Figure 3, left) on ``ax``."""
    analyses = _as_mapping(analysis)
    first = _check_bins(analyses)
    order = _severity_axis(ax, first)
    for label, a in analyses.items():
        ax.plot(np.arange(a.n_bins), a.optimal_alpha[order], marker="o", label=label)
    ax.set_ylabel("optimal α")
    ax.set_ylim(-0.05, 1.05)
    ax.set_title("Optimal α vs shift severity")
    ax.grid(alpha=0.3)
    if len(analyses) > 1:
        ax.legend(title="model")
    return ax


def plot_gain(analysis: ShiftAnalysis | Mapping[str, ShiftAnalysis], ax: Axes) -> Axes:
    """GMTL − DMTL accuracy at the optimal α, in percentage points (Figure 3, right)."""
    analyses = _as_mapping(analysis)
    first = _check_bins(analyses)
    order = _severity_axis(ax, first)
    for label, a in analyses.items():
        ax.plot(np.arange(a.n_bins), 100.0 * a.gain[order], marker="o", label=label)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_ylabel("accuracy gain GMTL − DMTL (percentage points)")
    ax.set_title("Gain at the optimal α")
    ax.grid(alpha=0.3)
    if len(analyses) > 1:
        ax.legend(title="model")
    return ax


def _save(fig: Figure, path: str | os.PathLike[str] | None) -> None:
    if path is not None:
        fig.savefig(path, dpi=150, bbox_inches="tight")


def plot_figure3(
    analysis: ShiftAnalysis | Mapping[str, ShiftAnalysis],
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Both panels of Figure 3; written to ``path`` (PNG) when given."""
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    plot_optimal_alpha(analysis, left)
    plot_gain(analysis, right)
    analyses = _as_mapping(analysis)
    if title is None and len(analyses) == 1:
        a = next(iter(analyses.values()))
        title = f"Target-shift robustness ({int(a.counts.sum())} draws of q; r(τ mid, optimal α) = {a.correlation:.3f})"
    if title:
        fig.suptitle(title)
    _save(fig, path)
    return fig


def plot_accuracy_vs_alpha(
    analysis: ShiftAnalysis,
    path: str | os.PathLike[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Mean importance-sampled accuracy against α, one curve per τ bin (optimum marked)."""
    if not isinstance(analysis, ShiftAnalysis):
        raise ValueError(f"analysis must be a ShiftAnalysis, got {type(analysis).__name__}")
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.subplots()
    labels = _bin_labels(analysis)
    colors: Any = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, analysis.n_bins))
    for b in range(analysis.n_bins)[::-1]:  # mildest first in the legend
        if analysis.counts[b] == 0:
            continue
        acc = 100.0 * analysis.mean_accuracy[b]
        ax.plot(analysis.alphas, acc, marker=".", color=colors[b],
                label=f"τ ∈ {labels[b]} (n = {int(analysis.counts[b])})")  # fmt: skip
        k = int(np.argmax(analysis.mean_accuracy[b]))
        ax.plot(analysis.alphas[k], acc[k], marker="*", ms=12, color=colors[b], mec="black")
    ax.set_xlabel("α (0 = DMTL, 1 = full prior correction)")
    ax.set_ylabel("main-task accuracy under q (%)")
    ax.set_title(title or "Accuracy vs α per shift-severity bin (★ = optimal α)")
    ax.grid(alpha=0.3)
    ax.legend(title="τ(p, q) bin", fontsize=8)
    _save(fig, path)
    return fig


__all__ = ["plot_figure3", "plot_optimal_alpha", "plot_gain", "plot_accuracy_vs_alpha"]
