"""Warnings when a --target cannot take effect: no written format runs there, or the run is not int8."""

from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.pipeline.distill import formats_warning
from edgedistill.targets import load_target


def test_no_written_format_runs_on_the_target():
    m4 = load_target("cortex-m4")
    w = formats_warning(m4, ["onnx"])
    assert w and "cortex-m4 runs tflite" in w and "--formats onnx,tflite" in w
    assert formats_warning(m4, ["onnx", "tflite"]) is None and formats_warning(None, ["onnx"]) is None


def test_target_without_qat_is_named_as_ignored(tmp_path):
    """Before any work: the warning prints, then the run goes on (here it stops at the missing teacher)."""
    r = CliRunner().invoke(main, ["distill", "--target", "cortex-m4", "--teacher", str(tmp_path / "none.onnx"),
                                  "--out", str(tmp_path / "o")])
    assert "--target cortex-m4 applies to int8 runs" in r.output and "ignored" in r.output
    assert r.exit_code == 2 and "error:" in r.output
    r = CliRunner().invoke(main, ["distill", "--qat", "--target", "cortex-m4", "--teacher",
                                  str(tmp_path / "none.onnx"), "--out", str(tmp_path / "o")])
    assert "applies to int8 runs" not in r.output and r.exit_code == 2


def test_an_unknown_target_is_an_error_with_or_without_qat(tmp_path):
    r = CliRunner().invoke(main, ["distill", "--target", "bogus", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "bogus" in r.output and "applies to int8 runs" not in r.output
    assert not (tmp_path / "o").exists()


def test_qat_computes_the_arithmetic_of_the_targets_runtime():
    """QAT trains with the integers the deployed runtime computes: XNNPACK for LiteRT targets and without a target
    (the host's LiteRT is what the report measures), TFLite Micro's for microcontrollers; a setting overrides."""
    from edgedistill.pipeline.int8 import qat_rounding
    from edgedistill.targets import profile_files

    for t in map(load_target, profile_files()):
        want = {"litert": "xnnpack", "tflm": "tflm", "onnxruntime": "float"}[t.runtime]
        assert qat_rounding("auto", t) == want, t.name
    assert qat_rounding("auto", None) == "xnnpack"
    assert qat_rounding("tflm", load_target("android")) == "tflm"
