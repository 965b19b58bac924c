"""Datasets on the shared :class:`MultiTaskDataset` contract."""

from ._sources import DATA_ENV, MissingDataError
from ._two_digit import biased_joint, split_label_pairs
from .attributes import PAPER_PAIRS, load_attributes, write_synthetic_attributes
from .base import DatasetSplits, MultiTaskDataset, Task, concatenate, index_inputs
from .cityscapes import load_cityscapes, write_synthetic_cityscapes
from .digits import load_digit_images, make_multi_digits
from .gaussian_toy import (
    GaussianToy,
    bivariate_bernoulli,
    covariance_range,
    decision_boundaries,
    make_gaussian_toy,
    plot_decision_boundaries,
)
from .idx import IDXFormatError, read_idx, sha256_file, write_idx
from .mnist import (
    ChecksumWarning,
    MissingMNISTError,
    download_mnist,
    find_mnist_files,
    load_mnist,
    make_multi_mnist,
)
from .movielens import genre_mse, load_movielens, read_movielens
from .multi_sem import agreement_rates, make_multi_sem, random_rotation, sem_label_table
from .nyuv2 import load_nyuv2, normals_from_depth, write_nyuv2_index, write_synthetic_nyuv2
from .table import load_table, read_table
from .taskonomy import load_taskonomy, write_synthetic_taskonomy
from .yeast import load_yeast

__all__ = [
    "DatasetSplits",
    "GaussianToy",
    "MultiTaskDataset",
    "Task",
    "bivariate_bernoulli",
    "concatenate",
    "covariance_range",
    "decision_boundaries",
    "index_inputs",
    "make_gaussian_toy",
    "plot_decision_boundaries",
    "agreement_rates",
    "make_multi_sem",
    "random_rotation",
    "sem_label_table",
    "biased_joint",
    "split_label_pairs",
    "load_digit_images",
    "make_multi_digits",
    "DATA_ENV",
    "MissingDataError",
    "PAPER_PAIRS",
    "genre_mse",
    "load_attributes",
    "load_movielens",
    "load_yeast",
    "read_movielens",
    "IDXFormatError",
    "read_idx",
    "sha256_file",
    "write_idx",
    "ChecksumWarning",
    "MissingMNISTError",
    "download_mnist",
    "find_mnist_files",
    "load_mnist",
    "make_multi_mnist",
    "load_table",
    "read_table",
    "load_nyuv2",
    "normals_from_depth",
    "write_nyuv2_index",
    "write_synthetic_nyuv2",
    "load_cityscapes",
    "write_synthetic_cityscapes",
    "load_taskonomy",
    "write_synthetic_attributes",
    "write_synthetic_taskonomy",
]
