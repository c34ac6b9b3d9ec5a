"""The built-in text example `docs`: which library a paragraph of API documentation comes from.

The texts are the prose paragraphs of the docstrings of eight Python libraries that an install of edgedistill with
its `text` extra brings along (numpy, scipy, scikit-learn, matplotlib and torch directly; sympy and networkx as
torch's dependencies; transformers through the extra). They are read from the installed source files with `ast`,
never by importing the packages: nothing runs, nothing is downloaded, and the same package versions give the same
texts on every machine. The versions requirements/lock.txt pins make the committed corpus and the teacher trained
on it (edgedistill/zoo/docs_bert/, tools/train_text_teacher.py); other versions give a similar task, not the same.

A paragraph is kept when it is prose: no indented line (code, parameter tables, lists, directive bodies), no
section underline, no doctest, begins with a capital letter, ends with a full stop, MIN_CHARS..MAX_CHARS characters
once its lines are joined, and names none of the eight libraries (nor np, plt, mpl, nx, PyTorch, Hugging Face),
which would give the answer away.
"""

from __future__ import annotations

import ast
import importlib.metadata
import importlib.util
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from edgedistill.data.builtin_text import TEXT_DATASETS, sample_corpus
from edgedistill.data.text import TextCorpus
from edgedistill.errors import MissingDependencyError


@dataclass(frozen=True)
class DocSource:
    """One class: the import name (the label), its pip distribution, the extra of edgedistill that installs it
    (None: a core dependency), and the subpackages read ("" = the modules at the top level; () = everything)."""

    package: str
    distribution: str
    extra: str | None = None
    subpackages: tuple[str, ...] = ()


# Whole packages where they are small; for the large ones their core API (scipy's, sympy's and torch's compiler,
# distributed and vendored parts, transformers' 2,500 per-architecture model files, many copied from one another)
DOC_SOURCES = (
    DocSource("matplotlib", "matplotlib"),
    DocSource("networkx", "networkx"),
    DocSource("numpy", "numpy"),
    DocSource("scipy", "scipy", None, ("", "integrate", "interpolate", "linalg", "optimize", "signal", "spatial",
                                       "special", "stats")),
    DocSource("sklearn", "scikit-learn"),
    DocSource("sympy", "sympy", None, ("", "core", "functions", "integrals", "logic", "matrices", "polys", "series",
                                       "sets", "simplify", "solvers")),
    DocSource("torch", "torch", None, ("", "autograd", "cuda", "distributions", "fx", "nn", "optim", "utils")),
    DocSource("transformers", "transformers", "text", ("", "generation", "integrations", "pipelines", "utils")),
)
SKIPPED_DIRS = frozenset({"tests", "test", "testing", "benchmarks", "externals", "_vendor", "vendored", "_vendored"})
DOCS_TRAIN_PER_CLASS = 1200
DOCS_TEST_PER_CLASS = 300
MIN_CHARS, MAX_CHARS = 40, 320  # a one-line summary and up; 320 keeps a student's sequence short
_NAMES = re.compile(r"\b(numpy|np|scipy|scikit-learn|scikit|sklearn|matplotlib|pyplot|mpl|plt|torch|pytorch|"
                    r"transformers|hugging ?face|sympy|networkx|nx)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")
_UNDERLINE = re.compile(r"^[-=~^*#`]{3,}$")  # RST section adornment, markdown fence
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def prose_paragraphs(docstring: str) -> list[str]:
    """The prose paragraphs of a cleaned docstring (`inspect.cleandoc` form), each with its lines joined and its
    whitespace runs made one space, in order; see the module docstring for what counts as prose."""
    out = []
    for block in docstring.split("\n\n"):
        lines = block.strip("\n").split("\n")
        if any(line[:1].isspace() or _UNDERLINE.match(line.strip()) for line in lines):
            continue
        text = " ".join(block.split())
        if (MIN_CHARS <= len(text) <= MAX_CHARS and text[0].isupper() and text.endswith(".") and ">>>" not in text
                and not _NAMES.search(text)):
            out.append(text)
    return out


def _docstrings(tree: ast.AST) -> list[str]:
    """Docstrings of the module and of every class, function and method defined in it, nested ones included."""
    found, todo = [], [tree]
    while todo:
        node = todo.pop()
        doc = ast.get_docstring(node, clean=True)
        if doc:
            found.append(doc)
        todo += reversed([n for n in node.body if isinstance(n, _DOCUMENTED)])
    return found


