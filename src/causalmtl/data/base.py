"""The dataset contract every loader, model, trainer and evaluation shares (DESIGN.md).

A :class:`MultiTaskDataset` is one split: inputs, an ``(N, T)`` target array, the task
descriptions, and an environment id per example. A :class:`DatasetSplits` bundles the
train / valid / test splits of one dataset with its metadata (e.g. the known causal blocks
of the input, used by the spurious score).

Targets follow the label contract:

* all tasks classification: ``int64`` array, ``-1`` where a label is missing;
* otherwise: ``float64`` array, ``NaN`` where a target is missing (classification labels
  are stored as exact integers in floats).

Inputs are either one array ``(N, ...)``, a ``dict`` of arrays sharing the first axis
(e.g. MovieLens: user ids, movie ids and padded title-word ids), or a
:class:`~causalmtl.data.streamed.FileSource` that reads rows from disk when a batch needs them.

Dense tasks (image benchmarks) have a map per row instead of a number: a ``"segmentation"``
task a class map ``(H, W)`` (int, ``-1`` = ignored pixel), a ``"dense"`` task a regression map
``(C, H, W)`` (float, ``NaN`` = invalid pixel). Their column in ``targets`` says whether the
row has the map (``1.0``) or not (``NaN``); the maps themselves are in ``maps`` (in memory,
``(N, ...)`` per task) or come from the file source.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from .._validation import check_labels
from .streamed import FileSource, RowIndex, Transform, concatenate_sources

TaskKind = Literal["classification", "regression", "segmentation", "dense"]
Inputs = np.ndarray | Mapping[str, np.ndarray] | FileSource

#: the losses each task kind allows; the first is the default
TASK_LOSSES: dict[str, tuple[str, ...]] = {
    "classification": ("nll",),
    "regression": ("l2",),
    "segmentation": ("ce",),
    "dense": ("l2", "l1", "cosine"),
}


@dataclass(frozen=True)
class Task:
    """One prediction task.

    Parameters
    ----------
    name : the task's name
    kind : ``"classification"`` (a label per row), ``"regression"`` (a number per row),
        ``"segmentation"`` (a class map ``(H, W)`` per row, ``-1`` = ignored pixel) or
        ``"dense"`` (a regression map ``(channels, H, W)`` per row, ``NaN`` = invalid pixel)
    n_classes : classes of a classification or segmentation task
    channels : channels of a dense task's map (depth 1, surface normals 3)
    loss : ``""`` for the kind's default, or one of :data:`TASK_LOSSES` for the kind (a dense
        task: ``"l2"``, ``"l1"`` or ``"cosine"``)
    """

    name: str
    kind: TaskKind = "classification"
    n_classes: int = 0
    channels: int = 1
    loss: str = ""

    def __post_init__(self) -> None:
        if self.kind not in TASK_LOSSES:
            raise ValueError(
                f"Task {self.name!r}: kind must be one of {list(TASK_LOSSES)}, got {self.kind!r}"
            )
        if self.kind in ("classification", "segmentation") and self.n_classes < 2:
            raise ValueError(
                f"Task {self.name!r}: a {self.kind} task needs n_classes >= 2, got {self.n_classes}"
            )
        if self.kind == "dense" and (not isinstance(self.channels, int) or self.channels < 1):
            raise ValueError(f"Task {self.name!r}: channels must be an int >= 1, got {self.channels!r}")
        if self.loss and self.loss not in TASK_LOSSES[self.kind]:
            raise ValueError(
                f"Task {self.name!r}: loss {self.loss!r} is not available for a {self.kind} task; "
                f"choose one of {list(TASK_LOSSES[self.kind])}"
            )

    @property
    def is_dense(self) -> bool:
        """Whether the target is a map (segmentation or dense) rather than a number."""
        return self.kind in ("segmentation", "dense")

    @property
    def loss_name(self) -> str:
        """The loss this task trains with (``loss`` or the kind's default)."""
        return self.loss or TASK_LOSSES[self.kind][0]


def _n_rows(inputs: Inputs) -> int:
    if isinstance(inputs, FileSource):
        return len(inputs)
    if isinstance(inputs, Mapping):
        sizes = {k: len(v) for k, v in inputs.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(f"inputs arrays must share their first axis, got lengths {sizes}")
        return next(iter(sizes.values()))
    return len(inputs)


def index_inputs(inputs: Inputs, idx: RowIndex) -> Inputs:
    """Select rows ``idx`` of an array, of every array in a dict of inputs, or of a file source."""
    if isinstance(inputs, FileSource):
        return inputs.subset(idx)
    if isinstance(inputs, Mapping):
        return {k: v[idx] for k, v in inputs.items()}
    rows: np.ndarray = inputs[idx]
    return rows


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
    maps : in-memory dense targets, task name -> ``(N, H, W)`` class maps or ``(N, C, H, W)``
        regression maps (see the module docstring); with a file source the maps come from it
    transform : applied to every row read from a file source (``(sample, rng) -> sample``,
        :mod:`causalmtl.data.transforms`); seeded per (seed, epoch, row)
    """

    inputs: Inputs
    targets: np.ndarray
    tasks: tuple[Task, ...]
    # None (the default) means "all zeros"; __post_init__ always stores an int64 array, so the
    # field is typed as what every reader sees (a `| None` would force a check at each use).
    env: np.ndarray = None  # type: ignore[assignment]
    name: str = ""
    maps: dict[str, np.ndarray] | None = None
    transform: Transform | None = None

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
                if task.is_dense:
                    col = targets[:, j]
                    ok = np.isnan(col) | (col == 1.0)
                    if not ok.all():
                        r = int(np.argmin(ok))
                        raise ValueError(
                            f"targets[{r}, {j}] = {col[r]!r} for dense task {task.name!r} must be 1.0 "
                            f"(the row has the map) or NaN (missing)"
                        )
                elif task.kind == "classification":
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
        self._check_maps(n)

    def _check_maps(self, n: int) -> None:
        dense = {t.name: t for t in self.tasks if t.is_dense}
        maps = dict(self.maps or {})
        unknown = sorted(set(maps) - set(dense))
        if unknown:
            raise ValueError(f"maps has {unknown}, which are not dense tasks of this dataset; "
                             f"dense tasks: {sorted(dense)}")
        if not self.streamed:
            if self.transform is not None:
                raise ValueError("transform applies to rows read from a FileSource; these inputs "
                                 "are in memory (transform them once instead)")
            missing = sorted(set(dense) - set(maps))
            if missing:
                raise ValueError(f"in-memory inputs need maps for the dense tasks {missing} "
                                 f"(an (N, H, W) or (N, C, H, W) array per task)")
        for name, m in maps.items():
            task = dense[name]
            want = 3 if task.kind == "segmentation" else 4
            if m.ndim != want or len(m) != n or (task.kind == "dense" and m.shape[1] != task.channels):
                shape = "(N, H, W)" if want == 3 else f"(N, {task.channels}, H, W)"
                raise ValueError(f"maps[{name!r}] must have shape {shape} with N = {n}, got {m.shape}")
        self.maps = maps or None

    @property
    def streamed(self) -> bool:
        """Whether inputs are read lazily from a :class:`~causalmtl.data.streamed.FileSource`."""
        return isinstance(self.inputs, FileSource)

    @property
    def dense_tasks(self) -> dict[str, tuple[str, int]]:
        """Dense task name -> ``(kind, channels)``, in task order."""
        return {t.name: (t.kind, t.channels) for t in self.tasks if t.is_dense}

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
            targets: np.ndarray = self.targets
            return targets
        lab = np.where(np.isnan(self.targets), -1, self.targets)
        return lab.astype(np.int64)

    @property
    def missing(self) -> np.ndarray:
        """Boolean ``(N, T)`` mask, True where the target is missing."""
        if self.targets.dtype.kind == "i":
            mask: np.ndarray = self.targets < 0
            return mask
        result: np.ndarray = np.isnan(self.targets)
        return result

    @property
    def environments(self) -> np.ndarray:
        """Sorted unique environment ids present in this split."""
        return np.unique(self.env)

    # --- derived datasets -----------------------------------------------------------------
    def subset(self, idx: RowIndex, name: str | None = None) -> MultiTaskDataset:
        """Rows ``idx`` (a boolean mask or integer indices) as a new dataset."""
        return MultiTaskDataset(
            inputs=index_inputs(self.inputs, idx),
            targets=self.targets[idx],
            tasks=self.tasks,
            env=self.env[idx],
            name=self.name if name is None else name,
            maps=None if self.maps is None else {k: v[idx] for k, v in self.maps.items()},
            transform=self.transform,
        )

    def with_env(self, env: int | np.ndarray) -> MultiTaskDataset:
        """A copy whose environment ids are replaced (an int sets every example's id)."""
        new_env = np.full(len(self), env, dtype=np.int64) if np.isscalar(env) else np.asarray(env)
        return replace(self, env=new_env)

    def select_tasks(self, tasks: Sequence[int | str]) -> MultiTaskDataset:
        """A copy restricted to the given tasks (by index or name), in that order."""
        names = self.task_names
        idx: list[int] = []
        for t in tasks:
            if isinstance(t, str):
                if t not in names:
                    raise ValueError(f"unknown task {t!r}; valid tasks are {list(names)}")
                idx.append(names.index(t))
            else:
                if not 0 <= int(t) < len(names):
                    raise ValueError(f"task index {t} out of range [0, {len(names)})")
                idx.append(int(t))
        chosen = tuple(self.tasks[i] for i in idx)
        kept = {t.name for t in chosen}
        return MultiTaskDataset(
            inputs=self.inputs,
            targets=self.targets[:, idx],
            tasks=chosen,
            env=self.env,
            name=self.name,
            maps=None if self.maps is None else {k: v for k, v in self.maps.items() if k in kept},
            transform=self.transform,
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
        table: np.ndarray = (counts / counts.sum()).reshape(self.n_classes)
        return table


def concatenate(datasets: Sequence[MultiTaskDataset], name: str = "") -> MultiTaskDataset:
    """Concatenate splits with identical tasks (keeps each example's environment id)."""
    if not datasets:
        raise ValueError("datasets is empty; nothing to concatenate")
    tasks = datasets[0].tasks
    for i, d in enumerate(datasets[1:], 1):
        if d.tasks != tasks:
            raise ValueError(f"datasets[{i}] has tasks {d.task_names}, expected {datasets[0].task_names}")
    first = datasets[0].inputs
    if any(d.streamed for d in datasets):
        if not all(d.streamed for d in datasets):
            raise ValueError("cannot concatenate streamed (FileSource) and in-memory datasets")
        inputs: Inputs = concatenate_sources([d.inputs for d in datasets if isinstance(d.inputs, FileSource)])
    elif isinstance(first, Mapping):
        dicts = [d.inputs for d in datasets if isinstance(d.inputs, Mapping)]
        if len(dicts) != len(datasets):
            raise ValueError("cannot concatenate dict inputs with array inputs")
        inputs = {k: np.concatenate([x[k] for x in dicts]) for k in first}
    else:
        inputs = np.concatenate([np.asarray(d.inputs) for d in datasets])
    maps = None
    if datasets[0].maps is not None:
        all_maps = [d.maps for d in datasets if d.maps is not None]
        if len(all_maps) != len(datasets):
            raise ValueError("cannot concatenate datasets with in-memory maps and datasets without")
        maps = {k: np.concatenate([m[k] for m in all_maps]) for k in datasets[0].maps}
    return MultiTaskDataset(
        inputs=inputs,
        targets=np.concatenate([d.targets for d in datasets]),
        tasks=tasks,
        env=np.concatenate([d.env for d in datasets]),
        name=name,
        maps=maps,
        transform=datasets[0].transform,
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

    def __iter__(self) -> Iterator[tuple[str, MultiTaskDataset]]:
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
