"""The causal-LM teacher cache's tail mass at a set of temperatures (pipeline/lm_teacher.py): with k = the student
vocabulary the cached top-k gives exactly the full-softmax KD loss at every stored T (Hinton's formula written out
here, on the teacher's own logits); with k < V each stored tail is the log mass of the tokens outside the top-k at
its T; the cache is keyed by the set, and an entry that holds another set (an older one-T cache) is never read as
this one's."""

import numpy as np
import pytest
import torch

from edgedistill.data.lm_windows import lm_windows
from edgedistill.data.vocab_tokenizer import VocabTokenizer
from edgedistill.distill.lm_losses import top_k_kd
from edgedistill.pipeline.lm_teacher import student_vocabulary_logits, teacher_outputs, teacher_windows
from edgedistill.teachers.causal_lm import CausalLMTeacher
from tiny_lm import documents, save_tiny_gpt2

TEMPS = (1.0, 2.0, 4.0)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lmtemps")
    torch.set_num_threads(1)
    docs = documents(40, seed=3)
    folder = save_tiny_gpt2(root / "teacher", documents(200, seed=4), steps=10, width=32, layers=1)
    teacher = CausalLMTeacher(folder)
    tok = VocabTokenizer.fit(teacher.tokenizer, docs)
    splits = lm_windows(docs, tok, 12, val_fraction=0.2, test_fraction=0.2, seed=0)
    ids = teacher_windows(splits.train, tok.teacher_token_ids(docs), splits.context)
    full = student_vocabulary_logits(teacher.logits(ids), tok)  # (N, L, V_S), the reference's teacher
    return {"teacher": teacher, "tok": tok, "docs": docs, "splits": splits, "full": full, "root": root}


def _outputs(world, k, temps, cache):
    return teacher_outputs(world["teacher"], world["tok"], world["docs"], world["splits"], k, temps, cache)


def _hinton(s: torch.Tensor, t: torch.Tensor, T: float, mask: torch.Tensor) -> torch.Tensor:
    """T² · mean over the masked positions of KL(softmax(t/T) ‖ softmax(s/T)) over the whole vocabulary."""
    p, log_p, log_q = torch.softmax(t / T, -1), torch.log_softmax(t / T, -1), torch.log_softmax(s / T, -1)
    kl = (torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))).sum(-1)
    return kl[mask].mean() * T * T


def test_k_equal_to_the_vocabulary_is_full_softmax_kd_at_every_stored_t(world, tmp_path):
    v = world["tok"].vocab_size
    out = _outputs(world, v, TEMPS, tmp_path)
    top = out.train
    assert top.temperatures == TEMPS and top.k == v and top.tail.shape[-1] == len(TEMPS)
    assert out.bytes_per_position == v * (4 + 4) + len(TEMPS) * 4
    s = torch.randn(world["full"].shape, generator=torch.Generator().manual_seed(0)) * 2
    mask = torch.from_numpy(world["splits"].train.targets) != -1
    top = type(top)(top.values, top.indices.long(), top.tail, top.temperatures)
    for T in TEMPS:
        torch.testing.assert_close(top_k_kd(s, top, T, mask), _hinton(s, world["full"], T, mask),
                                   atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="not T = 3"):
        top.tail_at(3.0)


def test_each_stored_tail_is_the_mass_outside_the_top_k_at_its_t(world, tmp_path):
    k = 5
    top = _outputs(world, k, TEMPS, tmp_path).train
    full = world["full"].double()
    kth = full.topk(k, -1).values[..., -1:]
    for T in TEMPS:
        rest = torch.where(full < kth, full / T, torch.full_like(full, -torch.inf))  # ties at the k-th: none here
        torch.testing.assert_close(top.tail_at(T).double(), torch.logsumexp(rest, -1), atol=1e-4, rtol=1e-5)


def test_the_cache_is_keyed_by_the_temperatures_and_never_misreads_another_set(world, tmp_path):
    one = _outputs(world, 5, (2.0,), tmp_path)
    assert not one.cached and one.train.tail.shape[-1] == 1
    again = _outputs(world, 5, (2.0,), tmp_path)
    assert again.cached and torch.equal(again.train.tail, one.train.tail)
    three = _outputs(world, 5, TEMPS, tmp_path)  # another key: computed, not the one-T entry
    assert not three.cached and three.train.tail.shape[-1] == 3
    torch.testing.assert_close(three.train.tail_at(2.0), one.train.tail_at(2.0))
    assert three.bytes_per_position == one.bytes_per_position + 2 * 4
    entries = sorted(tmp_path.glob("lm-*.npz"), key=lambda p: p.stat().st_mtime)
    assert len(entries) == 2
    # an entry found under this set's key that holds one T (as an older cache wrote it: no temperatures record) is
    # recomputed and overwritten, not read with its one column taken for T = 1
    newest = entries[-1]
    with np.load(newest) as z:
        old = {"values": z["values"], "indices": z["indices"], "tail": z["tail"][..., 1:2],
               **{k: z[k] for k in ("test_nll", "test_rank", "test_doc")}}
    np.savez(newest, **old)
    redo = _outputs(world, 5, TEMPS, tmp_path)
    assert not redo.cached and torch.equal(redo.train.tail, three.train.tail)
    assert _outputs(world, 5, TEMPS, tmp_path).cached


def test_the_test_scores_are_those_of_the_full_logits_computed_and_cached(world, tmp_path, monkeypatch):
    """The teacher's test split is scored batch by batch (no (W, L, V) array of the split is held or cached): the
    scores equal lm_metrics.token_scores of the whole split's coarsened logits, in batches of one window too, and
    read back from the cache unchanged."""
    import edgedistill.pipeline.lm_teacher as lm_teacher
    from edgedistill.lm_metrics import token_scores

    test = world["splits"].test
    ids = teacher_windows(test, world["tok"].teacher_token_ids(world["docs"]), test.ids.shape[1])
    want = token_scores(student_vocabulary_logits(world["teacher"].logits(ids), world["tok"]).numpy(), test.targets,
                        test.doc)
    monkeypatch.setattr(lm_teacher, "LOGITS_PER_BATCH", 1)  # one window a batch
    for out in (_outputs(world, 5, (2.0,), tmp_path), _outputs(world, 5, (2.0,), tmp_path)):
        got = out.test_scores
        assert got.nll.shape == want.nll.shape and len(test) > 1
        np.testing.assert_allclose(got.nll, want.nll, rtol=1e-6, atol=1e-6)
        assert np.array_equal(got.doc, want.doc)
        assert (got.rank != want.rank).mean() < 0.01  # batch size may move a near-tie by an ulp, nothing more
    assert out.cached
