"""Plain-text documents for a causal language model (`--task causal-lm`): what to predict is the text itself.

Layouts (decided by the path's form):
- `corpus.txt`: one document a non-blank line (UTF-8; blank lines separate nothing and are skipped);
- a folder of `.txt` files: each file one document (the folder's own files; sub-folders are not read);
- `corpus.jsonl` / `.csv` / `.tsv`: one document a record, its `text` field (or --text-field), read by
  edgedistill.data.text_records as for the classifiers, labels ignored;
- a folder holding `train.{txt,jsonl,csv,tsv}` and optionally `test.*`: the test file is the test split (a .txt
  split file is one document a line);
- `builtin:NAME`: a built-in corpus (edgedistill.data.builtin_lm, e.g. `builtin:docs-lm`), with its own test split.
Documents are split into windows and into train / validation / test by edgedistill.data.lm_windows.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from edgedistill.data.text_readers import _read_txt, read_text
from edgedistill.data.text_records import TEXT_FILE_FORMATS
from edgedistill.errors import DataError

SPLIT_STEMS = ("train", "test")


@dataclass(frozen=True)
class Documents:
    """`train`: the documents to split into train / validation (and test, without `test`); `test`: the data's own
    test documents or None; `source`: the path read (or `builtin:NAME`); `warnings`: one paragraph each, for the
    run's report (a built-in corpus read from other package versions than its committed teacher's)."""

    train: tuple[str, ...]
    test: tuple[str, ...] | None
    source: str
    warnings: tuple[str, ...] = ()

    def digest(self) -> str:
        """sha256 (hex) of the documents as read: train then own test, each in order, the split boundary kept."""
        blob = json.dumps([list(self.train), None if self.test is None else list(self.test)], ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    @property
    def all(self) -> list[str]:
        """Every document in index order (train first): the order lm_windows numbers them in."""
        return list(self.train) + list(self.test or ())


def _lines(path: Path) -> tuple[str, ...]:
    docs = tuple(line.strip() for line in _read_txt(path).splitlines() if line.strip())
    return docs


def _one_file(path: Path, text_field: str | None) -> tuple[str, ...]:
    fmt = path.suffix.lower().lstrip(".")
    if fmt == "txt":
        return _lines(path)
    if fmt in TEXT_FILE_FORMATS:
        return read_text(path, text_field, None, label_required=False).train.texts
    raise DataError(f"{path}: a causal LM reads plain text: a .txt file (one document a line), a .jsonl / .csv / "
                    ".tsv file (the text field), a folder of .txt files (one document each), or a folder holding "
                    "train.* and test.*.")


def _split_files(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for f in sorted(root.iterdir()):
        fmt = f.suffix.lower().lstrip(".")
        if f.is_file() and f.stem.lower() in SPLIT_STEMS and (fmt == "txt" or fmt in TEXT_FILE_FORMATS):
            if f.stem.lower() in found:
                raise DataError(f"{root} holds both {found[f.stem.lower()].name} and {f.name}; keep one "
                                f"{f.stem.lower()} file.")
            found[f.stem.lower()] = f
    return found


def read_documents(path: str | Path, text_field: str | None = None) -> Documents:
    """Read a causal-LM corpus in any layout of the module doc. Raises DataError (one paragraph) for a missing
    path, non-UTF-8 bytes, an empty file, a folder with neither .txt files nor train.*, no document at all, or a
    `builtin:NAME` that is no built-in causal-LM corpus (a classification example is named as such)."""
    if isinstance(path, str) and path.startswith("builtin:"):
        return _builtin(path.split(":", 1)[1], text_field)
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"Text data path {path} does not exist.")
    if path.is_file():
        return _checked(Documents(_one_file(path, text_field), None, str(path)))
    if splits := _split_files(path):
        if "train" not in splits:
            raise DataError(f"{path} holds {splits['test'].name} but no train file; a train / test folder needs a "
                            "train.txt (or .jsonl / .csv / .tsv) beside the test file.")
        test = _one_file(splits["test"], text_field) if "test" in splits else None
        return _checked(Documents(_one_file(splits["train"], text_field), test, str(path)))
    files = sorted(f for f in path.iterdir() if f.is_file() and f.suffix.lower() == ".txt")
    if not files:
        raise DataError(f"{path} is a folder without .txt files and without train.txt / train.jsonl: a causal LM "
                        "reads a folder of .txt files (one document each) or a train / test folder.")
    return _checked(Documents(tuple(_read_txt(f).strip() for f in files), None, str(path)))


def _builtin(name: str, text_field: str | None) -> Documents:
    from edgedistill.data.builtin_lm import LM_DATASETS

    if text_field:
        raise DataError(f"--text-field {text_field!r} names a field of a .jsonl / .csv / .tsv file, but builtin:{name} "
                        "is a built-in corpus with no fields to name. Leave the option out.")
    if name in LM_DATASETS:
        return _checked(LM_DATASETS.get(name)())
    known = ", ".join(f"builtin:{n}" for n in LM_DATASETS.names())
    from edgedistill.data.sources import builtin_names

    what = (f"builtin:{name} is a classification example, not a corpus for a causal LM"
            if name in builtin_names() else f"There is no built-in data set builtin:{name}")
    raise DataError(f"{what}. The built-in causal-LM corpora are: {known} (`edgedistill list datasets`); or give a "
                    ".txt file, a folder of .txt files, or a .jsonl / .csv file of documents.")


def _checked(docs: Documents) -> Documents:
    if not docs.train:
        raise DataError(f"{docs.source} holds no document (every line is blank). Give one document a line.")
    return docs
