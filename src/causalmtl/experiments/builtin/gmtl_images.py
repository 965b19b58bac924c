"""``gmtl-aop`` and ``gmtl-taskonomy``: GMTL's image experiments (Makino et al. 2022, §5–6).

Both follow the protocol of :mod:`causalmtl.experiments.builtin.gmtl_shift` on the paper's datasets:

* ``gmtl-aop``: Attributes of People with the GMTL authors' validation split
  (``load_attributes(split="gmtl")``: 20 % of all trainval rows, ``RandomState(0)``, the same for
  every seed, so seeds vary the initialisation only), images streamed from disk; the three task
  pairs of §5.1 (:data:`causalmtl.data.PAPER_PAIRS`), each task as main in turn; NPS (the STL
  networks decoded jointly), STN (shared trunk), CSN (cross-stitch initialised from the trained
  STL networks, stitched after each ResNet stage) and FPS (one network over the joint class).
* ``gmtl-taskonomy``: Taskonomy object (100 ImageNet classes) × scene (64 Places classes)
  (``load_taskonomy(tasks="gmtl")``: the class lists and the official split CSV), both
  directions, NPS / STN / CSN (the paper omits FPS on Taskonomy: a 6,400-way joint head).

Per run (one method, one pair, one seed): train; in-distribution accuracy (STL = NPS vs the MTL
methods); test log-probabilities decoded for every α of the grid (Eq. 6); ``n_draws`` shifted
priors q per main task drawn around the smoothed test prior (§5.6), accuracy importance-sampled
(§5.4), τ = weighted Kendall's τ (§5.5) — :func:`causalmtl.experiments.common.gmtl_shift`;
the §3.1 α heuristic on validation (:func:`causalmtl.gmtl.select_alpha`: the largest α within
``tolerance`` of α = 0's validation accuracy) with its test accuracy under shift beside DMTL's.
The decoded predictions are written in the GMTL authors' layout
(:func:`causalmtl.shift.files.write_gmtl_dir`) under ``<run artefacts>/gmtl/``: ``s=0/y_pred_None.pkl``,
``s=0/y_pred_{α}.pkl`` and ``log_prior.pt`` (the flattened log of the smoothed test prior the
run drew q around), so ``causalmtl shift --gmtl-dir … --log-prior …/log_prior.pt`` and the
authors' script read them. The report pools the draws of all seeds, pairs and main tasks per
method (Figure 3), and correlates τ-bin midpoints with the optimal α over all runs (§6: −0.847).

``synthetic=true`` (the ``tiny`` preset) writes a synthetic copy in the real layout into the
run's artefact directory (removed after the run) and records ``synthetic: true`` in the run's
info; the report's verdicts then read "synthetic data: not comparable to the paper".
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .. import hparams as hp
from ..common import (
    ModelConfig,
    TrainConfig,
    accuracy_metrics,
    check_methods,
    gmtl_shift,
    history_rows,
    joint_log_probs,
    label,
    method_def,
    train_method,
)
from ..registry import Experiment, RunContext, RunResult, RunSpec, register
from ..store import MetricRow

log = logging.getLogger(__name__)

ALPHAS = [round(0.1 * i, 1) for i in range(11)]


def _image_model() -> ModelConfig:
    return ModelConfig(encoder="resnet50")


@dataclass
class _ImageGmtlConfig:
    data_dir: str | None = None  # the dataset directory (else $CAUSALMTL_DATA)
    synthetic: bool = False  # write and use a synthetic copy in the real layout (tests, smoke runs)
    synthetic_size: int = 48  # side of the synthetic images (px)
    image_size: int = 256  # rows are resized to this side ...
    crop: int = 224  # ... then cropped (random + flip in training, centre otherwise; 0 = no crop)
    model: ModelConfig = field(default_factory=_image_model)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=30, batch_size=32, patience=5))
    alphas: list[float] = field(default_factory=lambda: list(ALPHAS))
    n_draws: int = 1000
    pseudocount: float = 1.0
    tolerance: float = 0.01  # α heuristic: accepted loss of validation accuracy vs α = 0 (absolute)


@dataclass
class GmtlAopConfig(_ImageGmtlConfig):
    methods: list[str] = field(default_factory=lambda: ["nps", "shared", "cross_stitch", "fps"])
    pairs: list[str] = field(default_factory=lambda: ["hat+long_sleeves", "long_hair+hat", "glasses+hat"])
    synthetic_n: int = 160  # persons per synthetic split


@dataclass
class GmtlTaskonomyConfig(_ImageGmtlConfig):
    methods: list[str] = field(default_factory=lambda: ["nps", "shared", "cross_stitch"])
    split_size: str = "medium"  # the official train_val_test_<size>.csv (GMTL: the medium subset)
    synthetic_buildings: int = 6
    synthetic_points: int = 8


def _validate(cfg: Any) -> None:
    check_methods(cfg.methods)
    if 0.0 not in [float(a) for a in cfg.alphas]:
        raise ValueError(f"alphas must include 0.0 (DMTL is the reference), got {cfg.alphas}")
    if cfg.n_draws < 2:
        raise ValueError(f"n_draws must be >= 2, got {cfg.n_draws}")
    if cfg.image_size < 8 or cfg.crop < 0 or cfg.crop > cfg.image_size:
        raise ValueError(f"need image_size >= 8 and 0 <= crop <= image_size, got image_size={cfg.image_size}, "
                         f"crop={cfg.crop}")
    if isinstance(cfg, GmtlAopConfig):
        from ...data.attributes import PAPER_PAIRS

        bad = [p for p in cfg.pairs if p not in PAPER_PAIRS]
        if bad or not cfg.pairs:
            raise ValueError(f"pairs must be names of {list(PAPER_PAIRS)}, got {cfg.pairs}")
    if isinstance(cfg, GmtlTaskonomyConfig) and "fps" in cfg.methods:
        raise ValueError("gmtl-taskonomy: FPS is not run on Taskonomy (the paper omits it: a 6,400-way joint "
                         f"head); methods={cfg.methods}")


# --- data ------------------------------------------------------------------------------------
def _transforms(cfg: Any, uint8: bool) -> dict[str, Any]:
    """Train / eval row transforms: resize (Taskonomy rows are stored at full size), crop, flip,
    scaling and ImageNet normalisation (§5.3: 256 → random 224 crop + flip; eval centre crop)."""
    from ...data.transforms import train_eval_transforms

    return train_eval_transforms(cfg.image_size if uint8 else None, cfg.crop or None, flip=True, normalize=uint8)


def _set_transforms(splits: Any, tf: dict[str, Any]) -> Any:
    splits.train.transform = tf["train"]
    splits.valid.transform = tf["eval"]
    splits.test.transform = tf["eval"]
    return splits


def _data_dir(cfg: GmtlAopConfig | GmtlTaskonomyConfig, ctx: RunContext | None) -> str | None:
    """The data directory; with ``synthetic`` a fresh synthetic copy under the run's artefacts."""
    if not cfg.synthetic:
        return cfg.data_dir
    if ctx is None:
        raise ValueError("synthetic data is written per run")
    root = ctx.artefact_dir / "synthetic-data"
    shutil.rmtree(root, ignore_errors=True)
    if isinstance(cfg, GmtlAopConfig):
        from ...data.attributes import write_synthetic_attributes

        return str(write_synthetic_attributes(root, n_train=cfg.synthetic_n, n_test=cfg.synthetic_n,
                                              size=cfg.synthetic_size, seed=ctx.seed))
    from ...data.taskonomy import write_synthetic_taskonomy

    write_synthetic_taskonomy(root, buildings=cfg.synthetic_buildings, points=cfg.synthetic_points, views=2,
                              size=cfg.synthetic_size, seed=ctx.seed,
                              domains=["rgb", "class_object", "class_scene"])
    return str(root)


