"""Experiment ``many-tasks``: GMTL with many labels (issue 10) on Yeast, and a scaling table.

Yeast (14 binary labels, :func:`causalmtl.data.load_yeast`) with a real multi-output
classifier (``MultiOutputClassifier(LogisticRegression)``). For each label set (the first 6,
the first 12 and all 14 labels) and each prior — the full joint table (§3.2, only up to 12
labels: 4,096 cells) and the Chow–Liu tree (:class:`causalmtl.gmtl.TreePrior`) — the test set
is decoded for every α of the grid by four *families* of the GMTL objective
(:func:`causalmtl.gmtl.gmtl_decode`):

``single``      the paper's Eq. 6, ``α_m = α_d = α``, joint argmax;
``dependence``  dependence-only correction, ``α_m = 0``, ``α_d = α`` (keeps the base rates);
``marginal``    marginal-only correction, ``α_m = α``, ``α_d = 0``;
``single-marg`` Eq. 6 with marginal decoding (per-task argmax of the adjusted marginals).

Evaluation: (1) in distribution — mean per-task accuracy and exact match; (2) under a
*correlation shift*: the test rows are importance-weighted by ``w ∝ exp(−λ D(y))`` with
``D(y) = log p(y) − Σ_t log p(y_t)`` the training prior's dependence part, so λ = 1 removes
the training co-occurrence and λ = 2 reverses it, while every label's own skew stays; the
severity of each λ is the weighted Kendall τ between ``p`` and ``p·e^{−λD}`` (GMTL §5.5,
:func:`causalmtl.shift.weighted_tau`); (3) the paper's protocol (§5.4–5.6, §6): q sampled
around the test label distribution by the authors' sampler, main-task accuracy for every task,
binned by τ with the optimal α per bin (:func:`causalmtl.shift.evaluate_shift`,
:func:`causalmtl.shift.analyze`).

The ``scaling`` run times GMTL decoding on simulated scores of T = 2 … 40 binary tasks
(:func:`causalmtl.gmtl.scaling.scaling_table`): examples/s per α and peak memory of the full
table (while it fits) and of joint and marginal tree decoding.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..registry import Experiment, MissingDataError, RunContext, RunResult, RunSpec, register
from ..store import MetricRow

log = logging.getLogger(__name__)

FAMILIES = ("single", "dependence", "marginal", "single-marg")
PRIORS = ("full", "tree")
#: Largest number of labels for which the full joint table is fitted.
MAX_FULL_LABELS = 12


@dataclass
class ManyTasksConfig:
    path: str = ""  # "" = $CAUSALMTL_DATA (yeast.csv.gz, or a directory holding it)
    split_seed: int = 0  # the data split of run seed s uses split_seed + s
    n_labels: list[int] = field(default_factory=lambda: [6, 12, 14])  # the first k labels
    priors: list[str] = field(default_factory=lambda: list(PRIORS))
    alphas: list[float] = field(default_factory=lambda: [round(0.1 * i, 1) for i in range(11)])
    tilts: list[float] = field(default_factory=lambda: [0.0, 0.5, 1.0, 1.5, 2.0])
    n_draws: int = 200  # q draws of the paper's protocol (0 = skip it)
    n_bins: int = 4
    pseudocount: float = 1.0
    logreg_c: float = 1.0
    scaling: bool = True
    scaling_tasks: list[int] = field(default_factory=lambda: [2, 4, 8, 12, 16, 20, 30, 40])
    scaling_n: int = 10_000
    scaling_max_table_tasks: int = 16


def _check(cfg: ManyTasksConfig) -> None:
    for k in cfg.n_labels:
        if not 2 <= int(k) <= 14:
            raise ValueError(f"n_labels entries must be in [2, 14] (Yeast has 14 labels), got {k!r}")
    bad = [p for p in cfg.priors if p not in PRIORS]
    if bad or not cfg.priors:
        raise ValueError(f"priors has unknown or no prior(s) {bad}; valid priors are {list(PRIORS)}")
    if 0.0 not in [float(a) for a in cfg.alphas] or any(not 0 <= a <= 1 for a in cfg.alphas):
        raise ValueError(f"alphas must lie in [0, 1] and include 0.0 (DMTL), got {list(cfg.alphas)}")
    if any(float(t) < 0 for t in cfg.tilts):
        raise ValueError(f"tilts must be >= 0, got {list(cfg.tilts)}")
    if cfg.n_draws != 0 and cfg.n_draws < 2:
        raise ValueError(f"n_draws must be 0 (skip) or >= 2, got {cfg.n_draws}")


def check_data(cfg: ManyTasksConfig) -> None:
    from ...data._sources import MissingDataError as DataMissing
    from ...data.yeast import read_yeast

    _check(cfg)
    try:
        read_yeast(cfg.path or None)
    except DataMissing as exc:
        raise MissingDataError(str(exc)) from None


def plan(cfg: ManyTasksConfig) -> list[RunSpec]:
    _check(cfg)
    specs = [
        RunSpec(run_key=f"labels={k}/prior={p}", method=p, dataset=f"yeast[first {k}]",
                params={"n_labels": int(k)})
        for k in cfg.n_labels
        for p in cfg.priors
        if not (p == "full" and int(k) > MAX_FULL_LABELS)
    ]  # fmt: skip
    if cfg.scaling:
        specs.append(RunSpec(run_key="scaling", method="scaling", dataset="simulated"))
    return specs


def _log_probs(cfg: ManyTasksConfig, splits: Any, seed: int) -> dict[str, list[np.ndarray]]:
    """Per-task log-probabilities of ``MultiOutputClassifier(LogisticRegression)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.multioutput import MultiOutputClassifier

    clf = MultiOutputClassifier(LogisticRegression(C=cfg.logreg_c, max_iter=2000, random_state=seed))
    clf.fit(splits.train.inputs, splits.train.labels)
    out = {}
    for split in ("valid", "test"):
        probs = clf.predict_proba(getattr(splits, split).inputs)
        lp = [np.log(np.clip(np.asarray(p, dtype=np.float64), 1e-12, 1.0)) for p in probs]
        out[split] = [x - np.logaddexp.reduce(x, axis=1, keepdims=True) for x in lp]
    return out


