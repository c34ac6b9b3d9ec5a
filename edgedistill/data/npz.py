"""`.npz` arrays: `x` (required) and `y` (optional); optional `x_test`/`y_test` and `class_names`."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgedistill.data.arrays import RawDataset, Split, kind_of
from edgedistill.errors import DataError


def _labels(arr: np.ndarray | None, path: Path) -> np.ndarray | None:
    if arr is None:
        return None
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{path}: labels `y` must be whole class indices; found non-integer values.")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: labels `y` must be integers, got dtype {arr.dtype}.")
    return arr.astype(np.int64)


def read_npz(path: Path) -> RawDataset:
    """Read arrays without unpickling (object arrays are refused)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise DataError(f"Cannot read {path} as a .npz archive of plain arrays: {exc}.") from None
    if "x" not in arrays:
        raise DataError(f"{path} has arrays {sorted(arrays)} but no `x`; store samples as `x` (and labels as `y`).")
    x = arrays["x"].astype(np.float32)
    kind_of(x)
    train = Split(x, _labels(arrays.get("y"), path))
    test = None
    if "x_test" in arrays:
        test = Split(arrays["x_test"].astype(np.float32), _labels(arrays.get("y_test"), path))
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else []
    return RawDataset(train=train, test=test, source=str(path), class_names=names)
