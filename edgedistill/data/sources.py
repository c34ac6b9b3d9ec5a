"""Turn a data argument (`builtin:NAME`, a .npz file, a folder of .npy arrays (x.npy, y.npy, ...: memory-mapped), a
directory of IDX files, an image folder, or text: a JSONL / CSV / TSV file or a text folder) into a dataset: arrays
(RawDataset), or texts (TextCorpus) that the student's tokenizer turns into token ids later
(edgedistill.data.text_encode)."""

from __future__ import annotations

from pathlib import Path

from edgedistill.data.arrays import RawDataset
from edgedistill.data.builtin import BUILTIN_DATASETS
from edgedistill.data.builtin_lm import LM_DATASETS
from edgedistill.data.builtin_text import TEXT_DATASETS
from edgedistill.data.folder import looks_like_image_folder, read_image_folder
from edgedistill.data.idx import looks_like_idx_dir, read_idx_dir
from edgedistill.data.npy_dir import looks_like_npy_dir, read_npy_dir
from edgedistill.data.npz import read_npz
from edgedistill.data.text import TextCorpus
from edgedistill.data.text_readers import looks_like_text, read_text
from edgedistill.errors import ConfigError, DataError


def builtin_names() -> list[str]:
    """Every built-in data set's name: arrays, text classification and causal-LM corpora."""
    return sorted(BUILTIN_DATASETS.names() + TEXT_DATASETS.names() + LM_DATASETS.names())


def read_dataset(spec: str, text_field: str | None = None, label_field: str | None = None,
                 label_required: bool | None = None) -> RawDataset | TextCorpus:
    """Read any supported source. The format is decided by the argument's form, never guessed from content.

    `text_field` / `label_field` name the JSON fields / CSV columns of a text file (None: "text" and "label"; see
    edgedistill.data.text_readers.read_text, which also explains `label_required`). Naming a field for a source
    that has none (arrays, images, a built-in, a folder of .txt files) is a DataError: the name would be ignored."""
    named = [f"--{what}-field {v!r}" for what, v in (("text", text_field), ("label", label_field)) if v]
    path = None if spec.startswith("builtin:") else Path(spec).expanduser()
    if path is not None and not path.exists():
        known = ", ".join(f"builtin:{n}" for n in builtin_names())
        raise DataError(f"Data path {path} does not exist. Give a .npz file, a directory (x.npy and y.npy, IDX "
                        "files or one sub-folder per class), a .jsonl / .csv / .tsv "
                        f"text file, or one of: {known}.")
    if path is not None and not looks_like_idx_dir(path) and looks_like_text(path):
        return read_text(path, text_field, label_field, label_required)
    if named:
        raise DataError(f"{' and '.join(named)} name{'s' * (len(named) == 1)} a field of a .jsonl / .csv / .tsv text "
                        f"file, but {spec} is not one (arrays, images or a built-in data set have no fields to "
                        "name). Leave the option out, or point --data at the text file.")
    if path is None:
        name = spec.split(":", 1)[1]
        if name in LM_DATASETS:
            raise DataError(f"{spec} is a corpus for a causal language model (next-token prediction), not a "
                            f"classification data set. Run `edgedistill build` or `distill` with --task causal-lm "
                            f"and a causal-LM teacher (its built-in one: leave --teacher out, or give --teacher "
                            f"{spec}); `edgedistill search` costs classifier students only: a causal-LM build "
                            "searches its decoder under the target's budget and names it before training.")
        if name in TEXT_DATASETS:
            return TEXT_DATASETS.get(name)()
        return BUILTIN_DATASETS.get(name)()
    if path.is_file():
        if path.suffix == ".npz":
            return read_npz(path)
        raise DataError(f"{path}: unsupported data file; expected a .npz archive (arrays `x` and optional `y`) or a "
                        ".jsonl / .csv / .tsv file of texts (fields `text` and `label`).")
    if looks_like_npy_dir(path):
        return read_npy_dir(path)
    if looks_like_idx_dir(path):
        return read_idx_dir(path)
    if looks_like_image_folder(path):
        return read_image_folder(path)
    raise DataError(
        f"{path} is a directory but holds neither x.npy (and y.npy), nor IDX files (train-images-idx3-ubyte…), nor "
        "one sub-folder per class "
        "(images or .txt files), nor train.jsonl / train.csv / train.tsv."
    )


def check_source_exists(source: str) -> None:
    """DataError (raised as is, not as a validation error) when a data path does not exist or a built-in name is
    unknown; the readers check everything else when the data is read."""
    if source.startswith("builtin:"):
        if source.split(":", 1)[1] not in builtin_names():
            raise ConfigError(f"Unknown built-in dataset {source.split(':', 1)[1]!r}. Known built-in datasets: "
                              f"{', '.join(builtin_names())}.")
        return
    if not Path(source).expanduser().exists():
        known = ", ".join(f"builtin:{n}" for n in builtin_names())
        raise DataError(f"Data path {Path(source).expanduser()} does not exist. Give a .npz file, a directory, a "
                        f".jsonl / .csv / .tsv text file, or one of: {known}.")
