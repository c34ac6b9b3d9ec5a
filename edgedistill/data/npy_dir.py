"""A folder of `.npy` arrays, memory-mapped: `x.npy` (required), `y.npy`, `x_test.npy`, `y_test.npy` and
`class_names.npy` (optional): the `.npz` field names, one file each.

Unlike an `.npz` (a zip archive, which numpy reads whole: `np.load` ignores `mmap_mode` for it), a `.npy` file is
memory-mapped (`np.load(mmap_mode="r")`): reading the folder costs nothing, and the samples keep their stored dtype
(uint8 images stay uint8) until a batch is built (`edgedistill.data.arrays.model_input`), where they become float32
with their values unchanged, as `.npz` samples do. Feature vectors (N×F) are read into memory as float32: an
integer N×F array would otherwise read as token ids. Labels are small and read into memory as int64.

An `.npz` past 1 GiB of arrays (or any, with `--npz mapped`) becomes such a folder once, streamed, in the cache
(edgedistill.data.npz_convert); with numpy alone (each array is then decompressed whole, one at a time):

    mkdir data && python -c "import numpy as np, sys; z = np.load(sys.argv[1]); [np.save(f'{sys.argv[2]}/{k}.npy', z[k]) for k in z.files]" data.npz data
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.data.arrays import RawDataset, Split, kind_of
from edgedistill.data.mapped import track
from edgedistill.data.npz import check_ranks, labels_of, samples_of
from edgedistill.errors import DataError

FIELDS = ("x", "y", "x_test", "y_test", "class_names")
CONVERT_ONE_LINER = ("mkdir DIR && python -c \"import numpy as np, sys; z = np.load(sys.argv[1]); "
                     "[np.save(f'{sys.argv[2]}/{k}.npy', z[k]) for k in z.files]\" FILE.npz DIR")


def looks_like_npy_dir(path: Path) -> bool:
    return path.is_dir() and (path / "x.npy").is_file()


def _open(path: Path) -> np.ndarray:
    """One .npy file, memory-mapped read-only (never unpickled: object arrays are refused)."""
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        objects = "pickle" in str(exc) or "Python objects" in str(exc)
        why = "it holds Python objects (pickled), which are never loaded" if objects else str(exc).rstrip(".")
        raise DataError(f"Cannot read {path} as a NumPy array: {why}.") from None
    except (OSError, EOFError) as exc:
        raise DataError(f"Cannot read {path} as a NumPy array: {exc or 'the file is empty or cut short'}.") from None
    if not isinstance(arr, np.ndarray):
        raise DataError(f"{path} is not a single NumPy array.")
    return track(arr)  # its touched pages are released after each pass (edgedistill.data.mapped)


def _samples(arr: np.ndarray, path: Path) -> np.ndarray:
    """Images and signals (rank >= 3) stay memory-mapped in their stored dtype; other ranks are read as float32."""
    numeric = np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
    if arr.ndim >= 3 and numeric and not np.issubdtype(arr.dtype, np.complexfloating):
        return arr
    return samples_of(arr, path, path.stem)


def read_npy_dir(directory: Path) -> RawDataset:
    """Read a folder of .npy arrays (see the module docstring). Labels -1 mark unlabelled samples, as in an .npz."""
    arrays = {f: _open(directory / f"{f}.npy") for f in FIELDS if (directory / f"{f}.npy").is_file()}
    check_ranks(arrays, directory, ".npy")
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        if xs in arrays and ys in arrays and len(arrays[xs]) != len(arrays[ys]):
            raise DataError(f"{directory}: `{xs}.npy` has {len(arrays[xs])} samples but `{ys}.npy` has "
                            f"{len(arrays[ys])} labels; they must pair up one to one.")
    x = _samples(arrays["x"], directory / "x.npy")
    kind_of(x)
    train = Split(x, labels_of(arrays.get("y"), directory / "y.npy"))
    test = None
    if "x_test" in arrays:
        test = Split(_samples(arrays["x_test"], directory / "x_test.npy"),
                     labels_of(arrays.get("y_test"), directory / "y_test.npy"))
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else []
    return RawDataset(train=train, test=test, source=str(directory), class_names=names)
