"""Report helpers shared by the built-in experiments (they read only the database frame and the
runs' saved arrays, through :class:`causalmtl.experiments.report.ReportContext`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..report.blocks import Comparison, Figure, PaperComparison, Table, Text, figure_png, mean_std
from ..report.tables import seed_mean
from . import hparams as hp
from .common import label

#: GMTL §6: Pearson correlation between τ-bin midpoints and the optimal α, all runs pooled.
PAPER_TAU_ALPHA_CORR = -0.847


def select_trials(frame: Any, by: tuple[str, ...] = ("method", "dataset"), metric: str = "acc_mean") -> Any:
    """Keep each group's best random-search trial, chosen on the validation split only."""
    if frame.empty or frame["trial"].nunique() <= 1:
        return frame
    best = hp.select_best_trial(frame, metric, split="valid", higher_is_better=True, by=by)
    return hp.keep_best_trials(frame, best, by=by)


def selection_blocks(frame: Any, kept: Any, metric: str = "acc_mean") -> list[Any]:
    """When several random-search trials ran: which trial each method kept, chosen on valid."""
    import pandas as pd

    if frame.empty or frame["trial"].nunique() <= 1:
        return []
    rows = []
    for (m, ds), grp in kept.groupby(["method", "dataset"], sort=False):
        trial = int(grp["trial"].iloc[0])
        allv = frame[(frame["method"] == m) & (frame["dataset"] == ds) & (frame["name"] == metric)
                     & (frame["split"] == "valid")]
        per_trial = allv.groupby("trial")["value"].mean()
        h = grp["params"].iloc[0].get("hparams", {})
        rows.append({"method": label(m), "dataset": ds, "trials": int(per_trial.size), "kept trial": trial,
                     f"valid {metric} (kept)": float(per_trial.get(trial, float("nan"))),
                     f"valid {metric} (worst)": float(per_trial.min()) if per_trial.size else float("nan"),
                     "hyperparameters": ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                                  for k, v in h.items())})
    return [Table(pd.DataFrame(rows), caption="Random search: the trial kept per method, chosen on the "
                  "validation split only (test metrics are never used for selection)")]


def accuracy_table(frame: Any, methods: Sequence[str], tasks: Sequence[str], split: str = "test",
                   metric: str = "acc", extra: Sequence[str] = ()) -> Any:
    """Rows: methods; columns: metric per task and the task mean (mean ± std over seeds)."""
    import pandas as pd

    rows = []
    for m in methods:
        sub = frame[frame["method"] == m]
        if sub.empty:
            continue
        rec: dict[str, Any] = {"method": label(m)}
        for t in tasks:
            vals = sub[(sub["name"] == metric) & (sub["split"] == split) & (sub["task"] == t)]
            rec[f"{metric} {t}"] = mean_std(vals.groupby("seed")["value"].mean().to_numpy())
        vals = sub[(sub["name"] == f"{metric}_mean") & (sub["split"] == split)]
        if not vals.empty:
            rec[f"{metric} mean"] = mean_std(vals.groupby("seed")["value"].mean().to_numpy())
        for name in extra:
            v = sub[(sub["name"] == name) & (sub["split"] == split)]
            rec[name] = mean_std(v.groupby("seed")["value"].mean().to_numpy())
        rec["seeds"] = int(sub["seed"].nunique())
        rows.append(rec)
    return pd.DataFrame(rows)


def environment_blocks(frame: Any) -> list[Any]:
    """Per run: do G-IRM's environments (train and valid) differ? (metric ``env_shift_tv``)."""
    import pandas as pd

    from ..report.blocks import Table

    sub = frame[frame["name"] == "env_shift_tv"]
    if sub.empty:
        return []
    keys = [c for c in ("dataset", "method", "seed") if c in sub.columns]
    rows = []
    for _, r in sub.sort_values(keys).iterrows():
        tv = float(r["value"])
        hparams = (r["params"] or {}).get("hparams", {}) if "params" in sub.columns else {}
        lam = hparams.get("lambda_girm", hparams.get("lambda"))
        rows.append({**{k: r[k] for k in keys}, "label TV(train, valid)": round(tv, 3),
                     "G-IRM environments differ": "yes" if tv > 1e-9 else "no (no shift to be invariant to)",
                     "λ": "–" if lam is None else lam})
    return [Table(pd.DataFrame(rows), caption="Environments of the invariance penalties (train = env 0, valid = "
                  "env 1): total-variation distance between their joint label tables, per run")]


