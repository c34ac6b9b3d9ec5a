"""Which form the samples are read in, decided before reading (`--data-form auto|memory|mapped`, formerly `--npz`):
an `.npz` (edgedistill.data.npz_convert) or an image folder (edgedistill.data.folder_convert) past the size rule, or
any with `mapped`, is converted once into a memory-mapped `.npy` folder beside the teacher cache, with progress;
every other source is read as it is (a folder of .npy files is always memory-mapped; IDX files, texts and the
built-in sets are read into memory). The form is recorded (metrics.json `data.form`, the report's cost section): in
memory or memory-mapped, and for a conversion its key, folder, bytes, seconds and whether an earlier run's folder
was reused."""

from __future__ import annotations

from pathlib import Path

from edgedistill import distributed as ddp
from edgedistill.data.folder import list_images, looks_like_image_folder
from edgedistill.data.folder_convert import FOLDER_MAP_BYTES, FolderConversion, convert_image_folder, decoded_bytes
from edgedistill.data.idx import looks_like_idx_dir
from edgedistill.data.mapped import is_mapped
from edgedistill.data.npz_convert import FORMS, NpzConversion, convert_npz, wants_mapping
from edgedistill.data.npy_dir import looks_like_npy_dir
from edgedistill.data.text_readers import looks_like_text
from edgedistill.errors import DataError

Conversion = NpzConversion | FolderConversion


def _ranked(show: bool, label: str, total: int, convert):
    """Run `convert(advance)` on rank 0 with a progress bar of `total` units; the other ranks wait for it, then
    run it again (which finds rank 0's folder and reuses it)."""
    if not ddp.is_main():
        ddp.barrier()
        return convert(None)
    from edgedistill.progress import bars

    with bars(show) as ui:
        task = ui.task(label, max(1, total))
        try:
            return convert(task)
        finally:
            ddp.barrier()


def _npz(path: Path, cache_dir: Path, show: bool) -> NpzConversion:
    units = max(1, (path.stat().st_size >> 20) * 2)
    seen = {"mib": 0}

    def convert(task):
        if task is None:
            return convert_npz(path, cache_dir / "npz-arrays")

        def progress(done: int, total: int) -> None:
            mib = done * units // max(1, total)
            task(mib - seen["mib"])
            seen["mib"] = mib

        return convert_npz(path, cache_dir / "npz-arrays", progress)

    return _ranked(show, f"converting {path.name} to .npy (MiB)", units, convert)


def _image_folder(path: Path, form: str, cache_dir: Path, show: bool) -> FolderConversion | None:
    listing = list_images(path)
    if form == "memory" or (form == "auto" and decoded_bytes(listing) <= FOLDER_MAP_BYTES):
        return None
    cache = cache_dir / "image-folders"
    return _ranked(show, f"decoding {path.name}/ to .npy (images)", len(listing.files),
                   lambda task: convert_image_folder(path, cache, task, listing))


def arrays_source(spec: str, form: str, cache_dir: Path, show: bool = False) -> tuple[str, Conversion | None]:
    """The data argument to read: `spec` itself, or for an `.npz` / image folder to be memory-mapped under `form`
    (see the module docstring) the folder it was converted into under `cache_dir`. Under torch.distributed rank 0
    converts and the other ranks wait for it, then find the folder. Raises DataError for a damaged archive or
    image, or an unknown form."""
    if form not in FORMS:
        raise DataError(f"--data-form {form!r}: choose one of {', '.join(FORMS)}.")
    path = Path(spec).expanduser()
    if spec.startswith("builtin:") or not path.exists():
        return spec, None
    conv: Conversion | None = None
    if path.is_file() and path.suffix == ".npz" and wants_mapping(path, form):
        conv = _npz(path, Path(cache_dir), show)
    elif path.is_dir() and not looks_like_npy_dir(path) and not looks_like_idx_dir(path) \
            and looks_like_image_folder(path) and not looks_like_text(path):
        conv = _image_folder(path, form, Path(cache_dir), show)
    return (spec, None) if conv is None else (conv.folder, conv)


def data_form(x, conversion: Conversion | None) -> dict:
    """metrics.json's `data.form`: "memory-mapped" or "in memory" (the training samples), and the conversion
    (`npz_converted` or `folder_converted`)."""
    form = {"samples": "memory-mapped" if is_mapped(x) else "in memory"}
    if conversion is not None:
        kind = "npz_converted" if isinstance(conversion, NpzConversion) else "folder_converted"
        form[kind] = conversion.to_dict()
    return form
