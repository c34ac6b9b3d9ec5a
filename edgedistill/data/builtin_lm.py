"""Built-in corpora for a causal language model (`--task causal-lm --data builtin:NAME`): text that installed
packages ship, so the causal-LM example runs on a fresh machine with no download.

`docs-lm`: next-token prediction on the prose paragraphs of API documentation, the texts of the classification
example `docs` (edgedistill.data.builtin_docs: the docstrings of the eight Python libraries an install with the
`text` extra brings, read with `ast`). Each paragraph is one document. The split follows that example's rule, which
the text alone fixes (`builtin_docs.split_side`): the test documents come from the test side of every library's
pool, the training documents from the training side, DOCS_LM_TRAIN_PER_CLASS and DOCS_LM_TEST_PER_CLASS drawn per
library with seed 0 (builtin_text.sample_corpus, as `docs` draws; the labels are dropped). The committed teacher,
edgedistill/zoo/docs_gpt2/ (tools/train_lm_teacher.py), was trained on the whole training side, never on a test-side
paragraph; a run splits validation off the training documents (data/lm_windows.py).

Why fewer documents than `docs` (4,000 + 480 against 9,600 + 2,400): a causal-LM run holds every test and validation
window's full logits over the student vocabulary in memory, W × L × V_S float32 (about 2,000 ids here: 0.5 MB a
window at L = 64), so 480 test paragraphs cost some 260 MB where 2,400 would cost 1.3 GB; and the student reading a
fifth of the teacher's text is the setting distillation is for (the teacher knows distributions the student sees
only samples of).

The same package versions (requirements/lock.txt) give the same documents on every machine; other versions give a
similar corpus and a warning (`Documents.warnings`), as `docs` does.
"""

from __future__ import annotations

from edgedistill.data.lm_text import Documents
from edgedistill.registry import Registry

LM_DATASETS: Registry = Registry("built-in causal-LM corpus")

DOCS_LM_TRAIN_PER_CLASS = 500
DOCS_LM_TEST_PER_CLASS = 60
DOCS_LM_TEACHER_LOG = "docs_gpt2.json"  # in edgedistill.zoo: the built-in LM teacher's log (data versions, digest)


@LM_DATASETS.register(
    "docs-lm", "causal LM (--task causal-lm): next-token prediction on paragraphs of API documentation, 4,000 "
               "train / 480 test paragraphs from the docstrings of 8 installed libraries (builtin:docs's texts)")
def docs_lm(seed: int = 0, train_per_class: int | None = None, test_per_class: int | None = None) -> Documents:
    """The `docs-lm` documents (module doc): `train` the training-side paragraphs drawn, `test` the test-side ones,
    each in the shuffled order sample_corpus gives; `warnings` one paragraph when the installed library versions
    differ from those the committed teacher's corpus was read from. The counts default to DOCS_LM_TRAIN_PER_CLASS
    and DOCS_LM_TEST_PER_CLASS, read when called. Raises MissingDependencyError naming the pip command when a
    library is not installed."""
    from edgedistill.data.builtin_docs import docs_pools, docs_versions, logged_versions, version_warning
    from edgedistill.data.builtin_text import sample_corpus

    train_per_class = DOCS_LM_TRAIN_PER_CLASS if train_per_class is None else train_per_class
    test_per_class = DOCS_LM_TEST_PER_CLASS if test_per_class is None else test_per_class
    corpus = sample_corpus(docs_pools("train"), seed, train_per_class, test_per_class, "builtin:docs-lm",
                           "documentation", "paragraphs", test_pools=docs_pools("test"))
    warning = version_warning(docs_versions(), logged_versions(DOCS_LM_TEACHER_LOG), "builtin:docs-lm",
                              "the built-in causal-LM teacher (builtin:docs-lm)")
    return Documents(corpus.train.texts, corpus.test.texts, "builtin:docs-lm", (warning,) if warning else ())


def lm_builtin_names() -> list[str]:
    """The names of the built-in causal-LM corpora (without the `builtin:` prefix)."""
    return LM_DATASETS.names()
