"""Experiment ``movielens``: MT-CRL Table 7 and the title-word case study (MT-CRL §4).

Per-genre rating regression on MovieLens (:func:`causalmtl.data.load_movielens`: timestamp
split 8:1:1, valid/test users and movies unseen in train dropped). Methods (MT-CRL Appendix
C.2): STL, vanilla MTL and the baselines PCGrad, GradVac, DANN, IRM on the MMoE backbone, and
MT-CRL (G-IRM variance form, Eq. 9). Every encoder (an MMoE expert, an STL network, an MT-CRL
module) is "an embedding layer followed by a two-layer MLP"
(:class:`causalmtl.nn.EmbeddingEncoder` over user id, movie id and the bag of title words);
every task head is one linear layer.

Protocol: as in the paper (§4 "Experimental Setup") the valid split joins training as a second
environment for every method (``protocol="mtcrl"`` of :class:`causalmtl.train.Trainer`), so the
environment-based methods (DANN, IRM, MT-CRL) see train and valid as two environments; the
epoch is selected on the valid loss, which is therefore not held out; the test split is never
looked at. Metric: MSE per genre and its mean ("Avg. MSE", Table 7), plus the relative
improvement over vanilla MTL (Table 2's definition; lower MSE is better).

Case study (§4, "Case Study"): for one genre (default ``Children``), the module each model
leans on most (MMoE: mean gate weight of the genre's test rows; MT-CRL: the graph weight
``A[t, k]``) and that module's top title words. A word's score is the gradient × input of the
genre's prediction through that module with respect to the word's embedding (the title bag
of the module's embedding layer), averaged over the word's occurrences in the genre's test
ratings — a Grad-CAM-style attribution (the paper uses Grad-CAM; details are not given there).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import hparams as hp
from ..registry import Experiment, MissingDataError, RunContext, RunResult, RunSpec, register
from ..store import MetricRow

if TYPE_CHECKING:
    import torch

    from ...data.base import DatasetSplits

log = logging.getLogger(__name__)

#: MT-CRL Table 7 (ml-10m), Avg. MSE mean ± std over seeds.
PAPER_TABLE7: dict[str, tuple[float, float]] = {
    "stl": (0.894, 0.006), "mtl": (0.892, 0.005), "pcgrad": (0.894, 0.006),
    "gradvac": (0.895, 0.005), "dann": (0.896, 0.007), "irm": (0.896, 0.004),
    "mtcrl": (0.902, 0.006),
}  # fmt: skip

#: method -> (architecture, training method, fixed method hyperparameters, label)
METHODS: dict[str, tuple[str, str, dict[str, Any], str]] = {
    "stl": ("stl", "erm", {}, "STL"),
    "mtl": ("mmoe", "erm", {}, "MTL"),
    "pcgrad": ("mmoe", "pcgrad", {}, "PCGrad"),
    "gradvac": ("mmoe", "gradvac", {}, "GradVac"),
    "dann": ("mmoe", "dann", {}, "DANN"),
    "irm": ("mmoe", "irm", {}, "IRM"),
    "mtcrl": ("mtcrl", "mtcrl", {"girm": "var", "check_labels": False}, "MT-CRL + G-IRM var"),
}


@dataclass
class MovieLensData:
    """Which MovieLens files and tasks (see :func:`causalmtl.data.load_movielens`)."""

    path: str = ""  # "" = $CAUSALMTL_DATA (a MovieLens directory or a root holding one)
    genres: list[str] = field(default_factory=lambda: ["paper"])  # ["paper"] = the paper's 18
    min_word_count: int = 2
    max_title_words: int = 12


@dataclass
class MovieLensModel:
    """Embedding + two-layer MLP encoders, one-layer heads."""

    dim: int = 16  # embedding width per field (user, movie, title)
    hidden: list[int] = field(default_factory=lambda: [64, 32])  # the two MLP layers
    n_experts: int = 4  # MMoE experts
    n_modules: int = 4  # MT-CRL modules K
    width: int = 32  # MT-CRL total width d (each module d / K)
    routing: str = "concat"  # MT-CRL: modules side by side ("concat") or summed ("sum", §3.1 literally)


@dataclass
class MovieLensTrain:
    epochs: int = 10
    batch_size: int = 512
    patience: int = 3
    trials: int = 1  # random-search trials per method (trial 0 = documented defaults)


@dataclass
class MovieLensConfig:
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    data: MovieLensData = field(default_factory=MovieLensData)
    model: MovieLensModel = field(default_factory=MovieLensModel)
    train: MovieLensTrain = field(default_factory=MovieLensTrain)
    case_genre: str = "Children"
    top_words: int = 8
    min_word_occurrences: int = 2


def _check(cfg: MovieLensConfig) -> None:
    bad = [m for m in cfg.methods if m not in METHODS]
    if bad or not cfg.methods:
        raise ValueError(
            f"methods has unknown or no method(s) {bad}; valid methods are: {list(METHODS)}"
        )
    if len(cfg.model.hidden) != 2:
        raise ValueError(f"model.hidden must hold the two MLP widths, got {cfg.model.hidden}")
    for k in ("epochs", "batch_size", "patience", "trials"):
        if getattr(cfg.train, k) < 1:
            raise ValueError(f"train.{k} must be >= 1, got {getattr(cfg.train, k)}")


#: (path, genres, min_word_count, max_title_words) → the shifted splits (one entry)
_CACHE: dict[tuple[str, str, int, int], DatasetSplits] = {}


def load_data(cfg: MovieLensConfig) -> DatasetSplits:
    """The splits (cached per process) with user/movie ids shifted by one (0 = padding)."""
    from ...data.base import DatasetSplits, MultiTaskDataset
    from ...data.movielens import load_movielens

    d = cfg.data
    genres: Any = "paper" if list(d.genres) == ["paper"] else (list(d.genres) or None)
    key = (d.path, str(genres), d.min_word_count, d.max_title_words)
    if key not in _CACHE:
        s = load_movielens(d.path or None, genres=genres, min_word_count=d.min_word_count,
                           max_title_words=d.max_title_words)  # fmt: skip

        def shift(ds: MultiTaskDataset) -> MultiTaskDataset:
            if not isinstance(ds.inputs, Mapping):
                raise TypeError(f"MovieLens inputs must be a dict of id arrays, got {type(ds.inputs).__name__}")
            x = dict(ds.inputs)
            x["user"] = x["user"] + 1
            x["movie"] = x["movie"] + 1
            return MultiTaskDataset(x, ds.targets, ds.tasks, ds.env, ds.name)

        _CACHE.clear()
        _CACHE[key] = DatasetSplits(shift(s.train), shift(s.valid), shift(s.test), s.name, s.meta)
    return _CACHE[key]


def check_data(cfg: MovieLensConfig) -> None:
    """Fail early (before any run) when the MovieLens files are absent (files are not read)."""
    from ...data._sources import MissingDataError as DataMissing
    from ...data.movielens import _find_directory, detect_layout

    _check(cfg)
    try:
        detect_layout(_find_directory(cfg.data.path or None))
    except DataMissing as exc:
        raise MissingDataError(str(exc)) from None


def plan(cfg: MovieLensConfig) -> list[RunSpec]:
    _check(cfg)
    return [
        RunSpec(run_key=f"method={m}/trial={k}", method=m, dataset="movielens", trial=k)
        for m in cfg.methods
        for k in range(cfg.train.trials)
    ]


def build_model(arch: str, splits: Any, mcfg: MovieLensModel, seed: int) -> Any:
    """STL, MMoE or MT-CRL network whose encoders are embedding + two-layer MLP."""
    from ...nn import STL, EmbeddingEncoder, MMoE, seeded
    from ...nn.mtcrl import MTCRLNet

    meta = splits.meta
    vocab = {
        "user": meta["n_users"] + 1,
        "movie": meta["n_movies"] + 1,
        "title": len(meta["vocabulary"]),
    }
    h1, h2 = mcfg.hidden
    tasks = splits.tasks
    with seeded(seed):
        if arch == "stl":
            return STL(lambda: EmbeddingEncoder(vocab, mcfg.dim, (h1, h2)), tasks)
        if arch == "mmoe":
            return MMoE(lambda: EmbeddingEncoder(vocab, mcfg.dim, (h1, h2)), tasks,
                        n_experts=mcfg.n_experts, gate_encoder=EmbeddingEncoder(vocab, mcfg.dim, (h2,)))  # fmt: skip
        if arch == "mtcrl":
            return MTCRLNet(lambda d: EmbeddingEncoder(vocab, mcfg.dim, (h1, d)), tasks,
                            n_modules=mcfg.n_modules, width=mcfg.width, routing=mcfg.routing)  # fmt: skip
    raise ValueError(f"unknown architecture {arch!r}")


def build_method(name: str, model: Any, method_h: dict[str, Any]) -> Any:
    from ...methods import METHODS as BASELINES

    if name == "mtcrl":
        from ...methods.mtcrl import MTCRL

        return MTCRL(model, **method_h)
    return BASELINES[name](model, **method_h)


def predictions(model: Any, data: Any, device: str) -> np.ndarray:
    """Predicted ratings ``(N, G)``."""
    from ...train import predict_log_probs

    return np.stack(
        [np.asarray(o).reshape(-1) for o in predict_log_probs(model, data, device=device)], axis=1
    )


def run(cfg: MovieLensConfig, spec: RunSpec, ctx: RunContext) -> RunResult:
    from ...data.movielens import genre_mse
    from ...train import Trainer

    _check(cfg)
    splits = load_data(cfg)
    arch, method_name, fixed, _ = METHODS[spec.method]
    family = "mtl" if spec.method == "mtl" else spec.method
    h = hp.sample(family, "movielens", spec.trial)
    trainer_h = {k: v for k, v in h.items() if k in hp.TRAINER_KEYS}
    method_h = {k: v for k, v in h.items() if k not in hp.TRAINER_KEYS and k not in hp.MODEL_KEYS}
    method_h.update(fixed)
    model = build_model(arch, splits, cfg.model, ctx.seed)
    method = build_method(method_name, model, method_h)
    t0 = time.perf_counter()
    trainer = Trainer(
        method, epochs=cfg.train.epochs, batch_size=cfg.train.batch_size,
        lr=float(trainer_h.get("lr", 1e-3)), weight_decay=float(trainer_h.get("weight_decay", 0.0)),
        patience=cfg.train.patience, select="valid/loss", protocol="mtcrl", device=ctx.device,
        seed=ctx.seed, checkpoint_dir=ctx.artefact_dir / "ckpt", progress=ctx.progress,
        tensorboard_dir=ctx.tensorboard_dir,
    )  # fmt: skip
    result = trainer.fit(splits, resume=True)
    seconds = time.perf_counter() - t0
    metrics: list[MetricRow] = []
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "valid", "test"):
        data = getattr(splits, split)
        per, avg = genre_mse(predictions(model, data, ctx.device), data.targets)
        metrics += [MetricRow("mse", float(v), task=t.name, split=split, higher_is_better=False)
                    for v, t in zip(per, splits.tasks)]  # fmt: skip
        metrics.append(MetricRow("mse_avg", avg, split=split, higher_is_better=False))
        arrays[f"mse_{split}"] = per
    metrics += [
        MetricRow("best_epoch", float(result.best_epoch), split="train", higher_is_better=None),
        MetricRow("train_seconds", seconds, split="train", higher_is_better=False),
    ]
    info: dict[str, Any] = {"hparams": {k: v for k, v in h.items()}, "genres": list(splits.meta["genres"]),
                            "sizes": {k: len(v) for k, v in splits}}  # fmt: skip
    if arch in ("mmoe", "mtcrl") and cfg.case_genre in splits.meta["genres"]:
        info["case_study"] = case_study(model, splits, cfg.case_genre, ctx.device, cfg.top_words,
                                        cfg.min_word_occurrences)  # fmt: skip
        arrays["module_usage"] = np.asarray(info["case_study"]["usage"])
    import shutil

    shutil.rmtree(ctx.artefact_dir / "ckpt", ignore_errors=True)
    return RunResult(metrics=metrics, arrays=arrays, info=info)


# --- case study ----------------------------------------------------------------------------
def _modules(model: Any) -> list[Any]:
    return list(model.experts) if hasattr(model, "experts") else list(model.encoders)


def _genre_output(model: Any, x: Any, zs: list[Any], t: int) -> Any:
    """The genre-``t`` prediction recomputed from the module outputs ``zs`` (differentiable)."""
    import torch

    z = torch.stack(zs, dim=1)  # (B, K, D)
    if hasattr(model, "experts"):  # MMoE: y_t = h_t(sum_k g_tk(x) z_k)
        gates = model.gate_weights(x)[:, t]  # (B, K)
        mixed = torch.einsum("bk,bkd->bd", gates, z)
    else:  # MT-CRL: y_t = f_t(routed z), the model's own routing of A_t
        mixed = model.mix(z, model.graph)[:, t]
    return model.heads[t](mixed).reshape(-1)


def title_word_attribution(
    encoder: Any, x: Mapping[str, torch.Tensor], v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient × input of ``Σ_b <v_b, encoder(x)_b>`` w.r.t. each title-word embedding.

    Re-runs an :class:`~causalmtl.nn.EmbeddingEncoder` with the title bag written out as a
    masked mean (identical to ``EmbeddingBag(mode="mean", padding_idx=0)``) so that every word
    occurrence has its own embedding tensor. Returns ``(scores (B, L), z (B, D))``; padding
    positions score 0.
    """
    import torch

    fe = encoder[0]
    parts = []
    emb: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    for k in fe.fields:
        ids = x[k].long()
        if k == "title":
            mask = (ids != 0).to(torch.float32)
            emb = fe.bags[k].weight[ids].detach().requires_grad_(True)  # (B, L, dim)
            parts.append((emb * mask[..., None]).sum(1) / mask.sum(1, keepdim=True).clamp(min=1))
        else:
            parts.append(fe.bags[k](ids.reshape(len(ids), -1)))
    if emb is None or mask is None:
        raise ValueError(f"encoder must embed a 'title' field, got fields {list(fe.fields)}")
    z = torch.nn.Sequential(*list(encoder)[1:])(torch.cat(parts, dim=1))
    (grad,) = torch.autograd.grad((z * v).sum(), emb)
    return (grad * emb).sum(-1) * mask, z