def load_aop(cfg: GmtlAopConfig, pair: str, ctx: RunContext | None) -> Any:
    from ...data import load_attributes

    path = _data_dir(cfg, ctx)
    splits = load_attributes(path, tasks=pair, split="gmtl", stream=True, image_size=cfg.image_size)
    return _set_transforms(splits, _transforms(cfg, uint8=False))


def load_gmtl_taskonomy(cfg: GmtlTaskonomyConfig, ctx: RunContext | None) -> Any:
    from ...data import load_taskonomy

    path = _data_dir(cfg, ctx)
    splits = load_taskonomy(path, tasks="gmtl", split="csv", split_size="tiny" if cfg.synthetic else cfg.split_size)
    return _set_transforms(splits, _transforms(cfg, uint8=True))


def check_data_aop(cfg: GmtlAopConfig) -> None:
    _validate(cfg)
    if not cfg.synthetic:
        from ...data import load_attributes

        for pair in cfg.pairs:
            load_attributes(cfg.data_dir, tasks=pair, split="gmtl", load_images=False)


def check_data_taskonomy(cfg: GmtlTaskonomyConfig) -> None:
    _validate(cfg)
    if not cfg.synthetic:
        from ...data import load_taskonomy

        load_taskonomy(cfg.data_dir, tasks="gmtl", split="csv", split_size=cfg.split_size, labels_only=True)