def decode_families(
    log_probs: list[np.ndarray], prior: Any, alphas: list[float]
) -> dict[str, np.ndarray]:
    """Predictions ``(A, N, T)`` of each family of the module docstring."""
    from ...gmtl import gmtl_decode

    zeros = [0.0] * len(alphas)
    return {
        "single": gmtl_decode(log_probs, prior, alpha=alphas).labels,
        "dependence": gmtl_decode(log_probs, prior, alpha_marginal=zeros, alpha_dependence=alphas).labels,
        "marginal": gmtl_decode(log_probs, prior, alpha_marginal=alphas, alpha_dependence=zeros).labels,
        "single-marg": gmtl_decode(log_probs, prior, alpha=alphas, mode="marginal").labels,
    }


def dependence_part(prior: Any, labels: np.ndarray) -> np.ndarray:
    """``D(y) = log p(y) − Σ_t log p(y_t)`` of complete label rows (full or tree prior)."""
    from ...gmtl import TreePrior

    marg = sum(np.log(prior.marginal(t))[labels[:, t]] for t in range(labels.shape[1]))
    if isinstance(prior, TreePrior):
        logp = prior.log_pmf(labels)
    else:
        logp = np.log(prior.probs[tuple(labels.T)])
    dependence: np.ndarray = logp - marg
    return dependence


def _run_scaling(cfg: ManyTasksConfig) -> RunResult:
    from ...gmtl.scaling import scaling_table

    rows = scaling_table(cfg.scaling_tasks, n=cfg.scaling_n,
                         max_table_tasks=cfg.scaling_max_table_tasks)  # fmt: skip
    metrics = []
    for r in rows:
        key = f"{r['method']}-{r['mode']}"
        metrics.append(MetricRow(f"examples_per_s/{key}", r["examples_per_s"], task=f"T={r['tasks']}", split="bench"))
        metrics.append(MetricRow(f"peak_mb/{key}", r["peak_mb"], task=f"T={r['tasks']}", split="bench",
                                 higher_is_better=False))  # fmt: skip
    return RunResult(metrics=metrics, info={"rows": rows})


