"""Which form the samples are read in, decided before reading: an `.npz` past the size rule (or with `--npz mapped`)
is converted once into a memory-mapped `.npy` folder beside the teacher cache (edgedistill.data.npz_convert), with
progress; every other source is read as it is. The form is recorded (metrics.json `data.form`, the report's cost
section): in memory or memory-mapped, and for a converted `.npz` its hash, folder, bytes, seconds and whether an
earlier run's folder was reused."""

from __future__ import annotations

from pathlib import Path

from edgedistill import distributed as ddp
from edgedistill.data.mapped import is_mapped
from edgedistill.data.npz_convert import NpzConversion, convert_npz, wants_mapping


def arrays_source(spec: str, npz_form: str, cache_dir: Path, show: bool = False) -> tuple[str, NpzConversion | None]:
    """The data argument to read: `spec` itself, or for an `.npz` to be memory-mapped the folder it was converted
    into under `cache_dir/npz-arrays` (see the module docstring). Under torch.distributed rank 0 converts and the
    other ranks wait for it, then find the folder. Raises DataError for a damaged archive."""
    path = Path(spec).expanduser()
    if spec.startswith("builtin:") or path.suffix != ".npz" or not path.is_file() or not wants_mapping(path, npz_form):
        return spec, None
    root = Path(cache_dir) / "npz-arrays"
    if not ddp.is_main():
        ddp.barrier()
        conv = convert_npz(path, root)  # rank 0's folder: hashed again, found, reused
        return conv.folder, conv
    from edgedistill.progress import bars

    with bars(show) as ui:
        task = ui.task(f"converting {path.name} to .npy (MiB)", max(1, (path.stat().st_size >> 20) * 2))
        seen = {"mib": 0}

        def progress(done: int, total: int) -> None:
            mib = done * max(1, (path.stat().st_size >> 20) * 2) // max(1, total)
            task(mib - seen["mib"])
            seen["mib"] = mib

        try:
            conv = convert_npz(path, root, progress)
        finally:
            ddp.barrier()
    return conv.folder, conv


def data_form(x, conversion: NpzConversion | None) -> dict:
    """metrics.json's `data.form`: "memory-mapped" or "in memory" (the training samples), and the conversion."""
    form = {"samples": "memory-mapped" if is_mapped(x) else "in memory"}
    if conversion is not None:
        form["npz_converted"] = conversion.to_dict()
    return form
