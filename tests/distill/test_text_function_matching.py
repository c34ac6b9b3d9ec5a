"""Text function matching: with `--augment token_dropout=P` / `span_mask=F` the teacher (a real transformers model)
labels exactly the view the student trains on, read through the student tokenizer's decode; array augmentations
are refused for text and text views for arrays, each in one paragraph, before anything is written."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.config import load_config
from edgedistill.distill.trainer import Objective, TrainSettings, fit
from edgedistill.errors import ConfigError
from edgedistill.pipeline.inputs import EvalTensors, read_inputs
from edgedistill.pipeline.teacher_outputs import teacher_outputs
from edgedistill.progress import bars
from edgedistill.students import StudentArch, build_student
from edgedistill.teachers import LogitCache
from tiny_models import Recorder

pytest.importorskip("transformers")
from tiny_text import save_tiny_bert, write_sentences  # noqa: E402


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("textfm")
    save_tiny_bert(d / "bert")
    write_sentences(d / "s.jsonl", n=120)
    return d


@pytest.mark.parametrize("tokenizer,augment", [("bytes", {"token_dropout": 0.3}),
                                               ("vocab", {"token_dropout": 0.2, "span_mask": 0.3})])
def test_the_teacher_labels_the_view_the_student_trains_on(text_dir, tokenizer, augment):
    config = load_config(None, {"data": {"source": str(text_dir / "s.jsonl")},
                                "teachers": [{"path": str(text_dir / "bert")}],
                                "student": {"tokenizer": tokenizer}, "augment": augment})
    inputs = read_inputs(config)
    s, teacher = inputs.splits, inputs.teachers[0]
    read = []
    real = teacher.logits
    teacher.logits = lambda texts: (read.append(list(texts)), real(texts))[1]  # the real model, its input kept
    ev = EvalTensors.of(s)
    with bars(False) as ui:
        outs = teacher_outputs(config, inputs.teachers, s, ev, LogitCache(None), True, ui)
    read.clear()  # the test split's labels; from here on the teacher runs on training batches only
    settings = TrainSettings(epochs=1, batch_size=32, seed=1, augment=config.augment.recipe())
    torch.manual_seed(0)
    student = Recorder(build_student(StudentArch("textcnn", 8, 1), s.input_shape, s.num_classes, s.normalizer,
                                     s.vocab_size))
    fit(student, outs.data, ev.x_val, ev.y_val, Objective(True, "kd", 2.0, 0.5), settings)
    decode = s.text.tokenizer.decode
    assert len(student.seen) == len(read) == -(-len(s.transfer) // 32)
    masked = 0
    for ids, texts in zip(student.seen, read):
        view = decode(ids.numpy())
        if tokenizer == "bytes":  # a masked byte (NUL) is left out of the teacher's text, not read as [UNK]
            assert all("\x00" not in t for t in texts)
            view = [t.replace("\x00", "") for t in view]
        assert texts == view  # the teacher read the very view the student saw
        masked += int((ids == 1).sum())
    assert masked > 0  # and the views really hide tokens (id 1 = mask; no training text holds it)
    assert not bool((ev.x_transfer == 1).any())


def _one_paragraph(output: str, *needles: str) -> None:
    assert "Traceback" not in output and "\n\n" not in output.strip()
    for n in needles:
        assert n in output, output


def test_array_augmentation_is_refused_for_text(text_dir, tmp_path):
    r = CliRunner().invoke(main, ["distill", "--teacher", str(text_dir / "bert"), "--data",
                                  str(text_dir / "s.jsonl"), "--augment", "shift=2", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0
    _one_paragraph(r.output, "token_dropout", "shift")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_text_views_are_refused_for_arrays(tmp_path):
    r = CliRunner().invoke(main, ["distill", "--data", "builtin:digits", "--augment", "token_dropout=0.1",
                                  "--out", str(tmp_path / "o")])
    assert r.exit_code != 0
    _one_paragraph(r.output, "token_dropout", "arrays")
    assert not (tmp_path / "o").exists() and not (tmp_path / "o.partial").exists()


def test_the_config_file_spelling_and_its_bounds():
    c = load_config(None, {"augment": "token_dropout=0.1,span_mask=0.2"})
    assert (c.augment.token_dropout, c.augment.span_mask) == (0.1, 0.2)
    assert c.augment.recipe().describe() == "token dropout p=0.1, span masking 0.2 of each text"
    with pytest.raises(ConfigError):
        load_config(None, {"augment": "token_dropout=1.5"})
    json.dumps(c.augment.model_dump())  # recorded as plain JSON in config.json
