"""Text data sources: a JSONL / CSV / TSV file, a folder of `.txt` files per class, or a train / test folder.

Layouts (the format is decided by the path's form, never guessed from content):
- `data.jsonl`, `data.csv`, `data.tsv`: one sample per line / row (edgedistill.data.text_records);
- `root/<class>/*.txt`: each file is one sample of the class its sub-folder names; `root/unlabeled/*.txt` (or
  `unlabelled/`) holds unlabelled samples; the same rules as the image folder reader (edgedistill.data.folder):
  labels are class indices 0..K-1 in the sorted order of the class folders, which name the classes;
- `root/train.{jsonl,csv,tsv}` and optionally `root/test.{jsonl,csv,tsv}`: the test file becomes the test split.

Labels: JSON integers stay integers and JSON strings stay strings; CSV / TSV labels become integers when every
CSV / TSV label of the corpus (train and test together) is a whole number, and stay strings otherwise. A corpus
whose labels mix integers and strings is refused, naming the file and line of each kind.
"""

from __future__ import annotations

from pathlib import Path

from edgedistill.data.folder import UNLABELED_DIRS
from edgedistill.data.text import TextCorpus, TextSplit
from edgedistill.data.text_records import (
    DEFAULT_LABEL_FIELD,
    DEFAULT_TEXT_FIELD,
    TEXT_FILE_FORMATS,
    MAX_CLASS_INDEX,
    FileRecords,
    is_integer_text,
    non_utf8_message,
)
from edgedistill.errors import DataError

SPLIT_STEMS = ("train", "test")


def read_text(path: Path, text_field: str | None = None, label_field: str | None = None,
              label_required: bool | None = None) -> TextCorpus:
    """Read a text data set in any supported layout (see the module docstring).

    `text_field` / `label_field` name the JSON fields or CSV columns (None: "text" and "label").
    `label_required` (default: whether `label_field` is named): the label field must occur in the file; when it
    need not, a file without it is read as unlabelled texts (a transfer set). Labels are str or int (None:
    unlabelled); `TextSplit.labels` is None when no sample of a split has one. Files are streamed line by line and
    read once. Raises DataError (one paragraph naming the file and the line) for non-UTF-8 bytes, an empty text, a
    missing field, malformed JSON or CSV, a file with no samples, labels that mix integers and strings, fields named
    for a folder of .txt files (it has none), or a path that is no supported layout."""
    path = Path(path)
    field = label_field or DEFAULT_LABEL_FIELD
    required = label_field is not None if label_required is None else label_required
    named = [f"{what} `{v}`" for what, v in (("text field", text_field), ("label field", label_field)) if v]
    text_field = text_field or DEFAULT_TEXT_FIELD
    if not path.exists():
        raise DataError(f"Text data path {path} does not exist.")
    if path.is_file():
        records = [_read_file(path, text_field, field, required)]
    elif split_files := _split_files(path):
        if "train" not in split_files:
            raise DataError(f"{path} holds {split_files['test'].name} but no train file; a train / test folder "
                            f"needs train.{{{','.join(TEXT_FILE_FORMATS.names())}}} beside the test file.")
        records = [_read_file(split_files[s], text_field, field, required) for s in SPLIT_STEMS if s in split_files]
    elif _class_dirs(path):
        if named:
            raise DataError(f"{path} is a folder of .txt files, one sub-folder per class: each file is a whole text "
                            f"and its folder names its class, so there are no fields to name, yet the "
                            f"{' and '.join(named)} were named. Leave out --text-field / --label-field for a folder, "
                            "or give a .jsonl / .csv / .tsv file whose fields they name.")
        return read_text_folder(path)
    else:
        raise DataError(f"{path} is a folder but holds neither train.{{{','.join(TEXT_FILE_FORMATS.names())}}} nor "
                        "one sub-folder of .txt files per class.")
    splits = _settle_labels(records)
    return TextCorpus(train=splits[0], test=splits[1] if len(splits) > 1 else None, source=str(path),
                      label_field=field, fields=tuple(records[0].fields))


def looks_like_text(path: Path) -> bool:
    """True when `path` has the form of a text source: a .jsonl / .csv / .tsv file, a folder holding train.* (or
    test.*) in one of those formats, or a folder whose class sub-folders hold .txt files. Reads no file's content;
    a folder with two train (or test) files in different formats is refused (DataError) as ambiguous."""
    path = Path(path)
    if path.is_file():
        return path.suffix.lower().lstrip(".") in TEXT_FILE_FORMATS
    if not path.is_dir():
        return False
    return bool(_split_files(path)) or any(_txt_files(d) for d in _class_dirs(path))


