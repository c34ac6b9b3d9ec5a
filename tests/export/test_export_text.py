"""`edgedistill export` of a text student: the checkpoint's texts are read again, turned into the token ids its
student trained on (its own tokenizer.json, sequence length and classes), and the exported file is scored on them.
Before, export handed the texts to the array splitter and crashed with an AttributeError traceback. The reference:
the exported file's test accuracy equals the one distill measured on the torch model."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from edgedistill.cli import main

transformers = pytest.importorskip("transformers")

WORDS = {"de": ["haus", "garten", "schnell", "wasser"], "fr": ["maison", "jardin", "rapide", "eau"],
         "it": ["casa", "giardino", "veloce", "acqua"]}


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    d = tmp_path_factory.mktemp("text_export")
    rng = np.random.default_rng(0)
    rows = [{"body": " ".join(rng.choice(WORDS[lang], size=3)), "lang": lang}
            for lang in sorted(WORDS) for _ in range(40)]
    (d / "s.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.train_from_iterator([w for ws in WORDS.values() for w in ws] * 4, trainers.WordPieceTrainer(
        vocab_size=60, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"], show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=16, num_hidden_layers=1,
                                  num_attention_heads=2, intermediate_size=32, max_position_embeddings=32,
                                  num_labels=3, pad_token_id=0)
    transformers.BertForSequenceClassification(cfg).eval().save_pretrained(d / "bert")
    tok.save(str(d / "bert" / "tokenizer.json"))
    out = d / "run"
    r = CliRunner().invoke(main, ["distill", "--teacher", str(d / "bert"), "--data", str(d / "s.jsonl"),
                                  "--text-field", "body", "--label-field", "lang", "--tokenizer", "bytes",
                                  "--student", "textcnn:width=8,depth=1", "--epochs", "2", "-T", "2", "--alpha",
                                  "0.5", "--no-baseline", "--out", str(out), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return out


def test_a_text_checkpoint_exports_and_scores_as_distill_measured_it(distilled, tmp_path):
    out = tmp_path / "export"
    r = CliRunner().invoke(main, ["export", str(distilled), "--formats", "onnx", "--out", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads((out / "export.json").read_text())
    (row,) = [p for p in record["parity"] if p["runtime"] == "onnxruntime"]
    assert row["passed"] and row["top1_agreement"] == 100.0
    metrics = json.loads((distilled / "metrics.json").read_text())
    assert row["samples"] == metrics["data"]["sizes"]["test"]
    assert row["accuracy"] == pytest.approx(metrics["student"]["test_acc"], abs=1e-4)  # float32 round-off


def test_export_int8_of_a_run_without_qat_quantizes_in_the_16x8_form_its_config_asks(distilled, tmp_path):
    """quant.int16 in a run without --qat is recorded (with a note that it applies to int8 files) and honoured by
    `export --int8`'s post-training quantization: the file computes the attention and the LayerNorms in int16 and
    matches the model on every runtime. Before, PTQ silently wrote plain int8 (litert-torch#627's failure)."""
    from edgedistill.export.tflite_int16 import int16_kernels

    d = distilled.parent
    (tmp_path / "q.toml").write_text('[quant]\nint16 = ["attention", "layernorm"]\n')
    run = tmp_path / "run16"
    r = CliRunner().invoke(main, ["distill", "--teacher", str(d / "bert"), "--data", str(d / "s.jsonl"),
                                  "--text-field", "body", "--label-field", "lang", "--tokenizer", "bytes",
                                  "--student", "transformer:width=32,depth=1,heads=2", "--epochs", "1",
                                  "--no-baseline", "--config", str(tmp_path / "q.toml"), "--out", str(run), "-q"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert "export --int8" in " ".join(r.output.split())  # the note: int16 waits for the int8 export
    out = tmp_path / "export"
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--formats", "tflite", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "export.json").read_text())
    assert record["int8_source"] == "ptq-minmax" and record["int16"] == ["attention", "layernorm"]
    found = int16_kernels(out / "student_int8.tflite")
    assert found["BATCH_MATMUL"] == 2 and found["SOFTMAX"] == 1 and found["RSQRT"] == 2, found
    assert record["parity_passed"]
