"""Shared pieces of the built-in experiments: configs, model/method construction, training,
evaluation, GMTL target-shift evaluation and report helpers.

Method names used by the experiments (``METHODS``, defined in :mod:`.method_table` and
re-exported here) map to an architecture, a training method and a hyperparameter family of
:mod:`causalmtl.experiments.hparams`:

=============  ==================  =======================  ====================================
name           architecture        training method          notes
=============  ==================  =======================  ====================================
stl / nps      STL (one net/task)  ERM                      NPS = the STL nets decoded jointly
shared         shared trunk        ERM                      hard parameter sharing (STN)
mtl / mmoe     MMoE                ERM                      4 experts of the full encoder width
mtl-shared     shared trunk        ERM                      "vanilla MTL" as the paper's Table 1/6 rows
mmoe-k         MMoE, K experts     ERM                      §4's MMoE at MT-CRL's capacity: K = n_modules
                                                            experts of width d/K (MT-CRL's modules)
cross_stitch   cross-stitch        ERM                      columns initialised from trained STL
fps            FPS (joint head)    ERM                      predicts the joint class
pcgrad …       MMoE                PCGrad/GradVac/IRM/…     MT-CRL's baselines on MMoE
mtcrl-var      MT-CRL modules      MTCRL (G-IRM var/norm)   ``mtcrl-none`` = w/o G-IRM
=============  ==================  =======================  ====================================

Heavy imports (torch and the model code) happen inside the functions.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np

from ..data.base import DatasetSplits, MultiTaskDataset, concatenate
from . import hparams as hp
from .method_table import METHODS, MethodDef, method_class, method_def
from .store import MetricRow

log = logging.getLogger(__name__)


def label(name: str) -> str:
    return METHODS[name].label if name in METHODS else name


def check_methods(methods: Sequence[str], key: str = "methods") -> None:
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"{key} has unknown method(s) {bad}; valid methods are: {', '.join(METHODS)}")
    if not methods:
        raise ValueError(f"{key} is empty; name at least one method")


# --- configs -------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    """Architecture sizes shared by every method of an experiment."""

    # "mlp" (flattened pixels), "cnn" (CNNEncoder, position-keeping 4×4 pool), "lenet" (the
    # Multi-MNIST LeNet of Sener & Koltun 2018 / Yu et al. 2020; images >= 16×16), or "auto":
    # lenet for images of at least 16×16 pixels (Multi-MNIST), mlp otherwise
    encoder: str = "mlp"
    hidden: list[int] = field(default_factory=lambda: [128, 64])
    n_experts: int = 4  # MMoE experts
    n_modules: int = 8  # MT-CRL modules K (paper default 8)
    width: int = 128  # MT-CRL total representation width d (paper 128)
    routing: str = "concat"  # MT-CRL: modules side by side ("concat") or summed ("sum", §3.1 literally)
    # image encoders ("resnet18" … "resnet152", "torchvision:<m>", "timm:<m>"; nn.build_image_encoder,
    # pooled): a local ImageNet checkpoint (None = train from scratch, logged) and the ResNets'
    # layer1 width (64 = torchvision's; smaller only for fast CPU runs)
    weights: str | None = None
    base_width: int = 64


@dataclass
class ImageModelConfig(ModelConfig):
    """Sizes of an image model (dense benchmarks): ``encoder`` is one of :data:`IMAGE_ENCODERS`
    or ``"torchvision:<model>"`` / ``"timm:<model>"`` (:func:`causalmtl.nn.build_image_encoder`).

    MT-CRL splits the encoder's map into ``n_modules`` channel groups (its width is the
    encoder's ``out_channels``; ``width`` is unused for image encoders)."""

    encoder: str = "segnet"
    encoder_width: Any = None  # SegNet "standard" | "wide" | "tiny" | ints; ResNet base_width (int)
    output: str = "map"  # ResNets: "map" (stride 32) or "dilated" (stride 8)
    weights: str | None = None  # ImageNet checkpoint path (ResNets / torchvision / timm); None: from scratch
    decoder: str = "conv"  # dense heads: "conv" or "taskonomy" (15-layer upsampling decoder)


