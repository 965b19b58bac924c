"""Datasets on the shared :class:`MultiTaskDataset` contract."""

from .base import DatasetSplits, MultiTaskDataset, Task, concatenate, index_inputs

__all__ = ["DatasetSplits", "MultiTaskDataset", "Task", "concatenate", "index_inputs"]
