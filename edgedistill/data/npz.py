"""`.npz` arrays: `x` (required) and `y` (optional); optional `x_test`/`y_test` and `class_names`.

An `.npz` is a zip archive: numpy reads it whole (`np.load` ignores `mmap_mode` for it) and the samples become
float32 in memory. The pipeline converts an archive past LARGE_NPZ_BYTES of arrays once into a memory-mapped folder
of `.npy` files (edgedistill.data.npz_convert) unless told `--npz memory`; read here anyway, such an archive gets
one line saying so (RawDataset.notes)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from edgedistill.data.arrays import RawDataset, Split, kind_of
from edgedistill.errors import DataError

LARGE_NPZ_BYTES = 1 << 30  # decompressed array bytes past which the reader suggests a memory-mapped .npy folder


def labels_of(arr: np.ndarray | None, path: Path) -> np.ndarray | None:
    """Class labels as int64 from any integer, bool or whole-valued float array; -1 marks an unlabelled sample."""
    if arr is None:
        return None
    if arr.dtype == np.bool_:
        return arr.astype(np.int64)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.all(np.isfinite(arr)) or not np.all(arr == np.round(arr)):
            raise DataError(f"{path}: labels `y` must be whole class indices; found non-integer values.")
    elif not np.issubdtype(arr.dtype, np.integer):
        raise DataError(f"{path}: labels `y` must be integers, got dtype {arr.dtype}.")
    return arr.astype(np.int64)


def check_ranks(arrays: dict[str, np.ndarray], where: Path, suffix: str = "") -> None:
    """Refuse arrays of the wrong rank before anything counts their samples: `x` / `x_test` hold N samples (rank >=
    1), `y` / `y_test` one class index per sample (N,), `class_names` one name per class (K,). `suffix`: ".npy"
    when each array is its own file. Raises DataError."""
    for key, arr in arrays.items():
        shape = tuple(arr.shape)
        if key in ("x", "x_test") and arr.ndim == 0:
            raise DataError(f"{where}: `{key}{suffix}` is a single value (shape ()); store N samples as one array "
                            "(N×features, N×C×L signals or N×C×H×W images).")
        if key in ("y", "y_test") and arr.ndim != 1:
            hint = " One-hot or score rows? Store y.argmax(1) instead." if arr.ndim == 2 else ""
            raise DataError(f"{where}: `{key}{suffix}` has shape {shape}; labels are one class index per sample, "
                            f"shape (N,).{hint}")
        if key == "class_names" and arr.ndim != 1:
            raise DataError(f"{where}: `class_names{suffix}` has shape {shape}; store one name per class, shape (K,), "
                            "in class-index order.")


def samples_of(arr: np.ndarray, path: Path, key: str) -> np.ndarray:
    """Samples as float32 from any numeric or bool array (uint8 / int16 keep their values: no rescaling)."""
    numeric = np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
    if not (numeric or arr.dtype == np.bool_):
        raise DataError(f"{path}: `{key}` must hold real numbers, got dtype {arr.dtype}.")
    return arr.astype(np.float32)


def read_npz(path: Path) -> RawDataset:
    """Read arrays without unpickling (object arrays are refused). Labels -1 mark unlabelled samples (they join
    the transfer set only); other labels need not be 0..K-1 (see edgedistill.data.labels)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):  # np.load read a single .npy or guessed a pickle: not an archive
                raise ValueError("it is not a .npz archive")
            arrays = {k: z[k] for k in z.files}
    except EOFError:
        raise DataError(f"Cannot read {path} as a .npz archive: the file is empty.") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        why = "it is not a .npz archive (nor a NumPy file)" if "pickle" in str(exc) else str(exc)
        raise DataError(f"Cannot read {path} as a .npz archive of plain arrays: {why}.") from None
    if "x" not in arrays:
        raise DataError(f"{path} has arrays {sorted(arrays)} but no `x`; store samples as `x` (and labels as `y`).")
    check_ranks(arrays, path)
    for xs, ys in (("x", "y"), ("x_test", "y_test")):
        if xs in arrays and ys in arrays and len(arrays[xs]) != len(arrays[ys]):
            raise DataError(f"{path}: `{xs}` has {len(arrays[xs])} samples but `{ys}` has {len(arrays[ys])} labels; "
                            "they must pair up one to one.")
    x = samples_of(arrays["x"], path, "x")
    kind_of(x)
    train = Split(x, labels_of(arrays.get("y"), path))
    test = None
    if "x_test" in arrays:
        test = Split(samples_of(arrays["x_test"], path, "x_test"), labels_of(arrays.get("y_test"), path))
    names = [str(n) for n in arrays["class_names"]] if "class_names" in arrays else []
    return RawDataset(train=train, test=test, source=str(path), class_names=names, notes=large_npz_note(path))


def large_npz_note(path: Path, limit: int = LARGE_NPZ_BYTES) -> list[str]:
    """One line when the archive's arrays exceed `limit` bytes decompressed (from the zip directory: nothing is
    read), naming the conversion into a memory-mapped .npy folder; else nothing."""
    with zipfile.ZipFile(path) as z:
        size = sum(i.file_size for i in z.infolist())
    if size <= limit:
        return []
    return [f"{path} holds {size / 2**30:.1f} GiB of arrays, read whole into memory (an .npz cannot be memory-mapped) "
            f"and then converted to float32 (--npz memory); with --npz mapped (the default past 1 GiB) it is converted "
            f"once, streamed, into a memory-mapped folder of .npy files in the cache, which keeps the stored dtype "
            f"until a batch is built."]