@dataclass
class TrainConfig:
    """Trainer settings (the learning rate comes from ``Trainer.HPARAMS`` through the hyperparameter search)."""

    epochs: int = 15
    batch_size: int = 128
    patience: int = 5
    trials: int = 1  # random-search trials per method (trial 0 = documented defaults)
    select: str = "valid/loss"


@dataclass
class ImageTrainConfig(TrainConfig):
    """:class:`TrainConfig` plus the GPU data-path settings passed to the Trainer."""

    num_workers: int = 0  # DataLoader worker processes
    amp: bool = False  # automatic mixed precision (bf16 where supported)
    channels_last: bool = False
    compile: bool = False  # torch.compile
    eval_batch_size: int = 64  # evaluation batch (dense maps at full size are large)


@dataclass
class DigitsConfig:
    """Multi-Digits sizes and the label relationship (see :func:`causalmtl.data.make_multi_digits`)."""

    n_train: int = 6000
    n_valid: int = 1500
    n_test: int = 2000
    m: float = 0.9  # train agreement P(y' = y) component of the biased protocol
    # protocol "pairs": "own" = valid has its own label pairs (disjoint from train's: MT-CRL's two
    # environments differ), "train" = valid draws from the training pairs (no shift)
    valid_pairs: str = "own"


def check_positive(cfg: Any, keys: Sequence[str], where: str) -> None:
    for k in keys:
        v = getattr(cfg, k)
        if v < 1:
            raise ValueError(f"{where}.{k} must be >= 1, got {v}")


# --- data ----------------------------------------------------------------------------------
def make_digits(cfg: DigitsConfig, protocol: str, seed: int, test_joint: Any = "train") -> DatasetSplits:
    """Multi-Digits for ``seed``: ``"biased"`` (test i.i.d. with train when ``test_joint="train"``)
    or ``"pairs"`` (MT-CRL's pair-disjoint splits)."""
    from ..data import biased_joint, make_multi_digits

    if protocol == "biased":
        tj = biased_joint(10, cfg.m) if isinstance(test_joint, str) and test_joint == "train" else test_joint
        return make_multi_digits("biased", cfg.n_train, cfg.n_valid, cfg.n_test, m=cfg.m,
                                 test_joint=tj, seed=seed)
    # make_multi_digits checks the protocol name
    return make_multi_digits(cast(Literal["biased", "pairs"], protocol), cfg.n_train, cfg.n_valid, cfg.n_test, seed=seed, valid_pairs=cfg.valid_pairs)


def method_overrides(methods: Sequence[str], overrides: Mapping[str, Any], where: str = "method") -> dict[str, dict[str, Any]]:
    """Per experiment method, the ``--set method.KEY=VALUE`` hyperparameters that apply to it.

    A key applies to a method whose class declares it (``HPARAMS``) or whose search registry
    (:mod:`.hparams`) has it (``lr``, ``weight_decay``). A key that applies to none of
    ``methods`` is an error listing the valid keys. Every ``lambda*`` value must be a finite
    number >= 0 (strings such as ``inf`` are read as numbers first). The result is recorded in
    each run's hyperparameters, so runs with different values are different runs.
    """
    import math

    if not overrides:  # nothing to check (and no need to import the method classes)
        return {m: {} for m in methods}
    cleaned: dict[str, Any] = {}
    for key, value in overrides.items():
        v = value
        if isinstance(v, str):
            try:
                v = float(v)
            except ValueError:
                v = value
        if key.startswith("lambda") or key in ("lr", "weight_decay"):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise ValueError(f"{where}.{key} must be a finite number >= 0, got {value!r}")
            v = float(v)
        cleaned[key] = v
    out: dict[str, dict[str, Any]] = {}
    allowed: set[str] = set()
    for m in methods:
        keys = set(method_class(m).HPARAMS) | set(hp.space(method_def(m).family))
        allowed |= keys
        out[m] = {k: v for k, v in cleaned.items() if k in keys}
    unknown = sorted(set(cleaned) - allowed)
    if unknown:
        raise ValueError(f"{where}.{unknown[0]} is not a hyperparameter of any of the methods {list(methods)}; "
                         f"valid keys: {', '.join(sorted(allowed))}")
    return out


