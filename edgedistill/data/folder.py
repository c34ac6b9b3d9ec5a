"""An image folder: one sub-folder per class, images inside (png, jpg, bmp); all resized to the first one's size.

A sub-folder named `unlabeled` (or `unlabelled`) holds samples without a label: they are read with y == -1 and
join the transfer set only (see edgedistill.data.splits).

Samples are float32 C×H×W in [0, 1] (the pixel's uint8 value / 255), C = 1 for grey images (PIL modes L, 1, I,
I;16: the first image decides) else 3 (RGB). Reading keeps every decoded image in memory (N × C × H × W × 4 bytes);
a folder past the size rule is instead decoded once into a memory-mapped `.npy` folder in the cache
(edgedistill.data.folder_convert). Both read the same files in the same order through `list_images` and
`decode_image`, so both give the same samples."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedistill.data.arrays import RawDataset, Split
from edgedistill.data.labels import UNLABELED
from edgedistill.errors import DataError

_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"}
UNLABELED_DIRS = ("unlabeled", "unlabelled")


@dataclass(frozen=True)
class ImageListing:
    """The folder's images in reading order: classes sorted by name, then the unlabelled folders; files sorted by
    name within each. `labels[i]` is the class index of `files[i]` (-1: unlabelled); `classes` names the labels."""

    root: Path
    classes: list[str]
    files: list[Path]
    labels: list[int]


@dataclass(frozen=True)
class ImageForm:
    """What every sample is decoded to: PIL `mode` ("L" or "RGB") and `size` (width, height) of the first image."""

    mode: str
    size: tuple[int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        """One sample's shape: (C, H, W)."""
        return (1 if self.mode == "L" else 3, self.size[1], self.size[0])


def list_images(root: Path) -> ImageListing:
    """List the images of `root` (see ImageListing); raises DataError without class sub-folders or images."""
    dirs = sorted(p.name for p in root.iterdir() if p.is_dir())
    classes = [d for d in dirs if d.lower() not in UNLABELED_DIRS]
    extra = [d for d in dirs if d.lower() in UNLABELED_DIRS]
    if not dirs:
        raise DataError(f"{root} has no class sub-folders; expected {root}/<class>/<image files>.")
    files, labels = [], []
    for label, name in [*enumerate(classes), *((UNLABELED, d) for d in extra)]:
        found = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in _SUFFIXES)
        files += found
        labels += [label] * len(found)
    if not files:
        raise DataError(f"{root}: the class folders {classes} contain no images ({', '.join(sorted(_SUFFIXES))}) "
                        "and no .txt files. A folder of images or texts holds each sample directly in its class "
                        "folder (nested folders are not read): image files, or one UTF-8 .txt file per text.")
    return ImageListing(root, classes, files, labels)


def _unreadable(f: Path, exc: Exception) -> DataError:
    return DataError(f"Cannot read image {f}: {exc}.")


def image_form(f: Path) -> ImageForm:
    """The form every sample takes, from the first image `f` (its header only)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            return ImageForm("L" if im.mode in ("L", "1", "I", "I;16") else "RGB", im.size)
    except (UnidentifiedImageError, OSError) as exc:
        raise _unreadable(f, exc) from None


def decode_image(f: Path, form: ImageForm) -> np.ndarray:
    """One image as float32 C×H×W in [0, 1], converted to `form.mode` and resized to `form.size`; raises DataError
    for a file PIL cannot decode (damaged, cut short, not an image)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(f) as im:
            arr = np.asarray(im.convert(form.mode).resize(form.size), dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as exc:
        raise _unreadable(f, exc) from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_image_folder(root: Path) -> RawDataset:
    """Every image of `root` decoded into memory (see the module docstring)."""
    listing = list_images(root)
    form = image_form(listing.files[0])
    xs = [decode_image(f, form) for f in listing.files]
    return RawDataset(Split(np.stack(xs), np.asarray(listing.labels, np.int64)), None, str(root), listing.classes)


def looks_like_image_folder(path: Path) -> bool:
    return path.is_dir() and any(p.is_dir() for p in path.iterdir())