def run(cfg: ManyTasksConfig, spec: RunSpec, ctx: RunContext) -> RunResult:
    from ...data.yeast import YEAST_LABELS, load_yeast
    from ...gmtl import JointPrior, TreePrior
    from ...shift import weighted_tau
    from ...shift.analysis import analyze
    from ...shift.evaluate import evaluate_shift

    _check(cfg)
    if spec.method == "scaling":
        return _run_scaling(cfg)
    k = int(spec.params["n_labels"])
    names = list(YEAST_LABELS[:k])
    splits = load_yeast(cfg.path or None, labels=names, seed=cfg.split_seed + ctx.seed)
    lps = _log_probs(cfg, splits, ctx.seed)
    n_classes = splits.train.n_classes
    t0 = time.perf_counter()
    if spec.method == "full":
        prior: Any = JointPrior.fit(splits.train.labels, n_classes, pseudocount=cfg.pseudocount)
    else:
        prior = TreePrior.fit(splits.train.labels, n_classes, pseudocount=cfg.pseudocount)
    fit_seconds = time.perf_counter() - t0
    alphas = [float(a) for a in cfg.alphas]
    a0 = alphas.index(0.0)
    test = splits.test.labels
    t0 = time.perf_counter()
    preds = decode_families(lps["test"], prior, alphas)
    decode_seconds = time.perf_counter() - t0
    metrics = [
        MetricRow("prior_fit_seconds", fit_seconds, split="train", higher_is_better=False),
        MetricRow("decode_seconds", decode_seconds, higher_is_better=False),
    ]
    arrays: dict[str, np.ndarray] = {"alphas": np.asarray(alphas), "tilts": np.asarray(cfg.tilts)}

    # (1) in distribution, (2) correlation shift by tilting with the dependence part
    dep = dependence_part(prior, test)
    log_table = prior.table_log_prob() if isinstance(prior, TreePrior) else np.log(prior.probs)
    grid = np.array(np.unravel_index(np.arange(int(np.prod(n_classes))), n_classes)).T
    dep_table = dependence_part(prior, grid)
    taus = [weighted_tau(log_table.ravel(), log_table.ravel() - lam * dep_table) for lam in cfg.tilts]
    arrays["tilt_tau"] = np.asarray(taus)
    ess = []
    for lam in cfg.tilts:
        w = np.exp(-lam * (dep - dep.max()))
        ess.append(float(w.sum() ** 2 / (w**2).sum()))  # Kish effective sample size
    arrays["tilt_ess"] = np.asarray(ess)
    for lam, e, tau in zip(cfg.tilts, ess, taus):
        split = "test" if lam == 0 else f"test-tilt{lam:g}"
        metrics += [MetricRow("effective_sample_size", e, split=split, higher_is_better=None),
                    MetricRow("tilt_tau", tau, split=split, higher_is_better=None)]  # fmt: skip
    for fam, pred in preds.items():
        correct = pred == test[None]  # (A, N, T)
        per_task = np.empty((len(cfg.tilts), len(alphas)))
        exact = np.empty_like(per_task)
        for i, lam in enumerate(cfg.tilts):
            w = np.exp(-lam * (dep - dep.max()))
            w /= w.sum()
            per_task[i] = np.einsum("n,ant->a", w, correct) / correct.shape[2]
            exact[i] = np.einsum("n,an->a", w, correct.all(axis=2))
        arrays[f"acc_{fam}"] = per_task
        arrays[f"exact_{fam}"] = exact
        best = per_task.argmax(axis=1)
        for i, lam in enumerate(cfg.tilts):
            split = "test" if lam == 0 else f"test-tilt{lam:g}"
            metrics += [
                MetricRow(f"acc_{fam}_alpha0", float(per_task[i, a0]), split=split),
                MetricRow(f"acc_{fam}_alpha1", float(per_task[i, -1]), split=split),
                MetricRow(f"acc_{fam}_best", float(per_task[i, best[i]]), split=split),
                MetricRow(f"alpha_{fam}_best", alphas[best[i]], split=split, higher_is_better=None),
                MetricRow(f"exact_{fam}_alpha1", float(exact[i, -1]), split=split),
            ]

    # (3) the paper's protocol: q around the test label distribution, τ bins, optimal α
    if cfg.n_draws:
        log_p_test = np.log(JointPrior.fit(test, n_classes, pseudocount=cfg.pseudocount).probs)
        for fam in ("single", "dependence"):
            acc = []
            corr = []
            for t in range(len(names)):
                draws = evaluate_shift(test, preds[fam], log_p_test, alphas, n_classes=n_classes,
                                       task=t, n_draws=cfg.n_draws, seed=ctx.seed)  # fmt: skip
                res = analyze(draws, n_bins=cfg.n_bins)
                acc.append(draws.accuracy.mean(axis=0))
                corr.append(res.correlation)
                arrays[f"qtau_{fam}_{t}"] = draws.tau
                arrays[f"qacc_{fam}_{t}"] = draws.accuracy
            mean_acc = np.mean(acc, axis=0)  # (A,) over tasks and draws
            metrics += [
                MetricRow(f"qacc_{fam}_alpha0", float(mean_acc[a0]), split="test-q"),
                MetricRow(f"qacc_{fam}_best", float(mean_acc.max()), split="test-q"),
                MetricRow(f"qalpha_{fam}_best", alphas[int(mean_acc.argmax())], split="test-q", higher_is_better=None),
                MetricRow(f"tau_alpha_corr_{fam}",
                          float(np.nanmean(corr)) if np.isfinite(corr).any() else float("nan"),
                          split="test-q", higher_is_better=None),  # fmt: skip
            ]
    info = {
        "labels": names,
        "prior": type(prior).__name__,
        "edges": [list(e) for e in prior.edges] if isinstance(prior, TreePrior) else None,
        "sizes": {name: len(part) for name, part in splits},
        "tilt_tau": taus,
        "tilt_ess": ess,
    }
    return RunResult(metrics=metrics, arrays=arrays, info=info)


