"""profile/measure.py times `Runner.call_on`: one runtime call on an input prepared once, its raw output read. The
call must compute what `predict` returns (int8 logits stay int8 codes of the same values), on every runtime, so
the timed work is the parity-checked work without the Python-side conversions."""

import numpy as np
import pytest
import torch

from edgedistill.export.registry import export_all
from edgedistill.profile.measure import measure
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTRunner, OnnxRunner, TFLMRunner
from edgedistill.students.decoder_family import decoder

V, L = 24, 8


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    torch.manual_seed(0)
    m = decoder((L,), V, 16, 1, V, heads=2).eval()
    x = torch.randint(1, V, (16, L), dtype=torch.int32)
    q = calibrate(to_quant_student(m), x)
    out = tmp_path_factory.mktemp("measure_call")
    return {a.name: a.path for a in export_all(m, q, (L,), V, out, ["onnx", "tflite"], True)}, x.numpy()


@pytest.mark.parametrize("name, runner", [("tflite-int8", LiteRTRunner), ("tflite-int8", TFLMRunner),
                                          ("onnx-int8", OnnxRunner), ("tflite-float", LiteRTRunner)])
def test_the_timed_call_computes_what_predict_returns(files, name, runner):
    paths, x = files
    r = runner(paths[name])
    call = r.call_on(x[:1])
    r.predict(x[1:2])  # another sample in between: the call must set its own input and invoke
    raw = np.array(call())
    expected = r.predict(x[:1])
    assert expected.tolist() != r.predict(x[1:2]).tolist()
    if raw.dtype == np.int8:  # the raw codes: predict dequantizes them with the output's grid
        out = r.out if hasattr(r, "out") else None
        scale, zero = ((out["quantization"]) if "quantization" in out else
                       (float(out["quantization_parameters"]["scales"][0]),
                        int(out["quantization_parameters"]["zero_points"][0])))
        raw = (raw.astype(np.float32) - zero) * np.float32(scale)
    assert raw.reshape(expected.shape).tolist() == expected.tolist()


def test_measure_times_the_call(files):
    paths, _ = files
    m = measure(paths["tflite-int8"], "litert", threads=1, warmup=2, runs=5, min_seconds=0.0, per_op=False)
    assert m.runs >= 5 and 0 < m.median_ms <= m.p90_ms