def case_study(
    model: Any, splits: Any, genre: str, device: str, top: int = 8, min_occ: int = 2
) -> dict[str, Any]:
    """Module usage of ``genre`` and the top title words of every module (see module doc)."""
    import torch

    from ...methods.batch import Batch

    t = list(splits.meta["genres"]).index(genre)
    data = splits.test
    rows = np.flatnonzero(~np.isnan(data.targets[:, t]))
    if rows.size == 0:
        return {"genre": genre, "usage": [], "top_words": [], "module": -1}
    batch = Batch.from_dataset(data, rows, device=torch.device(device))
    x = batch.x
    if not isinstance(x, Mapping):
        raise TypeError(f"MovieLens batches must hold a dict of id tensors, got {type(x).__name__}")
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            if hasattr(model, "experts"):
                usage = model.gate_weights(x)[:, t].mean(0).cpu().numpy()
            else:
                usage = model.graph[t].detach().cpu().numpy()
        mods = _modules(model)
        zs = [m(x).detach().requires_grad_(True) for m in mods]
        out = _genre_output(model, x, zs, t)
        grads = torch.autograd.grad(out.sum(), zs)  # task-to-module gradients ∂y_t/∂z_k
        vocab = splits.meta["vocabulary"]
        ids = x["title"].cpu().numpy().ravel()
        top_words = []
        for k, m in enumerate(mods):
            scores, _ = title_word_attribution(m, x, grads[k])
            s = scores.detach().cpu().numpy().ravel()
            total = np.bincount(ids, weights=s, minlength=len(vocab))
            count = np.bincount(ids, minlength=len(vocab))
            mean = np.where(count >= min_occ, total / np.maximum(count, 1), -np.inf)
            mean[:2] = -np.inf  # <pad>, <unk>
            order = np.argsort(-mean, kind="stable")[:top]
            top_words.append([vocab[i] for i in order if np.isfinite(mean[i])])
    finally:
        model.train(was)
    return {
        "genre": genre,
        "usage": usage.tolist(),
        "module": int(np.argmax(usage)),
        "top_words": top_words,
    }


