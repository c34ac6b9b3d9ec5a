"""Line-oriented text files: JSON Lines (`.jsonl`) and delimited text (`.csv`, `.tsv`), read as a stream.

Each reader turns one file into `FileRecords`: the texts, their labels (None = unlabelled) and the line where each
kind of label (integer, string) first appeared, so a later check across files can name the line. Files are read
once, line by line, as bytes split at line feeds and at carriage returns that no line feed follows (old Mac OS and
some spreadsheet exports end lines with "\\r" alone), never at U+2028 or the other breaks a text-mode `splitlines()`
takes for line ends: a JSON string may hold them. Every error names the file and the line and is one paragraph.

Formats: JSON Lines (https://jsonlines.org); CSV as RFC 4180 read by Python's csv module (quoted fields may span
lines); TSV the same with a tab delimiter. A CSV / TSV file whose header names the text column only when split at
another delimiter (";" as European spreadsheets write CSV, a tab, "|") is read at that one. A UTF-8 byte-order mark
at the start of a file is ignored.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from edgedistill.errors import DataError
from edgedistill.registry import Registry

Label = str | int | None
DEFAULT_TEXT_FIELD = "text"
DEFAULT_LABEL_FIELD = "label"
# how a user names the fields (the command-line option and the config key), for messages
TEXT_FIELD_OPTION = "--text-field (config data.text_field)"
LABEL_FIELD_OPTION = "--label-field (config data.label_field)"

# suffix (without the dot) -> reader(path, text_field, label_field, label_required) -> FileRecords
TEXT_FILE_FORMATS: Registry[Callable[..., "FileRecords"]] = Registry("text file format")

MAX_CLASS_INDEX = 2**31  # integer labels are class indices; beyond int32 they are names or codes, not indices
_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "true/false",
               type(None): "null"}
_INTEGER = re.compile(r"[+-]?[0-9]+")


@dataclass
class FileRecords:
    """What one file holds: `texts[i]` with `labels[i]` (None: unlabelled).

    `textual_labels`: the format stores every label as text (CSV, TSV), so integers are decided across all files
    of a corpus (edgedistill.data.text_readers). `first_line`: label kind ("int" / "str") -> (line, label) of its
    first occurrence. `has_label_field`: some line or the header carries the label field at all. `fields`: the
    header's columns or the first line's JSON fields, for messages."""

    path: Path
    texts: list[str] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)
    textual_labels: bool = False
    first_line: dict[str, tuple[int, Label]] = field(default_factory=dict)
    has_label_field: bool = False
    fields: list[str] = field(default_factory=list)  # the header's columns, or the first JSON object's fields

    def add(self, line: int, text: object, label: object, text_field: str) -> None:
        """Append one sample after checking it. Raises DataError naming the file and line."""
        where = f"{self.path}, line {line}"
        if not isinstance(text, str):
            raise DataError(f"{where}: the `{text_field}` field holds a JSON {_JSON_TYPES.get(type(text), 'value')}, "
                            "not a string; every sample's text must be a string.")
        if not text.strip():
            raise DataError(f"{where}: the `{text_field}` field is empty; every sample needs a non-blank text. "
                            "Remove the line or fill in its text.")
        label = self._label(label, where)
        if label is not None:
            kind = "int" if isinstance(label, int) else "str"
            self.first_line.setdefault(kind, (line, label))
            other = self.first_line.get("str" if kind == "int" else "int")
            if other is not None:
                raise DataError(f"{where}: label {label!r} is {'an integer' if kind == 'int' else 'a string'} but "
                                f"line {other[0]} has the label {other[1]!r}; a file's labels must be all integers "
                                "or all strings (quote the numbers to make every label a string).")
        self.texts.append(text)
        self.labels.append(label)

    @staticmethod
    def _label(label: object, where: str) -> Label:
        if label is None:
            return None
        if isinstance(label, str):
            return label.strip() or None
        if isinstance(label, float) and label.is_integer():
            label = int(label)
        if isinstance(label, int) and not isinstance(label, bool):
            if abs(label) >= MAX_CLASS_INDEX:
                raise DataError(f"{where}: the integer label {label} is too large to be a class index (at most "
                                f"{MAX_CLASS_INDEX - 1:,}); write the labels as strings (\"{label}\") if they are "
                                "names or codes rather than indices.")
            return label
        raise DataError(f"{where}: the label {json.dumps(label)} is a JSON {_JSON_TYPES.get(type(label), 'value')}; "
                        "a label must be a string, an integer, or null / empty for an unlabelled sample.")

    def finish(self, label_field: str, label_required: bool, fields: list[str]) -> "FileRecords":
        """Refuse a file without samples, or without the label field the user named. Returns self."""
        self.fields = [str(f) for f in fields]
        if not self.texts:
            raise DataError(f"{self.path} holds no samples (only blank lines or a header); a text data file needs "
                            "at least one line with a text.")
        if label_required and not self.has_label_field:
            raise DataError(f"{self.path}: no line has the label field `{label_field}`; the lines have the fields "
                            f"{', '.join(self.fields) or '(none)'}. Name the field that holds the labels with "
                            f"{LABEL_FIELD_OPTION}.")
        return self


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number from 1, line with its end) for each line of `path`, decoded as strict UTF-8.

    Raises DataError on bytes that are not UTF-8, naming the line and the byte offset in the file."""
    offset = 0
    try:
        with path.open("rb") as f:
            for number, raw in enumerate(f, 1):
                start = offset
                offset += len(raw)
                if number == 1 and raw.startswith(codecs.BOM_UTF8):
                    raw, start = raw[len(codecs.BOM_UTF8):], start + len(codecs.BOM_UTF8)
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise DataError(non_utf8_message(path, number, start + exc.start, raw[exc.start])) from None
    except OSError as exc:
        raise DataError(f"Cannot read {path}: {exc.strerror or exc}.") from None