# --- plan and run ------------------------------------------------------------------------------
def plan_aop(cfg: GmtlAopConfig) -> list[RunSpec]:
    _validate(cfg)
    return [RunSpec(run_key=f"{p}/{m}/trial={k}", method=m, dataset=f"attributes-{p}", trial=k,
                    params={"pair": p, "hparams": hp.sample(method_def(m).family, "attributes", k)})
            for p in cfg.pairs for m in cfg.methods for k in range(cfg.train.trials)]


def plan_taskonomy(cfg: GmtlTaskonomyConfig) -> list[RunSpec]:
    _validate(cfg)
    return [RunSpec(run_key=f"{m}/trial={k}", method=m, dataset="taskonomy-object+scene", trial=k,
                    params={"hparams": hp.sample(method_def(m).family, "taskonomy", k)})
            for m in cfg.methods for k in range(cfg.train.trials)]


def alpha_heuristic(lp_valid: Any, valid: Any, prior: Any, alphas: list[float], tolerance: float,
                    arrays: dict[str, np.ndarray]) -> list[MetricRow]:
    """GMTL §3.1 per main task: α chosen on validation; test accuracy under shift at that α vs α = 0.

    ``arrays`` holds the run's shift draws (``acc_<t>`` of shape ``(D, A)``)."""
    from ...gmtl import select_alpha

    rows = []
    a0 = alphas.index(0.0)
    for t, task in enumerate(valid.tasks):
        sel = select_alpha(lp_valid, valid.labels, prior, alphas=alphas, main_task=t, tolerance=tolerance)
        s_idx = int(np.argmin(np.abs(np.asarray(alphas) - sel.alpha)))
        acc = arrays[f"acc_{t}"]
        rows += [MetricRow("alpha_selected", float(sel.alpha), task=task.name, split="valid", higher_is_better=None),
                 MetricRow("acc_shift_dmtl", float(np.nanmean(acc[:, a0])), task=task.name),
                 MetricRow("acc_shift_selected", float(np.nanmean(acc[:, s_idx])), task=task.name)]
    return rows


def _run(cfg: Any, spec: RunSpec, ctx: RunContext, splits: Any) -> RunResult:
    from ...gmtl import JointPrior
    from ...shift.files import write_gmtl_dir

    if cfg.model.weights is None and not cfg.synthetic and cfg.model.encoder.startswith("resnet"):
        log.warning("model.weights is not set: training %s from scratch (the paper starts from ImageNet "
                    "weights; give model.weights=<torchvision checkpoint path>)", cfg.model.encoder)
    trained = train_method(spec.method, splits, cfg.model, cfg.train, dict(spec.params["hparams"]), ctx.seed,
                           ctx.device, ctx.artefact_dir, protocol="split", progress=ctx.progress)
    rows = accuracy_metrics(trained.model, splits, ctx.device) + history_rows(trained)
    n_classes = splits.test.n_classes
    test_prior = JointPrior.fit(splits.test.labels, n_classes, pseudocount=cfg.pseudocount)
    alphas = [float(a) for a in cfg.alphas]
    lp_test = joint_log_probs(trained.model, splits.test, ctx.device)
    shift_rows, arrays = gmtl_shift(lp_test, trained.train_labels, splits.test, test_prior.probs, alphas,
                                    cfg.n_draws, seed=ctx.seed, pseudocount=cfg.pseudocount, keep_predictions=True)
    preds = arrays.pop("predictions")
    prior = JointPrior.fit(trained.train_labels, n_classes, pseudocount=cfg.pseudocount)
    lp_valid = joint_log_probs(trained.model, splits.valid, ctx.device)
    rows += shift_rows + alpha_heuristic(lp_valid, splits.valid, prior, alphas, cfg.tolerance, arrays)
    gdir = ctx.artefact_dir / "gmtl"
    write_gmtl_dir(gdir, 0, splits.test.labels, preds, alphas, log_prior=test_prior.log_prob.ravel())
    if cfg.synthetic:
        shutil.rmtree(ctx.artefact_dir / "synthetic-data", ignore_errors=True)
    info = {"hparams": spec.params["hparams"], "best_epoch": trained.best_epoch, "synthetic": bool(cfg.synthetic),
            "tasks": [t.name for t in splits.test.tasks], "n_classes": [int(c) for c in n_classes],
            "sizes": {k: len(getattr(splits, k)) for k in ("train", "valid", "test")},
            "weights": cfg.model.weights, "gmtl_dir": "gmtl", "log_prior": "gmtl/log_prior.pt"}
    return RunResult(rows, arrays, info=info)


