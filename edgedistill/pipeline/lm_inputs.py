"""Stage 1 for a causal LM: which task, the teacher, the documents, the student's vocabulary, the token windows.

Every check a user's input can fail runs here, before anything is written: a teacher that is no causal LM, a
student family that is not the decoder, a corpus too short for the split, a context longer than the teacher's
positions. The student shares the teacher's tokenizer with the vocabulary cut to the tokens of the training
documents (edgedistill.data.vocab_tokenizer; its file, tokenizer.json, is written beside the model).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from edgedistill.config import DistillConfig
from edgedistill.distributed import requested
from edgedistill.data.lm_text import Documents, read_documents
from edgedistill.data.lm_windows import LMSplits, lm_windows
from edgedistill.data.vocab_tokenizer import VocabTokenizer
from edgedistill.errors import ConfigError, DataError
from edgedistill.pipeline.lm_hidden_teacher import hidden_cosine_weight
from edgedistill.students import StudentArch
from edgedistill.teachers.causal_lm import CausalLMTeacher, is_causal_lm_folder

DEFAULT_CONTEXT = 64  # tokens a window: a keyboard's or a command line's context
SEQ_KD_PER_WINDOW = 10  # --seq-kd N: at most this many teacher continuations per training window


@dataclass(frozen=True)
class LMInputs:
    """The teacher, the documents as read, the student's tokenizer, the windows and the student architecture."""

    teacher: CausalLMTeacher
    documents: Documents
    tokenizer: VocabTokenizer
    splits: LMSplits
    arch: StudentArch


def task_of(config: DistillConfig) -> str:
    """The task a run carries: the config's, or (auto) causal-lm when the one teacher is a transformers folder whose
    config.json describes a causal LM (a built-in one, `builtin:NAME`, is its folder in edgedistill/zoo), else
    classification. Reads config.json only."""
    from edgedistill.teachers.loader import resolve_builtin

    if config.task != "auto":
        return config.task
    paths = [resolve_builtin(t.path) for t in config.teachers]
    return "causal-lm" if len(paths) == 1 and is_causal_lm_folder(paths[0]) else "classification"


def _arch(config: DistillConfig) -> StudentArch:
    s = config.student
    if s.factory or s.family not in ("auto", "decoder"):
        raise ConfigError(f"--task causal-lm trains the decoder student family (a causal LM over the teacher's "
                          f"pruned vocabulary), not {s.factory or s.family!r}. Use --student decoder (knobs: width, "
                          "depth, heads, ffn) or leave --student out.")
    return StudentArch("decoder", s.width or 64, s.depth or 2, knobs=tuple(sorted(s.knobs.items())))


def _vocabulary_and_windows(config: DistillConfig, teacher: CausalLMTeacher, docs: Documents, context: int):
    """The student vocabulary is the tokens of the *training* documents only (a token seen only in validation or
    test text is the unknown id there, as it would be for new text on the device). The split needs token counts
    first, and those do not depend on the vocabulary (one student id per teacher token), so: windows with the
    vocabulary of every document, then the vocabulary of the training documents and the same split again."""
    def windows(tok: VocabTokenizer) -> LMSplits:
        return lm_windows(list(docs.train), tok, context, val_fraction=config.data.val_fraction,
                          test_fraction=config.data.test_fraction, seed=config.data.seed, test_documents=docs.test)

    first = windows(VocabTokenizer.fit(teacher.tokenizer, docs.all, config.student.max_vocab))
    texts = docs.all
    tokenizer = VocabTokenizer.fit(teacher.tokenizer, [texts[d] for d in first.train.documents],
                                   config.student.max_vocab)
    splits = windows(tokenizer)
    assert all((splits.split(s).doc == first.split(s).doc).all() for s in ("train", "val", "test"))
    return tokenizer, splits


def read_lm_inputs(config: DistillConfig) -> LMInputs:
    """Load and check everything a causal-LM run reads (module doc). Raises ConfigError, DataError or
    ModelLoadError, each one paragraph, before anything is written."""
    if len(config.teachers) != 1:
        raise ConfigError(f"--task causal-lm distills one teacher, got {len(config.teachers)}; ensembles of "
                          "causal LMs are not supported.")
    unsupported = [name for name, given in (
        ("--transfer", config.data.transfer is not None), ("--max-train / --max-test", config.data.max_train or
                                                           config.data.max_test),
        (f"--scheme {config.kd.scheme}", config.kd.scheme != "offline"),
        (f"--loss {config.kd.loss}", config.kd.loss not in ("kd", "auto")), ("torchrun", requested()),
        (f"quant.int16 = {list(config.quant.int16)}", bool(config.quant.int16))) if given]
    if unsupported:
        raise ConfigError(f"--task causal-lm does not support {', '.join(unsupported)} yet: it distills one teacher "
                          "offline with token-level KD (--temperature, --alpha, --top-k; --feature loss=cosine) on "
                          "the whole corpus, in one process. Leave those options out.")
    hidden_cosine_weight(config)  # a feature term other than the hidden-state cosine: one paragraph, now
    arch = _arch(config)
    from edgedistill.teachers.loader import resolve_builtin

    t = config.teachers[0]
    folder = resolve_builtin(t.path)  # builtin:docs-lm -> its folder in edgedistill/zoo
    if t.format not in ("auto", "transformers") or not Path(folder).expanduser().is_dir():
        raise ConfigError(f"--task causal-lm reads a transformers causal-LM folder (config.json, model.safetensors, "
                          f"tokenizer.json) as its teacher; {t.path} is not a folder.")
    teacher = CausalLMTeacher(folder, t.tokenizer, t.allow_remote_code, t.allow_pickle)
    docs = read_documents(config.data.source, config.data.text_field)
    context = config.data.max_length or DEFAULT_CONTEXT
    if context < 2:
        raise ConfigError(f"--max-length {context}: a causal LM's window needs at least 2 tokens (it reads one and "
                          "predicts the next); give --max-length 2 or more.")
    if teacher.max_positions is not None and context > teacher.max_positions:
        raise ConfigError(f"The context window of {context} tokens exceeds the {teacher.max_positions} positions "
                          f"of the teacher {teacher.name}; give --max-length {teacher.max_positions} or less.")
    tokenizer, splits = _vocabulary_and_windows(config, teacher, docs, context)
    for name in ("train", "val", "test"):
        if splits.split(name).tokens == 0:
            raise DataError(f"{docs.source}: the {name} split has no token to predict (its documents are shorter "
                            "than two tokens). Give longer documents, or more of them.")
    most = SEQ_KD_PER_WINDOW * len(splits.train)
    if config.kd.seq_kd and config.kd.seq_kd > most:
        raise ConfigError(f"--seq-kd {config.kd.seq_kd}: the teacher would generate {config.kd.seq_kd:,} windows "
                          f"({config.kd.seq_kd * context:,} greedy steps) for {len(splits.train):,} training windows; "
                          f"at most {SEQ_KD_PER_WINDOW} per training window ({most:,} here) are accepted. Give a "
                          "smaller N, or more training text.")
    return LMInputs(teacher, docs, tokenizer, splits, arch)