def non_utf8_message(path: Path, line: int, offset: int, byte: int) -> str:
    return (f"{path}, line {line}: byte {offset} of the file (0x{byte:02x}) is not UTF-8; text data must be "
            f"UTF-8 encoded. Re-encode the file, e.g. `iconv -f WINDOWS-1252 -t UTF-8 {path.name} > "
            f"{path.stem}.utf8{path.suffix}` if it was written as Latin-1 / Windows-1252.")


@TEXT_FILE_FORMATS.register("jsonl", "JSON Lines: one object per line with a text field and an optional label")
def read_jsonl(path: Path, text_field: str, label_field: str, label_required: bool) -> FileRecords:
    """One JSON object per line; blank lines are skipped; a null / empty / missing label marks an unlabelled
    sample. Raises DataError (malformed JSON, a line that is not an object, a missing or empty text, a bad label,
    a mix of integer and string labels, no samples)."""
    records, fields = FileRecords(path), []
    for number, line in enumerate(_split_lone_cr(line for _, line in utf8_lines(path)), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}, line {number}: not valid JSON ({exc.msg} at column {exc.colno}); each line must "
                            f"hold one JSON object such as {{\"{text_field}\": \"...\", \"{label_field}\": \"...\"}}."
                            ) from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}, line {number}: a JSON {_JSON_TYPES.get(type(obj), 'value')} where an object "
                            f"such as {{\"{text_field}\": \"...\", \"{label_field}\": \"...\"}} is expected.")
        fields = fields or list(obj)
        if text_field not in obj:
            raise DataError(f"{path}, line {number}: no field `{text_field}`; this line has the fields "
                            f"{', '.join(map(str, obj)) or '(none)'}. Name the field that holds the text with "
                            f"{TEXT_FIELD_OPTION}.")
        records.has_label_field |= label_field in obj
        if "\\u" in line and isinstance(obj[text_field], str):
            _refuse_lone_surrogates(obj[text_field], f"{path}, line {number}", text_field)
        records.add(number, obj[text_field], obj.get(label_field), text_field)
    return records.finish(label_field, label_required, fields)


