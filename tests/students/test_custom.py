"""Bring your own student (`--student file.py:fn,k=v`, `pkg.mod:fn`, [student] factory) and the one-paragraph
errors for every malformed `--student` value."""

import json
import textwrap

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from edgedistill.cli import main
from edgedistill.cli_args import parse_student
from edgedistill.config import load_config
from edgedistill.data import Normalizer
from edgedistill.errors import ConfigError, ModelLoadError
from edgedistill.students import StudentArch, build_student
from edgedistill.students.checkpoint import StudentCheckpoint, load_student, save_student

MODELS = '''
import torch
from torch import nn
from blocks import Res  # a sibling file: importable whatever the working directory is

def resnet(num_classes, in_channels, width=8, se=False):
    return nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), Res(width),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))

def with_shape(num_classes, input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), num_classes))

def no_classes(width=4):
    return nn.Linear(4, 4)

def raises(num_classes):
    raise RuntimeError("width must be even")

def not_a_module(num_classes):
    return 42

def wrong_output(num_classes, in_channels):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(num_classes + 1))
'''
BLOCKS = '''
import torch
from torch import nn

class Res(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c)

    def forward(self, x):
        return torch.relu(x + self.bn1(self.conv1(x)))
'''
NORM = Normalizer([0.3], [0.4], "channel")


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    d = tmp_path / "user"
    d.mkdir()
    (d / "mymodels.py").write_text(MODELS)
    (d / "blocks.py").write_text(BLOCKS)
    monkeypatch.chdir(d)
    return d


def _build(value: str, shape=(1, 8, 8), classes=10) -> nn.Module:
    cfg = load_config(None, {"student": parse_student(value)})
    return build_student(cfg.student.arch("image"), shape, classes, NORM)


def test_file_factory_with_kwargs_is_called_with_the_data_and_runs_from_any_directory(user_dir, tmp_path,
                                                                                      monkeypatch):
    fields = parse_student("mymodels.py:resnet,width=6,se=true")
    assert fields["factory"] == f"{user_dir / 'mymodels.py'}:resnet"  # recorded absolute
    assert fields["factory_kwargs"] == {"width": 6, "se": True}
    monkeypatch.chdir(tmp_path)  # elsewhere: the recorded path and the sibling import still work
    m = _build("../user/mymodels.py:resnet,width=6".replace("../user", str(user_dir)))
    assert m.model[0].weight.shape == (6, 1, 3, 3)  # in_channels from the data, width from the kwargs
    x = torch.rand(3, 1, 8, 8)
    assert m(x).shape == (3, 10)
    # The normaliser comes first, exactly as for the built-in families; the user's layers are under `model.`.
    assert isinstance(m.normalize, nn.Module) and "model.2.conv1" in dict(m.named_modules())
    torch.testing.assert_close(m(x), m.model((x - 0.3) / 0.4), rtol=1e-5, atol=1e-5)


def test_module_factory_and_input_shape(user_dir, monkeypatch):
    pkg = user_dir / "mypkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "nets.py").write_text(MODELS.replace("from blocks import Res", "from .blocks import Res"))
    (pkg / "blocks.py").write_text(BLOCKS)
    monkeypatch.syspath_prepend(str(user_dir))
    assert parse_student("mypkg.nets:with_shape")["factory"] == "mypkg.nets:with_shape"
    m = _build("mypkg.nets:with_shape", shape=(2, 4, 5), classes=3)
    assert m.model[1].in_features == 40 and m(torch.rand(1, 2, 4, 5)).shape == (1, 3)


