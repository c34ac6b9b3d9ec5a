"""An image folder: one sub-folder per class, images inside (png, jpg, bmp); all resized to the first one's size.

A sub-folder named `unlabeled` (or `unlabelled`) holds samples without a label: they are read with y == -1 and
join the transfer set only (see edgedistill.data.splits)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.data.arrays import RawDataset, Split
from edgedistill.data.labels import UNLABELED
from edgedistill.errors import DataError

_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
UNLABELED_DIRS = ("unlabeled", "unlabelled")


def read_image_folder(root: Path) -> RawDataset:
    from PIL import Image, UnidentifiedImageError

    dirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = [d for d in dirs if d.lower() not in UNLABELED_DIRS]
    extra = [d for d in dirs if d.lower() in UNLABELED_DIRS]
    if not dirs:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class>/<image files>.")
    xs, ys, size, mode = [], [], None, None
    for label, name in [*enumerate(classes), *((UNLABELED, d) for d in extra)]:
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in _SUFFIXES)
        for f in files:
            try:
                with Image.open(f) as im:
                    if mode is None:
                        mode = "L" if im.mode in ("L", "1", "I", "I;16") else "RGB"
                        size = im.size
                    arr = np.asarray(im.convert(mode).resize(size), dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError) as exc:
                raise DataError(f"Cannot read image {f}: {exc}.") from None
            xs.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
            ys.append(label)
    if not xs:
        raise DataError(f"{root}: the class folders {classes} contain no images ({', '.join(sorted(_SUFFIXES))}) "
                        "and no .txt files. A folder of images or texts holds each sample directly in its class "
                        "folder (nested folders are not read): image files, or one UTF-8 .txt file per text.")
    return RawDataset(Split(np.stack(xs), np.asarray(ys, np.int64)), None, str(root), classes)


def looks_like_image_folder(path: Path) -> bool:
    return path.is_dir() and any(p.is_dir() for p in path.iterdir())
