"""Turn a data argument (`builtin:NAME`, a .npz file, a directory of IDX files, an image folder) into a dataset."""

from __future__ import annotations

from pathlib import Path

from edgedistill.data.arrays import RawDataset
from edgedistill.data.builtin import BUILTIN_DATASETS
from edgedistill.data.folder import looks_like_image_folder, read_image_folder
from edgedistill.data.idx import looks_like_idx_dir, read_idx_dir
from edgedistill.data.npz import read_npz
from edgedistill.errors import DataError


def read_dataset(spec: str) -> RawDataset:
    """Read any supported source. The format is decided by the argument's form, never guessed from content."""
    if spec.startswith("builtin:"):
        return BUILTIN_DATASETS.get(spec.split(":", 1)[1])()
    path = Path(spec).expanduser()
    if not path.exists():
        known = ", ".join(f"builtin:{n}" for n in BUILTIN_DATASETS.names())
        raise DataError(f"Data path {path} does not exist. Give a .npz file, a directory, or one of: {known}.")
    if path.is_file():
        if path.suffix == ".npz":
            return read_npz(path)
        raise DataError(f"{path}: unsupported data file; expected a .npz archive (arrays `x` and optional `y`).")
    if looks_like_idx_dir(path):
        return read_idx_dir(path)
    if looks_like_image_folder(path):
        return read_image_folder(path)
    raise DataError(
        f"{path} is a directory but holds neither IDX files (train-images-idx3-ubyte…) nor one sub-folder per class."
    )
