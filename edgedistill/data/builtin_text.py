"""Built-in text data sets that need no download: text that installed packages ship.

`langid`: language identification of single words (7 classes, ISO 639-1 codes), the task a phone keyboard solves
before it picks a spelling dictionary. The words come from Debian's word lists (packages wamerican, wngerman,
wfrench, wspanish, witalian, wportuguese, wdutch, which install /usr/share/dict/*).
`docs` (edgedistill.data.builtin_docs): which library a paragraph of API documentation comes from (8 classes), the
prose of the docstrings of the Python packages edgedistill itself installs.
Both are registered in TEXT_DATASETS, apart from the array examples in edgedistill.data.builtin.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedistill.data.text import TextCorpus, TextSplit
from edgedistill.errors import DataError
from edgedistill.registry import Registry

TEXT_DATASETS: Registry = Registry("built-in text dataset")


@dataclass(frozen=True)
class WordList:
    """One language's list: ISO 639-1 code, file name under /usr/share/dict, and the Debian package installing it."""

    code: str
    file: str
    package: str


WORD_LISTS = (
    WordList("de", "ngerman", "wngerman"),
    WordList("en", "american-english", "wamerican"),
    WordList("es", "spanish", "wspanish"),
    WordList("fr", "french", "wfrench"),
    WordList("it", "italian", "witalian"),
    WordList("nl", "dutch", "wdutch"),
    WordList("pt", "portuguese", "wportuguese"),
)
DICT_DIRS = ("/usr/share/dict",)
LANGID_TRAIN_PER_CLASS = 8000
LANGID_TEST_PER_CLASS = 2000
MIN_CHARS, MAX_CHARS = 3, 24  # 2-letter words are nearly all shared; 24 keeps >99 % of every list
_LETTERS = re.compile(r"^[^\W\d_]+$")  # Unicode letters only: no digits, apostrophes ("'s"), hyphens or spaces


def normalize_word(line: str) -> str | None:
    """A list entry as a sample: NFC, lower case (German nouns' capitals would give the answer away), letters
    only, MIN_CHARS..MAX_CHARS characters; None drops the entry."""
    w = unicodedata.normalize("NFC", line.strip()).lower()
    return w if MIN_CHARS <= len(w) <= MAX_CHARS and _LETTERS.match(w) else None


def _dict_dir() -> Path:
    candidates = [os.environ.get("EDGEDISTILL_WORDLISTS", ""), *DICT_DIRS]
    found = [Path(c) for c in candidates if c and Path(c).is_dir()]
    for d in found:
        if all((d / w.file).is_file() for w in WORD_LISTS):
            return d
    where = found[0] if found else Path(DICT_DIRS[0])
    missing = [w for w in WORD_LISTS if not (where / w.file).is_file()]
    raise DataError(
        f"The built-in text example 'langid' needs Debian's word lists, and {', '.join(w.file for w in missing)} "
        f"{'is' if len(missing) == 1 else 'are'} not in {where}. Install them with `apt-get install "
        f"{' '.join(w.package for w in missing)}` (they land in /usr/share/dict), or point EDGEDISTILL_WORDLISTS at "
        "a directory holding the files " + ", ".join(w.file for w in WORD_LISTS) + "."
    )


def read_word_lists(directory: Path) -> dict[str, set[str]]:
    """ISO code -> the set of normalized words of that language's list."""
    out = {}
    for w in WORD_LISTS:
        try:
            text = (directory / w.file).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise DataError(f"{directory / w.file} is not UTF-8 ({exc}); reinstall the {w.package} package.") from None
        # normalize_word on the whole file at once (NFC and lower case act within lines): ~10x faster
        lines = unicodedata.normalize("NFC", text).lower().split("\n")
        out[w.code] = {s for s in map(str.strip, lines) if MIN_CHARS <= len(s) <= MAX_CHARS and _LETTERS.match(s)}
    return out


@TEXT_DATASETS.register(
    "langid", "language of a single word: 7 classes (de en es fr it nl pt), 8,000 train / 2,000 test words each, "
              "from Debian's word lists (wamerican, wngerman, wfrench, wspanish, witalian, wportuguese, wdutch)")
def langid(seed: int = 0, train_per_class: int = LANGID_TRAIN_PER_CLASS,
           test_per_class: int = LANGID_TEST_PER_CLASS) -> TextCorpus:
    """Language identification of single words.

    Each list is normalized (`normalize_word`); a word found in more than one list is dropped from all of them, so
    every sample has exactly one right answer. From each language's sorted remaining words, `train_per_class +
    test_per_class` are drawn without replacement (numpy PCG64, `seed`); the last `test_per_class` form the test
    split, which shares no word with training. Both splits are shuffled. Labels are the ISO 639-1 codes (str),
    class_names the sorted codes. The same package versions and seed give the same corpus.

    Raises DataError naming the `apt-get install` command when a word list is missing.
    """
    lists = read_word_lists(_dict_dir())
    counts = Counter(w for words in lists.values() for w in words)
    pools = {code: sorted(w for w in words if counts[w] == 1) for code, words in lists.items()}
    return sample_corpus(pools, seed, train_per_class, test_per_class, "builtin:langid", "word list", "words")


def sample_corpus(pools: dict[str, list[str]], seed: int, train_per_class: int, test_per_class: int, source: str,
                  pool_name: str, sample_name: str, test_pools: dict[str, list[str]] | None = None,
                  provenance: dict | None = None, warnings: tuple[str, ...] = ()) -> TextCorpus:
    """A class-balanced corpus drawn from `pools` (class -> its sorted texts, none in two classes): for each class
    in sorted order, `train_per_class + test_per_class` texts without replacement (numpy PCG64, `seed`); the last
    `test_per_class` go to the test split, which so shares no text with training. With `test_pools` (class -> sorted
    texts, none in `pools`), the training texts are drawn from `pools` and the test texts from `test_pools` instead,
    so that which side a text is on does not depend on the draw. Both splits are shuffled; labels are the class
    names (str); `provenance` and `warnings` go to the corpus as they are. DataError when a pool is too small
    (`pool_name`, `sample_name` word the message)."""
    rng = np.random.default_rng(seed)
    train: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for label in sorted(pools):
        if test_pools is None:
            picked = _draw(pools[label], train_per_class + test_per_class, rng, label, pool_name, sample_name)
            chosen_train, chosen_test = picked[:train_per_class], picked[train_per_class:]
        else:
            chosen_train = _draw(pools[label], train_per_class, rng, label, pool_name, sample_name, "training ")
            chosen_test = _draw(test_pools[label], test_per_class, rng, label, pool_name, sample_name, "test ")
        train += [(t, label) for t in chosen_train]
        test += [(t, label) for t in chosen_test]
    return TextCorpus(_split(train, rng), _split(test, rng), source, sorted(pools),
                      provenance=dict(provenance or {}), warnings=tuple(warnings))


def _draw(pool: list[str], n: int, rng: np.random.Generator, label: str, pool_name: str, sample_name: str,
          side: str = "") -> list[str]:
    if len(pool) < n:
        raise DataError(f"The {label!r} {pool_name} has {len(pool)} {side}{sample_name} of its own, fewer than the {n} "
                        "asked for.")
    return [pool[i] for i in rng.choice(len(pool), n, replace=False)]


def _split(pairs: list[tuple[str, str]], rng: np.random.Generator) -> TextSplit:
    order = rng.permutation(len(pairs))
    return TextSplit(tuple(pairs[i][0] for i in order), tuple(pairs[i][1] for i in order))


from edgedistill.data import builtin_docs  # noqa: E402,F401  registers `docs`; it imports TEXT_DATASETS from here