def test_config_table_names_a_factory(user_dir):
    (user_dir / "cfg.toml").write_text(textwrap.dedent('''
        [student]
        factory = "mymodels.py:resnet"
        factory_kwargs = {width = 5}
    '''))
    cfg = load_config(user_dir / "cfg.toml")
    assert cfg.student.family == "custom" and cfg.student.factory.endswith("mymodels.py:resnet")
    arch = cfg.student.arch("image")
    assert arch == StudentArch.custom(f"{user_dir / 'mymodels.py'}:resnet", {"width": 5})
    assert build_student(arch, (1, 8, 8), 4, NORM).model[0].out_channels == 5
    with pytest.raises(ConfigError, match="either a student family"):
        load_config(None, {"student": {"family": "cnn", "factory": "mymodels.py:resnet"}})
    with pytest.raises(ConfigError, match="no factory"):
        load_config(None, {"student": {"factory_kwargs": {"width": 3}}})
    with pytest.raises(ConfigError, match="num_classes"):
        load_config(None, {"student": {"factory": "mymodels.py:resnet", "factory_kwargs": {"num_classes": 3}}})


def test_checkpoint_records_the_factory_and_rebuilds_elsewhere(user_dir, tmp_path, monkeypatch):
    arch = StudentArch.custom(f"{user_dir / 'mymodels.py'}:resnet", {"width": 4})
    torch.manual_seed(0)
    model = build_student(arch, (1, 8, 8), 3, NORM).eval()
    ck = StudentCheckpoint(arch, (1, 8, 8), 3, ["a", "b", "c"], NORM)
    save_student(tmp_path / "run", model, ck)
    meta = json.loads((tmp_path / "run" / "student.json").read_text())
    assert meta["arch"]["factory"] == arch.factory and meta["arch"]["kwargs"] == {"width": 4}
    monkeypatch.chdir(tmp_path)
    again, ck2 = load_student(tmp_path / "run")
    assert ck2.arch == arch
    x = torch.rand(5, 1, 8, 8)
    torch.testing.assert_close(again(x), model(x))
    (user_dir / "mymodels.py").unlink()
    with pytest.raises(ModelLoadError, match="cannot be rebuilt.*does not exist"):
        load_student(tmp_path / "run")


def test_old_checkpoints_without_a_factory_still_load(tmp_path):
    model = build_student(StudentArch("cnn", 4, 2), (1, 8, 8), 3, NORM)
    save_student(tmp_path, model, StudentCheckpoint(StudentArch("cnn", 4, 2), (1, 8, 8), 3, list("abc"), NORM))
    meta = json.loads((tmp_path / "student.json").read_text())
    assert meta["arch"] == {"family": "cnn", "width": 4, "depth": 2}
    assert load_student(tmp_path)[1].arch == StudentArch("cnn", 4, 2)


@pytest.mark.parametrize("value, words", [
    ("dscnn:widht=8", ["unknown knob 'widht'", "width and depth"]),
    ("dscnn:width=eight", ["width takes a positive whole number", "'eight'"]),
    ("cnn:depth=0", ["depth takes a positive whole number"]),
    ("cnn:width", ["key=value"]),
    ("dscn", ["Unknown student family 'dscn'", "cnn", "dscnn"]),
    ("missing.py:resnet", ["missing.py does not exist"]),
    ("mymodels.py", ["name the function", "mymodels.py:make_model"]),
    ("mymodels.py:resnet,width", ["key=value"]),
    ("mymodels.py:resnet,in_channels=3", ["'in_channels'", "passed by edgedistill"]),
])
def test_malformed_student_values_are_one_paragraph_config_errors(user_dir, value, words):
    with pytest.raises(ConfigError) as info:
        parse_student(value)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


@pytest.mark.parametrize("value, words", [
    ("mymodels.py:resnt", ["no callable 'resnt'", "resnet", "with_shape"]),
    ("mymodels.py:resnet,widht=8", ["no argument 'widht'", "width, se"]),
    ("mymodels.py:no_classes", ["must accept a `num_classes`"]),
    ("mymodels.py:raises", ["raised RuntimeError", "width must be even", "num_classes=10"]),
    ("mymodels.py:not_a_module", ["returned a int, not a torch.nn.Module"]),
    ("mymodels.py:wrong_output", ["returns (11,) per sample", "(10,)"]),
    ("nosuchpkg.models:resnet", ["Cannot import module 'nosuchpkg.models'"]),
])
def test_factory_failures_are_one_paragraph_config_errors(user_dir, value, words):
    with pytest.raises(ConfigError) as info:
        _build(value)
    msg = str(info.value)
    assert "\n" not in msg and all(w in msg for w in words), msg


