"""Text teachers: a tiny BERT built here from a config (no download) with a WordPiece tokenizer trained here, saved
with save_pretrained, then loaded as a transformers folder, exported to ONNX and to TFLite. The reference is the
in-memory model run on each text alone (no padding, so no mask to get wrong)."""

from __future__ import annotations

import json
import os
import shutil
import socket

import numpy as np
import pytest
import torch

from edgedistill.errors import DataError, ModelLoadError
from edgedistill.teachers import TeacherSpec, load_teacher

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

MAX_POS = 24
WORDS = ["haus", "maison", "casa", "house", "huis", "garten", "jardin", "giardino", "garden", "tuin", "schnell",
         "rapide", "veloce", "quick", "snel", "wasser", "eau", "agua", "acqua", "water", "the quick house",
         "la maison rapide", "het huis", "der schnelle garten", "una casa veloce"]
TEXTS = ["haus", "la maison", "der garten ist schnell", "", "water water water", "xyzzy qwerty",
         " ".join(["garden"] * 40),  # past the 24 positions: truncated
         "acqua veloce"]


def train_tokenizer():
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(WORDS * 4, trainers.WordPieceTrainer(
        vocab_size=80, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok


class IdsToLogits(torch.nn.Module):
    """The classifier as an exporter sees it: (input_ids, attention_mask) -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """(folder, in-memory model, tokenizer): a 2-layer BERT for 3 classes, saved with save_pretrained."""
    torch.manual_seed(0)
    tok = train_tokenizer()
    cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=MAX_POS,
                                  num_labels=3, pad_token_id=tok.token_to_id("[PAD]"))
    model = transformers.BertForSequenceClassification(cfg).eval()
    folder = tmp_path_factory.mktemp("tiny") / "tiny_bert"
    model.save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return folder, model, tok


def reference_logits(model, tok, texts) -> np.ndarray:
    """Each text alone through the in-memory model: no padding, truncation at MAX_POS by the tokenizer itself."""
    tok.no_padding()
    tok.enable_truncation(MAX_POS)
    rows = []
    with torch.no_grad():
        for t in texts:
            ids = torch.tensor([tok.encode(t).ids])
            rows.append(model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[0].numpy())
    return np.stack(rows)


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (with the Hub variables unset, as on a user's machine)."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_transformers_folder_logits_equal_the_models_own_forward(tiny, no_network):
    folder, model, tok = tiny
    teacher = load_teacher(TeacherSpec(str(folder)))
    assert teacher.format == "transformers" and teacher.is_text
    assert teacher.max_length == MAX_POS
    contract = teacher.bind(3, TEXTS[:4])
    assert (contract.index, contract.kind) == (0, "logits")
    teacher.batch_size = 3  # batches padded to different lengths
    got = teacher.logits(TEXTS)
    assert got.dtype == torch.float32 and got.shape == (len(TEXTS), 3)
    np.testing.assert_allclose(got.numpy(), reference_logits(model, tok, TEXTS), atol=2e-5, rtol=1e-4)
    assert teacher.truncated >= 1
    assert teacher.num_params() == sum(p.numel() for p in model.parameters())
    # the folder's config.json names the same folder
    assert load_teacher(TeacherSpec(str(folder / "config.json"))).identity() == teacher.identity()


def test_features_give_hidden_states_and_attention_maps(tiny):
    folder, model, tok = tiny
    teacher = load_teacher(TeacherSpec(str(folder)))
    texts = ["haus", "der garten ist schnell"]
    f = teacher.features(texts)
    tok.no_padding()
    lengths = [len(tok.encode(t).ids) for t in texts]
    n, t = len(texts), max(lengths)
    assert len(f.hidden_states) == 3 and all(h.shape == (n, t, 32) for h in f.hidden_states)
    assert len(f.attentions) == 2 and all(a.shape == (n, 2, t, t) for a in f.attentions)
    assert f.attention_mask.tolist() == [[1] * k + [0] * (t - k) for k in lengths]
    a = f.attentions[-1]
    np.testing.assert_allclose(a.sum(-1).numpy(), 1.0, atol=1e-5)  # probabilities over the keys
    assert float(a[0, :, :, lengths[0]:].abs().max()) == 0.0  # padded keys get no attention
    # the last hidden state's first token is what the classifier reads: pooler + classifier reproduce the logits
    with torch.no_grad():
        logits = model.classifier(model.bert.pooler(f.hidden_states[-1]))
    np.testing.assert_allclose(logits.numpy(), teacher.logits(texts).numpy(), atol=2e-5)
    assert teacher.torch_module().config._attn_implementation == model.config._attn_implementation  # restored


def test_identity_covers_the_tokenizer_file(tiny, tmp_path):
    folder, _, tok = tiny
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    before = load_teacher(TeacherSpec(str(copy))).identity()
    assert load_teacher(TeacherSpec(str(copy))).identity() == before
    doc = json.loads((copy / "tokenizer.json").read_text())
    doc["normalizer"] = None  # same vocabulary, no lower-casing: other ids for "Haus", so other logits
    (copy / "tokenizer.json").write_text(json.dumps(doc))
    changed = load_teacher(TeacherSpec(str(copy)))
    assert changed.identity() != before
    assert not torch.equal(changed.logits(["HAUS"]), load_teacher(TeacherSpec(str(folder))).logits(["HAUS"]))


@pytest.fixture(scope="module")
def onnx_file(tiny, tmp_path_factory):
    folder, model, _ = tiny
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    ids = torch.tensor([[2, 5, 6, 3], [2, 7, 3, 0]])
    dyn = {0: "batch", 1: "sequence"}
    torch.onnx.export(IdsToLogits(model).eval(), (ids, (ids != 0).long()), str(path),
                      input_names=["input_ids", "attention_mask"], output_names=["logits"],
                      dynamic_shapes=(dyn, dyn), external_data=False)
    return path


def test_onnx_text_teacher_matches_torch(tiny, onnx_file, tmp_path):
    folder, model, tok = tiny
    teacher = load_teacher(TeacherSpec(str(onnx_file), tokenizer=str(folder / "tokenizer.json")))
    assert teacher.format == "onnx-text" and teacher.runtime() == "onnxruntime"
    assert teacher.max_length == 512  # dynamic sequence, nothing beside the file says otherwise
    texts = TEXTS[:-2] + TEXTS[-1:]  # within the 24 positions: an ONNX file alone does not state its maximum
    np.testing.assert_allclose(teacher.logits(texts).numpy(), reference_logits(model, tok, texts), atol=1e-4)
    # tokenizer.json and config.json beside the file, as optimum writes them: found without being named
    beside = tmp_path / "model.onnx"
    shutil.copy(onnx_file, beside)
    shutil.copy(folder / "tokenizer.json", tmp_path / "tokenizer.json")
    shutil.copy(folder / "config.json", tmp_path / "config.json")
    auto = load_teacher(TeacherSpec(str(beside)))
    assert auto.format == "onnx-text" and auto.max_length == MAX_POS
    np.testing.assert_allclose(auto.logits(TEXTS).numpy(), reference_logits(model, tok, TEXTS), atol=1e-4)


def test_onnx_identity_covers_external_weights(tiny, onnx_file, tmp_path):
    import onnx

    path = tmp_path / "ext.onnx"
    onnx.save_model(onnx.load(str(onnx_file)), str(path), save_as_external_data=True, location="ext.onnx.data",
                    size_threshold=1024)
    tok = str(tiny[0] / "tokenizer.json")
    before = load_teacher(TeacherSpec(str(path), tokenizer=tok)).identity()
    data = bytearray((tmp_path / "ext.onnx.data").read_bytes())
    data[-4:] = np.float32(1.5).tobytes()  # one weight changed; the .onnx file itself is untouched
    (tmp_path / "ext.onnx.data").write_bytes(bytes(data))
    after = load_teacher(TeacherSpec(str(path), tokenizer=tok))
    assert after.identity() != before
    assert [f.name for f in after.files] == ["ext.onnx", "ext.onnx.data", "tokenizer.json"]


def test_tflite_text_teacher_matches_torch(tiny, tmp_path):
    litert_torch = pytest.importorskip("litert_torch")
    folder, model, tok = tiny
    eager = transformers.BertForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    length = 16
    sample = {"input_ids": torch.zeros(2, length, dtype=torch.long),
              "attention_mask": torch.ones(2, length, dtype=torch.long)}
    path = tmp_path / "tiny.tflite"
    litert_torch.convert(IdsToLogits(eager).eval(), sample_kwargs=sample).export(str(path))
    teacher = load_teacher(TeacherSpec(str(path), tokenizer=str(folder / "tokenizer.json")))
    assert teacher.format == "tflite-text" and teacher.max_length == length  # the file's static sequence length
    texts = TEXTS[:3] + TEXTS[4:6] + TEXTS[7:]  # 7 texts: batches of 2, the last one padded
    tok.no_padding()
    assert max(len(tok.encode(t).ids) for t in texts) <= length
    np.testing.assert_allclose(teacher.logits(texts).numpy(), reference_logits(model, tok, texts), atol=1e-4)


def _one_paragraph(exc: pytest.ExceptionInfo, *needles: str) -> None:
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg
    for n in needles:
        assert n in msg, msg


def test_remote_code_is_refused_unless_allowed(tiny, tmp_path):
    folder = tmp_path / "remote"
    shutil.copytree(tiny[0], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["auto_map"] = {"AutoModelForSequenceClassification": "modeling_mine.MyClassifier"}
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError) as exc:
        load_teacher(TeacherSpec(str(folder)))
    _one_paragraph(exc, "auto_map", "--teacher-allow-remote-code")
    cfg.pop("auto_map")
    cfg["model_type"] = "my-own-bert"
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError) as exc:
        load_teacher(TeacherSpec(str(folder)))
    _one_paragraph(exc, "'my-own-bert'", "--teacher-allow-remote-code")
    with pytest.raises(ModelLoadError) as exc:  # allowed: past the refusal, to transformers, which has no code for it
        load_teacher(TeacherSpec(str(folder), allow_remote_code=True))
    _one_paragraph(exc, "transformers could not load")


def test_pickle_only_folder_is_refused_unless_allowed(tiny, tmp_path):
    src, model, tok = tiny
    folder = tmp_path / "pickled"
    folder.mkdir()
    shutil.copy(src / "config.json", folder)
    shutil.copy(src / "tokenizer.json", folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    with pytest.raises(ModelLoadError) as exc:
        load_teacher(TeacherSpec(str(folder)))
    _one_paragraph(exc, "pytorch_model.bin", "pickle", "--teacher-allow-pickle")
    teacher = load_teacher(TeacherSpec(str(folder), allow_pickle=True))
    np.testing.assert_allclose(teacher.logits(TEXTS[:3]).numpy(), reference_logits(model, tok, TEXTS[:3]), atol=2e-5)


def test_missing_tokenizer_is_one_paragraph(tiny, onnx_file, tmp_path):
    folder = tmp_path / "no_tok"
    shutil.copytree(tiny[0], folder)
    (folder / "tokenizer.json").unlink()
    with pytest.raises(ModelLoadError) as exc:
        load_teacher(TeacherSpec(str(folder)))
    _one_paragraph(exc, "no tokenizer.json", "save_pretrained")
    alone = tmp_path / "alone.onnx"
    shutil.copy(onnx_file, alone)
    with pytest.raises(ModelLoadError) as exc:
        load_teacher(TeacherSpec(str(alone)))
    _one_paragraph(exc, "--teacher-tokenizer", "tokenizer.json")


def test_a_base_checkpoint_without_its_classifier_is_refused(tiny, tmp_path):
    folder = tmp_path / "base"
    tiny[1].bert.save_pretrained(folder)  # the encoder alone: the classifier would be initialized at random
    shutil.copy(tiny[0] / "tokenizer.json", folder)
    with pytest.raises(ModelLoadError) as exc:
        load_teacher(TeacherSpec(str(folder)))
    _one_paragraph(exc, "classifier", "random")


def test_text_teacher_refuses_an_array_batch(tiny):
    teacher = load_teacher(TeacherSpec(str(tiny[0])))
    with pytest.raises(DataError):
        teacher.logits(np.zeros((2, 5), np.float32))
    with pytest.raises(DataError):
        teacher.logits("one string, not a list")


def _text_builtins() -> list[str]:
    """The built-in text classifier folders (the causal-LM one, docs-lm: tests/pipeline/test_builtin_lm.py)."""
    from edgedistill.data.builtin_lm import LM_DATASETS
    from edgedistill.teachers.loader import BUILTIN_TEACHERS

    return sorted(name for name, (factory, _, _) in BUILTIN_TEACHERS.items()
                  if factory is None and name not in LM_DATASETS)


def test_every_text_data_set_has_its_builtin_teacher():
    from edgedistill.data.builtin_lm import LM_DATASETS
    from edgedistill.data.builtin_text import TEXT_DATASETS
    from edgedistill.teachers.loader import BUILTIN_TEACHERS

    folders = sorted(name for name, (factory, _, _) in BUILTIN_TEACHERS.items() if factory is None)
    assert _text_builtins() == sorted(TEXT_DATASETS.names()) == ["docs", "langid"]
    assert folders == sorted(TEXT_DATASETS.names() + LM_DATASETS.names()) == ["docs", "docs-lm", "langid"]
    for name in folders:
        assert BUILTIN_TEACHERS[name][2] == f"builtin:{name}"


@pytest.mark.slow
@pytest.mark.parametrize("name", _text_builtins())
def test_builtin_text_teacher_reproduces_its_logged_test_accuracy(name):
    """The committed folder, loaded as a user's would be, on the data set's own test split: the accuracy the
    training log wrote (tools/train_text_teacher.py evaluated the in-memory model, padded per batch of 512)."""
    from importlib import resources

    from edgedistill.data.builtin_text import TEXT_DATASETS
    from edgedistill.errors import EdgeDistillError
    from edgedistill.teachers.loader import BUILTIN_TEACHERS

    _, folder, data = BUILTIN_TEACHERS[name]
    log = json.loads((resources.files("edgedistill.zoo") / f"{folder}.json").read_text())
    try:
        corpus = TEXT_DATASETS.get(name)()
    except EdgeDistillError as exc:
        if os.environ.get("CI"):  # .ci/run installs the data's packages: missing there is a broken job, not a skip
            raise
        pytest.skip(f"{data} cannot be read here: {exc}")
    if name == "docs":  # the texts are the installed libraries' docstrings: other versions, other texts
        from edgedistill.data.builtin_docs import docs_versions

        if docs_versions() != log["data_versions"] and not os.environ.get("CI"):
            pytest.skip(f"{data} depends on the library versions; installed {docs_versions()}, logged "
                        f"{log['data_versions']}")
    teacher = load_teacher(TeacherSpec(data))
    assert teacher.format == "transformers"
    teacher.batch_size = 512
    pred = teacher.logits(corpus.test.texts).argmax(1).numpy()
    labels = teacher.torch_module().config.id2label
    acc = 100.0 * np.mean([labels[int(p)] == y for p, y in zip(pred, corpus.test.labels)])
    assert len(corpus.test) == log.get("test_texts", log.get("test_words"))
    assert abs(acc - log["test_accuracy"]) < 0.01, (acc, log["test_accuracy"])


def _named(tiny, tmp_path, names):
    folder = tmp_path / "named"
    shutil.copytree(tiny[0], folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["id2label"] = {str(i): n for i, n in enumerate(names)}
    cfg["label2id"] = {n: i for i, n in enumerate(names)}
    (folder / "config.json").write_text(json.dumps(cfg))
    return load_teacher(TeacherSpec(str(folder)))


def test_a_teacher_that_names_its_classes_is_put_in_the_data_s_order(tiny, tmp_path):
    """Before: id2label was never read, so data labelled in another order (or sorted differently) got every soft
    target on the wrong class without a word. Same names, other order: the columns follow the data; other names:
    refused in one paragraph; LABEL_k (transformers' default): index order, as before."""
    teacher = _named(tiny, tmp_path, ["tech", "food", "sport"])
    teacher.bind(3, TEXTS[:4])
    before = teacher.logits(TEXTS).numpy()
    identity = teacher.identity()
    assert teacher.match_classes(["food", "sport", "tech"])
    np.testing.assert_array_equal(teacher.logits(TEXTS).numpy(), before[:, [1, 2, 0]])
    assert teacher.identity() != identity  # cached logits of the old order are not reused
    with pytest.raises(DataError) as exc:
        _named(tiny, tmp_path / "b", ["tech", "food", "sport"]).match_classes(["drink", "food", "sport"])
    _one_paragraph(exc, "'tech'", "'drink'", "id2label")
    generic = load_teacher(TeacherSpec(str(tiny[0])))
    assert generic.class_names is None and not generic.match_classes(["b", "a", "c"])


def test_truncation_counts_the_texts_the_teacher_reads_cut(tiny):
    """Counted by tokenizing alone (the model does not run), against the tokenizer's own untruncated counts and
    against the truncation the teacher meets when it does run (the tokenizer's overflow)."""
    folder, _, tok = tiny
    tok.no_truncation()
    tok.no_padding()
    counts = np.array([len(tok.encode(t).ids) for t in TEXTS])
    stats = load_teacher(TeacherSpec(str(folder))).truncation(TEXTS)
    assert stats.max_length == MAX_POS and stats.samples == len(TEXTS)
    assert stats.samples_truncated == int((counts > MAX_POS).sum()) >= 1
    assert stats.tokens == int(counts.sum()) and stats.tokens_dropped == int(np.maximum(counts - MAX_POS, 0).sum())
    running = load_teacher(TeacherSpec(str(folder)))
    running.bind(3, TEXTS[:2])
    running.truncated = 0
    running.logits(TEXTS)
    assert running.truncated == stats.samples_truncated


def _grown_tokenizer(tiny, tmp_path, extra: int):
    """The tiny model's tokenizer with `extra` tokens added: ids past the model's embedding rows."""
    tok = tokenizers.Tokenizer.from_file(str(tiny[0] / "tokenizer.json"))
    rows = tok.get_vocab_size()
    tok.add_tokens([f"newword{i}" for i in range(extra)])
    path = tmp_path / "grown.json"
    tok.save(str(path))
    return path, rows


def test_an_onnx_teacher_refuses_a_tokenizer_larger_than_its_embedding_table(tiny, onnx_file, tmp_path):
    """Before: onnxruntime's 'indices element out of data bounds' traceback at the first text with a new token."""
    grown, rows = _grown_tokenizer(tiny, tmp_path, 5)
    with pytest.raises(ModelLoadError) as exc:
        load_teacher(TeacherSpec(str(onnx_file), tokenizer=str(grown)))
    _one_paragraph(exc, f"{rows + 5:,} tokens", f"{rows:,} rows", str(grown), "--teacher-tokenizer")
    ok = load_teacher(TeacherSpec(str(onnx_file), tokenizer=str(tiny[0] / "tokenizer.json")))
    assert ok.embedding_rows == rows  # the table the graph's input_ids index, read from the file


def _hand_built_onnx(path, rows: int, via: str):
    """input_ids -> `via` (Cast: seen through; Add 0: not) -> Gather(table rows×4) -> mean over tokens -> 3 logits."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((rows, 4)).astype(np.float32), "table")
    head = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "head")
    zero = numpy_helper.from_array(np.zeros((), np.int64), "zero")
    first = helper.make_node("Cast", ["input_ids"], ["ids"], to=TensorProto.INT32) if via == "Cast" else \
        helper.make_node("Add", ["input_ids", "zero"], ["ids"])
    nodes = [first, helper.make_node("Gather", ["table", "ids"], ["emb"]),
             helper.make_node("ReduceMean", ["emb"], ["pooled"], axes=[1], keepdims=0),
             helper.make_node("MatMul", ["pooled", "head"], ["logits"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["n", "t"]),
                                           helper.make_tensor_value_info("attention_mask", TensorProto.INT64,
                                                                         ["n", "t"])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 3])],
                              [table, head, zero])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_a_lookup_the_graph_hides_is_refused_when_the_first_id_falls_outside(tiny, tmp_path):
    grown, rows = _grown_tokenizer(tiny, tmp_path, 3)
    with pytest.raises(ModelLoadError) as exc:  # a cast in front of the lookup: found in the graph, refused at load
        load_teacher(TeacherSpec(str(_hand_built_onnx(tmp_path / "cast.onnx", rows, "Cast")), tokenizer=str(grown)))
    _one_paragraph(exc, f"{rows:,} rows")
    hidden = load_teacher(TeacherSpec(str(_hand_built_onnx(tmp_path / "add.onnx", rows, "Add")), tokenizer=str(grown)))
    assert hidden.embedding_rows is None
    hidden.bind(3, ["haus", "maison"])  # tokens the model knows: it runs
    with pytest.raises(ModelLoadError) as exc:  # a new token: onnxruntime's bounds error, said in one paragraph
        hidden.logits(["haus newword2"])
    _one_paragraph(exc, f"{rows + 3:,} tokens", "onnxruntime", "--teacher-tokenizer")
