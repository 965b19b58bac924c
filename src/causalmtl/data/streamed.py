"""Inputs read lazily from disk: the :class:`FileSource` side of the dataset contract.

A :class:`~causalmtl.data.base.MultiTaskDataset` holds its scalar targets (class labels,
scalars, the presence column of each dense task) and environment ids in memory — they come
from index or label files and are what GMTL, the priors and the samplers need — while its
``inputs`` may be a :class:`FileSource`: an object that reads row ``i`` (an image and the
dense target maps of that row) only when a batch needs it. Taskonomy has four million images;
nothing here ever reads a whole split.

A loader subclasses :class:`FileSource` and implements ``__len__`` and :meth:`FileSource.read`
(row ``i`` in its stored form, as a :class:`Sample`); subsets and concatenations are views
that never copy or read anything::

    class MySource(FileSource):
        def __init__(self, paths):
            self.paths = list(paths)
        def __len__(self):
            return len(self.paths)
        def read(self, i):
            return Sample(x=read_image(self.paths[i]), maps={"depth": read_depth(...)})

:func:`collate` turns the rows of one batch into stacked arrays: ``x`` ``(B, ...)`` and one
array per dense task, filled with the task's missing value (``-1`` for a class map, ``NaN``
for a regression map) where a row has no map. :class:`StepLoader` feeds a training epoch's
batch plan (:func:`causalmtl.train.sampling.epoch_plan`) through a
:class:`torch.utils.data.DataLoader` (workers, pinned memory, prefetch), so a streamed run
draws exactly the rows an in-memory run would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Sample", "FileSource", "ArraySource", "collate", "row_rng", "read_rows"]


@dataclass
class Sample:
    """One row as read from disk.

    Attributes
    ----------
    x : the input, e.g. an image ``(C, H, W)`` (``uint8`` or float)
    maps : the row's dense targets by task name: a class map ``(H, W)`` (int, ``-1`` = ignored
        pixel) or a regression map ``(C, H, W)`` (float, ``NaN`` = invalid pixel). A task
        absent from ``maps`` is missing for this row.
    """

    x: np.ndarray
    maps: dict[str, np.ndarray] = field(default_factory=dict)


#: rows to select: integer indices or a boolean mask (an array or a sequence), a slice or one row
RowIndex = np.ndarray | Sequence[int] | Sequence[bool] | slice | int

#: a transform: ``(sample, rng) -> sample``, applied to ``x`` and every map consistently
Transform = Callable[[Sample, np.random.Generator], Sample]


class FileSource:
    """Rows read lazily (see the module docstring). Subclasses implement ``__len__`` and ``read``."""

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def read(self, i: int) -> Sample:  # pragma: no cover - abstract
        """Row ``i`` (``0 <= i < len(self)``) in its stored form."""
        raise NotImplementedError

    def read_batch(self, rows: np.ndarray) -> np.ndarray | None:
        """Optional vectorised read of the inputs of ``rows`` as one ``(n, ...)`` array.

        Sources that can compose many rows at once (e.g. generated Multi-MNIST) override it;
        the default ``None`` means "read row by row". Used only for rows without dense maps
        and without a transform (:func:`read_inputs`).
        """
        return None

    # --- views ------------------------------------------------------------------------------
    def subset(self, idx: RowIndex) -> FileSource:
        """Rows ``idx`` (integer indices or a boolean mask) as a view; nothing is read."""
        rows = np.arange(len(self))[idx]
        return _View(self, np.atleast_1d(rows).astype(np.int64))

    def __getitem__(self, idx: RowIndex) -> FileSource:
        return self.subset(idx)

    def describe(self) -> str:
        """A short description for errors and run metadata (default: the class name)."""
        return type(self).__name__


class _View(FileSource):
    """Rows ``rows`` of ``base``; a view of a view points at the base directly."""

    base: FileSource
    rows: np.ndarray

    def __init__(self, base: FileSource, rows: np.ndarray) -> None:
        if isinstance(base, _View):
            rows, base = base.rows[rows], base.base
        self.base = base
        self.rows = rows

    def __len__(self) -> int:
        return len(self.rows)

    def read(self, i: int) -> Sample:
        return self.base.read(int(self.rows[i]))

    def read_batch(self, rows: np.ndarray) -> np.ndarray | None:
        return self.base.read_batch(self.rows[np.asarray(rows, dtype=np.int64)])

    def describe(self) -> str:
        return f"{self.base.describe()}[{len(self.rows)} rows]"


class _Concat(FileSource):
    """Sources one after another (the trainer's train + valid under the MT-CRL protocol)."""

    def __init__(self, parts: Sequence[FileSource]) -> None:
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def read(self, i: int) -> Sample:
        k = int(np.searchsorted(self.offsets, i, side="right")) - 1
        return self.parts[k].read(int(i - self.offsets[k]))

    def describe(self) -> str:
        return " + ".join(p.describe() for p in self.parts)


def concatenate_sources(parts: Sequence[FileSource]) -> FileSource:
    """One source reading ``parts`` in order."""
    return _Concat(parts)


class ArraySource(FileSource):
    """Rows of in-memory (or memory-mapped) arrays served through the streamed path.

    ``x`` is ``(N, ...)``; ``maps`` maps a dense task's name to its ``(N, ...)`` target array.
    Useful for ``.npy`` files opened with ``numpy.load(mmap_mode="r")`` and for checking that
    the streamed and in-memory paths agree.
    """

    def __init__(self, x: np.ndarray, maps: Mapping[str, np.ndarray] | None = None) -> None:
        self.x = x
        self.maps = dict(maps or {})
        for name, m in self.maps.items():
            if len(m) != len(x):
                raise ValueError(f"maps[{name!r}] has {len(m)} rows but x has {len(x)}")

    def __len__(self) -> int:
        return len(self.x)

    def read(self, i: int) -> Sample:
        return Sample(np.asarray(self.x[i]), {k: np.asarray(v[i]) for k, v in self.maps.items()})


def row_rng(seed: int, epoch: int, row: int) -> np.random.Generator:
    """The generator a transform uses for ``row`` in ``epoch``: ``default_rng([seed, epoch, row])``.

    A pure function of the three, so crops and flips do not depend on worker count, batch
    order or resumption.
    """
    return np.random.default_rng([int(seed), int(epoch), int(row)])


def read_rows(source: FileSource, rows: np.ndarray, transform: Transform | None = None,
              seed: int = 0, epoch: int = 0) -> list[Sample]:
    """Read ``rows`` of ``source`` and apply ``transform`` with :func:`row_rng` per row."""
    out = []
    for r in rows:  # one file read per row: the loop is I/O, not arithmetic
        s = source.read(int(r))
        if transform is not None:
            s = transform(s, row_rng(seed, epoch, int(r)))
        out.append(s)
    return out


def collate(samples: Sequence[Sample], dense: Mapping[str, tuple[str, int]]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stack samples into ``x`` ``(B, ...)`` and one array per dense task.

    Parameters
    ----------
    samples : the rows of one batch (same input shape)
    dense : task name -> ``(kind, channels)`` for every dense task of the dataset; a row
        without that task's map gets ``-1`` (class map) or ``NaN`` (regression map) there
    """
    if not samples:
        raise ValueError("collate got no samples")
    shapes = {s.x.shape for s in samples}
    if len(shapes) != 1:
        raise ValueError(f"the rows of a batch have different input shapes {sorted(shapes)}; "
                         "add a transform that resizes or crops them to one size")
    x = np.stack([s.x for s in samples])
    hw = x.shape[-2:]
    maps: dict[str, np.ndarray] = {}
    for name, (kind, channels) in dense.items():
        present = [s.maps.get(name) for s in samples]
        shape = next((m.shape for m in present if m is not None),
                     tuple(hw) if kind == "segmentation" else (channels, *hw))
        if kind == "segmentation":
            fill = np.full(shape, -1, dtype=np.int64)
            maps[name] = np.stack([fill if m is None else np.asarray(m, dtype=np.int64) for m in present])
        else:
            fill = np.full(shape, np.nan, dtype=np.float32)
            maps[name] = np.stack([fill if m is None else np.asarray(m, dtype=np.float32) for m in present])
    return x, maps


def iter_chunks(n: int, size: int) -> Iterator[np.ndarray]:
    """``arange(n)`` in consecutive chunks of ``size`` rows."""
    for start in range(0, n, size):
        yield np.arange(start, min(n, start + size))
