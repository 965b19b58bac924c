"""The explicit checks that replaced assumptions while typing the lower layers (issue 16).

Each input here used to fail deep inside numpy / torch with an unrelated message (or is a
rewrite of a helper whose behaviour must not change); now it is refused with an error that
names what is wrong, or kept exactly as before.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from causalmtl.data import MultiTaskDataset, Task, concatenate
from causalmtl.data.transforms import _pair
from causalmtl.nn import STL, CrossStitchNetwork

TASK = (Task("a", n_classes=2),)


def _split(inputs: np.ndarray | dict[str, np.ndarray]) -> MultiTaskDataset:
    return MultiTaskDataset(inputs=inputs, targets=np.array([0, 1, 1]), tasks=TASK)


def test_concatenate_dict_inputs_with_array_inputs_is_refused():
    as_dict = _split({"x": np.zeros((3, 2))})
    as_array = _split(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="dict inputs with array inputs"):
        concatenate([as_dict, as_array])


def test_concatenate_keeps_dicts_and_arrays_row_order():
    a = _split({"x": np.arange(6.0).reshape(3, 2)})
    b = _split({"x": np.arange(6.0, 12.0).reshape(3, 2)})
    both = concatenate([a, b])
    assert isinstance(both.inputs, dict)
    np.testing.assert_array_equal(both.inputs["x"], np.arange(12.0).reshape(6, 2))
    arrays = concatenate([_split(np.arange(3.0)), _split(np.arange(3.0, 6.0))])
    np.testing.assert_array_equal(arrays.inputs, np.arange(6.0))


class _OneBlock(nn.Module):
    """An encoder that is one module, not a sequence of layers (nothing to stitch between)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(5, 4)
        self.out_dim = 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.lin(x)
        return out


def test_cross_stitch_from_stl_refuses_an_encoder_that_is_not_a_sequence_of_layers():
    stl = STL(_OneBlock, TASK)
    with pytest.raises(TypeError, match="_OneBlock is not a sequence of layers"):
        CrossStitchNetwork.from_stl(stl)


@pytest.mark.parametrize(
    ("size", "want"),
    [(3, (3, 3)), (np.int64(2), (2, 2)), (3.0, (3, 3)), ((4, 5), (4, 5)), ([6, 7], (6, 7)), (np.array([8, 9]), (8, 9))],
)
def test_pair_accepts_an_int_or_height_width(size, want):
    got = _pair(size, "size")
    assert got == want and all(type(v) is int for v in got)


@pytest.mark.parametrize("size", [0, (1,), (1, 2, 3), (2, 0)])
def test_pair_refuses_other_sizes(size):
    with pytest.raises(ValueError, match="size must be a positive int or"):
        _pair(size, "size")
