"""The built-in text example `docs`: which library a paragraph of API documentation comes from.

The texts are the prose paragraphs of the docstrings of eight Python libraries that an install of edgedistill with
its `text` extra brings along (numpy, scipy, scikit-learn, matplotlib and torch directly; sympy and networkx as
torch's dependencies; transformers through the extra). They are read from the installed source files with `ast`,
never by importing the packages: nothing runs, nothing is downloaded, and the same package versions give the same
texts on every machine. The versions requirements/lock.txt pins make the committed corpus and the teacher trained
on it (edgedistill/zoo/docs_bert/, tools/train_text_teacher.py); other versions give a similar task, not the same.

A paragraph is kept when it is prose: no indented line (code, parameter tables, lists, directive bodies), no
section underline, no doctest, begins with a capital letter, ends with a full stop, MIN_CHARS..MAX_CHARS characters
once its lines are joined, and names none of the eight libraries, not even inside a longer name (torchvision,
numpydoc, mpl_connect, __sklearn_is_fitted__), nor their aliases np, plt, mpl, nx, which would give the answer away.

Which split a paragraph can land in is fixed by the paragraph itself, not by the draw: a hash of its words puts
TEST_SHARE of each library's paragraphs on the test side. A teacher trained on training-side paragraphs (as
tools/train_text_teacher.py's --pool does) has so seen no test paragraph, and when other package versions change
the pools, and with them the draw, none of the test paragraphs they leave unchanged. The versions the committed teacher was trained on are in its log
(edgedistill/zoo/docs_bert.json); a corpus read from other versions says so in its warnings.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
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
TEST_SHARE = 0.2  # of each library's paragraphs on the test side (300 of 1,500 drawn per class)
TEACHER_LOG = "docs_bert.json"  # in edgedistill.zoo: the built-in teacher's log, with the versions it was trained on
# the names anywhere, as words or inside identifiers; the short aliases only as lower-case words or identifier parts
# (NP-hard is a complexity class, not numpy)
_NAMES = re.compile(r"(?i:numpy|scipy|scikit|sklearn|matplotlib|pyplot|torch|transformers|hugging ?face|sympy|"
                    r"networkx)|(?<![A-Za-z])(np|nx|mpl|plt)(?![A-Za-z])")
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


def split_side(text: str) -> str:
    """'test' for TEST_SHARE of paragraphs, 'train' for the others: the first 8 bytes of the SHA-256 of the
    paragraph's dedup_key, read as an unsigned integer, below TEST_SHARE * 2**64. Fixed by the text alone."""
    h = int.from_bytes(hashlib.sha256(dedup_key(text).encode("utf-8")).digest()[:8], "big")
    return "test" if h < TEST_SHARE * 2**64 else "train"


def docs_pools(side: str | None = None) -> dict[str, list[str]]:
    """Class -> its paragraphs, sorted: one text per dedup_key (the first in sorted order), and none that shares a
    sentence (by dedup_key) with a paragraph of another class, so that a docstring one library copied from another,
    whole or in part, is in neither (such paragraphs are dropped from all classes). `side` 'train' or 'test': only
    the paragraphs `split_side` puts there; None: all."""
    pools = _all_pools(DOC_SOURCES)
    if side is None:
        return {label: list(texts) for label, texts in pools.items()}
    return {label: [t for t in texts if split_side(t) == side] for label, texts in pools.items()}


@lru_cache(maxsize=2)
def _all_pools(sources: tuple[DocSource, ...]) -> dict[str, tuple[str, ...]]:
    pools = {}
    for s in sources:
        by_key: dict[str, str] = {}
        for text in sorted(set(package_paragraphs(s))):
            by_key.setdefault(dedup_key(text), text)
        pools[s.package] = sorted(by_key.values())
    owners: dict[str, set[str]] = {}
    for label, texts in pools.items():
        for text in texts:
            for k in map(dedup_key, sentences(text)):
                owners.setdefault(k, set()).add(label)
    return {label: tuple(t for t in texts if all(len(owners[k]) == 1 for k in map(dedup_key, sentences(t)) if k))
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


def teacher_versions() -> dict[str, str] | None:
    """The versions the committed docs teacher's corpus was read from (its log's `data_versions`); None without a
    log."""
    return logged_versions(TEACHER_LOG)


def logged_versions(log: str) -> dict[str, str] | None:
    """The `data_versions` of a committed teacher's log (`log`: its file name in edgedistill.zoo); None when the
    log or the field is missing."""
    try:
        return json.loads((resources.files("edgedistill.zoo") / log).read_text())["data_versions"]
    except (FileNotFoundError, KeyError):
        return None


def version_warning(installed: dict[str, str], reference: dict[str, str] | None, data: str = "builtin:docs",
                    teacher: str = "the built-in docs teacher") -> str | None:
    """One paragraph when `installed` differs from `reference` (local build tags such as +cpu ignored: the same
    release ships the same docstrings); None when they agree or there is no reference. `data` and `teacher` name
    the corpus and the teacher whose log `reference` comes from."""
    if reference is None:
        return None
    changed = [f"{d} {reference.get(d, 'absent')} -> {installed.get(d, 'absent')}"
               for d in sorted(set(reference) | set(installed))
               if installed.get(d, "").split("+")[0] != reference.get(d, "").split("+")[0]]
    if not changed:
        return None
    return (f"{data} was read from other library versions than {teacher} was trained on "
            f"({', '.join(changed)}). The docstrings differ, so the paragraphs drawn differ from the committed "
            "corpus: the teacher has still seen none of the test paragraphs those versions left unchanged, but its "
            "logged accuracy and the README's figures are for the pinned versions. Install requirements/lock.txt to "
            "reproduce them.")


@TEXT_DATASETS.register(
    "docs", "which library a paragraph of API documentation comes from: 8 classes (matplotlib networkx numpy scipy "
            "sklearn sympy torch transformers), 1,200 train / 300 test paragraphs each, from their docstrings")
def docs(seed: int = 0, train_per_class: int = DOCS_TRAIN_PER_CLASS,
         test_per_class: int = DOCS_TEST_PER_CLASS) -> TextCorpus:
    """Source-library identification of documentation paragraphs.

    The pools are `docs_pools()`: the prose paragraphs (`prose_paragraphs`) of each DOC_SOURCES entry's docstrings,
    near-duplicates counted once and none shared by two classes, each on the side `split_side` gives it. From each
    class's sorted training-side pool `train_per_class` paragraphs are drawn without replacement (numpy PCG64,
    `seed`), then `test_per_class` from its test-side pool; the test split so shares no paragraph with training.
    Both splits are shuffled. Texts are str (one paragraph, MIN_CHARS..MAX_CHARS characters, single spaces),
    labels the import names (str), class_names the sorted names; provenance {"package_versions": docs_versions()},
    and a warning when those differ from the committed teacher's (`version_warning`). The same package versions
    (requirements/lock.txt) and seed give the same corpus.

    Raises MissingDependencyError naming the pip command when a package is not installed, DataError when a
    class has fewer than `train_per_class` training-side or `test_per_class` test-side paragraphs.
    """
    train, test = docs_pools("train"), docs_pools("test")  # reads every package: a missing one is named first
    versions = docs_versions()
    warning = version_warning(versions, teacher_versions())
    return sample_corpus(train, seed, train_per_class, test_per_class, "builtin:docs", "documentation", "paragraphs",
                         test_pools=test, provenance={"package_versions": versions},
                         warnings=(warning,) if warning else ())
