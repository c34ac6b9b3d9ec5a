"""IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from edgedistill.data.arrays import RawDataset, Split
from edgedistill.errors import DataError

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file: magic (0, 0, dtype code, ndim), big-endian dims, then the data."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"Cannot read IDX file {path}: {exc}.") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number).")
    ndim = raw[3]
    dims = np.frombuffer(raw, ">u4", count=ndim, offset=4).astype(int)
    dtype = np.dtype(_DTYPES[raw[2]])
    expected = int(np.prod(dims)) * dtype.itemsize
    body = raw[4 + 4 * ndim :]
    if len(body) != expected:
        raise DataError(f"{path}: header promises {expected} bytes of data, file holds {len(body)}.")
    return np.frombuffer(body, dtype).reshape(dims)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (f"{stem}-idx3-ubyte", f"{stem}-idx1-ubyte", f"{stem}.idx"):
        for suffix in ("", ".gz"):
            p = directory / (name + suffix)
            if p.exists():
                return p
    return None


def _images(arr: np.ndarray) -> np.ndarray:
    x = arr.astype(np.float32)
    if arr.dtype == np.uint8:
        x /= 255.0
    return x[:, None] if x.ndim == 3 else x  # N×H×W -> N×1×H×W


def read_idx_dir(directory: Path, class_names: list[str] | None = None) -> RawDataset:
    """A directory with train-images/train-labels and, optionally, t10k-images/t10k-labels IDX files."""
    tr_x, tr_y = _find(directory, "train-images"), _find(directory, "train-labels")
    if tr_x is None or tr_y is None:
        raise DataError(
            f"{directory} holds no train-images-idx3-ubyte[.gz] / train-labels-idx1-ubyte[.gz] pair of IDX files."
        )
    train = Split(_images(read_idx(tr_x)), read_idx(tr_y).astype(np.int64))
    te_x, te_y = _find(directory, "t10k-images"), _find(directory, "t10k-labels")
    test = Split(_images(read_idx(te_x)), read_idx(te_y).astype(np.int64)) if te_x and te_y else None
    return RawDataset(train=train, test=test, source=str(directory), class_names=class_names or [])


def looks_like_idx_dir(path: Path) -> bool:
    return path.is_dir() and _find(path, "train-images") is not None