# --- report --------------------------------------------------------------------------------
def report(ctx: Any) -> list[Any]:
    import pandas as pd

    from ...metrics.relative import relative_improvement_table
    from ...report import Comparison, PaperComparison, Table, Text
    from ...report.tables import seed_mean, summary_table

    frame = ctx.frame
    blocks: list[Any] = []
    if frame.empty:
        return [Text("No finished run yet.", kind="warning")]
    order = [m for m in METHODS if m in set(frame["method"])]
    blocks.append(Table(summary_table(frame, split="test", metrics=["mse_avg"], row_order=order),
                        caption="Test Avg. MSE over genres (mean ± std over seeds; Table 7)"))  # fmt: skip
    blocks.append(Table(summary_table(frame, split="test", metrics=["mse"], row_order=order),
                        caption="Test MSE per genre (mean ± std over seeds)"))  # fmt: skip
    per = frame[(frame["name"] == "mse") & (frame["split"] == "test")]
    if "mtl" in set(per["method"]):
        rel = relative_improvement_table(
            per[["method", "seed", "task", "value", "higher_is_better"]], "mtl"
        )
        blocks.append(Table(rel, caption="Relative improvement over vanilla MTL, averaged over genres "
                                         "(MT-CRL Table 2's definition; positive = lower MSE)"))  # fmt: skip
    rows = []
    for m in order:
        mean, std, n = seed_mean(frame, "mse_avg", split="test", method=m)
        paper = PAPER_TABLE7.get(m)
        rows.append(
            Comparison(f"{METHODS[m][3]} Avg. MSE", paper[0] if paper else None, mean, std, n)
        )
    blocks.append(PaperComparison(rows, caption="Avg. test MSE: MT-CRL Table 7 (ml-10m) beside ours",
                                  source="Hu et al. 2022, Table 7"))  # fmt: skip
    case = []
    for r in ctx.runs:
        _, info = ctx.artefacts(r.id)
        cs = info.get("case_study")
        if cs and cs.get("top_words"):
            k = cs["module"]
            case.append({"method": METHODS[r.method][3], "seed": r.seed, "genre": cs["genre"], "module": k,
                         "usage": round(float(cs["usage"][k]), 3), "top words": ", ".join(cs["top_words"][k])})  # fmt: skip
    if case:
        blocks.append(
            Table(
                pd.DataFrame(case),
                caption=(
                    "Case study (MT-CRL §4): the module the genre leans on most (MMoE gate / MT-CRL graph "
                    "weight) and its top title words by gradient × input; paper: vanilla MMoE's module for "
                    "children movies attends 'strip', 'die'; after MT-CRL 'Pink', 'Parenthood', 'Alice', 'Jungle'"
                ),
            )
        )
    return blocks


MOVIELENS = register(
    Experiment(
        name="movielens",
        description="MovieLens per-genre rating regression: STL, MTL, PCGrad, GradVac, DANN, IRM, "
        "MT-CRL on MMoE; Avg. MSE, relative improvement, title-word case study.",
        # measured on ml-latest-small, 2 loaded cores, 1 thread: STL/MTL/DANN/IRM/MT-CRL about
        # 10, 4, 5, 6 and 4 s per epoch; PCGrad and GradVac about 40 and 37 s per epoch (T = 18,
        # one backward pass per task, Gram-space aggregation); 10 epochs of all seven methods
        expected_seconds=1100,
        config_cls=MovieLensConfig,
        plan=plan,
        run=run,
        report=report,
        presets={
            "tiny": {
                "train": {"epochs": 1, "batch_size": 256},
                "model": {"dim": 4, "hidden": [8, 8], "n_experts": 2, "n_modules": 2, "width": 8},
            }
        },  # fmt: skip
        check_data=check_data,
        reproduces="MT-CRL Table 7 and the §4 case study",
    )
)