def _txt_files(folder: Path) -> list[Path]:
    """The folder's `.txt` files (any case: `.TXT` too), sorted; nested folders are not read."""
    return sorted(f for f in folder.iterdir() if f.suffix.lower() == ".txt" and f.is_file())


def read_text_folder(root: Path) -> TextCorpus:
    """One sub-folder per class, each `.txt` file one sample (whole file, UTF-8); `unlabeled/` holds unlabelled
    samples. Labels are the class indices of the sorted class folders, whose names become `class_names`.
    Other files, hidden folders and nested folders are ignored. Raises DataError for a file that is not UTF-8,
    an empty file, or no .txt file at all."""
    dirs = _class_dirs(root)
    classes = [d.name for d in dirs if d.name.lower() not in UNLABELED_DIRS]
    extra = [d.name for d in dirs if d.name.lower() in UNLABELED_DIRS]
    texts: list[str] = []
    labels: list[int | None] = []
    for label, name in [*enumerate(classes), *((None, d) for d in extra)]:
        for f in _txt_files(root / name):
            texts.append(_read_txt(f))
            labels.append(label)
    if not texts:
        raise DataError(f"{root}: the class folders {', '.join(classes + extra)} hold no .txt files; each sample "
                        "is one UTF-8 .txt file in the folder of its class.")
    has_label = any(lb is not None for lb in labels)
    split = TextSplit(tuple(texts), tuple(labels) if has_label else None)
    return TextCorpus(train=split, test=None, source=str(root), class_names=classes)


def _read_txt(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
        at = exc.start + bom
        raise DataError(non_utf8_message(path, raw.count(b"\n", 0, at) + 1, at, raw[at])) from None
    if not text.strip():
        raise DataError(f"{path}, line 1: the file is empty (it holds no non-blank text: no sample of a folder of "
                        ".txt files, no document of a corpus). Remove the file or fill in its text.")
    return text


def _read_file(path: Path, text_field: str, label_field: str, required: bool) -> FileRecords:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in TEXT_FILE_FORMATS:
        raise DataError(f"{path}: unsupported text data file; expected one of "
                        f"{', '.join('.' + n for n in TEXT_FILE_FORMATS.names())}.")
    return TEXT_FILE_FORMATS.get(fmt)(path, text_field, label_field, required)


def _split_files(root: Path) -> dict[str, Path]:
    """stem ("train" / "test") -> file, for the files of `root` in a known text format. Two train files (say
    train.csv and train.jsonl) are ambiguous and refused."""
    found: dict[str, Path] = {}
    for f in sorted(root.iterdir()):
        stem, fmt = f.stem.lower(), f.suffix.lower().lstrip(".")
        if stem in SPLIT_STEMS and fmt in TEXT_FILE_FORMATS and f.is_file():
            if stem in found:
                raise DataError(f"{root} holds both {found[stem].name} and {f.name}; keep one {stem} file.")
            found[stem] = f
    return found


def _class_dirs(root: Path) -> list[Path]:
    return sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)


def _settle_labels(records: list[FileRecords]) -> list[TextSplit]:
    """Decide CSV / TSV labels' type over the whole corpus, refuse a mix of integer and string labels across
    files, and build one TextSplit per file."""
    textual = [lb for r in records if r.textual_labels for lb in r.labels if lb is not None]
    as_int = bool(textual) and all(is_integer_text(lb) and abs(int(lb)) < MAX_CLASS_INDEX for lb in textual)
    for r in records:
        if r.textual_labels and as_int:
            r.labels = [None if lb is None else int(lb) for lb in r.labels]
            r.first_line = {"int": (n, int(lb)) for n, lb in r.first_line.values()}
    kinds = {kind: (r.path, *r.first_line[kind]) for r in records for kind in r.first_line}
    if len(kinds) > 1:
        (pi, li, vi), (ps, ls, vs) = kinds["int"], kinds["str"]
        raise DataError(f"{ps}, line {ls}: the label {vs!r} is a string but {pi}, line {li} has the integer label "
                        f"{vi!r}; the labels of train and test must be all integers or all strings.")
    return [TextSplit(tuple(r.texts), tuple(r.labels) if any(lb is not None for lb in r.labels) else None)
            for r in records]
