"""The trainer: environments, Adam, early stopping on validation, checkpoints, seeds, devices.

Example (not run as a doctest: it trains models)::

    from causalmtl.train import Trainer
    result = Trainer(method, epochs=20, lr=1e-3, seed=0).fit(splits)
    result.history                    # one row per epoch (pandas)

Protocol (``protocol=``)
------------------------
``"split"`` (default)
    Train on the train split; its environment ids (``MultiTaskDataset.env``) are the
    environments. The valid split is used only to select the epoch (early stopping).
``"mtcrl"``
    MT-CRL §4 "Experimental Setup": the valid split joins training as a second environment
    (train = environment 0, valid = environment 1). Methods with the ``"pooled"`` protocol
    (the baselines) train on train + valid pooled; ``"per_env"`` methods see two
    environments and fit their task loss on both; ``"per_env_train_loss"`` methods (MT-CRL)
    fit the task loss on train only and use valid for the invariance penalty. Selection still
    uses the valid split (as in the paper), which is then not held out; say so when reporting.

The test split is never looked at.

Data parallelism
----------------
Under ``torchrun --nproc-per-node N`` the same code trains data-parallel (gloo on CPU, nccl
on CUDA): every process takes its shard of each seeded global batch, losses are those of the
global batch, gradients are averaged before each step, and rank 0 alone writes checkpoints.
The update equals the single-process one; see :mod:`causalmtl.train.distributed` and
``docs/scaling.md``.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from torch.optim.lr_scheduler import LRScheduler

from .._hparams import HParam, choice, log_uniform
from ..data.base import DatasetSplits, MultiTaskDataset, concatenate
from ..methods.base import Method
from ..methods.batch import Batch
from ..metrics.direction import metric_direction
from ..nn.base import check_tasks
from . import distributed as _distributed
from .sampling import epoch_plan, steps_per_epoch
from .streaming import LoaderOptions, StepBatches

log = logging.getLogger(__name__)

__all__ = [
    "Trainer", "TrainResult", "NonFiniteLossError", "CheckpointMismatchError", "UnsafeCheckpointError",
    "remove_stale_temporaries",
]

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_VERSION = 1


class NonFiniteLossError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite.

    Attributes: ``step`` (global step, 1-based), ``epoch`` (1-based) and ``checkpoint``
    (path of the last good checkpoint, or ``None``). The method's weights are restored to the
    end of the last good epoch.
    """

    def __init__(self, message: str, step: int, epoch: int, checkpoint: Path | None) -> None:
        super().__init__(message)
        self.step = step
        self.epoch = epoch
        self.checkpoint = checkpoint


class CheckpointMismatchError(ValueError):
    """A checkpoint to resume from was written by a different model, method or configuration."""


class UnsafeCheckpointError(ValueError):
    """A checkpoint file holds objects other than tensors and plain data; it is never unpickled.

    Checkpoints are read with ``torch.load(weights_only=True)``: a file planted in an output
    directory cannot run code on resume. The file is left where it is for inspection.
    """