def relative_table(frame: Any, methods: Sequence[str], base: str, split: str = "test", metric: str = "acc") -> Any:
    """Relative improvement over ``base`` (MT-CRL Table 2), mean ± std over seeds."""
    import pandas as pd

    from ..metrics.relative import relative_improvement_table

    sub = frame[(frame["name"] == metric) & (frame["split"] == split) & (frame["method"].isin(list(methods)))]
    sub = sub[sub["task"] != ""]
    if sub.empty or base not in set(sub["method"]):
        return pd.DataFrame()
    sub = sub.groupby(["method", "seed", "task"], as_index=False).agg(
        value=("value", "mean"), higher_is_better=("higher_is_better", "first"))
    table = relative_improvement_table(sub, base)
    table["relative improvement"] = [
        f"{100 * m:+.1f}% ± {100 * s:.1f}%" if n > 1 else f"{100 * m:+.1f}%"
        for m, s, n in zip(table["mean"], table["std"], table["n_seeds"])
    ]
    table["method"] = [label(m) for m in table["method"]]
    # one seed has no spread: NaN (shown "–"), not "std 0.000"
    table["std"] = [s if n > 1 else float("nan") for s, n in zip(table["std"], table["n_seeds"])]
    return table[["method", "relative improvement", "n_seeds", "mean", "std"]]


def pooled_shift(ctx: Any, runs: Sequence[Any], n_bins: int = 5) -> Any:
    """Pool every run's draws (all seeds, every main task) and analyse them (GMTL §6)."""
    from ..shift.analysis import ShiftDraws, analyze

    parts = []
    for r in runs:
        arrays, _ = ctx.artefacts(r.id)
        alphas = arrays.get("alphas")
        t = 0
        while f"tau_{t}" in arrays:
            parts.append(ShiftDraws(tau=arrays[f"tau_{t}"], accuracy=arrays[f"acc_{t}"], alphas=alphas))
            t += 1
    if not parts:
        return None
    return analyze(ShiftDraws.concatenate(parts), n_bins=n_bins)


def shift_blocks(analyses: Mapping[str, Any], what: str, n_seeds: int = 0, synthetic: bool = False) -> list[Any]:
    """Figure 3 (both panels, one line per method), the per-bin table and the τ–α correlation.

    ``synthetic``: the runs used synthetic stand-in data; every verdict says so first."""
    import pandas as pd

    from ..shift.plots import plot_accuracy_vs_alpha, plot_figure3

    analyses = {k: v for k, v in analyses.items() if v is not None}
    if not analyses:
        return [Text("No GMTL shift results yet.", kind="warning")]
    blocks: list[Any] = []
    fig = plot_figure3(dict(analyses), title=f"DMTL vs GMTL under simulated target shift ({what})")
    blocks.append(Figure(figure_png(fig), f"Figure 3 analogue ({what}): optimal α (left) and accuracy gain of "
                         "GMTL at the optimal α over DMTL (right) per τ bin; lower τ = more severe shift. "
                         "Paper: both increase monotonically with severity.", name=f"fig3_{_slug(what)}.png"))
    first = next(iter(analyses))
    fig = plot_accuracy_vs_alpha(analyses[first], title=f"{first}: importance-sampled accuracy vs α per τ bin")
    blocks.append(Figure(figure_png(fig), f"Accuracy against α for each severity bin ({first}, {what}).",
                         name=f"acc_alpha_{_slug(what)}_{_slug(first)}.png"))
    rows = []
    for name, a in analyses.items():
        for b in range(a.n_bins)[::-1]:  # mildest shift (highest τ) first, as in the figures
            rows.append({"method": name, "τ bin": f"[{a.edges[b]:.2f}, {a.edges[b + 1]:.2f}]",
                         "draws": int(a.counts[b]), "optimal α": a.optimal_alpha[b],
                         "acc DMTL (α=0)": a.accuracy_dmtl[b], "acc GMTL (opt α)": a.accuracy_optimal[b],
                         "gain": a.gain[b]})
    blocks.append(Table(pd.DataFrame(rows), caption=f"Per-bin optimal α and GMTL − DMTL gain ({what}); "
                        "draws of all seeds and both main tasks pooled, as in the paper; bins from the mildest shift "
                        "(highest τ) to the most severe, as in the figures"))
    comps = []
    for name, a in analyses.items():
        comps.append(Comparison(f"r(τ midpoint, optimal α), {name}", PAPER_TAU_ALPHA_CORR, a.correlation,
                                n_seeds=n_seeds, verdict=_corr_verdict(a.correlation),
                                ours_text=None if np.isfinite(a.correlation) else "undefined"))
        comps.append(Comparison(f"optimal α rises with severity, {name}", "yes (monotone)", None,
                                n_seeds=n_seeds, verdict=_monotone_verdict(a.optimal_alpha[::-1]),
                                ours_text=" → ".join(f"{v:.1f}" for v in a.optimal_alpha[::-1]) + " (mild → severe)"))
        comps.append(Comparison(f"gain rises with severity, {name}", "yes (monotone)", None,
                                n_seeds=n_seeds, verdict=_monotone_verdict(a.gain[::-1]),
                                ours_text=" → ".join(f"{v:.3f}" for v in a.gain[::-1]) + " (mild → severe)"))
    if synthetic:
        comps = [synthetic_verdict(c) for c in comps]
    blocks.append(PaperComparison(comps, caption=f"GMTL findings ({what}) beside the paper's",
                                  source="Makino et al. 2022, §6 and Figure 3 (Attributes of People, Taskonomy)"))
    return blocks


