"""Feature terms for text students, the pipeline's side: what the teacher is fed for them, and the checks that run
before anything trains (the losses are edgedistill.distill.text_knowledge).

`cosine` works with any student tokenizer: the teacher reads the texts the student's ids spell (the tokenizer's
`decode`, as for its soft targets) and the loss compares sentence-level means. `minilm` compares attention maps
position by position, so the teacher must read the student's very tokens: with `--tokenizer vocab` each student id
maps back to one teacher id, and the teacher is fed [its prefix special tokens] + those ids + [its suffix special
tokens] (for BERT: [CLS] ... [SEP]), so student position j is teacher position j + len(prefix). A byte student
has no such map (one WordPiece covers several bytes), and a student without self-attention has no maps to match.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from edgedistill.config import DistillConfig
from edgedistill.data.tokenizers import VocabTokenizer
from edgedistill.distill.text_knowledge import TEXT_FEATURE_LOSSES, AlignedTextFeatures, TextFeatureTerms
from edgedistill.distill.trainer import FeatureTerm
from edgedistill.errors import ConfigError
from edgedistill.pipeline.text_inputs import MASKED_BYTE
from edgedistill.teachers.text import Encoded


def special_tokens(teacher) -> tuple[list[int], list[int]]:
    """The teacher tokenizer's special-token ids before and after a text (BERT: [CLS] / [SEP]), read from how its
    post-processor encodes a one-letter text."""
    enc = teacher.tokenizer.tok.encode("a", add_special_tokens=True)
    special = list(enc.special_tokens_mask)
    if 0 not in special:
        return list(enc.ids), []
    first, last = special.index(0), len(special) - 1 - special[::-1].index(0)
    return list(enc.ids[:first]), list(enc.ids[last + 1:])


def aligned_encoding(ids: np.ndarray, tokenizer: VocabTokenizer, prefix: list[int], suffix: list[int],
                     pad_id: int) -> Encoded:
    """Teacher inputs for student rows (int N×L, 0 = padding after the text): prefix + the teacher id of each
    student id (unknown -> the teacher's unknown token) + suffix, padded to len(prefix) + L + len(suffix)."""
    unknown = tokenizer.teacher_unknown_id if tokenizer.teacher_unknown_id is not None else pad_id
    to_teacher = np.asarray([pad_id, unknown, *tokenizer.teacher_ids], np.int64)
    n, length = ids.shape
    p = len(prefix)
    out = np.full((n, p + length + len(suffix)), pad_id, np.int64)
    mask = np.zeros_like(out)
    for i, row in enumerate(np.asarray(ids, np.int64)):
        k = int((row != 0).sum())
        seq = [*prefix, *to_teacher[row[:k]].tolist(), *suffix]
        out[i, : len(seq)], mask[i, : len(seq)] = seq, 1
    return Encoded(out, mask, np.zeros_like(out), 0)


def text_features_source(teacher, tokenizer, attention: bool) -> Callable[[torch.Tensor], AlignedTextFeatures]:
    """ids (N×L) -> AlignedTextFeatures. attention=False: the teacher reads the decoded texts (any tokenizer);
    True: it reads the student's ids between its special tokens, and the attention maps are cut to the student's
    L positions (needs a VocabTokenizer)."""
    if not attention:
        def decoded(ids: torch.Tensor) -> AlignedTextFeatures:
            texts = tokenizer.decode(ids.numpy())
            if tokenizer.name == "bytes":  # a masked byte is left out, as for the soft targets (text_inputs)
                texts = [t.replace(MASKED_BYTE, "") for t in texts]
            f = teacher.features_of(teacher.encode(texts), attentions=False)
            return AlignedTextFeatures(f.hidden_states, f.attention_mask)
        return decoded
    prefix, suffix = special_tokens(teacher)
    pad = teacher.tokenizer.pad_id

    def aligned(ids: torch.Tensor) -> AlignedTextFeatures:
        length, p = ids.shape[1], len(prefix)
        f = teacher.features_of(aligned_encoding(ids.numpy(), tokenizer, prefix, suffix, pad))
        cut = tuple(a[:, :, p:p + length, p:p + length] for a in f.attentions)
        return AlignedTextFeatures(f.hidden_states, f.attention_mask, cut)
    return aligned


def needs_alignment(config: DistillConfig) -> bool:
    return any(f.loss == "minilm" for f in config.kd.features)


def _refuse_minilm(teacher, splits, student) -> str | None:
    """Why attention transfer cannot apply here, or None."""
    if not isinstance(splits.text.tokenizer, VocabTokenizer):
        return (f"the student reads {splits.text.tokenizer.name} ids, and one teacher token spans several of them, so "
                "no student position has a teacher position to match; use --tokenizer vocab (the teacher's "
                "vocabulary cut to the data) with a transformer student")
    if not any(all(hasattr(m, a) for a in ("q", "k", "split")) for m in student.modules()):
        return "the student has no self-attention layer to match (use --student transformer)"
    prefix, suffix = special_tokens(teacher)
    need = len(prefix) + splits.input_shape[0] + len(suffix)
    if need > teacher.max_length:
        return (f"the teacher reads at most {teacher.max_length} tokens, and the student's {splits.input_shape[0]} "
                f"positions plus its {need - splits.input_shape[0]} special tokens need {need}; lower --max-length")
    return None


def check_text_feature_terms(config: DistillConfig, teachers: list, student: torch.nn.Module, splits) -> None:
    """Refuse, in one paragraph each, what text feature terms cannot do; then a dry run on two samples."""
    names = [f.loss for f in config.kd.features]
    teacher = teachers[0]
    wrong = [n for n in names if n not in TEXT_FEATURE_LOSSES.names()]
    if wrong:
        raise ConfigError(f"Feature terms {', '.join(wrong)} compare image feature maps or embeddings layer to layer; "
                          f"a text student has {', '.join(TEXT_FEATURE_LOSSES.names())} (the DistilBERT cosine of "
                          "pooled representations, MiniLM's attention transfer). Use --feature loss=cosine.")
    if not hasattr(teacher, "features_of"):
        raise ConfigError(f"Feature terms for text read a transformers teacher's hidden states; {teacher.name!r} is "
                          f"{teacher.format}, whose insides are not visible, so only response-based losses (kd, dkd, "
                          "kd-std, mse) apply. Give the transformers folder as the teacher.")
    if "minilm" in names and (why := _refuse_minilm(teacher, splits, student)):
        raise ConfigError(f"Attention transfer (--feature loss=minilm) compares the teacher's and the student's "
                          f"attention distributions position by position, so their positions must align: {why}. "
                          "The cosine term (--feature loss=cosine) needs no alignment and works with any tokenizer.")
    source = text_features_source(teacher, splits.text.tokenizer, needs_alignment(config))
    terms = tuple(FeatureTerm(f.loss, f.weight, f.student, f.teacher) for f in config.kd.features)
    try:
        TextFeatureTerms(student, torch.from_numpy(splits.val.x[:2]), source, terms).close()
    except KeyError as exc:
        raise ConfigError(f"Feature terms: {exc.args[0]}.") from None
    except (RuntimeError, ValueError, IndexError) as exc:
        raise ConfigError(f"Feature terms: the chosen layers do not fit each other: {str(exc).splitlines()[0]}.") \
            from None