def summary_table(result: RunResult, alphas: list[float], tilts: list[float]) -> str:
    """A plain-text table of mean per-task accuracy (best α in brackets) per family and tilt."""
    lines = [f"{'tilt λ':>7s} {'τ':>7s} {'ESS':>7s} " + " ".join(f"{f:>20s}" for f in FAMILIES)]
    taus = result.arrays["tilt_tau"]
    ess = result.arrays["tilt_ess"]
    for i, lam in enumerate(tilts):
        cells = []
        for fam in FAMILIES:
            acc = result.arrays[f"acc_{fam}"][i]
            j = int(acc.argmax())
            cells.append(f"{acc[0]:.4f}->{acc[j]:.4f}(α={alphas[j]:.1f})")
        lines.append(f"{lam:7.2f} {taus[i]:7.3f} {ess[i]:7.1f} " + " ".join(f"{c:>20s}" for c in cells))
    return "\n".join(lines)


MANY_TASKS = register(
    Experiment(
        name="many-tasks",
        description="GMTL with many labels on Yeast: full vs Chow–Liu tree prior, single vs split α, "
        "joint vs marginal decoding, correlation shift and τ analysis; decoding scaling table.",
        expected_seconds=180,
        config_cls=ManyTasksConfig,
        plan=plan,
        run=run,
        presets={
            "tiny": {
                "n_labels": [4, 14],
                "alphas": [0.0, 0.5, 1.0],
                "tilts": [0.0, 2.0],
                "n_draws": 10,
                "n_bins": 2,
                "scaling_tasks": [2, 8],
                "scaling_n": 500,
                "scaling_max_table_tasks": 8,
            }
        },
        check_data=check_data,
        reproduces="issue 10 (GMTL beyond §3.2's table: tree priors, split α, marginal decoding)",
    )
)
