"""The dataset contract every loader, model, trainer and evaluation shares (DESIGN.md).

A :class:`MultiTaskDataset` is one split: inputs, an ``(N, T)`` target array, the task
descriptions, and an environment id per example. A :class:`DatasetSplits` bundles the
train / valid / test splits of one dataset with its metadata (e.g. the known causal blocks
of the input, used by the spurious score).

Targets follow the label contract:

* all tasks classification: ``int64`` array, ``-1`` where a label is missing;
* otherwise: ``float64`` array, ``NaN`` where a target is missing (classification labels
  are stored as exact integers in floats).

Inputs are either one array ``(N, ...)`` or a ``dict`` of arrays sharing the first axis
(e.g. MovieLens: user ids, movie ids and padded title-word ids).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from .._validation import check_labels

TaskKind = Literal["classification", "regression"]
Inputs = np.ndarray | Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Task:
    """One prediction task: a name, a kind and, for classification, the number of classes."""

    name: str
    kind: TaskKind = "classification"
    n_classes: int = 0

    def __post_init__(self) -> None:
        if self.kind not in ("classification", "regression"):
            raise ValueError(
                f"Task {self.name!r}: kind must be 'classification' or 'regression', got {self.kind!r}"
            )
        if self.kind == "classification" and self.n_classes < 2:
            raise ValueError(
                f"Task {self.name!r}: a classification task needs n_classes >= 2, got {self.n_classes}"
            )


def _n_rows(inputs: Inputs) -> int:
    if isinstance(inputs, Mapping):
        sizes = {k: len(v) for k, v in inputs.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs arrays must share their first axis, got lengths {sizes}")
        return next(iter(sizes.values()))
    return len(inputs)


def index_inputs(inputs: Inputs, idx: Any) -> Inputs:
    """Select rows ``idx`` of an array or of every array in a dict of inputs."""
    if isinstance(inputs, Mapping):
        return {k: v[idx] for k, v in inputs.items()}
    return inputs[idx]


@dataclass
class MultiTaskDataset:
    """One split of a multi-task dataset.

    Parameters
    ----------
    inputs : array ``(N, ...)`` or dict of such arrays
    targets : array ``(N, T)``; see the module docstring for dtype and missing values
    tasks : one :class:`Task` per target column
    env : int array ``(N,)``, the environment id of each example (defaults to all zeros)
    name : free-form name of the split, e.g. ``"multi-digits/train"``
    """

    inputs: Inputs
    targets: np.ndarray
    tasks: tuple[Task, ...]
    env: np.ndarray | None = None
    name: str = ""

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks)
        n = _n_rows(self.inputs)
        targets = np.asarray(self.targets)
        if targets.ndim == 1:
            targets = targets[:, None]
        if targets.ndim != 2 or targets.shape[0] != n:
            raise ValueError(
                f"targets must have shape (N, T) = ({n}, {len(self.tasks)}) to match inputs, "
                f"got {targets.shape}"
            )
        if targets.shape[1] != len(self.tasks):
            raise ValueError(
                f"targets has {targets.shape[1]} columns but {len(self.tasks)} tasks were given"
            )
        if all(t.kind == "classification" for t in self.tasks):
            targets = check_labels(targets, self.n_classes_or_zero, name="targets")
        else:
            targets = targets.astype(np.float64, copy=False)
            for j, task in enumerate(self.tasks):
                if task.kind == "classification":
                    col = targets[:, j]
                    ok = np.isnan(col) | ((col >= 0) & (col < task.n_classes) & (col == np.round(col)))
                    if not ok.all():
                        r = int(np.argmin(ok))
                        raise ValueError(
                            f"targets[{r}, {j}] = {col[r]!r} is not a class label in [0, {task.n_classes}) "
                            f"(NaN = missing) for task {task.name!r}"
                        )
        self.targets = targets
        env = np.zeros(n, dtype=np.int64) if self.env is None else np.asarray(self.env)
        if env.shape != (n,) or env.dtype.kind not in "iu":
            raise ValueError(f"env must be an int array of shape ({n},), got {env.dtype} {env.shape}")
        self.env = env.astype(np.int64, copy=False)

    # --- basic views -------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks)

    @property
    def n_classes_or_zero(self) -> tuple[int, ...]:
        """Class count per task (0 for regression tasks)."""
        return tuple(t.n_classes if t.kind == "classification" else 0 for t in self.tasks)

    @property
    def n_classes(self) -> tuple[int, ...]:
        """Class count per task; raises if any task is a regression task."""
        if any(t.kind != "classification" for t in self.tasks):
            raise ValueError(f"dataset {self.name!r} has regression tasks; n_classes is undefined")
        return tuple(t.n_classes for t in self.tasks)

    @property
    def labels(self) -> np.ndarray:
        """Integer ``(N, T)`` labels with ``-1`` for missing (classification datasets only)."""
        if self.targets.dtype.kind == "i":
            return self.targets
        lab = np.where(np.isnan(self.targets), -1, self.targets)
        return lab.astype(np.int64)

    @property
    def missing(self) -> np.ndarray:
        """Boolean ``(N, T)`` mask, True where the target is missing."""
        if self.targets.dtype.kind == "i":
            return self.targets < 0
        return np.isnan(self.targets)

    @property
    def environments(self) -> np.ndarray:
        """Sorted unique environment ids present in this split."""
        return np.unique(self.env)

    # --- derived datasets -----------------------------------------------------------------
    def subset(self, idx: Any, name: str | None = None) -> MultiTaskDataset:
        """Rows ``idx`` (a boolean mask or integer indices) as a new dataset."""
        return MultiTaskDataset(
            inputs=index_inputs(self.inputs, idx),
            targets=self.targets[idx],
            tasks=self.tasks,
            env=self.env[idx],
            name=self.name if name is None else name,
        )

    def with_env(self, env: int | np.ndarray) -> MultiTaskDataset:
        """A copy whose environment ids are replaced (an int sets every example's id)."""
        new_env = np.full(len(self), env, dtype=np.int64) if np.isscalar(env) else np.asarray(env)
        return replace(self, env=new_env)

    def select_tasks(self, tasks: Sequence[int | str]) -> MultiTaskDataset:
        """A copy restricted to the given tasks (by index or name), in that order."""
        names = self.task_names
        idx = []
        for t in tasks:
            if isinstance(t, str):
                if t not in names:
                    raise ValueError(f"unknown task {t!r}; valid tasks are {list(names)}")
                idx.append(names.index(t))
            else:
                if not 0 <= int(t) < len(names):
                    raise ValueError(f"task index {t} out of range [0, {len(names)})")
                idx.append(int(t))
        return MultiTaskDataset(
            inputs=self.inputs,
            targets=self.targets[:, idx],
            tasks=tuple(self.tasks[i] for i in idx),
            env=self.env,
            name=self.name,
        )

    def joint_table(self) -> np.ndarray:
        """Empirical joint label distribution over fully-labelled rows, shape ``n_classes``.

        This is the ``p(y, y')`` table of the split (counts of fully-labelled rows divided by
        their number; no smoothing). Raises if no row is fully labelled.
        """
        lab = self.labels
        full = (lab >= 0).all(axis=1)
        if not full.any():
            raise ValueError(f"dataset {self.name!r} has no fully-labelled row; joint table undefined")
        flat = np.ravel_multi_index(lab[full].T, self.n_classes)
        counts = np.bincount(flat, minlength=int(np.prod(self.n_classes)))
        return (counts / counts.sum()).reshape(self.n_classes)


def concatenate(datasets: Sequence[MultiTaskDataset], name: str = "") -> MultiTaskDataset:
    """Concatenate splits with identical tasks (keeps each example's environment id)."""
    if not datasets:
        raise ValueError("datasets is empty; nothing to concatenate")
    tasks = datasets[0].tasks
    for i, d in enumerate(datasets[1:], 1):
        if d.tasks != tasks:
            raise ValueError(f"datasets[{i}] has tasks {d.task_names}, expected {datasets[0].task_names}")
    first = datasets[0].inputs
    if isinstance(first, Mapping):
        inputs: Inputs = {k: np.concatenate([d.inputs[k] for d in datasets]) for k in first}
    else:
        inputs = np.concatenate([d.inputs for d in datasets])
    return MultiTaskDataset(
        inputs=inputs,
        targets=np.concatenate([d.targets for d in datasets]),
        tasks=tasks,
        env=np.concatenate([d.env for d in datasets]),
        name=name,
    )


@dataclass
class DatasetSplits:
    """Train, valid and test splits of one dataset, plus metadata.

    By convention the environment id of the train split is 0, of valid 1 and of test 2
    unless a loader documents otherwise. ``meta`` may hold, e.g., ``"causal_blocks"``: a
    list (one per task) of input-feature index arrays that are causal for that task.
    """

    train: MultiTaskDataset
    valid: MultiTaskDataset
    test: MultiTaskDataset
    name: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):
        yield from (("train", self.train), ("valid", self.valid), ("test", self.test))

    @property
    def tasks(self) -> tuple[Task, ...]:
        return self.train.tasks

    def joint_tables(self) -> dict[str, np.ndarray]:
        """The empirical joint label table ``p(y, y', …)`` of each split."""
        return {name: split.joint_table() for name, split in self}

    def summary(self) -> str:
        """A short human-readable description: sizes, tasks, environments."""
        lines = [f"{self.name}: tasks {list(self.train.task_names)}"]
        for name, split in self:
            lines.append(f"  {name}: {len(split)} examples, environments {split.environments.tolist()}")
        return "\n".join(lines)