SYNTHETIC_VERDICT = "synthetic data: not comparable to the paper"


def synthetic_verdict(c: Comparison) -> Comparison:
    """``c`` with its verdict prefixed by :data:`SYNTHETIC_VERDICT` (runs on synthetic stand-in data)."""
    import dataclasses

    return dataclasses.replace(c, verdict=f"{SYNTHETIC_VERDICT} ({c.verdict})" if c.verdict else SYNTHETIC_VERDICT)


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s.lower()).strip("_")


def _corr_verdict(r: float) -> str:
    if not np.isfinite(r):
        return "undefined (constant optimal α)"
    if r <= -0.5:
        return "reproduces (strong negative)"
    if r < 0:
        return "same sign, weaker"
    return "does not reproduce"


def _monotone_verdict(values_mild_to_severe: np.ndarray) -> str:
    v = np.asarray(values_mild_to_severe, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return "too few bins"
    d = np.diff(v)
    if np.ptp(v) == 0:
        return "flat (no change with severity)"
    if (d >= -1e-12).all():
        return "reproduces (monotone)"
    if v[-1] > v[0]:
        return "mostly (rises, not monotone)"
    return "does not reproduce"


def comparison(quantity: str, paper: float | str | None, frame: Any, name: str, split: str = "test",
               task: str | None = None, verdict: str = "", **eq: Any) -> Comparison:
    m, s, n = seed_mean(frame, name, split, task, **eq)
    return Comparison(quantity, paper, m if n else None, s, n, verdict)


def order_verdict(ours_a: float | None, ours_b: float | None, paper_a: float, paper_b: float) -> str:
    """Whether our ordering of two quantities matches the paper's."""
    if ours_a is None or ours_b is None or not (np.isfinite(ours_a) and np.isfinite(ours_b)):
        return "not run"
    same = np.sign(ours_a - ours_b) == np.sign(paper_a - paper_b)
    return "ordering reproduces" if same else "ordering does not reproduce"


def graph_figure(graphs: Mapping[str, np.ndarray], tasks: Sequence[str], title: str) -> bytes:
    """Heat maps of learned task-to-module graphs A (T × K), one panel per entry."""
    from matplotlib.figure import Figure as MplFigure

    n = len(graphs)
    fig = MplFigure(figsize=(4.2 * n + 0.8, 2.2 + 0.25 * len(tasks)), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, n))
    im = None
    for ax, (name, g) in zip(axes, graphs.items()):
        im = ax.imshow(g, vmin=0, vmax=1, cmap="viridis", aspect="auto")
        ax.set_title(name)
        ax.set_xlabel("module k")
        ax.set_ylabel("task")
        ax.set_yticks(range(len(tasks)), list(tasks))
        ax.set_xticks(range(g.shape[1]))
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="A = sigmoid(θ)")
    fig.suptitle(title)
    return figure_png(fig)


def line_figure(x: Sequence[Any], series: Mapping[str, tuple[np.ndarray, np.ndarray]], xlabel: str,
                ylabel: str, title: str, paper: Mapping[str, Sequence[float | None]] | None = None) -> bytes:
    """Lines with ±1 std bands over seeds (``series``: name → (mean, std)), paper values dashed
    (``None``: a value the paper does not print, left as a gap)."""
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.subplots()
    xs = np.arange(len(x))
    for name, (mean, std) in series.items():
        line, = ax.plot(xs, mean, marker="o", label=f"{name} (ours)")
        ax.fill_between(xs, mean - std, mean + std, alpha=0.2, color=line.get_color())
    for name, vals in (paper or {}).items():
        ax.plot(xs[: len(vals)], np.asarray(vals, dtype=np.float64),  # None → NaN, as matplotlib would
                linestyle="--", marker="x", label=f"{name} (paper)")
    ax.set_xticks(xs, [str(v) for v in x])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return figure_png(fig)


__all__ = [
    "PAPER_TAU_ALPHA_CORR",
    "accuracy_table",
    "comparison",
    "graph_figure",
    "line_figure",
    "order_verdict",
    "pooled_shift",
    "relative_table",
    "select_trials",
    "selection_blocks",
    "shift_blocks",
    "synthetic_verdict",
]
