"""An `.npz` converted once into a memory-mapped folder of `.npy` arrays (edgedistill.data.npy_dir), streamed.

An `.npz` is a zip archive; numpy reads each array whole (`np.load` ignores `mmap_mode` for it), and the reader then
makes the samples float32 (4× the bytes of uint8 images). Past NPZ_MAP_BYTES of arrays, or always with `--npz
mapped`, the archive is instead converted once: each field (`x`, `y`, `x_test`, `y_test`, `class_names`) is read from
its zip member as a stream (the `.npy` header with `numpy.lib.format`, then the data in PIECE-byte pieces, inflated by
`zipfile` as they come) and written to `<field>.npy`, so no array is ever held whole. The folder is
`<cache>/npz-arrays/<sha256 of the archive's bytes, 32 hex digits>/`, beside the teacher-logit cache (never beside
the user's file; the archive is only read); a second run hashes the archive, finds the folder and reuses it. The
conversion writes into a temporary folder renamed when complete, so an interrupted one leaves nothing that is read.

Why 1 GiB: below it the arrays cost at most a few GiB in memory (float32 of uint8 images: 4 GiB), which a training
machine holds, and in memory is no slower (memory-mapped batches measured 1.03× the in-memory step time,
docs/scale.md) and needs no copy on disk; above it the float32 form grows past what a laptop or a CI runner holds,
while the conversion costs one read of the archive (inflating runs at roughly 0.2–1 GB/s a core).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgedistill.data.npy_dir import FIELDS
from edgedistill.errors import DataError

NPZ_MAP_BYTES = 1 << 30  # arrays (decompressed) past this: `auto` converts the archive to a memory-mapped folder
PIECE = 8 << 20  # bytes copied (and hashed) at a time
FORMS = ("auto", "memory", "mapped")  # --npz: decide by size, always read whole, always convert
_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


@dataclass(frozen=True)
class NpzConversion:
    """How an `.npz` was turned into a memory-mapped folder: the archive's sha256, the folder, whether an earlier
    run's folder was reused, the arrays' bytes and the seconds spent (hashing included)."""

    source: str
    sha256: str
    folder: str
    reused: bool
    array_bytes: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def array_bytes(path: Path) -> int:
    """Decompressed bytes of the archive's members, from the zip directory (nothing is inflated)."""
    try:
        with zipfile.ZipFile(path) as z:
            return sum(i.file_size for i in z.infolist())
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"Cannot read {path} as a .npz archive of plain arrays: {exc}.") from None


def wants_mapping(path: Path, form: str) -> bool:
    """Whether `path` (an .npz) is converted under --npz `form` (auto: past NPZ_MAP_BYTES of arrays)."""
    if form not in FORMS:
        raise DataError(f"--npz {form!r}: choose one of {', '.join(FORMS)}.")
    return form == "mapped" or (form == "auto" and array_bytes(path) > NPZ_MAP_BYTES)


def file_sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while piece := f.read(PIECE):
            h.update(piece)
            if progress:
                progress(len(piece))
    return h.hexdigest()


def _copy_member(z: zipfile.ZipFile, name: str, out: Path, where: str, progress) -> None:
    """One member `name` (an .npy inside the zip) -> the file `out`, streamed; raises DataError on an object array,
    a damaged member (zipfile checks each member's CRC-32 at its end) or one cut short."""
    with z.open(name) as src:
        version = np.lib.format.read_magic(src)
        reader = _HEADER_READERS.get(version)
        if reader is None:
            raise DataError(f"{where}: `{name}` is a .npy of format version {version}, which is not streamed; save "
                            "the archive again with numpy's np.savez.")
        shape, fortran, dtype = reader(src)
        if dtype.hasobject:
            raise DataError(f"Cannot read {where}: `{name}` holds Python objects (pickled), which are never loaded.")
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": fortran, "shape": shape}
        left = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        with open(out, "wb") as dst:
            try:
                np.lib.format.write_array_header_1_0(dst, header)
            except ValueError:  # a header past 64 KiB (a huge dtype description): format 2.0, as np.save does
                dst.seek(0)
                dst.truncate()
                np.lib.format.write_array_header_2_0(dst, header)
            while left:
                piece = src.read(min(PIECE, left))
                if not piece:
                    raise DataError(f"{where}: `{name}` is cut short ({left:,} bytes of its array missing).")
                dst.write(piece)
                left -= len(piece)
                if progress:
                    progress(len(piece))
        src.read()  # to the member's end: zipfile compares the CRC-32 there


def convert_npz(path: Path, root: Path, progress: Callable[[int, int], None] | None = None) -> NpzConversion:
    """Convert the archive `path` into `root/<sha256[:32]>/` (a folder of .npy arrays, see the module docstring), or
    reuse the folder an earlier run wrote. `progress(done, total)` reports bytes (the hash's, then the copy's).
    Raises DataError for an archive that is not one of plain arrays; leaves nothing half-written."""
    t0 = time.perf_counter()
    total = array_bytes(path)
    with zipfile.ZipFile(path) as z:
        copied = sum(i.file_size for i in z.infolist() if i.filename[: -len(".npy")] in FIELDS)
    size = path.stat().st_size
    state = {"done": 0}

    def advance(n: int) -> None:
        state["done"] += n
        if progress:
            progress(state["done"], size + copied)

    digest = file_sha256(path, advance)
    folder = root / digest[:32]
    record = lambda reused: NpzConversion(str(path), digest, str(folder), reused, total,  # noqa: E731
                                          time.perf_counter() - t0)
    if (folder / "x.npy").is_file():
        return record(True)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f"{digest[:32]}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with zipfile.ZipFile(path) as z:
            names = {n[: -len(".npy")]: n for n in z.namelist() if n.endswith(".npy")}
            if "x" not in names:
                raise DataError(f"{path} has arrays {sorted(names)} but no `x`; store samples as `x` (and labels as "
                                "`y`).")
            for field in FIELDS:
                if field in names:
                    before = state["done"]
                    _copy_member(z, names[field], tmp / f"{field}.npy", str(path), advance)
                    advance(z.getinfo(names[field]).file_size - (state["done"] - before))  # its .npy header
        (tmp / "source.json").write_text(json.dumps({"archive": str(path), "sha256": digest}, indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process (a second rank) finished the same conversion first: theirs is used
            if not (folder / "x.npy").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except zipfile.BadZipFile as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"Cannot read {path} as a .npz archive of plain arrays: {exc}.") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record(False)
