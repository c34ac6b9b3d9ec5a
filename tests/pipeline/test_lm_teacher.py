"""The teacher's next-token distribution on the student's pruned vocabulary (pipeline/lm_teacher.py), against the
teacher's own softmax computed by hand: kept tokens keep their probability, every other token's mass goes to the
unknown id, padding gets none; and the teacher's windows line up with the student's token for token."""

import numpy as np
import torch

from edgedistill.data.lm_windows import lm_windows
from edgedistill.data.vocab_tokenizer import VocabTokenizer
from edgedistill.pipeline.lm_teacher import student_vocabulary_logits, teacher_windows


def _tokenizer(tmp_path, train_texts):
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = ["[UNK]", "the", "cat", "dog", "sees", "a", "bird", "tree", "runs", "."]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tok.save(str(path))
    return VocabTokenizer.fit(path, train_texts), len(words)


def test_coarsened_softmax_is_the_teachers_by_hand(tmp_path):
    tok, vt = _tokenizer(tmp_path, ["the cat sees a bird .", "the dog sees the cat ."])
    logits = torch.randn(2, 3, vt, generator=torch.Generator().manual_seed(0)) * 3
    p_teacher = torch.softmax(logits.double(), -1)
    p_student = torch.softmax(student_vocabulary_logits(logits, tok).double(), -1)
    kept = list(tok.teacher_ids)
    assert p_student.shape[-1] == tok.vocab_size == 2 + len(kept)
    torch.testing.assert_close(p_student[..., 2:], p_teacher[..., kept], rtol=1e-5, atol=1e-7)
    rest = [i for i in range(vt) if i not in kept]  # [UNK], "tree", "runs": never in the training texts
    assert sorted(rest) == [0, 7, 8]
    torch.testing.assert_close(p_student[..., 1], p_teacher[..., rest].sum(-1), rtol=1e-5, atol=1e-7)
    assert float(p_student[..., 0].max()) == 0.0


def test_teacher_windows_align_with_the_students(tmp_path):
    docs = ["the cat sees a bird .", "the dog runs .", "a tree .", "the cat sees the dog . a bird sees a tree ."]
    tok, _ = _tokenizer(tmp_path, docs[:2])
    splits = lm_windows(docs, tok, 4, val_fraction=0.25, test_fraction=0.25, seed=0)
    teacher_ids = tok.teacher_token_ids(docs)
    for name in ("train", "val", "test"):
        w = splits.split(name)
        t = teacher_windows(w, teacher_ids, 4)
        real = w.ids != 0
        to_student = {tid: 2 + i for i, tid in enumerate(tok.teacher_ids)}
        mapped = np.vectorize(lambda i: to_student.get(int(i), 1))(t)
        assert (mapped[real] == w.ids[real]).all(), name