def _load_checkpoint(path: Path, device: torch.device) -> dict[str, Any] | None:
    """Read a checkpoint safely; ``None`` when the file is unreadable (and moved aside).

    ``weights_only=True`` refuses any pickled global other than tensors and plain
    containers (:class:`UnsafeCheckpointError`). A truncated or garbage file — e.g. a disk
    that filled up during a copy — is renamed to ``<name>.corrupt-<time>`` with a warning that
    names both paths, and the run starts from scratch (returns ``None``).
    """
    import pickle
    import zipfile

    ckpt = None
    if zipfile.is_zipfile(path):  # torch.save always writes a zip archive
        try:
            ckpt = torch.load(path, map_location=device, weights_only=True)
        except pickle.UnpicklingError as exc:
            detail = next((ln for ln in str(exc).splitlines() if "Unsupported" in ln), "")
            raise UnsafeCheckpointError(
                f"refusing to resume from {path}: it contains objects other than tensors and "
                f"plain data, which causalmtl never writes and never unpickles "
                f"(weights_only=True). Inspect or delete the file, then rerun. {detail}".rstrip()
            ) from None
        except (EOFError, RuntimeError, OSError, ValueError, KeyError) as exc:
            log.debug("checkpoint %s unreadable: %s", path, exc)
    if isinstance(ckpt, dict) and {"version", "fingerprint", "state", "method"} <= set(ckpt):
        return ckpt
    aside = path.with_name(f"{path.name}.corrupt-{time.strftime('%Y%m%d-%H%M%S')}")
    try:
        os.replace(path, aside)
    except FileNotFoundError:  # another process of the same run moved it first
        pass
    log.warning("checkpoint %s is truncated or not a causalmtl checkpoint; moved it to %s and "
                "restarting this run from epoch 0", path, aside)
    return None


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete ``checkpoint.pt.*.tmp`` files a killed process left in ``directory``.

    They are the partial writes of :func:`_atomic_save` (a finished write is renamed over the
    checkpoint, so a ``.tmp`` file is never read). Call it only when no other process can be
    writing a checkpoint there (the trainer calls it at the start of ``fit`` on rank 0, before
    its first save).
    """
    removed = []
    for tmp in directory.glob(f"{CHECKPOINT_NAME}.*.tmp"):
        try:
            tmp.unlink()
            removed.append(tmp)
        except FileNotFoundError:
            pass
    if removed:
        log.info("removed %d leftover partial checkpoint file(s) in %s", len(removed), directory)
    return removed


@dataclass
class TrainResult:
    """What :meth:`Trainer.fit` returns.

    Attributes
    ----------
    history : one row per epoch: ``epoch``, ``step``, ``lr``, ``time_s``, ``train/<key>``
        (means of the method's logs) and ``valid/<key>`` (see :func:`~causalmtl.train.evaluate`)
    best_epoch : the selected epoch (1-based; 0 if no epoch ran)
    best_score : its value of the selection metric
    select : the selection metric's column name
    stopped_early : whether patience ran out before ``epochs``
    checkpoint : path of the checkpoint file, if checkpointing was on
    """

    history: pd.DataFrame
    best_epoch: int
    best_score: float
    select: str
    stopped_early: bool
    checkpoint: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _diff(a: object, b: object, path: str = "") -> list[str]:
    """Human-readable differences between two JSON-like values."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b), key=str):
            p = f"{path}.{k}" if path else str(k)
            if k not in a:
                out.append(f"{p}: missing in checkpoint, now {b[k]!r}")
            elif k not in b:
                out.append(f"{p}: {a[k]!r} in checkpoint, missing now")
            else:
                out.extend(_diff(a[k], b[k], p))
        return out
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        nested = any(isinstance(v, (dict, list, tuple)) for v in [*a, *b])
        if len(a) == len(b) and nested:
            return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    if (list(a) if isinstance(a, tuple) else a) != (list(b) if isinstance(b, tuple) else b):
        return [f"{path}: {a!r} in checkpoint, {b!r} now"]
    return []


def _atomic_save(obj: object, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _selection_mode(select: str) -> str:
    """``"max"`` for a higher-is-better validation metric (``valid/acc/<task>``,
    ``valid/miou/<task>``, …: :func:`~causalmtl.metrics.direction.metric_direction` of the part
    after ``valid/``), else ``"min"``; a name it does not know is maximised when it contains
    ``acc``."""
    metric = select.split("/")[1] if "/" in select else select
    try:
        return "max" if metric_direction(metric) > 0 else "min"
    except ValueError:
        return "max" if "acc" in metric else "min"


def _channels_last(b: Batch) -> Batch:
    x = b.x
    if isinstance(x, Tensor) and x.ndim == 4:
        return Batch(x.contiguous(memory_format=torch.channels_last), b.y, b.env, b.maps)
    return b


class Trainer:
    """Train a :class:`~causalmtl.methods.Method` on a dataset's train split.

    Parameters
    ----------
    method : the method (owning the model) to train; trained in place
    epochs : maximum number of epochs (>= 1)
    batch_size : rows per batch (per environment for methods that take one batch per env);
        under torchrun the global batch, split over the processes
    lr : Adam learning rate
    weight_decay : L2 penalty added by Adam (``decoupled=True``: AdamW's decoupled decay)
    decoupled : use AdamW instead of Adam's L2 form
    cosine : cosine-anneal the learning rate to 0 over ``epochs`` (stepped every step)
    patience : stop after this many epochs without improvement (``None``: run all epochs)
    select : selection metric, a ``valid/...`` history column; default the main task's
        validation loss ``"valid/loss/<main task>"`` (GMTL §5); ``acc`` metrics are maximised
    main_task : index of the main task for the default ``select``
    min_delta : an improvement must exceed this
    protocol : ``"split"`` or ``"mtcrl"`` (see the module docstring)
    environments : the environment ids training must see (default: those in the data); an
        id without examples is an error for methods that take one batch per environment
    steps_per_epoch : override the number of steps per epoch
    device : ``"cpu"``, ``"cuda"``, ``"cuda:1"``, a ``torch.device`` (never implied)
    amp : mixed precision (bfloat16 autocast) for forward passes; CUDA only
    seed : seeds batch order and torch's RNG (dropout) inside the run, without touching the
        caller's global RNG state; same seed ⇒ same numbers on CPU
    checkpoint_dir : directory for the per-epoch checkpoint (atomic write); ``None``: none
    progress : show a tqdm progress bar (off by default; the CLI turns it on)
    tensorboard_dir : log per-epoch metrics to TensorBoard there, if it is installed
    eval_batch_size : batch size for validation
    num_workers : DataLoader reader processes for streamed datasets (in-memory data ignores it)
    pin_memory : page-locked batches for asynchronous host-to-GPU copies (default: on for CUDA)
    channels_last : 4-D image inputs and the model in ``torch.channels_last`` memory format
        (faster convolutions on tensor-core GPUs)
    compile : ``torch.compile`` the model's forward pass (the method and its losses stay eager)
    """

    #: the trainer's searched hyperparameters (the experiments' random search draws them first)
    HPARAMS: ClassVar[dict[str, HParam]] = {
        "lr": HParam(1e-3, log_uniform(1e-4, 1e-2), "Adam learning rate (trainer)"),
        "weight_decay": HParam(0.0, choice([0.0, 1e-5, 1e-4, 1e-3]), "L2 regularisation (trainer)"),
    }

    def __init__(
        self,
        method: Method,
        *,
        epochs: int = 20,
        batch_size: int = 128,
        lr: float = HPARAMS["lr"].default,  # declared once, in HPARAMS
        weight_decay: float = HPARAMS["weight_decay"].default,
        decoupled: bool = False,
        cosine: bool = False,
        patience: int | None = None,
        select: str | None = None,
        main_task: int = 0,
        min_delta: float = 0.0,
        protocol: Literal["split", "mtcrl"] = "split",
        environments: Sequence[int] | None = None,
        steps_per_epoch: int | None = None,
        device: str | torch.device = "cpu",
        amp: bool = False,
        seed: int = 0,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        progress: bool = False,
        tensorboard_dir: str | os.PathLike[str] | None = None,
        eval_batch_size: int = 1024,
        num_workers: int = 0,
        pin_memory: bool | None = None,
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        if not isinstance(method, Method):
            raise ValueError(f"method must be a causalmtl.methods.Method, got {type(method).__name__}")
        for name, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                                 ("eval_batch_size", eval_batch_size, 1)):
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if steps_per_epoch is not None and (not isinstance(steps_per_epoch, int) or steps_per_epoch < 1):
            raise ValueError(f"steps_per_epoch must be None or an int >= 1, got {steps_per_epoch!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience must be None or an int >= 1, got {patience!r}")
        if not (isinstance(lr, (int, float)) and not isinstance(lr, bool) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
        if not (math.isfinite(weight_decay) and weight_decay >= 0):
            raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
        if protocol not in ("split", "mtcrl"):
            raise ValueError(f"protocol must be 'split' or 'mtcrl', got {protocol!r}")
        if not 0 <= main_task < method.model.n_tasks:
            raise ValueError(f"main_task must be in [0, {method.model.n_tasks}), got {main_task}")
        self.device = torch.device(device)
        if amp and self.device.type != "cuda":
            raise ValueError(f"amp=True needs a CUDA device, got device={str(self.device)!r}")
        self.method = method
        self.epochs = int(epochs)
        self.batch_size = int(batch_size)
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.decoupled = bool(decoupled)
        self.cosine = bool(cosine)
        self.patience = patience
        self.main_task = int(main_task)
        self.select = select or f"valid/loss/{method.model.tasks[main_task].name}"
        if not self.select.startswith("valid/"):
            raise ValueError(
                f"select must name a validation metric 'valid/...' (never test), got {self.select!r}"
            )
        self.mode = _selection_mode(self.select)
        self.min_delta = float(min_delta)
        self.protocol = protocol
        self.environments = None if environments is None else [int(e) for e in environments]
        self.steps_per_epoch = steps_per_epoch
        self.amp = bool(amp)
        self.seed = int(seed)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.progress = bool(progress)
        self.tensorboard_dir = tensorboard_dir
        self.eval_batch_size = int(eval_batch_size)
        self.loader_options = LoaderOptions(num_workers=num_workers, pin_memory=pin_memory)
        self.channels_last = bool(channels_last)
        self.compile = bool(compile)

    # --- configuration fingerprint -----------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The settings that determine the run's numbers (checked on resume)."""
        return {
            "epochs": self.epochs if self.cosine else None,
            "batch_size": self.batch_size, "lr": self.lr, "weight_decay": self.weight_decay,
            "decoupled": self.decoupled, "cosine": self.cosine, "patience": self.patience,
            "select": self.select, "min_delta": self.min_delta, "protocol": self.protocol,
            "environments": self.environments, "steps_per_epoch": self.steps_per_epoch,
            "amp": self.amp, "seed": self.seed,
        }

    # --- data ----------------------------------------------------------------------------
    def _check_data(self, data: MultiTaskDataset, name: str) -> None:
        model = self.method.model
        check_tasks(model.tasks, data.tasks, name)
        # labels outside a head's classes (MultiTaskDataset checks them against its own tasks;
        # this guards datasets built with a different class count than the model's)
        miss = data.missing
        for t, task in enumerate(model.tasks):
            if task.kind != "classification":
                continue
            col = np.asarray(data.targets[:, t], dtype=np.float64)
            bad = ~miss[:, t] & ((col < 0) | (col >= task.n_classes))
            if bad.any():
                r = int(np.argmax(bad))
                raise ValueError(
                    f"{name} targets[{r}, {t}] = {col[r]!r} is outside the {task.n_classes} classes "
                    f"of the model's head {t} ({task.name!r})"
                )

    def _training_data(self, splits: DatasetSplits) -> MultiTaskDataset:
        if self.protocol == "split":
            return splits.train
        return concatenate([splits.train.with_env(0), splits.valid.with_env(1)], name="train+valid")

    def _env_groups(self, train: MultiTaskDataset) -> list[np.ndarray]:
        method = self.method
        if method.env_protocol == "pooled":
            return [np.arange(len(train))]
        present = [int(e) for e in train.environments]
        wanted = present if self.environments is None else self.environments
        groups = []
        for e in wanted:
            rows = np.flatnonzero(train.env == e)
            if len(rows) == 0:
                raise ValueError(
                    f"environment {e} has no training examples but {type(method).__name__} needs "
                    f"one batch per environment; environments present: {present}"
                )
            groups.append(rows)
        if len(groups) < method.min_environments:
            hint = " (protocol='mtcrl' makes train and valid two environments)" if self.protocol == "split" else ""
            raise ValueError(
                f"{type(method).__name__} needs at least {method.min_environments} environments, "
                f"the training data has {wanted}{hint}"
            )
        n_env = getattr(method, "n_environments", None)
        if n_env is not None and n_env != len(groups):
            raise ValueError(
                f"{type(method).__name__} was built for n_environments={n_env} but the training "
                f"data has {len(groups)} environments {wanted}"
            )
        return groups

    # --- optimisation --------------------------------------------------------------------
    def _build_optimizer(self, total_steps: int) -> tuple[torch.optim.Optimizer, Any]:
        groups = self.method.param_groups(self.lr)
        cls = torch.optim.AdamW if self.decoupled else torch.optim.Adam
        opt = cls(groups, lr=self.lr, weight_decay=self.weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total_steps) if self.cosine else None
        return opt, sched

    # --- main entry ------------------------------------------------------------------------
    def fit(
        self,
        data: DatasetSplits | MultiTaskDataset,
        valid: MultiTaskDataset | None = None,
        resume: bool = False,
    ) -> TrainResult:
        """Train, select the best epoch on validation data, and load its weights.

        Parameters
        ----------
        data : a :class:`DatasetSplits` (its test split is ignored) or the train split
        valid : the validation split, when ``data`` is a train split
        resume : continue from ``checkpoint_dir`` if a checkpoint is there (a finished run
            returns at once); the checkpoint must come from the same model, method and
            configuration, otherwise :class:`CheckpointMismatchError` lists what differs

        Raises
        ------
        ValueError : tasks or labels that do not fit the model's heads; missing
            environments; a mismatching checkpoint
        NonFiniteLossError : the loss became NaN/inf (the step is reported, the last good
            checkpoint kept and the last good weights restored)
        """
        if isinstance(data, DatasetSplits):
            if valid is not None:
                raise ValueError("valid must be None when data is a DatasetSplits (it has its own valid split)")
            splits = data
        elif isinstance(data, MultiTaskDataset):
            if valid is None:
                raise ValueError("valid is required when data is a single MultiTaskDataset (early stopping needs it)")
            splits = DatasetSplits(train=data, valid=valid, test=valid, name=data.name)
        else:
            raise ValueError(f"data must be a DatasetSplits or MultiTaskDataset, got {type(data).__name__}")
        if resume and self.checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir")
        self._check_data(splits.train, "train split")
        self._check_data(splits.valid, "valid split")
        if self.protocol == "mtcrl":
            log.info("protocol='mtcrl': the valid split is trained on and also used for selection")
        train = self._training_data(splits)
        groups = self._env_groups(train)
        n_steps = self.steps_per_epoch or steps_per_epoch([len(g) for g in groups], self.batch_size)
        self._dp = _distributed.setup(self.device)  # torchrun: data-parallel hooks (issue 9)
        self.device = self._dp.device
        method = self.method.to(self.device)
        if self.channels_last:
            method.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if self.compile:
            method.model.forward_full = torch.compile(method.model.forward_full)  # type: ignore[method-assign]
        method.total_steps = n_steps * self.epochs
        method.set_amp(torch.bfloat16 if self.amp else None)
        optimizer, scheduler = self._build_optimizer(n_steps * self.epochs)
        method.configure_optimizer(optimizer)
        self._dp.prepare(method, optimizer)

        dp = self._dp
        batch_size, seed = self.batch_size, self.seed

        def plan_of(epoch: int) -> list[list[np.ndarray]]:
            return dp.shard_plans(epoch_plan(groups, batch_size, n_steps, seed, epoch))

        train_t = StepBatches(train, plan_of, n_steps, self.device, self.seed, self.loader_options)
        valid_t: Batch | MultiTaskDataset = (
            splits.valid if splits.valid.streamed else Batch.from_dataset(splits.valid, device=self.device))
        fingerprint = {
            "trainer": self.config(),
            "method": method.config(),
            "data": {"train": [len(train), list(train.task_names)], "valid": [len(splits.valid)],
                     "environments": [len(g) for g in groups]},
        }

        cuda_devices: list[int] = []
        if self.device.type == "cuda":
            cuda_devices = [self.device.index if self.device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=cuda_devices):
            # seed only the generators this run uses (fork_rng restores exactly these)
            torch.default_generator.manual_seed(self.seed)
            if cuda_devices:
                with torch.cuda.device(cuda_devices[0]):
                    torch.cuda.manual_seed(self.seed)
            state = self._fresh_state()
            ckpt_path = None if self.checkpoint_dir is None else self.checkpoint_dir / CHECKPOINT_NAME
            if ckpt_path is not None and self._dp.is_main and ckpt_path.parent.is_dir():
                remove_stale_temporaries(ckpt_path.parent)
            if resume and ckpt_path is not None and ckpt_path.exists():
                state = self._load(ckpt_path, fingerprint, optimizer, scheduler) or state
            self._dp.barrier()  # every process has read the checkpoint before rank 0 rewrites it
            return self._run(state, fingerprint, train_t, valid_t, groups, n_steps, optimizer,
                             scheduler, ckpt_path)

    # --- state ---------------------------------------------------------------------------------
    @staticmethod
    def _fresh_state() -> dict[str, Any]:
        return {"epoch": 0, "step": 0, "history": [], "best_state": None, "best_score": math.inf,
                "best_epoch": 0, "bad_epochs": 0, "finished": False, "stopped_early": False}

    def _load(self, path: Path, fingerprint: dict[str, Any], optimizer: torch.optim.Optimizer,
              scheduler: LRScheduler | None) -> dict[str, Any] | None:
        ckpt = _load_checkpoint(path, self.device)
        if ckpt is None:
            return None
        if ckpt.get("version") != CHECKPOINT_VERSION:
            raise CheckpointMismatchError(
                f"checkpoint {path} has version {ckpt.get('version')!r}, expected {CHECKPOINT_VERSION}")
        diffs = _diff(ckpt["fingerprint"], fingerprint)
        if diffs:
            raise CheckpointMismatchError(
                f"checkpoint {path} was written by a different model/method/config; differences: "
                + "; ".join(diffs[:12]) + (f"; … {len(diffs) - 12} more" if len(diffs) > 12 else "")
            )
        self.method.load_state_dict(ckpt["method"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        torch.set_rng_state(ckpt["rng"]["cpu"])
        if self.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], self.device)
        log.info("resumed from %s at epoch %d", path, ckpt["state"]["epoch"])
        state: dict[str, Any] = ckpt["state"]
        return state

    def _save(self, path: Path, state: dict[str, Any], fingerprint: dict[str, Any],
              optimizer: torch.optim.Optimizer, scheduler: LRScheduler | None) -> None:
        rng = {"cpu": torch.get_rng_state(),
               "cuda": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None}
        _atomic_save({
            "version": CHECKPOINT_VERSION, "fingerprint": fingerprint, "state": state,
            "method": self.method.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": None if scheduler is None else scheduler.state_dict(), "rng": rng,
        }, path)

    # --- the loop ------------------------------------------------------------------------------
    def _run(self, state: dict[str, Any], fingerprint: dict[str, Any], train_t: StepBatches,
             valid_t: Batch | MultiTaskDataset,
             groups: list[np.ndarray], n_steps: int, optimizer: torch.optim.Optimizer, scheduler: LRScheduler | None,
             ckpt_path: Path | None) -> TrainResult:
        method = self.method
        dp = self._dp
        writer = self._tensorboard() if dp.is_main else None
        bar = None
        if self.progress and dp.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(total=self.epochs, initial=state["epoch"], desc=type(method).__name__,
                       unit="epoch", disable=None)
        sign = -1.0 if self.mode == "max" else 1.0
        try:
            while not state["finished"] and state["epoch"] < self.epochs:
                epoch = state["epoch"] + 1
                t0 = time.perf_counter()
                last_good = copy.deepcopy(method.state_dict())
                sums: dict[str, Tensor] = {}
                losses = []
                for batches in train_t.epoch(epoch):
                    if self.channels_last:
                        batches = [_channels_last(b) for b in batches]
                    with dp.step_context():
                        logs = method.update(batches)
                    if "loss" not in logs:
                        raise ValueError(
                            f"{type(method).__name__}.update must log a 'loss' entry (used to detect "
                            f"a non-finite loss); it logged {sorted(logs)}"
                        )
                    if scheduler is not None:
                        scheduler.step()
                    for k, v in logs.items():
                        sums[k] = sums[k] + v if k in sums else v.clone()
                    losses.append(logs["loss"])
                finite = torch.isfinite(torch.stack(losses)).cpu().numpy()
                if not finite.all():
                    bad_step = state["step"] + int(np.argmin(finite)) + 1
                    method.load_state_dict(last_good)
                    raise NonFiniteLossError(
                        f"training loss became non-finite at step {bad_step} (epoch {epoch}); "
                        f"weights restored to the end of epoch {epoch - 1}"
                        + (f"; last good checkpoint kept at {ckpt_path}" if ckpt_path and ckpt_path.exists() else ""),
                        step=bad_step, epoch=epoch,
                        checkpoint=ckpt_path if ckpt_path and ckpt_path.exists() else None,
                    )
                state["step"] += n_steps
                row: dict[str, Any] = {"epoch": epoch, "step": state["step"],
                                       "lr": optimizer.param_groups[0]["lr"]}
                row.update({f"train/{k}": float(v) / n_steps for k, v in dp.reduce_logs(sums).items()})
                weights = method.task_weights  # the buffer Method.__init__ registers (typed on Method)
                metrics = dp.evaluate(method.model, valid_t, self.eval_batch_size, weights)
                row.update({f"valid/{k}": v for k, v in metrics.items()})
                row["time_s"] = time.perf_counter() - t0
                if self.select not in row:
                    raise ValueError(f"select={self.select!r} is not a validation metric; "
                                     f"available: {sorted(k for k in row if k.startswith('valid/'))}")
                score = sign * row[self.select]
                if score < state["best_score"] - self.min_delta or state["best_state"] is None:
                    state["best_score"], state["best_epoch"], state["bad_epochs"] = score, epoch, 0
                    state["best_state"] = copy.deepcopy(method.state_dict())
                else:
                    state["bad_epochs"] += 1
                state["history"].append(row)
                state["epoch"] = epoch
                if self.patience is not None and state["bad_epochs"] >= self.patience:
                    state["finished"], state["stopped_early"] = True, True
                elif epoch >= self.epochs:
                    state["finished"] = True
                if ckpt_path is not None and dp.is_main:
                    self._save(ckpt_path, state, fingerprint, optimizer, scheduler)
                if writer is not None:
                    for k, v in row.items():
                        if k != "epoch" and isinstance(v, float):
                            writer.add_scalar(k, v, epoch)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({"loss": f"{row.get('train/loss', float('nan')):.4g}",
                                     self.select: f"{row[self.select]:.4g}"})
                log.info("epoch %d: %s", epoch, {k: round(v, 5) for k, v in row.items() if isinstance(v, float)})
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
            dp.close()
        dp.barrier()  # rank 0's last checkpoint is written before any process moves on
        if state["best_state"] is not None:
            method.load_state_dict(state["best_state"])
        history = pd.DataFrame(state["history"])
        best = float(sign * state["best_score"]) if state["best_epoch"] else float("nan")
        return TrainResult(history=history, best_epoch=state["best_epoch"], best_score=best,
                           select=self.select, stopped_early=state["stopped_early"], checkpoint=ckpt_path)

    def _tensorboard(self) -> Any:
        if self.tensorboard_dir is None:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard not installed
            log.warning("tensorboard_dir given but tensorboard is not installed; not logging to it")
            return None
        return SummaryWriter(str(self.tensorboard_dir))