def environment_shift(splits: DatasetSplits) -> list[MetricRow]:
    """How far G-IRM's two environments (train = 0, valid = 1) differ in their labels.

    ``env_shift_tv`` is the total-variation distance between the train and valid joint label
    tables (``meta["true_joint"]``; empirical tables when absent); 0 means the invariance
    penalty sees no label shift between its environments. ``envs_differ`` is 1 or 0.
    """
    tables = splits.meta.get("true_joint") if isinstance(splits.meta, Mapping) else None
    if tables is not None and "train" in tables and "valid" in tables:
        a, b = np.asarray(tables["train"], float).ravel(), np.asarray(tables["valid"], float).ravel()
    else:
        def emp(d: MultiTaskDataset) -> Any:
            lab = d.labels
            lab = lab[(lab >= 0).all(1)]
            keys, counts = np.unique(lab, axis=0, return_counts=True)
            return {tuple(k): c / counts.sum() for k, c in zip(keys.tolist(), counts)}
        pa, pb = emp(splits.train), emp(splits.valid)
        support = sorted(set(pa) | set(pb))
        a, b = np.array([pa.get(k, 0.0) for k in support]), np.array([pb.get(k, 0.0) for k in support])
    tv = 0.5 * float(np.abs(a - b).sum())
    return [MetricRow("env_shift_tv", tv, split="valid", higher_is_better=None),
            MetricRow("envs_differ", float(tv > 1e-9), split="valid", higher_is_better=None)]


# --- models and methods ----------------------------------------------------------------------
def _input_shape(data: MultiTaskDataset) -> tuple[int, ...]:
    """``(N, ...)`` of the inputs; a streamed split reads one row for the row shape."""
    if data.streamed:
        return (len(data), *np.shape(data.inputs.read(0).x))  # type: ignore[union-attr]
    return tuple(np.asarray(data.inputs).shape)


def _in_dim(data: MultiTaskDataset) -> int:
    return int(np.prod(_input_shape(data)[1:]))


ENCODERS = ("mlp", "cnn", "lenet", "auto")


