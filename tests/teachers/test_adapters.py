"""The same tiny model saved in every supported format gives the same logits through every teacher adapter.

Real runtimes throughout: onnxruntime for ONNX, the LiteRT interpreter for TFLite (converted by litert-torch).
"""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from edgedistill.errors import ModelLoadError
from edgedistill.teachers import TEACHER_FORMATS, TeacherSpec, load_teacher
from tiny_models import tiny_cnn

FACTORY = "tiny_models:tiny_cnn"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("formats")
    model = tiny_cnn()
    x = torch.randn(2, 1, 8, 8)
    files = {}
    files["torch"] = d / "w.safetensors"
    save_file(model.state_dict(), str(files["torch"]))
    files["torch-pt"] = d / "w.pt"
    torch.save(model.state_dict(), files["torch-pt"])
    files["torchscript"] = d / "m.pt"
    torch.jit.save(torch.jit.trace(model, x), str(files["torchscript"]))
    files["exported"] = d / "m.pt2"
    torch.export.save(torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim("n")},)),
                      str(files["exported"]))
    files["onnx"] = d / "m.onnx"
    torch.onnx.export(model, (x,), str(files["onnx"]), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    import litert_torch

    files["tflite"] = d / "m.tflite"
    litert_torch.convert(model, (x[:1],)).export(str(files["tflite"]))
    return model, files


CASES = {
    "torch": ("torch", FACTORY),
    "torch-pt": ("torch", FACTORY),
    "torchscript": ("torchscript", None),
    "exported": ("exported", None),
    "onnx": ("onnx", None),
    "tflite": ("tflite", None),
}


COVERED_ELSEWHERE = {
    "edgedistill",  # a trained student as teacher: tests/teachers/test_student_teacher.py
    "transformers", "onnx-text", "tflite-text",  # text teachers: tests/teachers/test_text_teachers.py
}


def test_every_registered_format_is_covered():
    assert {fmt for fmt, _ in CASES.values()} | COVERED_ELSEWHERE == set(TEACHER_FORMATS.names())


@pytest.mark.parametrize("case", sorted(CASES))
def test_adapter_logits_match_the_torch_model(saved, case):
    model, files = saved
    fmt, factory = CASES[case]
    teacher = load_teacher(TeacherSpec(str(files[case]), factory=factory))  # format detected from the file
    assert teacher.format == fmt
    x = np.random.default_rng(0).standard_normal((5, 1, 8, 8)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    out = teacher.logits(x)
    assert out.shape == (5, 10) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_weights_file_without_factory_is_refused_clearly(saved):
    _, files = saved
    with pytest.raises(ModelLoadError, match="factory"):
        load_teacher(TeacherSpec(str(files["torch"])))


def test_pickled_module_is_refused_unless_allowed(tmp_path):
    path = tmp_path / "whole_model.pt"
    torch.save(tiny_cnn(), path)  # a pickled nn.Module, not a state dict
    with pytest.raises(ModelLoadError, match="refuses to unpickle"):
        load_teacher(TeacherSpec(str(path), factory=FACTORY))
    t = load_teacher(TeacherSpec(str(path), factory=FACTORY, allow_pickle=True))
    assert t.logits(np.zeros((1, 1, 8, 8), np.float32)).shape == (1, 10)


@pytest.mark.parametrize("suffix", [".onnx", ".tflite", ".pt2", ".safetensors"])
def test_corrupt_files_give_a_model_load_error(tmp_path, suffix):
    path = tmp_path / f"broken{suffix}"
    path.write_bytes(b"\x00garbage" * 50)
    with pytest.raises(ModelLoadError) as info:
        load_teacher(TeacherSpec(str(path), factory=FACTORY))
    assert str(path) in str(info.value)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_teacher(TeacherSpec(str(tmp_path / "nope.onnx")))
    odd = tmp_path / "model.xyz"
    odd.write_text("x")
    with pytest.raises(ModelLoadError, match="Cannot tell the format"):
        load_teacher(TeacherSpec(str(odd)))


def test_weights_that_do_not_fit_the_factory(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"foo": torch.zeros(3)}, str(path))
    with pytest.raises(ModelLoadError, match="do not fit"):
        load_teacher(TeacherSpec(str(path), factory=FACTORY))
