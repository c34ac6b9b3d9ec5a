"""Datasets: readers for IDX, .npz, image folders and built-ins; seeded splits; train-only normalisation."""

from edgedistill.data.arrays import RawDataset, Split, kind_of, validate_split
from edgedistill.data.builtin import BUILTIN_DATASETS
from edgedistill.data.sources import read_dataset
from edgedistill.data.splits import DataSplits, Normalizer, make_splits

__all__ = [
    "BUILTIN_DATASETS",
    "DataSplits",
    "Normalizer",
    "RawDataset",
    "Split",
    "kind_of",
    "make_splits",
    "read_dataset",
    "validate_split",
]