def run_aop(cfg: GmtlAopConfig, spec: RunSpec, ctx: RunContext) -> RunResult:
    return _run(cfg, spec, ctx, load_aop(cfg, spec.params["pair"], ctx))


def run_taskonomy(cfg: GmtlTaskonomyConfig, spec: RunSpec, ctx: RunContext) -> RunResult:
    return _run(cfg, spec, ctx, load_gmtl_taskonomy(cfg, ctx))


# --- report ------------------------------------------------------------------------------------
def _report(ctx: Any, what: str) -> list[Any]:
    import pandas as pd

    from ...report.blocks import Comparison, PaperComparison, Table, Text
    from ..reporting import (
        PAPER_TAU_ALPHA_CORR,
        _corr_verdict,
        accuracy_table,
        pooled_shift,
        select_trials,
        selection_blocks,
        shift_blocks,
        synthetic_verdict,
    )

    cfg = ctx.config
    frame = select_trials(ctx.frame, by=("method", "dataset"))
    if frame.empty:
        return [Text("No finished run.", kind="warning")]
    kept = set(frame["run_id"])
    runs = [r for r in ctx.runs if r.id in kept]
    synthetic = any(ctx.artefacts(r.id)[1].get("synthetic", False) for r in runs)
    n_seeds = int(frame["seed"].nunique())
    blocks: list[Any] = []
    if synthetic:
        blocks.append(Text("These runs used **synthetic data** written in the dataset's real layout (the `tiny` "
                           "preset): synthetic data: not comparable to the paper.", kind="warning"))
    blocks.append(Text(f"{what}; methods {', '.join(label(m) for m in cfg.methods)}; α grid {cfg.alphas}; "
                       f"{cfg.n_draws} draws of q per run and main task; encoder `{cfg.model.encoder}` "
                       f"({'weights ' + str(cfg.model.weights) if cfg.model.weights else 'trained from scratch'}); "
                       "the paper pools five seeds (`--seeds 5`)."))
    for ds, sub in frame.groupby("dataset", sort=False):
        tasks = list(dict.fromkeys(sub[(sub["name"] == "acc") & (sub["task"] != "")]["task"]))
        blocks.append(Table(accuracy_table(sub, cfg.methods, tasks, split="test"),
                            caption=f"In-distribution test accuracy, {ds} (DMTL; NPS = the STL networks)"))
    blocks += selection_blocks(ctx.frame, frame)
    rows = []
    for (ds, m, task), grp in frame[frame["task"] != ""].groupby(["dataset", "method", "task"], sort=False):
        def mean(name: str, grp: Any = grp) -> float:
            v = grp[grp["name"] == name]["value"]
            return float(v.mean()) if len(v) else float("nan")
        if grp[grp["name"] == "alpha_selected"].empty:
            continue
        rows.append({"dataset": ds, "method": label(m), "main task": task, "α chosen (valid)": mean("alpha_selected"),
                     "acc under shift, DMTL": mean("acc_shift_dmtl"),
                     "acc under shift, chosen α": mean("acc_shift_selected"),
                     "gain": mean("acc_shift_selected") - mean("acc_shift_dmtl"),
                     "seeds": int(grp["seed"].nunique())})
    blocks.append(Table(pd.DataFrame(rows), caption=(
        f"α heuristic (GMTL §3.1, supplementary tables): the largest α whose validation accuracy of the main task "
        f"is within {cfg.tolerance} of α = 0's, and the mean importance-sampled test accuracy over the shifted q "
        "at that α vs DMTL (mean over seeds)")))
    analyses = {label(m): pooled_shift(ctx, [r for r in runs if r.method == m]) for m in cfg.methods}
    blocks += shift_blocks(analyses, what, n_seeds=n_seeds, synthetic=synthetic)
    pooled = [a for a in analyses.values() if a is not None]
    if pooled:
        mids = np.concatenate([a.midpoints[a.counts > 0] for a in pooled])
        opt = np.concatenate([a.optimal_alpha[a.counts > 0] for a in pooled])
        r = float(np.corrcoef(mids, opt)[0, 1]) if np.ptp(opt) > 0 and np.ptp(mids) > 0 else float("nan")
        c = Comparison("r(τ midpoint, optimal α), all runs pooled", PAPER_TAU_ALPHA_CORR, r, n_seeds=n_seeds,
                       verdict=_corr_verdict(r), ours_text=None if np.isfinite(r) else "undefined")
        blocks.append(PaperComparison([synthetic_verdict(c) if synthetic else c],
                                      caption="The paper's aggregate correlation over all its runs",
                                      source="Makino et al. 2022, §6"))
    blocks.append(Text("Each run's predictions are in the GMTL authors' layout under `<artefacts>/<run>/gmtl/` "
                       "(`causalmtl shift --gmtl-dir DIR --log-prior DIR/log_prior.pt --n-classes ... --alphas ...`)."))
    return blocks