#: Built-in image encoders of :func:`causalmtl.nn.build_image_encoder` (plus ``torchvision:`` / ``timm:``).
IMAGE_ENCODERS = ("segnet", "resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def is_image_encoder(name: str) -> bool:
    """``model.encoder`` names an image encoder of :func:`causalmtl.nn.build_image_encoder`
    (a built-in ResNet or SegNet, ``torchvision:<model>`` or ``timm:<model>``). With a
    :class:`ModelConfig` it is used pooled (a vector per image, every architecture); with an
    :class:`ImageModelConfig` as a feature map for dense tasks (:func:`build_model`)."""
    return name in IMAGE_ENCODERS or name.startswith(("torchvision:", "timm:"))


def resolve_encoder(name: str, image_size: tuple[int, int] | None) -> str:
    """The encoder ``"auto"`` stands for: ``"lenet"`` for images whose sides are at least
    :func:`~causalmtl.nn.encoders.lenet_min_size` (Multi-MNIST's 28×56), else ``"mlp"``."""
    from ..nn.encoders import lenet_min_size

    if is_image_encoder(name):
        return name
    if name not in ENCODERS:
        raise ValueError(f"model.encoder must be one of {ENCODERS} or an image encoder (resnet18 … resnet152, "
                         f"torchvision:<model>, timm:<model>), got {name!r}")
    if name != "auto":
        return name
    return "lenet" if image_size is not None and min(image_size) >= lenet_min_size() else "mlp"


def encoder_factory(mcfg: ModelConfig, in_dim: int, out_dim: int | None = None, in_channels: int = 1,
                    image_size: tuple[int, int] | None = None) -> Any:
    from ..nn import CNNEncoder, MLPEncoder
    from ..nn.encoders import LeNetEncoder

    hidden = list(mcfg.hidden) if out_dim is None else [*mcfg.hidden[:-1], out_dim]
    kind = resolve_encoder(mcfg.encoder, image_size)
    if is_image_encoder(kind):  # pooled vectors (out_dim from the network; out_dim ignored)
        from ..nn import build_image_encoder

        if image_size is None:
            raise ValueError(f"model.encoder={kind!r} needs image inputs (N, C, H, W)")
        width = int(mcfg.base_width) if kind.startswith("resnet") else None
        return lambda: build_image_encoder(kind, output="pooled", weights=mcfg.weights, in_channels=in_channels,
                                           width=width)
    if kind == "mlp":
        return lambda: MLPEncoder(in_dim, hidden)
    if kind == "cnn":
        return lambda: CNNEncoder(in_channels, (16, 32), out_dim=hidden[-1])
    if image_size is None:
        raise ValueError("model.encoder='lenet' needs image inputs (N, C, H, W) or (N, H, W)")
    return lambda: LeNetEncoder(in_channels, image_size, out_dim=hidden[-1])




def image_encoder_factory(mcfg: Any, in_channels: int) -> Any:
    """A zero-argument factory of map encoders for an :class:`ImageModelConfig`."""
    from ..nn.image import build_image_encoder

    width = getattr(mcfg, "encoder_width", None)
    weights = getattr(mcfg, "weights", None)
    output = getattr(mcfg, "output", "map")
    return lambda: build_image_encoder(mcfg.encoder, output=output, weights=weights, in_channels=in_channels,
                                       width=width)


def _build_image_model(arch: str, data: MultiTaskDataset, mcfg: Any, ch: int, **over: Any) -> Any:
    """Dense-benchmark models on a map encoder (STL, hard sharing, MT-CRL's channel groups)."""
    from ..nn import STL, SharedTrunk
    from ..nn.mtcrl import MTCRLNet

    enc = image_encoder_factory(mcfg, ch)
    decoder = getattr(mcfg, "decoder", "conv")
    if arch == "stl":
        return STL(enc, data.tasks, decoder=decoder)
    if arch == "shared":
        return SharedTrunk(enc(), data.tasks, decoder=decoder)
    if arch == "mtcrl":
        e = enc()
        return MTCRLNet(e, data.tasks, n_modules=int(over.get("n_modules", mcfg.n_modules)), width=int(e.out_channels),
                        routing=mcfg.routing, decoder=decoder)
    raise ValueError(f"architecture {arch!r} is not available with image encoder {mcfg.encoder!r}; "
                     "valid: 'stl', 'shared', 'mtcrl'")


def _image_size(shape: tuple[int, ...]) -> tuple[int, int] | None:
    """``(H, W)`` of image inputs ``(N, C, H, W)`` / ``(N, H, W)``; ``None`` for flat features."""
    return (int(shape[-2]), int(shape[-1])) if len(shape) in (3, 4) else None


def build_model(arch: str, data: MultiTaskDataset, mcfg: ModelConfig, seed: int, **over: Any) -> Any:
    """A fresh model of architecture ``arch`` for ``data``'s tasks, initialised from ``seed``."""
    from ..nn import FPS, STL, MMoE, SharedTrunk, seeded
    from ..nn.mtcrl import MTCRLNet

    tasks = data.tasks
    d_in = _in_dim(data)
    shape = _input_shape(data)
    ch = int(shape[1]) if len(shape) == 4 else 1
    img = _image_size(shape)
    if isinstance(mcfg, ImageModelConfig):  # feature maps and dense heads (dense benchmarks)
        with seeded(seed):
            return _build_image_model(arch, data, mcfg, ch, **over)
    enc = encoder_factory(mcfg, d_in, in_channels=ch, image_size=img)
    with seeded(seed):
        if arch == "stl":
            return STL(enc, tasks)
        if arch == "shared":
            return SharedTrunk(enc(), tasks)
        if arch == "fps":
            return FPS(enc(), tasks)
        if arch == "mmoe":
            return MMoE(enc, tasks, n_experts=mcfg.n_experts, gate_in_dim=d_in)
        if arch == "mmoe-k":  # MT-CRL §4: MMoE with K experts, each one of MT-CRL's d/K-wide modules
            from ..nn.mtcrl import module_width

            k = int(over.get("n_modules", mcfg.n_modules))
            d = module_width(int(mcfg.width), k)  # raises when K does not divide the width
            return MMoE(encoder_factory(mcfg, d_in, d, in_channels=ch, image_size=img), tasks, n_experts=k, gate_in_dim=d_in)
        if arch == "mtcrl":
            k = int(over.get("n_modules", mcfg.n_modules))
            vae_shape = None
            if over.get("beta_vae"):  # MT-CRL's β-VAE ablation: variational modules + decoder
                if isinstance(data.inputs, Mapping):
                    raise ValueError("disentangle='beta_vae' reconstructs the input and needs array inputs; "
                                     f"data.inputs is a dict with keys {sorted(data.inputs)}")
                vae_shape = tuple(int(s) for s in shape[1:])
            return MTCRLNet(lambda d: encoder_factory(mcfg, d_in, d, in_channels=ch, image_size=img)(), tasks, n_modules=k,
                            width=mcfg.width, routing=mcfg.routing, vae_input_shape=vae_shape)
    raise ValueError(f"unknown architecture {arch!r}")


def build_method(name: str, model: Any, method_hparams: dict[str, Any]) -> Any:
    from ..methods import METHODS as CLASSES

    if name not in CLASSES:
        raise ValueError(f"unknown training method {name!r}; valid: {sorted(CLASSES)}")
    return CLASSES[name](model, **method_hparams)


def split_hparams(h: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """(trainer, model, method) parts of a hyperparameter dict."""
    tkeys, mkeys = hp.trainer_keys(), hp.model_keys()
    trainer = {k: v for k, v in h.items() if k in tkeys}
    model = {k: v for k, v in h.items() if k in mkeys}
    method = {k: v for k, v in h.items() if k not in tkeys and k not in mkeys}
    return trainer, model, method


@dataclass
class Trained:
    """A trained model with what the evaluation needs."""

    model: Any
    method_name: str
    train_labels: np.ndarray  # labels the model was fitted on (for the GMTL prior)
    history: Any
    best_epoch: int
    seconds: float


def protocol_for(method: str, protocol: str) -> Literal["split", "mtcrl"]:
    """``"mtcrl"`` for MT-CRL (it needs train and valid as two environments), else ``protocol``."""
    return "mtcrl" if method_def(method).method == "mtcrl" or protocol == "mtcrl" else "split"


def tensorboard_dir(tag: str = "") -> Path | None:
    """Where the training of the run being executed logs to TensorBoard (``causalmtl run
    --tensorboard DIR``): ``DIR/<experiment>/<run id>[/<tag>]``, or ``None``."""
    from .runner import current_run

    ctx = current_run()
    if ctx is None or ctx.tensorboard_dir is None:
        return None
    return ctx.tensorboard_dir / tag if tag else ctx.tensorboard_dir


def resnet_stitch_points(encoder: Any) -> dict[str, Any]:
    """Cross-stitch units after each residual stage ``layer1..layer4`` of a ResNet column (Misra
    et al. 2016 stitch after every pooling / stage), ``{"stitch_after": [...]}``; ``{}`` for other
    encoders (their default: after every activation)."""
    names = [n for n, _ in encoder.named_children()] if hasattr(encoder, "named_children") else []
    idx = [i for i, n in enumerate(names) if n in ("layer1", "layer2", "layer3", "layer4")]
    return {"stitch_after": idx} if len(idx) == 4 else {}


def train_method(
    name: str,
    splits: DatasetSplits,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    h: dict[str, Any],
    seed: int,
    device: str,
    workdir: Path,
    protocol: str = "split",
    progress: bool = False,
    arch: str | None = None,
    **model_over: Any,
) -> Trained:
    """Build and train method ``name`` (resuming from ``workdir`` after an interruption).

    ``arch`` overrides the method's architecture (e.g. the dense benchmarks run PCGrad on the
    shared trunk); an :class:`ImageTrainConfig` adds num_workers, amp, channels_last, compile."""
    from ..nn import NPS, CrossStitchNetwork  # noqa: F401 - NPS documented alias of STL
    from ..train import Trainer

    mdef = method_def(name)
    trainer_h, model_h, method_h = split_hparams(h)
    method_h = {**method_h, **mdef.fixed}
    proto = protocol_for(name, protocol)
    t0 = time.perf_counter()

    def fit(model: Any, method_name: str, mh: dict[str, Any], tag: str) -> Any:
        method = build_method(method_name, model, mh)
        trainer = Trainer(
            method, epochs=tcfg.epochs, batch_size=tcfg.batch_size, lr=float(trainer_h.get("lr", Trainer.HPARAMS["lr"].default)),
            weight_decay=float(trainer_h.get("weight_decay", Trainer.HPARAMS["weight_decay"].default)), patience=tcfg.patience,
            select=tcfg.select, protocol=proto, device=device, seed=seed,
            checkpoint_dir=workdir / f"ckpt-{tag}", progress=progress,
            tensorboard_dir=tensorboard_dir(tag), num_workers=int(getattr(tcfg, "num_workers", 0)),
            amp=bool(getattr(tcfg, "amp", False)), channels_last=bool(getattr(tcfg, "channels_last", False)),
            compile=bool(getattr(tcfg, "compile", False)), eval_batch_size=int(getattr(tcfg, "eval_batch_size", 1024)),
        )
        return trainer.fit(splits, resume=True)

    if mdef.arch == "cross_stitch":
        stl = build_model("stl", splits.train, mcfg, seed)
        fit(stl, "erm", {}, "stl")
        mult = model_h.get("stitch_lr_mult", CrossStitchNetwork.HPARAMS["stitch_lr_mult"].default)
        model = CrossStitchNetwork.from_stl(stl, stitch_lr_mult=float(mult), **resnet_stitch_points(stl.encoders[0]))
        result = fit(model, "erm", {}, "cs")
    else:
        if mdef.method == "mtcrl" and method_h.get("disentangle") == "beta_vae":
            model_over = {**model_over, "beta_vae": True}
        model = build_model(arch or mdef.arch, splits.train, mcfg, seed, **model_over)
        result = fit(model, mdef.method, method_h, "main")
    train_data = splits.train if proto == "split" else concatenate([splits.train, splits.valid])
    for d in workdir.glob("ckpt-*"):
        shutil.rmtree(d, ignore_errors=True)
    return Trained(model=model, method_name=name, train_labels=train_data.labels,
                   history=result.history, best_epoch=result.best_epoch,
                   seconds=time.perf_counter() - t0)


# --- evaluation ------------------------------------------------------------------------------
def accuracy_metrics(model: Any, splits: DatasetSplits, device: str, splits_to_eval: Sequence[str] = ("train", "valid", "test")) -> list[MetricRow]:
    """Per-task accuracy and mean accuracy on each split (independent per-task argmax)."""
    from ..train import evaluate

    rows = []
    for split in splits_to_eval:
        res = evaluate(model, getattr(splits, split), device=device)
        accs = []
        for task in splits.tasks:
            a = res.get(f"acc/{task.name}", float("nan"))
            accs.append(a)
            rows.append(MetricRow("acc", a, task=task.name, split=split))
            rows.append(MetricRow("loss", res.get(f"loss/{task.name}", float("nan")), task=task.name,
                                  split=split, higher_is_better=False))
        rows.append(MetricRow("acc_mean", float(np.nanmean(accs)), split=split))
    return rows


def joint_log_probs(model: Any, data: MultiTaskDataset, device: str, batch_size: int = 2048) -> Any:
    """Per-task log-probabilities (a list of T arrays), or the joint array for FPS."""
    import torch

    from ..methods.batch import Batch
    from ..nn import FPS
    from ..train import predict_log_probs

    if not isinstance(model, FPS):
        return predict_log_probs(model, data, device=device)
    model.eval()
    parts = []
    with torch.no_grad():
        if data.streamed:  # read chunk by chunk, never the whole split
            for s in range(0, len(data), batch_size):
                b = Batch.from_dataset(data, np.arange(s, min(len(data), s + batch_size)), device=torch.device(device))
                parts.append(model.forward_full(b.x).extra["joint"].double().cpu())
            return torch.cat(parts).numpy()
        batch = Batch.from_dataset(data, device=torch.device(device))
        for s in range(0, len(batch), batch_size):
            b = batch.index(torch.arange(s, min(len(batch), s + batch_size), device=batch.y.device))
            parts.append(model.forward_full(b.x).extra["joint"].double().cpu())
    return torch.cat(parts).numpy()


def spurious_metrics(model: Any, data: MultiTaskDataset, causal_blocks: Sequence[Any], device: str,
                     split: str = "test", max_rows: int = 2000) -> tuple[list[MetricRow], np.ndarray]:
    """ρ_spur per task (MT-CRL §2.2) on at most ``max_rows`` rows; also the saliency ``(T, D)``."""
    from ..metrics.spurious import input_saliency, spurious_score

    n = min(len(data), max_rows)
    if data.streamed:  # read the first n rows (a batch), never the split
        from ..data.streamed import collate, read_rows

        x = collate(read_rows(data.inputs, np.arange(n), data.transform), {})[0].astype(np.float32)  # type: ignore[arg-type]
    else:
        x = np.asarray(cast(np.ndarray, data.inputs)[:n], dtype=np.float32)  # array inputs (not streamed)
    sal = input_saliency(model.eval(), x, data.labels[:n], device=device)
    rho = spurious_score(sal, causal_blocks)
    rows = [MetricRow("rho_spur", float(r), task=t.name, split=split, higher_is_better=False)
            for r, t in zip(rho, data.tasks)]
    rows.append(MetricRow("rho_spur_mean", float(np.mean(rho)), split=split, higher_is_better=False))
    return rows, sal


def gmtl_shift(
    log_probs: Any,
    train_labels: np.ndarray,
    test: MultiTaskDataset,
    test_joint: np.ndarray,
    alphas: Sequence[float],
    n_draws: int,
    seed: int,
    pseudocount: float = 1.0,
    keep_predictions: bool = False,
) -> tuple[list[MetricRow], dict[str, np.ndarray]]:
    """DMTL vs GMTL under simulated target shift (GMTL §5.4–5.6, §6) for every main task.

    Fits the joint prior on the training labels, decodes the test set for every α, draws
    ``n_draws`` shifted priors q around the test prior ``test_joint`` (the authors' protocol),
    and importance-samples each main task's accuracy. Returns metric rows (in-distribution
    accuracy at α = 0 and α = 1, per-run τ–optimal-α correlation, mean gain) and arrays
    (``tau_<t>``, ``acc_<t>`` of shape ``(D,)`` and ``(D, A)``, ``alphas``; with
    ``keep_predictions`` also ``predictions``, the decoded labels ``(A, N, T)``).
    """
    from ..gmtl import JointPrior, gmtl_decode
    from ..shift.analysis import analyze
    from ..shift.evaluate import evaluate_shift

    n_classes = test.n_classes
    prior = JointPrior.fit(train_labels, n_classes, pseudocount=pseudocount)
    alphas = [float(a) for a in alphas]
    preds = gmtl_decode(log_probs, prior, alpha=alphas, normalized=False).labels  # (A, N, T)
    labels = test.labels
    rows: list[MetricRow] = []
    arrays: dict[str, np.ndarray] = {"alphas": np.asarray(alphas)}
    if keep_predictions:
        arrays["predictions"] = np.asarray(preds)
    with np.errstate(divide="ignore"):
        log_p = np.log(np.asarray(test_joint, dtype=np.float64))
    for t, task in enumerate(test.tasks):
        correct = preds[:, :, t] == labels[None, :, t]
        for a_i, a in enumerate(alphas):
            if a in (0.0, 1.0):
                rows.append(MetricRow(f"acc_id_alpha{a:g}", float(correct[a_i].mean()), task=task.name))
        draws = evaluate_shift(labels, preds, log_p, alphas, n_classes=n_classes, task=t,
                               n_draws=n_draws, seed=seed)
        res = analyze(draws)
        arrays[f"tau_{t}"] = draws.tau
        arrays[f"acc_{t}"] = draws.accuracy
        rows.append(MetricRow("tau_alpha_corr", res.correlation, task=task.name, higher_is_better=None))
        rows.append(MetricRow("gmtl_gain_mean", float(np.nanmean(res.gain)), task=task.name))
        rows.append(MetricRow("gmtl_gain_severe", float(res.gain[0]), task=task.name))
    return rows, arrays


def history_rows(trained: Trained) -> list[MetricRow]:
    return [
        MetricRow("best_epoch", float(trained.best_epoch), split="train", higher_is_better=None),
        MetricRow("train_seconds", trained.seconds, split="train", higher_is_better=False),
    ]


__all__ = [
    "DigitsConfig",
    "IMAGE_ENCODERS",
    "ImageModelConfig",
    "ImageTrainConfig",
    "METHODS",
    "MethodDef",
    "ModelConfig",
    "TrainConfig",
    "Trained",
    "accuracy_metrics",
    "build_method",
    "build_model",
    "check_methods",
    "gmtl_shift",
    "is_image_encoder",
    "joint_log_probs",
    "label",
    "environment_shift",
    "make_digits",
    "method_class",
    "method_def",
    "method_overrides",
    "spurious_metrics",
    "tensorboard_dir",
    "train_method",
]
