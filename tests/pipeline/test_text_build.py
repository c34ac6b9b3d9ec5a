"""Text end to end, as the README's Text section promises: a `transformers` classifier saved with save_pretrained (a
tiny BERT built here from a config, with a WordPiece tokenizer trained here: no download) and a JSONL file of
labelled and unlabelled sentences -> `distill --qat` for a microcontroller (the default for sentences: the teacher's
vocabulary cut to the data, a bag of embeddings) and for a phone (the same vocabulary, a transformer student): int8 files that take int32 token ids, parity bit
for bit on LiteRT and TFLite Micro, the student's tokenizer beside the model reproducing the training inputs."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main

transformers = pytest.importorskip("transformers")

WORDS = {"de": ["haus", "garten", "schnell", "wasser", "baum", "strasse", "kirche", "brot"],
         "fr": ["maison", "jardin", "rapide", "eau", "arbre", "rue", "eglise", "pain"],
         "it": ["casa", "giardino", "veloce", "acqua", "albero", "strada", "chiesa", "pane"]}


@pytest.fixture(scope="module")
def text_inputs(tmp_path_factory):
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers

    d = tmp_path_factory.mktemp("text")
    rng = np.random.default_rng(0)
    lines = []
    for i in range(360):
        lang = sorted(WORDS)[i % 3]
        sentence = " ".join(rng.choice(WORDS[lang], size=int(rng.integers(2, 7))))
        label = None if i % 9 == 8 else lang  # every ninth sentence unlabelled: it joins the transfer set
        lines.append(json.dumps({"text": sentence, "label": label}))
    (d / "sentences.jsonl").write_text("\n".join(lines) + "\n")
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator([w for ws in WORDS.values() for w in ws] * 4, trainers.WordPieceTrainer(
        vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=64, max_position_embeddings=32,
                                  num_labels=3, pad_token_id=0)
    folder = d / "my_bert"
    transformers.BertForSequenceClassification(cfg).eval().save_pretrained(folder)
    tok.save(str(folder / "tokenizer.json"))
    return d


def _distill(d, out, *extra):
    args = ["distill", "--qat", "--teacher", str(d / "my_bert"), "--data", str(d / "sentences.jsonl"), "--out",
            str(out), "--epochs", "3", "--qat-epochs", "1", "-T", "2", "--alpha", "0.5", "-q", *extra]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((out / "metrics.json").read_text())


def _distill_in_a_fresh_process(d, out, *extra):
    """_distill in its own Python process, one torch thread: the trained student then depends on nothing another
    module did to this worker's process (in CI, after other modules, the 16×8 test once trained a student whose
    TFLite Micro logits sat one step from QAT's: not reproduced by any run from a fresh process)."""
    import os
    import subprocess
    import sys

    args = ["distill", "--qat", "--teacher", str(d / "my_bert"), "--data", str(d / "sentences.jsonl"), "--out",
            str(out), "--epochs", "3", "--qat-epochs", "1", "-T", "2", "--alpha", "0.5", "-q", "--threads", "1",
            *extra]
    r = subprocess.run([sys.executable, "-m", "edgedistill", *args], capture_output=True, text=True,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads((out / "metrics.json").read_text())


def _exact_on_device_runtimes(q: dict) -> None:
    assert q["parity_passed"]
    rows = {(p["artifact"], p["runtime"]): p for p in q["parity"]}
    for rt in ("litert", "tflm", "litert-reference"):
        assert rows[("tflite-int8", rt)]["max_steps"] == 0 and rows[("tflite-int8", rt)]["top1_agreement"] == 100.0


@pytest.mark.slow
def test_microcontroller_build_of_sentences_reads_words_and_runs_exactly_on_tflite_micro(text_inputs, tmp_path):
    out = tmp_path / "mcu"
    m = _distill(text_inputs, out, "--target", "cortex-m4")
    text = m["data"]["text"]
    assert text["tokenizer"] == "vocab" and 5 < text["vocab_size"] < 120  # sentences: the teacher's words, cut
    assert m["data"]["transfer_counts"]["unlabelled"] == 40  # the unlabelled sentences carry soft targets
    assert json.loads((out / "student.json").read_text())["arch"]["family"] == "bow"
    _exact_on_device_runtimes(m["int8"])
    from ai_edge_litert.interpreter import Interpreter

    inp = Interpreter(model_path=str(out / "student_int8.tflite")).get_input_details()[0]
    assert inp["dtype"] == np.int32 and list(inp["shape"]) == [1, text["max_length"]]
    # the tokenizer written beside the model gives a device app the ids the student reads: the words back, padded
    from edgedistill.data.tokenizers import load_tokenizer

    tok = load_tokenizer(out / "tokenizer.json")
    ids = tok.encode(["haus garten", "maison"], text["max_length"]).ids
    decoded = [t.replace(" ##", "") for t in tok.decode(ids)]  # this tokenizer.json has no WordPiece decoder
    assert decoded == ["haus garten", "maison"] and (ids < text["vocab_size"]).all()
    assert (ids[:, 0] > 1).all() and (ids[:, -1] == 0).all()  # known words first, padding after
    assert "WordPiece" in text["device_steps"] and "WordPiece" in (out / "report.md").read_text()


@pytest.mark.slow
def test_phone_build_cuts_the_teachers_vocabulary_for_a_transformer_student(text_inputs, tmp_path):
    out = tmp_path / "phone"
    m = _distill(text_inputs, out, "--target", "android", "--student", "transformer:width=32,depth=1")
    text = m["data"]["text"]
    assert text["tokenizer"] == "vocab" and 5 < text["vocab_size"] < 120  # cut to the tokens the sentences use
    assert m["int8"]["rounding"] == "xnnpack"
    _exact_on_device_runtimes(m["int8"])
    saved = json.loads((out / "tokenizer.json").read_text())
    assert saved["tokenizer"] == "vocab" and len(saved["teacher_ids"]) == text["vocab_size"] - 2  # + pad, unknown


@pytest.mark.slow
def test_16x8_layernorms_and_attention_asked_in_the_config_reach_the_file(text_inputs, tmp_path):
    """quant.int16 = ["layernorm", "attention"] through `distill --qat`: recorded in metrics, every LayerNorm's MEAN /
    SUB / MUL / RSQRT int16 in the file (two LayerNorms in the encoder layer), the attention's two BATCH_MATMULs and
    its SOFTMAX int16, the file's logits equal the QAT model's on LiteRT and TFLite Micro to the step."""
    from edgedistill.export.tflite_int16 import int16_kernels

    (tmp_path / "q.toml").write_text('[quant]\nint16 = ["layernorm", "attention"]\n')
    out = tmp_path / "phone16"
    m = _distill_in_a_fresh_process(text_inputs, out, "--target", "android", "--student",
                                    "transformer:width=32,depth=1,heads=2", "--config", str(tmp_path / "q.toml"))
    assert m["int8"]["int16"] == ["layernorm", "attention"] and m["int8"]["parity_passed"]
    found = int16_kernels(out / "student_int8.tflite")
    want = {"MEAN": 4, "SUB": 2, "MUL": 4, "RSQRT": 2, "BATCH_MATMUL": 2, "SOFTMAX": 1}
    assert {k: found.get(k, 0) for k in want} == want, found
    for p in m["int8"]["parity"]:
        if p["artifact"] == "tflite-int8":
            assert p["max_steps"] == 0 and p["top1_agreement"] == 100.0, p  # every kernel's integers in QAT