def _refuse_lone_surrogates(text: str, where: str, text_field: str) -> None:
    """JSON's \\uD800..\\uDFFF escapes can leave half a surrogate pair, which is no Unicode character and has no
    UTF-8 form; no tokenizer (nor a device) could encode it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DataError(f"{where}: the `{text_field}` field holds the escape \\u{ord(text[exc.start]):04x}, half of "
                        "a UTF-16 surrogate pair with no partner; it is no character. Fix or remove the escape."
                        ) from None


@contextlib.contextmanager
def _long_fields() -> Iterator[None]:
    """The csv module refuses fields over 128 KiB by default; a document-classification text can be longer."""
    old = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    try:
        yield
    finally:
        csv.field_size_limit(old)


_LONE_CR = re.compile(r"(?<=\r)(?!\n)")  # just after a carriage return that no line feed follows
DELIMITERS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}


def _split_lone_cr(lines: Iterator[str]) -> Iterator[str]:
    """Lines ended by \n, \r\n or a lone \r (which csv would read as a line break inside an unquoted field, and
    json as whitespace before a second object). A \r inside a quoted CSV field is kept: csv joins the pieces of a
    quoted field with their line ends; a JSON string cannot hold a raw \r."""
    for line in lines:
        yield from (part for part in _LONE_CR.split(line) if part)


def _cells(line: str, delimiter: str) -> list[str]:
    try:
        return [c.strip() for c in next(csv.reader([line], delimiter=delimiter), [])]
    except csv.Error:
        return []


def sniff_delimiter(header: str, expected: str, text_field: str) -> str:
    """The delimiter of a CSV / TSV file, decided by its header line: the format's own (`expected`) when the header
    holds `text_field` split at it, else the first of DELIMITERS that does (a ";" CSV as European spreadsheets write
    it, a tab-separated .csv), else `expected` (the header check then says what the header holds)."""
    for d in (expected, *DELIMITERS):
        if text_field in _cells(header, d):
            return d
    return expected


def _read_delimited(path: Path, text_field: str, label_field: str, label_required: bool, expected: str
                    ) -> FileRecords:
    records = FileRecords(path, textual_labels=True)
    lines = _split_lone_cr(line for _, line in utf8_lines(path))
    head = []  # blank lines, then the header line (csv reads them again, so its line numbers stay the file's)
    for line in lines:
        head.append(line)
        if line.strip():
            break
    delimiter = sniff_delimiter(head[-1] if head else "", expected, text_field)
    # strict: an unclosed quote is an error, not a field that silently swallows the rest of the file
    reader = csv.reader(itertools.chain(head, lines), delimiter=delimiter, strict=True)
    header: list[str] | None = None
    with _long_fields():
        while True:
            first = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise DataError(f"{path}, line {first}: malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({exc}); "
                                "a field that starts with a double quote must end with one, and a double quote "
                                'inside it is written twice ("").') from None
            if not row:
                continue
            if header is None:
                header = [name.strip() for name in row]
                _check_header(path, first, header, text_field, label_field, label_required, delimiter)
                records.has_label_field = label_field in header
                text_at = header.index(text_field)
                label_at = header.index(label_field) if records.has_label_field else None
                continue
            if len(row) != len(header):
                raise DataError(f"{path}, line {first}: {len(row)} field{'s' * (len(row) != 1)} "
                                f"({_shown(row)}) where the header names {len(header)} ({', '.join(header)}) "
                                f"separated by {DELIMITERS.get(delimiter, repr(delimiter))}s; a text that holds the "
                                "delimiter or a line break must be in double quotes.")
            records.add(first, row[text_at], row[label_at] if label_at is not None else None, text_field)
    return records.finish(label_field, label_required, header or [])


def _check_header(path: Path, line: int, header: list[str], text_field: str, label_field: str,
                  label_required: bool, delimiter: str) -> None:
    missing = [f for f in (text_field, label_field if label_required else None) if f and f not in header]
    if not missing:
        return
    columns = ", ".join(header)
    if len(header) == 1:  # one column: the header as it splits at another delimiter, if it does
        splits = [(d, _cells(header[0], d)) for d in DELIMITERS if d != delimiter and d in header[0]]
        if splits:
            d, cells = max(splits, key=lambda s: len(s[1]))
            columns = (f"{', '.join(cells)} (split at {DELIMITERS[d]}s, which the file is read with once its text "
                       "column is named)")
    option = TEXT_FIELD_OPTION if text_field in missing else LABEL_FIELD_OPTION
    what = "text" if text_field in missing else "labels"
    raise DataError(f"{path}, line {line}: the header has no column {' or '.join(f'`{m}`' for m in missing)}; its "
                    f"columns are {columns}. Name the column that holds the {what} with {option}.")


def _shown(row: list[str]) -> str:
    cut = [v if len(v) <= 20 else v[:17] + "..." for v in row[:6]]
    return ", ".join(repr(v) for v in cut) + (", ..." if len(row) > 6 else "")


@TEXT_FILE_FORMATS.register("csv", "CSV with a header row naming a text column and an optional label column")
def read_csv(path: Path, text_field: str, label_field: str, label_required: bool) -> FileRecords:
    """Comma-separated, header row first, RFC 4180 quoting (a quoted field may span lines); blank lines are
    skipped; an empty label marks an unlabelled sample. Raises DataError as read_jsonl does, and for a row whose
    field count differs from the header's."""
    return _read_delimited(path, text_field, label_field, label_required, ",")


@TEXT_FILE_FORMATS.register("tsv", "tab-separated values with a header row, as CSV")
def read_tsv(path: Path, text_field: str, label_field: str, label_required: bool) -> FileRecords:
    """Tab-separated, otherwise as read_csv."""
    return _read_delimited(path, text_field, label_field, label_required, "\t")


def is_integer_text(value: str) -> bool:
    """True for a whole number written in ASCII digits with an optional sign ("3", "-1", "+07")."""
    return _INTEGER.fullmatch(value) is not None