def report_aop(ctx: Any) -> list[Any]:
    return _report(ctx, "gmtl-aop, Attributes of People")


def report_taskonomy(ctx: Any) -> list[Any]:
    return _report(ctx, "gmtl-taskonomy, object × scene")


_TINY_COMMON = {
    "synthetic": True, "synthetic_size": 32, "image_size": 32, "crop": 0,
    "model": {"encoder": "resnet18", "base_width": 4},
    "train": {"epochs": 1, "batch_size": 32, "patience": 1},
    "alphas": [0.0, 0.5, 1.0], "n_draws": 20,
}
_PAPER_COMMON = {"image_size": 256, "crop": 224, "model": {"encoder": "resnet50", "base_width": 64},
                 "n_draws": 1000, "alphas": list(ALPHAS)}

EXPERIMENTS = [
    register(Experiment(
        name="gmtl-aop",
        description="GMTL §5–6 on Attributes of People: 3 task pairs × NPS/STN/CSN/FPS, Figure 3, α heuristic; time: --preset tiny (real data: not measured)",
        expected_seconds=10,  # tiny preset: 5.5 s of runs, 8 s wall on 2 CPU cores; paper preset: GPU, not measured
        config_cls=GmtlAopConfig,
        plan=plan_aop,
        run=run_aop,
        report=report_aop,
        presets={
            "tiny": {**_TINY_COMMON, "pairs": ["hat+long_sleeves"], "synthetic_n": 64},
            "paper": {**_PAPER_COMMON, "train": {"epochs": 30, "batch_size": 32, "patience": 5}},
        },
        check_data=check_data_aop,
        reproduces="GMTL Figure 3 (Attributes of People), the τ–optimal-α correlation, the α-heuristic tables",
    )),
    register(Experiment(
        name="gmtl-taskonomy",
        description="GMTL §5–6 on Taskonomy object × scene (100 × 64): NPS/STN/CSN, Figure 3, α heuristic; time: --preset tiny (real data: not measured)",
        expected_seconds=10,  # tiny preset: 5.5 s of runs, 7.5 s wall on 2 CPU cores; paper preset: GPU, not measured
        config_cls=GmtlTaskonomyConfig,
        plan=plan_taskonomy,
        run=run_taskonomy,
        report=report_taskonomy,
        presets={
            "tiny": {**_TINY_COMMON, "synthetic_buildings": 6, "synthetic_points": 8},
            "paper": {**_PAPER_COMMON, "split_size": "medium",
                      "train": {"epochs": 10, "batch_size": 64, "patience": 3}},
        },
        check_data=check_data_taskonomy,
        reproduces="GMTL Figure 3 (Taskonomy), the τ–optimal-α correlation, the α-heuristic tables",
    )),
]
