"""``nyuv2``, ``cityscapes``, ``taskonomy``: MT-CRL's dense benchmarks (Hu et al. 2022, §4,
Tables 2, 8, 9, 10).

Methods (one backbone per experiment):

* ``stl`` — one encoder + head per task;
* ``mtl`` — hard parameter sharing: one shared encoder (:class:`~causalmtl.nn.SharedTrunk`) with a
  head per task, as in Yu et al. (2020)'s SegNet setup that MT-CRL follows for NYUv2 and
  CityScapes (App. C.2), and a ResNet-50 with Taskonomy decoders for Taskonomy;
* ``pcgrad``, ``gradvac``, ``dann``, ``irm`` — the same shared trunk trained with those methods;
* ``mtcrl-var``, ``mtcrl-norm`` — MT-CRL (G-IRM Eq. 9 / Eq. 8) whose K = 8 modules are channel
  groups of the same encoder's output map (:class:`~causalmtl.nn.mtcrl.MTCRLNet`).

Everyone uses §4's environment protocol (``protocol="mtcrl"``: MT-CRL fits its task loss on
train and uses train/valid as two environments; the baselines train on train + valid). The
splits have environment shifts: NYUv2 by scene type (8:1:1), CityScapes by city, Taskonomy by
building (48/3/3).

Per task on test: NYUv2 mIoU, pixel accuracy, depth abs/rel error, normal mean/median angle and
within 11.25/22.5/30°; CityScapes mIoU, pixel accuracy and depth abs/rel error; Taskonomy the
per-task test losses (Table 8 reports losses). Relative improvement over MTL (Table 2) uses one
metric per task: mIoU, rel. error, mean angle, or the loss (directions from
:func:`causalmtl.metrics.direction.metric_direction`).

Data: ``data_dir`` (or ``$CAUSALMTL_DATA``) in the real layouts of
:mod:`causalmtl.data.nyuv2`, :mod:`~causalmtl.data.cityscapes`, :mod:`~causalmtl.data.taskonomy`;
``synthetic=true`` (preset ``tiny``) writes a small synthetic copy in the real layout into each
run's artefact directory instead (the run's info records ``synthetic``; the report then says
the numbers are not comparable with the paper).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import hparams as hp
from ..common import (
    ImageModelConfig,
    ImageTrainConfig,
    check_methods,
    history_rows,
    label,
    method_def,
    method_overrides,
    train_method,
)
from ..registry import Experiment, MissingDataError, RunContext, RunResult, RunSpec, register
from ..store import MetricRow

log = logging.getLogger(__name__)

DEFAULT_METHODS = ["stl", "mtl", "pcgrad", "gradvac", "dann", "irm", "mtcrl-var", "mtcrl-norm"]
#: Methods these experiments can run, and the architecture each uses here (baselines on the
#: shared trunk, not on MMoE as in the vector experiments).
DENSE_ARCH = {"stl": "stl", "mtl": "shared", "mtl-shared": "shared", "shared": "shared", "pcgrad": "shared",
              "gradvac": "shared", "dann": "shared", "irm": "shared", "vrex": "shared", "mtcrl": "mtcrl",
              "mtcrl-var": "mtcrl", "mtcrl-norm": "mtcrl", "mtcrl-none": "mtcrl"}
#: Paper table columns (Tables 8–10).
PAPER_METHODS = ("stl", "mtl", "pcgrad", "gradvac", "dann", "irm", "mtcrl-var")

#: Table 9 (NYUv2): task -> (metric, paper values in PAPER_METHODS order, paper unit scale)
PAPER_TABLE9 = {
    "segmentation": ("miou", (13.27, 17.64, 19.64, 19.68, 17.12, 17.54, 19.81)),
    "depth": ("rel_err", (0.653, 0.651, 0.591, 0.593, 0.637, 0.639, 0.585)),
    "normal": ("mean_angle", (35.18, 31.52, 30.98, 31.04, 31.69, 32.03, 30.85)),
}
#: Table 10 (CityScapes); depth rel. err as printed (33.85 …: the paper's units, likely ×100)
PAPER_TABLE10 = {
    "segmentation": ("miou", (50.87, 51.63, 52.84, 52.76, 51.91, 52.05, 53.12)),
    "depth": ("rel_err", (33.85, 32.75, 32.12, 32.08, 32.71, 32.64, 31.86)),
}
#: Table 8 (Taskonomy): test losses (CE for object/scene/segmentation, L1 curvature, L2 others)
PAPER_TABLE8 = {
    "object": ("loss", (3.37, 3.18, 3.09, 3.06, 3.13, 3.16, 3.01)),
    "scene": ("loss", (2.65, 2.59, 2.54, 2.51, 2.58, 2.59, 2.47)),
    "segment_semantic": ("loss", (1.68, 1.54, 1.47, 1.49, 1.53, 1.56, 1.43)),
    "principal_curvature": ("loss", (0.246, 0.224, 0.218, 0.212, 0.237, 0.226, 0.208)),
    "normal": ("loss", (0.138, 0.141, 0.136, 0.139, 0.152, 0.150, 0.125)),
    "edge_occlusion": ("loss", (0.134, 0.138, 0.132, 0.133, 0.137, 0.141, 0.128)),
    "keypoints2d": ("loss", (0.176, 0.171, 0.167, 0.163, 0.169, 0.168, 0.158)),
    "keypoints3d": ("loss", (0.194, 0.205, 0.199, 0.196, 0.204, 0.201, 0.191)),
}
#: Table 2's clearly legible entries (relative improvement over vanilla MTL, fractions). The
#: other entries of these columns are garbled in our copy of the paper and left out.
PAPER_TABLE2 = {
    "taskonomy": {"mtcrl-var": 0.071, "mtcrl-norm": 0.065},
    "cityscapes": {"mtcrl-var": 0.028, "mtcrl-norm": 0.029, "stl": -0.024},
    "nyuv2": {"mtcrl-var": 0.082, "mtcrl-norm": 0.080, "stl": -0.122},
}
#: Metric per task for Table 2's relative improvement.
NYU_MAIN = {"segmentation": "miou", "depth": "rel_err", "normal": "mean_angle"}
CS_MAIN = {"segmentation": "miou", "depth": "rel_err"}
TASKONOMY_TASKS = list(PAPER_TABLE8)
NOT_COMPARABLE = "tiny synthetic data: not comparable"


@dataclass
class DenseConfig:
    methods: list[str] = field(default_factory=lambda: list(DEFAULT_METHODS))
    data_dir: str | None = None  # the real layout; default $CAUSALMTL_DATA
    synthetic: bool = False  # write a synthetic copy in the real layout into each run's artefact dir
    synthetic_size: list[int] = field(default_factory=lambda: [32, 64])  # (H, W) of the synthetic images
    synthetic_n: int = 6  # NYUv2: images per scene type; CityScapes: per city; Taskonomy: points per building
    split_seed: int = 0  # seeds the environment split (the same split for every run seed)
    size: list[int] | None = None  # resize every row to (H, W); None: the stored size
    model: ImageModelConfig = field(default_factory=ImageModelConfig)
    train: ImageTrainConfig = field(default_factory=ImageTrainConfig)
    method: dict[str, Any] = field(default_factory=dict)  # --set method.lr=1e-4 etc.


@dataclass
class NYUv2Config(DenseConfig):
    layout: str = "auto"
    fractions: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # by scene type (MT-CRL 8:1:1)


@dataclass
class CityscapesConfig(DenseConfig):
    layout: str = "auto"
    classes: int = 7
    valid_size: float = 500  # valid images (MT-CRL: 500) or a fraction of train (< 1)
    size: list[int] | None = field(default_factory=lambda: [128, 256])


@dataclass
class TaskonomyConfig(DenseConfig):
    tasks: list[str] = field(default_factory=lambda: list(TASKONOMY_TASKS))
    building_counts: list[int] = field(default_factory=lambda: [48, 3, 3])  # train/valid/test buildings
    resize: int = 256
    crop: int = 224
    model: ImageModelConfig = field(default_factory=lambda: ImageModelConfig(encoder="resnet50", decoder="taskonomy"))


# --- plan / data ----------------------------------------------------------------------------
def _validate(cfg: DenseConfig) -> None:
    check_methods(cfg.methods)
    bad = [m for m in cfg.methods if m not in DENSE_ARCH]
    if bad:
        raise ValueError(f"methods {bad} are not available on the dense benchmarks; valid: {list(DENSE_ARCH)}")
    if len(cfg.synthetic_size) != 2 or min(cfg.synthetic_size) < 8:
        raise ValueError(f"synthetic_size must be [H, W] with sides >= 8, got {cfg.synthetic_size}")
    if cfg.synthetic_n < 1:
        raise ValueError(f"synthetic_n must be >= 1, got {cfg.synthetic_n}")
    if cfg.size is not None and (len(cfg.size) != 2 or min(cfg.size) < 1):
        raise ValueError(f"size must be [H, W] or null, got {cfg.size}")
    if cfg.train.num_workers < 0:
        raise ValueError(f"train.num_workers must be >= 0, got {cfg.train.num_workers}")
    if isinstance(cfg, TaskonomyConfig):
        unknown = [t for t in cfg.tasks if t not in TASKONOMY_ALL]
        if unknown or not cfg.tasks:
            raise ValueError(f"tasks {unknown or cfg.tasks} must be non-empty Taskonomy task names from {TASKONOMY_ALL}")
        if len(cfg.building_counts) != 3 or min(cfg.building_counts) < 1:
            raise ValueError(f"building_counts must be 3 ints >= 1 (train, valid, test), got {cfg.building_counts}")
    method_overrides(cfg.methods, cfg.method)


def _dataset(cfg: DenseConfig) -> str:
    return {NYUv2Config: "nyuv2", CityscapesConfig: "cityscapes", TaskonomyConfig: "taskonomy"}[type(cfg)]


def check_data(cfg: DenseConfig) -> None:
    """The data directory must hold the real layout unless ``synthetic`` (MissingDataError otherwise)."""
    _validate(cfg)
    if cfg.synthetic:
        return
    from ...data._sources import MissingDataError as DataMissing

    try:
        if isinstance(cfg, NYUv2Config):
            from ...data.nyuv2 import NYU_TASKS
            from ...data.nyuv2 import _find as find_nyu

            find_nyu(cfg.data_dir, cfg.layout, NYU_TASKS)
        elif isinstance(cfg, CityscapesConfig):
            from ...data.cityscapes import CS_TASKS
            from ...data.cityscapes import _find as find_cs

            find_cs(cfg.data_dir, cfg.layout, CS_TASKS, cfg.classes)
        else:
            from ...data.taskonomy import _find_root

            _find_root(cfg.data_dir)
    except DataMissing as exc:
        if isinstance(exc, MissingDataError):
            raise
        raise MissingDataError(str(exc)) from None


def plan(cfg: DenseConfig) -> list[RunSpec]:
    _validate(cfg)
    ds = _dataset(cfg)
    over = method_overrides(cfg.methods, cfg.method)
    return [RunSpec(run_key=f"{m}/trial={k}", method=m, dataset=ds, trial=k,
                    params={"hparams": {**hp.sample(method_def(m).family, ds, k), **over[m]}})
            for m in cfg.methods for k in range(cfg.train.trials)]


def _load(cfg: DenseConfig, ctx: RunContext) -> tuple[Any, Path | None]:
    """The splits (and the synthetic copy's directory, removed after the run)."""
    h, w = (int(v) for v in cfg.synthetic_size)
    size = None if cfg.size is None else tuple(int(v) for v in cfg.size)
    syn = ctx.artefact_dir / "synthetic-data" if cfg.synthetic else None
    path = str(syn) if syn is not None else cfg.data_dir
    if syn is not None:
        shutil.rmtree(syn, ignore_errors=True)
    if isinstance(cfg, NYUv2Config):
        from ...data.nyuv2 import load_nyuv2, write_synthetic_nyuv2

        if syn is not None:
            write_synthetic_nyuv2(syn, n=5 * cfg.synthetic_n, size=(h, w), seed=ctx.seed, n_scene_types=5)
        return load_nyuv2(path, layout="auto" if syn is not None else cfg.layout, split="scene", size=size,
                          seed=cfg.split_seed, fractions=tuple(cfg.fractions)), syn
    if isinstance(cfg, CityscapesConfig):
        from ...data.cityscapes import load_cityscapes, write_synthetic_cityscapes

        if syn is not None:
            write_synthetic_cityscapes(syn, n_per_city=cfg.synthetic_n, size=(h, w), seed=ctx.seed)
        vs = cfg.valid_size if cfg.valid_size < 1 else int(cfg.valid_size)
        return load_cityscapes(path, layout="auto" if syn is not None else cfg.layout, classes=cfg.classes,
                               size=size, seed=cfg.split_seed, valid_size=vs), syn
    from ...data.taskonomy import load_taskonomy, paper_transforms, write_synthetic_taskonomy

    if not isinstance(cfg, TaskonomyConfig):
        raise TypeError(f"cfg must be an NYUv2Config, CityscapesConfig or TaskonomyConfig, got {type(cfg).__name__}")
    n_train, n_valid, n_test = (int(c) for c in cfg.building_counts)  # 3 ints (_validate)
    counts = (n_train, n_valid, n_test)
    if syn is not None:
        write_synthetic_taskonomy(syn, buildings=sum(counts), points=cfg.synthetic_n, views=2, size=h, seed=ctx.seed)
    tf = paper_transforms(cfg.resize, cfg.crop)
    splits = load_taskonomy(path, tasks=list(cfg.tasks), split="buildings", building_counts=counts,
                            seed=cfg.split_seed, transform=tf["eval"],
                            cache_dir=None if syn is None else syn / "cache")
    splits.train.transform = tf["train"]
    return splits, syn


#: The metrics recorded per task kind (all of evaluate's dense metrics are recorded; these are the
#: ones the report tabulates).
TABLE_METRICS = {
    "nyuv2": {"segmentation": ["miou", "pix_acc"], "depth": ["abs_err", "rel_err"],
              "normal": ["mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"]},
    "cityscapes": {"segmentation": ["miou", "pix_acc"], "depth": ["abs_err", "rel_err"]},
}


def run(cfg: DenseConfig, spec: RunSpec, ctx: RunContext) -> RunResult:
    from ...metrics.direction import metric_direction
    from ...train import evaluate

    tcfg = cfg.train
    notes = []
    if tcfg.amp and not str(ctx.device).startswith("cuda"):
        tcfg = dataclasses.replace(tcfg, amp=False)
        notes.append(f"amp needs CUDA; off on device {ctx.device}")
    splits, syn = _load(cfg, ctx)
    try:
        trained = train_method(spec.method, splits, cfg.model, tcfg, dict(spec.params["hparams"]), ctx.seed,
                               ctx.device, ctx.artefact_dir, protocol="mtcrl", progress=ctx.progress,
                               arch=DENSE_ARCH[spec.method])
        rows = history_rows(trained)
        for split in ("valid", "test"):
            res = evaluate(trained.model, getattr(splits, split), batch_size=int(tcfg.eval_batch_size),
                           device=ctx.device)
            for key, v in res.items():
                if "/" not in key:
                    continue
                metric, task = key.split("/", 1)
                try:
                    d = metric_direction(metric) > 0
                except ValueError:
                    d = None
                rows.append(MetricRow(metric, float(v), task=task, split=split, higher_is_better=d))
    finally:
        if syn is not None:
            shutil.rmtree(syn, ignore_errors=True)
    info = {"hparams": spec.params["hparams"], "best_epoch": trained.best_epoch, "synthetic": bool(cfg.synthetic),
            "data_dir": None if cfg.synthetic else cfg.data_dir, "environments": list(splits.meta.get("environments", [])),
            "n_rows": {s: len(getattr(splits, s)) for s in ("train", "valid", "test")},
            "architecture": DENSE_ARCH[spec.method], "encoder": cfg.model.encoder,
            "weights": cfg.model.weights or "none (trained from scratch)", "notes": notes}
    return RunResult(rows, {}, info=info)


# --- report -----------------------------------------------------------------------------------
def _per_seed(frame: Any, method: str, metric: str, task: str, split: str = "test") -> Any:
    sel = frame[(frame["method"] == method) & (frame["name"] == metric) & (frame["task"] == task)
                & (frame["split"] == split)]
    return sel.groupby("seed")["value"].mean()


def _ms(s: Any, scale: float = 1.0, fmt: str = "{:.3f}") -> str:
    if len(s) == 0:
        return "not run"
    m = float(s.mean()) * scale
    return fmt.format(m) if len(s) == 1 else f"{fmt.format(m)} ± {fmt.format(float(s.std(ddof=1)) * scale)}"


def _relative(frame: Any, methods: list[str], main: dict[str, str]) -> dict[str, Any]:
    """Per method, per-seed Δ over MTL (Table 2): mean over tasks of the one main metric each."""
    import pandas as pd

    from ...metrics.relative import relative_improvement_from_metrics

    base = {t: _per_seed(frame, "mtl", m, t) for t, m in main.items()}
    out = {}
    for meth in methods:
        ours = {t: _per_seed(frame, meth, m, t) for t, m in main.items()}
        seeds = sorted(set.intersection(*(set(s.index) for s in [*ours.values(), *base.values()])))
        vals = []
        for sd in seeds:
            o = {f"{main[t]}/{t}": float(ours[t][sd]) for t in main}
            b = {f"{main[t]}/{t}": float(base[t][sd]) for t in main}
            try:
                vals.append(relative_improvement_from_metrics(o, b))
            except ValueError:  # a zero / non-finite baseline value
                vals.append(float("nan"))
        out[meth] = pd.Series(vals, index=seeds, dtype=float)
    return out


def _verdict(synthetic: bool, ours: float | None, ours_mtl: float | None, paper: float, paper_mtl: float,
             higher: bool) -> str:
    if synthetic:
        return NOT_COMPARABLE
    if ours is None or ours_mtl is None or not np.isfinite(ours):
        return "–"
    sign = (1 if higher else -1)
    a, b = sign * (ours - ours_mtl), sign * (paper - paper_mtl)
    if b == 0 or a == 0:
        return "no order vs MTL to compare"
    return "same order vs MTL as the paper" if (a > 0) == (b > 0) else "opposite order vs MTL to the paper"


def report(ctx: Any) -> list[Any]:
    import pandas as pd

    from ...metrics.direction import metric_direction
    from ...report.blocks import Comparison, PaperComparison, Table, Text

    cfg = ctx.config
    frame = ctx.frame
    if frame.empty:
        return [Text("No finished run.", kind="warning")]
    ds = _dataset(cfg)
    infos = [ctx.artefacts(r.id)[1] for r in ctx.runs]
    synthetic = any(i.get("synthetic") for i in infos)
    methods = [m for m in cfg.methods if (frame["method"] == m).any()]
    paper_tab, tab_name, main = {
        "nyuv2": (PAPER_TABLE9, "Table 9", NYU_MAIN),
        "cityscapes": (PAPER_TABLE10, "Table 10", CS_MAIN),
        "taskonomy": (PAPER_TABLE8, "Table 8", {t: "loss" for t in getattr(cfg, "tasks", [])}),
    }[ds]
    env = {"nyuv2": "scene type", "cityscapes": "city", "taskonomy": "building"}[ds]
    blocks: list[Any] = [Text(
        f"{ds}: STL, MTL = hard parameter sharing (one shared {cfg.model.encoder} encoder, a head per task; "
        "Yu et al. 2020's setup), PCGrad / GradVac / DANN / IRM on that shared trunk, and MT-CRL whose "
        f"K = {cfg.model.n_modules} modules are channel groups of the same encoder. Environments: {env}; §4 "
        "protocol (MT-CRL: train and valid as two environments, task loss on train; the others train on "
        "train + valid).")]
    if synthetic:
        blocks.append(Text("These runs used a tiny synthetic copy of the data written in the real layout: "
                           f"the numbers check the pipeline only ({NOT_COMPARABLE} with the paper).", kind="warning"))
    # per-task tables (ours)
    present = set(frame.loc[frame["split"] == "test", "task"]) - {""}
    tasks = [t for t in main if t in present] + sorted(present - set(main))
    for t in tasks:
        names = TABLE_METRICS.get(ds, {}).get(t, ["loss"])
        rows = []
        for m in methods:
            row = {"method": label(m)}
            for metric in names:
                row[metric] = _ms(_per_seed(frame, m, metric, t))
            rows.append(row)
        blocks.append(Table(pd.DataFrame(rows), caption=f"{t}: test metrics (mean ± std over seeds)"))
    # beside the paper
    comps = []
    for t, (metric, values) in paper_tab.items():
        if t not in tasks:
            continue
        scale = 100.0 if metric == "miou" else 1.0  # the paper prints mIoU in %
        higher = metric_direction(metric) > 0
        paper = dict(zip(PAPER_METHODS, values))
        mtl_s = _per_seed(frame, "mtl", metric, t)
        ours_mtl = float(mtl_s.mean()) * scale if len(mtl_s) else None
        for m in methods:
            if m not in paper:  # the paper's MT-CRL column is G-IRM var
                continue
            s = _per_seed(frame, m, metric, t)
            ours = float(s.mean()) * scale if len(s) else None
            comps.append(Comparison(f"{label(m)}, {t} {metric}", paper[m], ours,
                                    float(s.std(ddof=1)) * scale if len(s) > 1 else None, len(s),
                                    "MTL: the baseline" if m == "mtl" and not synthetic else
                                    _verdict(synthetic, ours, ours_mtl, paper[m], paper["mtl"], higher)))
    if comps:
        blocks.append(PaperComparison(comps, caption=f"{tab_name}: ours beside the paper ({ds}; mIoU in %)",
                                      source=f"Hu et al. 2022, {tab_name}"))
    # Table 2
    if "mtl" in methods:
        rel = _relative(frame, methods, main)
        rel_rows = [{"method": label(m), "relative improvement over MTL": _ms(s, 100.0, "{:+.1f}") + " %",
                 "paper (Table 2)": (f"{PAPER_TABLE2[ds][m] * 100:+.1f} %" if m in PAPER_TABLE2[ds] else "–"),
                 "seeds": int(s.notna().sum())} for m, s in rel.items() if m != "mtl"]
        blocks.append(Table(pd.DataFrame(rel_rows), caption="Table 2's measure: mean over tasks of the relative "
                            f"improvement over MTL on {', '.join(f'{t} {m}' for t, m in main.items())}"))
        comps = []
        for m, paper_rel in PAPER_TABLE2[ds].items():
            s = rel.get(m)
            if s is None:
                continue
            ours = float(s.mean()) if len(s) else None
            if synthetic:
                v = NOT_COMPARABLE
            elif ours is None or not np.isfinite(ours):
                v = "–"
            else:
                v = "same sign as the paper" if (ours > 0) == (paper_rel > 0) else "opposite sign to the paper"
            comps.append(Comparison(f"{label(m)} over MTL", paper_rel, ours, float(s.std(ddof=1)) if len(s) > 1 else None,
                                    len(s), v, fmt="{:+.3f}"))
        if comps:
            blocks.append(PaperComparison(comps, caption=f"Table 2, {ds} column (legible entries; fractions)",
                                          source="Hu et al. 2022, Table 2"))
    else:
        blocks.append(Text("Table 2 needs the MTL baseline (method 'mtl'); it was not run.", kind="note"))
    return blocks


from ...data.taskonomy import MTCRL_TASKS as _MT  # noqa: E402

TASKONOMY_ALL = list(_MT)

_TINY_TRAIN = {"epochs": 1, "batch_size": 8, "patience": 1, "eval_batch_size": 16}
_GPU = {"num_workers": 8, "amp": True, "channels_last": True}

register(Experiment(
    name="nyuv2",
    description="MT-CRL Tables 9 and 2 on NYUv2 (STL, MTL, PCGrad, GradVac, DANN, IRM, MT-CRL var/norm; SegNet, "
                "split by scene type); time: --preset tiny (real data: not measured)",
    # the tiny preset, measured on 2 CPU cores (9.4 s wall with start-up); the paper preset's time on a
    # GPU is not measured (no GPU was available)
    expected_seconds=10,
    config_cls=NYUv2Config,
    plan=plan,
    run=run,
    report=report,
    presets={
        "tiny": {"synthetic": True, "synthetic_size": [32, 32], "synthetic_n": 6,
                 "model": {"encoder_width": "tiny", "n_modules": 4}, "train": dict(_TINY_TRAIN)},
        # Yu et al. 2020 / MTAN's NYUv2 setting: SegNet, 288 x 384, batch 2, Adam 1e-4, 200 epochs
        "paper": {"model": {"encoder": "segnet", "encoder_width": "standard", "n_modules": 8},
                  "train": {"epochs": 200, "batch_size": 2, "patience": 200, "eval_batch_size": 8, **_GPU},
                  "method": {"lr": 1e-4}},
    },
    check_data=check_data,
    reproduces="MT-CRL Tables 9 and 2 (NYUv2 column)",
))

register(Experiment(
    name="cityscapes",
    description="MT-CRL Tables 10 and 2 on CityScapes (STL, MTL, PCGrad, GradVac, DANN, IRM, MT-CRL var/norm; "
                "SegNet, split by city); time: --preset tiny (real data: not measured)",
    # the tiny preset, measured on 2 CPU cores (8.9 s wall with start-up); the paper preset's time on a
    # GPU is not measured (no GPU was available)
    expected_seconds=10,
    config_cls=CityscapesConfig,
    plan=plan,
    run=run,
    report=report,
    presets={
        "tiny": {"synthetic": True, "synthetic_size": [32, 64], "synthetic_n": 2, "size": None, "valid_size": 0.3,
                 "model": {"encoder_width": "tiny", "n_modules": 4}, "train": dict(_TINY_TRAIN)},
        # MTAN's CityScapes setting: 7 classes, 128 x 256, batch 8, Adam 1e-4, 200 epochs
        "paper": {"size": [128, 256], "classes": 7, "valid_size": 500,
                  "model": {"encoder": "segnet", "encoder_width": "standard", "n_modules": 8},
                  "train": {"epochs": 200, "batch_size": 8, "patience": 200, "eval_batch_size": 32, **_GPU},
                  "method": {"lr": 1e-4}},
    },
    check_data=check_data,
    reproduces="MT-CRL Tables 10 and 2 (CityScape column)",
))

register(Experiment(
    name="taskonomy",
    description="MT-CRL Tables 8 and 2 on Taskonomy (8 tasks; STL, MTL, PCGrad, GradVac, DANN, IRM, MT-CRL "
                "var/norm; ResNet-50 + Taskonomy decoders, 48/3/3 buildings); time: --preset tiny (real data: not measured)",
    # the tiny preset, measured on 2 CPU cores (13.2 s wall with start-up); the paper preset's time on a
    # GPU is not measured (no GPU was available)
    expected_seconds=15,
    config_cls=TaskonomyConfig,
    plan=plan,
    run=run,
    report=report,
    presets={
        "tiny": {"synthetic": True, "synthetic_size": [32, 32], "synthetic_n": 3, "building_counts": [3, 1, 1],
                 "resize": 32, "crop": 32,
                 "model": {"encoder": "resnet18", "encoder_width": 4, "decoder": "conv", "n_modules": 4},
                 "train": dict(_TINY_TRAIN)},
        # the paper: ResNet-50 (ImageNet weights from model.weights=PATH), 15-layer upsampling
        # decoders, 256 -> 224 crops, 48/3/3 buildings; batch size and epochs are not stated in
        # the paper (ours: 64, 30)
        "paper": {"resize": 256, "crop": 224, "building_counts": [48, 3, 3],
                  "model": {"encoder": "resnet50", "decoder": "taskonomy", "n_modules": 8},
                  "train": {"epochs": 30, "batch_size": 64, "patience": 30, "eval_batch_size": 64, **_GPU}},
    },
    check_data=check_data,
    reproduces="MT-CRL Tables 8 and 2 (Taskonomy column)",
))
