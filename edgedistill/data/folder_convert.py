"""An image folder decoded once into a memory-mapped folder of `.npy` arrays (edgedistill.data.npy_dir).

The in-memory reader (edgedistill.data.folder) holds every decoded image as float32: 100,000 RGB images of 96×96 are 11
GB. Past FOLDER_MAP_BYTES of decoded samples (N × C × H × W × 4 bytes, estimated from the file count and the first
image's header), or always with `--data-form mapped`, the folder is instead decoded image by image into
`np.lib.format.open_memmap` files: `x.npy` (N×C×H×W float32, the very values the in-memory reader gives, so training
reads the same bytes), `y.npy` (int64; -1 for the `unlabeled` folder) and `class_names.npy`. Only one image is in memory
at a time. The samples are stored as float32, not as uint8 pixels: the folder's samples are pixel / 255, and a uint8
file would need that scale carried to every place a sample becomes a model's input (batches, the normaliser's
statistics, the teacher pass, calibration, parity); the cost is 4× the disk (never memory: the file is mapped).

The folder is `<cache>/image-folders/<key, 32 hex digits>/`, beside the teacher-logit cache, never beside the user's
images. The key is the sha256 of the listing: each file's path relative to the root, its label, size in bytes and
modification time in nanoseconds, in reading order, plus FORMAT; not of the images' contents, which would read every
file on every run just to find the folder. Measured on 10,000 RGB PNGs of 32×32 (31.7 MB, warm page cache, a busy 2-core
machine): listing 0.27 s, the stat key 0.26 s, a sha256 of every file's bytes 0.40 s, the conversion 3.5 s, a later
run's reuse 0.26 s. Warm, contents would cost little more; from a cold disk or a network store a content hash reads the
whole folder (0.3–1 GB for 100,000 JPEGs of 96×96) on every run. An edit that keeps a file's size and mtime to the
nanosecond is not seen (rewrite the file, or delete the cache folder). The conversion writes into a temporary folder
renamed when complete: an interrupted or refused one (a damaged image) leaves nothing that is read.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from edgedistill.data.folder import ImageListing, decode_image, image_form, list_images
from edgedistill.errors import DataError

FOLDER_MAP_BYTES = 1 << 30  # decoded float32 samples past this: `auto` converts the folder (as for an .npz)
FORMAT = "image-folder/1: float32 C×H×W = uint8 / 255, PIL convert(mode).resize(first size)"


@dataclass(frozen=True)
class FolderConversion:
    """How an image folder became a memory-mapped folder: the listing's key, the folder, whether an earlier run's
    folder was reused, the images, the decoded bytes and the seconds spent (listing included)."""

    source: str
    key: str
    folder: str
    reused: bool
    images: int
    array_bytes: int
    seconds: float

    def to_dict(self) -> dict:
        return asdict(self)


def decoded_bytes(listing: ImageListing) -> int:
    """N × C × H × W × 4: the float32 samples the in-memory reader would hold (from the first image's header)."""
    return len(listing.files) * int(np.prod(image_form(listing.files[0]).shape)) * 4


def listing_key(listing: ImageListing) -> str:
    """sha256 (hex) of the listing: relative path, label, size and mtime (ns) of every file, and FORMAT."""
    h = hashlib.sha256(FORMAT.encode())
    for f, label in zip(listing.files, listing.labels):
        st = f.stat()
        h.update(f"\n{f.relative_to(listing.root).as_posix()}\t{label}\t{st.st_size}\t{st.st_mtime_ns}".encode())
    h.update(json.dumps(listing.classes).encode())
    return h.hexdigest()


def _write(listing: ImageListing, tmp: Path, progress: Callable[[int], None] | None) -> int:
    form = image_form(listing.files[0])
    n = len(listing.files)
    x = np.lib.format.open_memmap(tmp / "x.npy", mode="w+", dtype=np.float32, shape=(n, *form.shape))
    try:
        for i, f in enumerate(listing.files):
            x[i] = decode_image(f, form)
            if progress:
                progress(1)
        x.flush()
        nbytes = int(x.nbytes)
    finally:
        del x
    np.save(tmp / "y.npy", np.asarray(listing.labels, np.int64))
    np.save(tmp / "class_names.npy", np.asarray(listing.classes, dtype=str))
    return nbytes


def convert_image_folder(root: Path, cache: Path, progress: Callable[[int], None] | None = None,
                         listing: ImageListing | None = None) -> FolderConversion:
    """Decode the folder `root` into `cache/<key[:32]>/` (see the module docstring), or reuse the folder an earlier
    run wrote. `progress(k)` is called with 1 after each image decoded. Raises DataError for a damaged image or an
    image folder without images; leaves nothing half-written."""
    t0 = time.perf_counter()
    listing = listing or list_images(root)
    key = listing_key(listing)
    folder = cache / key[:32]
    record = lambda reused, nbytes: FolderConversion(str(root), key, str(folder), reused,  # noqa: E731
                                                     len(listing.files), nbytes, time.perf_counter() - t0)
    if (folder / "x.npy").is_file():
        return record(True, decoded_bytes(listing))
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / f"{key[:32]}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        nbytes = _write(listing, tmp, progress)
        (tmp / "source.json").write_text(json.dumps({"folder": str(root), "key": key, "format": FORMAT,
                                                     "images": len(listing.files)}, indent=1))
        try:
            os.replace(tmp, folder)
        except OSError:  # another process (a second rank) finished the same conversion first: theirs is used
            if not (folder / "x.npy").is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:  # the cache's disk full or not writable (a damaged image is a DataError already)
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"Cannot write the decoded images of {root} into the cache folder {cache}: "
                        f"{exc.strerror or exc}. Free space there (they take {decoded_bytes(listing):,} bytes), "
                        "point --cache-dir elsewhere, or read the folder into memory with --data-form memory."
                        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return record(False, nbytes)