def _source_files(root: Path, subpackages: tuple[str, ...]) -> list[Path]:
    """The package's .py files in sorted order, under the chosen subpackages, without tests and vendored code."""
    files = []
    for folder, dirs, names in os.walk(root):
        top = Path(folder) == root
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS and not (top and subpackages and d not in subpackages))
        if not (top and subpackages and "" not in subpackages):
            files += [Path(folder) / n for n in sorted(names) if n.endswith(".py")]
    return files


@lru_cache(maxsize=None)
def package_paragraphs(source: DocSource) -> tuple[str, ...]:
    """Every prose paragraph of `source`'s docstrings, in file order, repeats included (cached per process).

    Raises MissingDependencyError, naming the pip command, when the package is not installed."""
    spec = importlib.util.find_spec(source.package)
    if spec is None or not spec.submodule_search_locations:
        install = f"pip install 'edgedistill[{source.extra}]'" if source.extra else f"pip install {source.distribution}"
        raise MissingDependencyError(
            f"The built-in text example 'docs' reads the docstrings of {source.package}, which is not installed. "
            f"Install it with `{install}`; requirements/lock.txt pins the versions that give the committed corpus.")
    paragraphs: list[str] = []
    for path in _source_files(Path(spec.submodule_search_locations[0]), source.subpackages):
        try:
            with warnings.catch_warnings():  # invalid escapes in the packages' strings are theirs to fix, not ours
                warnings.simplefilter("ignore")
                tree = ast.parse(path.read_bytes(), filename=str(path))
        except (SyntaxError, ValueError):  # a template or a file for another Python: not documentation we can read
            continue
        paragraphs += [p for doc in _docstrings(tree) for p in prose_paragraphs(doc)]
    return tuple(paragraphs)


def dedup_key(text: str) -> str:
    """Near-duplicate key: lower-case words of letters only, inline code (`...`) left out, so a paragraph repeated
    with another name in its code spans, other punctuation or digits counts once."""
    return " ".join(re.sub(r"[^a-z]+", " ", re.sub(r"`[^`]*`", " ", text).lower()).split())


def sentences(text: str) -> list[str]:
    """A paragraph cut after each '.', '!' or '?' that whitespace and a capital letter follow."""
    return _SENTENCE_END.split(text)


def docs_pools() -> dict[str, list[str]]:
    """Class -> its paragraphs, sorted: one text per dedup_key (the first in sorted order), and none that shares a
    sentence (by dedup_key) with a paragraph of another class, so that a docstring one library copied from another,
    whole or in part, is in neither (such paragraphs are dropped from all classes)."""
    pools = {}
    for s in DOC_SOURCES:
        by_key: dict[str, str] = {}
        for text in sorted(set(package_paragraphs(s))):
            by_key.setdefault(dedup_key(text), text)
        pools[s.package] = sorted(by_key.values())
    owners: dict[str, set[str]] = {}
    for label, texts in pools.items():
        for text in texts:
            for k in map(dedup_key, sentences(text)):
                owners.setdefault(k, set()).add(label)
    return {label: [t for t in texts if all(len(owners[k]) == 1 for k in map(dedup_key, sentences(t)) if k)]
            for label, texts in pools.items()}


def docs_versions() -> dict[str, str]:
    """Installed version of each class's distribution (what makes the corpus reproducible); absent: not installed."""
    out = {}
    for s in DOC_SOURCES:
        try:
            out[s.distribution] = importlib.metadata.version(s.distribution)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


@TEXT_DATASETS.register(
    "docs", "which library a paragraph of API documentation comes from: 8 classes (matplotlib networkx numpy scipy "
            "sklearn sympy torch transformers), 1,200 train / 300 test paragraphs each, from their docstrings")
def docs(seed: int = 0, train_per_class: int = DOCS_TRAIN_PER_CLASS,
         test_per_class: int = DOCS_TEST_PER_CLASS) -> TextCorpus:
    """Source-library identification of documentation paragraphs.

    The pools are `docs_pools()`: the prose paragraphs (`prose_paragraphs`) of each DOC_SOURCES entry's docstrings,
    near-duplicates counted once and none shared by two classes. From each class's sorted pool `train_per_class +
    test_per_class` paragraphs are drawn without replacement (numpy PCG64, `seed`); the last `test_per_class` form
    the test split, which shares no paragraph with training. Both splits are shuffled. Texts are str (one paragraph,
    MIN_CHARS..MAX_CHARS characters, single spaces), labels the import names (str), class_names the sorted names.
    The same package versions (requirements/lock.txt) and seed give the same corpus.

    Raises MissingDependencyError naming the pip command when a package is not installed, DataError when a
    class has fewer than `train_per_class + test_per_class` paragraphs.
    """
    return sample_corpus(docs_pools(), seed, train_per_class, test_per_class, "builtin:docs", "documentation",
                         "paragraphs")