def test_a_factory_file_that_fails_to_import(user_dir):
    (user_dir / "broken.py").write_text("import nosuchthing\n")
    with pytest.raises(ConfigError, match="Importing .*broken.py.*ModuleNotFoundError"):
        _build("broken.py:f")


def test_cli_malformed_student_exits_with_one_paragraph(user_dir, tmp_path):
    for value in ("dscnn:widht=8", "mymodels.py:resnt"):
        out = tmp_path / f"run-{value[:5]}"
        r = CliRunner().invoke(main, ["distill", "--student", value, "--epochs", "1", "-q", "--out", str(out)])
        assert r.exit_code == 2 and r.output.startswith("error: ") and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1 and not out.exists() and not out.with_name(
            out.name + ".partial").exists()


def test_distill_trains_a_file_factory_student_end_to_end(user_dir, tmp_path):
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--student", "mymodels.py:resnet,width=4", "--epochs", "1", "-q",
                                  "-T", "2", "--alpha", "0.5", "--no-baseline", "--out", str(out),
                                  "--max-train", "600", "--feature", "loss=hint,student=model.2,teacher=layer2"],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    model, ck = load_student(out)
    assert ck.arch.factory.endswith("mymodels.py:resnet") and dict(ck.arch.kwargs) == {"width": 4}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["student"]["factory"] == ck.arch.factory and cfg["student"]["family"] == "custom"
    m = json.loads((out / "metrics.json").read_text())
    assert m["student"]["test_acc"] > 10  # digits, 1 epoch: better than chance


@pytest.mark.slow
@pytest.mark.parametrize("form", ["file", "module"])
def test_user_student_through_distill_qat_export_and_teacher_chain(user_dir, tmp_path, monkeypatch, form):
    """A residual user module (file.py:fn and package.module:fn) through distill --qat (int8 ONNX / TFLite parity on
    every runtime), then `export` and teacher-from-build-dir from another directory."""
    if form == "module":
        pkg = user_dir / "userpkg"
        pkg.mkdir()
        (pkg / "__init__.py").write_text("")
        (pkg / "nets.py").write_text(MODELS.replace("from blocks import Res", "from .blocks import Res"))
        (pkg / "blocks.py").write_text(BLOCKS)
        monkeypatch.syspath_prepend(str(user_dir))
    spec = "mymodels.py:resnet,width=8" if form == "file" else "userpkg.nets:resnet,width=8"
    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["distill", "--student", spec, "--epochs", "5", "--batch-size", "32", "--lr", "0.01",
                                  "-q", "-T", "2", "--alpha", "0.5", "--no-baseline", "--max-train", "600", "--qat",
                                  "--qat-epochs", "1", "--out", str(out)], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["student"]["test_acc"] > 25 and m["int8"]["qat_test_acc"] > 25  # chance is 10 %
    assert m["int8"]["parity_passed"]
    assert {(p["artifact"], p["runtime"]) for p in m["int8"]["parity"] if p["checked"]} >= {
        ("onnx-int8", "onnxruntime"), ("tflite-int8", "litert"), ("tflite-int8", "tflm")}
    monkeypatch.chdir(tmp_path)  # elsewhere: the checkpoint's recorded factory rebuilds the student
    r = CliRunner().invoke(main, ["export", str(out), "--int8", "--format", "tflite", "--out", str(tmp_path / "exp")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "exp" / "student_int8.tflite").read_bytes() == (out / "student_int8.tflite").read_bytes()
    from edgedistill.teachers import TeacherSpec, load_teacher

    teacher = load_teacher(TeacherSpec(str(out)))
    model, _ = load_student(out)
    x = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32) * 16
    with torch.no_grad():
        np.testing.assert_allclose(teacher.logits(x).numpy(), model(torch.from_numpy(x)).numpy(), rtol=1e-4,
                                   atol=1e-4)
