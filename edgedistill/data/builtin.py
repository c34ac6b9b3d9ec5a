"""Built-in datasets that need no download: scikit-learn's digits and Fashion-MNIST from the Debian package."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from edgedistill.data.arrays import RawDataset, Split
from edgedistill.data.idx import read_idx_dir
from edgedistill.errors import DataError
from edgedistill.registry import Registry

BUILTIN_DATASETS: Registry = Registry("built-in dataset")

FASHION_CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot"]
FASHION_DIRS = ("/usr/share/datasets/fashion-mnist",)


@BUILTIN_DATASETS.register("digits", "scikit-learn's bundled 8×8 handwritten digits (1,797 images, 10 classes)")
def digits() -> RawDataset:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]  # N×1×8×8 in [0, 1]
    return RawDataset(Split(x, d.target.astype(np.int64)), None, "builtin:digits", [str(i) for i in range(10)])


@BUILTIN_DATASETS.register(
    "fashion-mnist", "Fashion-MNIST 28×28 (60k train / 10k test), from Debian's dataset-fashion-mnist package"
)
def fashion_mnist() -> RawDataset:
    candidates = [os.environ.get("EDGEDISTILL_FASHION_MNIST", ""), *FASHION_DIRS]
    for c in candidates:
        if c and Path(c).is_dir():
            ds = read_idx_dir(Path(c), FASHION_CLASSES)
            return RawDataset(ds.train, ds.test, "builtin:fashion-mnist", FASHION_CLASSES)
    raise DataError(
        "Fashion-MNIST is not on this machine. Install it with `apt-get install dataset-fashion-mnist` "
        "(it lands in /usr/share/datasets/fashion-mnist), or point EDGEDISTILL_FASHION_MNIST at a directory "
        "holding its four IDX files."
    )
