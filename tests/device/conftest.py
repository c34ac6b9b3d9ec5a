import numpy as np
import pytest
import torch

from edgedistill.data import Normalizer
from edgedistill.export.tflite_export import export_tflite_float, export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes.litert import LiteRTRunner
from edgedistill.students import StudentArch, build_student


@pytest.fixture(scope="session")
def tflite_pair(tmp_path_factory):
    """A tiny int8 and float TFLite student, 12 input samples and the int8 file's outputs on this host's LiteRT."""
    d = tmp_path_factory.mktemp("device-models")
    torch.manual_seed(0)
    m = build_student(StudentArch("cnn", 8, 2), (1, 8, 8), 10, Normalizer([0.3], [0.4], "channel")).eval()
    q = calibrate(to_quant_student(m), torch.rand(64, 1, 8, 8))
    int8 = export_tflite_int8(q, (1, 8, 8), d / "m_int8.tflite").path
    flt = export_tflite_float(m, (1, 8, 8), d / "m.tflite").path
    x = np.random.default_rng(0).random((12, 1, 8, 8), dtype=np.float32)
    ref = LiteRTRunner(int8, threads=1).predict(x)
    return {"int8": int8, "float": flt, "x": x, "ref": ref, "dir": d}
