"""The graph-level int8 core, one tiny module per op (residual add, concat, SE gates, hardswish, ReLU6, pooling,
pad, view) and every student family: calibrate + a few QAT steps -> int8 TFLite and int8 ONNX -> onnxruntime,
LiteRT (XNNPACK and reference kernels) and TFLite Micro, each compared with the torch QAT model the file came
from."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.data import Normalizer
from edgedistill.distill.trainer import predict_logits
from edgedistill.export.onnx_export import export_onnx_int8
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, OnnxRunner, TFLMRunner
from edgedistill.students import STUDENT_FAMILIES, StudentArch, build_student

SHAPE = (3, 12, 12)
CLASSES = 5


def cbr(cin, cout, k=3, stride=1, groups=1, act=None):
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout),
                         act if act is not None else nn.ReLU())


class Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pool, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(c, CLASSES)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(x), 1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 8)
        self.conv1, self.conv2 = cbr(8, 8), nn.Sequential(nn.Conv2d(8, 8, 3, 1, 1), nn.BatchNorm2d(8))
        self.head = Head(8)

    def forward(self, x):
        x = self.stem(x)
        return self.head(F.relu(x + self.conv2(self.conv1(x))))


class Subtract(Residual):
    def forward(self, x):
        x = self.stem(x)
        return self.head(x - self.conv2(self.conv1(x)))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = cbr(3, 8)
        self.a, self.b = cbr(8, 4, k=1), cbr(8, 6, k=3)
        self.head = Head(10)

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1))


class SE(nn.Module):
    def __init__(self, gate: nn.Module):
        super().__init__()
        self.stem = cbr(3, 8)
        self.fc1, self.fc2, self.gate = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1), gate
        self.head = Head(8)

    def forward(self, x):
        x = self.stem(x)
        s = self.gate(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(x * s)


class HardSwish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.dw = cbr(3, 8, act=nn.Hardswish()), cbr(8, 8, groups=8, act=nn.Hardswish())
        self.head = Head(8)

    def forward(self, x):
        return self.head(self.dw(self.stem(x)))


class ReLU6(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.dw = cbr(3, 8, stride=2, act=nn.ReLU6()), cbr(8, 8, groups=8, act=nn.ReLU6())
        self.head = Head(8)

    def forward(self, x):
        return self.head(self.dw(self.stem(x)))


class Pooling(nn.Module):
    """Average pooling, zero padding, max pooling and a view."""

    def __init__(self):
        super().__init__()
        self.stem, self.avg, self.conv = cbr(3, 8), nn.AvgPool2d(2), nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8 * 3 * 3, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(F.pad(self.avg(self.stem(x)), (1, 1, 1, 1)))), 2)
        return self.fc(x.view(x.size(0), -1))


class MeanHead(nn.Module):
    """A head that averages away the spatial (or temporal) dims without keeping them: x.mean((2, 3)) / x.mean(-1)."""

    def __init__(self, dims: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.c, self.fc, self.dims = conv(3, 8, 3, padding=1), nn.Linear(8, CLASSES), dims

    def forward(self, x):
        y = F.relu(self.c(x))
        return self.fc(y.mean((2, 3)) if self.dims == 2 else y.mean(-1))


MODULES = {"residual-add": Residual, "sub": Subtract, "concat": Concat, "se-sigmoid": lambda: SE(nn.Sigmoid()),
           "se-hardsigmoid": lambda: SE(nn.Hardsigmoid()), "hardswish": HardSwish, "relu6": ReLU6,
           "pool-pad-view": Pooling, "mean-2d": lambda: MeanHead(2), "mean-1d": lambda: MeanHead(1)}
SHAPES = {"mean-1d": (3, 16)}
OPS = {"residual-add": "ADD", "sub": "SUB", "concat": "CONCATENATION", "se-sigmoid": "LOGISTIC",
       "se-hardsigmoid": "MUL", "hardswish": "HARD_SWISH", "relu6": "DEPTHWISE_CONV_2D",
       "pool-pad-view": "AVERAGE_POOL_2D", "mean-2d": "MEAN", "mean-1d": "MEAN"}
# Every student family on the same core: (width, depth, sample shape)
FAMILIES = {"cnn": (8, 3, (3, 16, 16)), "dscnn": (8, 3, (3, 16, 16)), "conv1d": (8, 3, (3, 32)),
            "mlp": (8, 3, (12,)), "resnet8": (8, 3, (3, 16, 16)), "resnet8_1d": (8, 2, (3, 32)),
            "mobilenetv1": (8, 3, (3, 16, 16)), "mbv3": (8, 3, (3, 16, 16)), "mbv3_1d": (8, 3, (3, 32))}
CASES = sorted(MODULES) + [pytest.param(f, marks=pytest.mark.slow) for f in sorted(FAMILIES)
                           if f in STUDENT_FAMILIES.names()]


def _build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    if name in MODULES:
        return MODULES[name]().eval(), SHAPES.get(name, SHAPE)
    width, depth, shape = FAMILIES[name]
    c = shape[0]
    norm = Normalizer([0.2] * c, [0.5] * c, "feature" if len(shape) == 1 else "channel")
    return build_student(StudentArch(name, width, depth), shape, CLASSES, norm).eval(), shape


def _randomize_bn(m: nn.Module) -> None:
    for mod in m.modules():
        if isinstance(mod, (nn.BatchNorm1d, nn.BatchNorm2d)):
            mod.running_mean.uniform_(-0.3, 0.3)
            mod.running_var.uniform_(0.5, 2.0)
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)


def _qat_steps(q: nn.Module, x: torch.Tensor, steps: int = 3) -> None:
    """A few quantization-aware SGD steps (fake quantization in the forward, straight-through gradients)."""
    y = torch.arange(len(x)) % CLASSES
    opt = torch.optim.SGD(q.parameters(), lr=0.01)
    q.train()
    for i in range(steps):
        xb, yb = x[i * 32:(i + 1) * 32], y[i * 32:(i + 1) * 32]
        opt.zero_grad()
        F.cross_entropy(q(xb), yb).backward()
        opt.step()
    q.eval()


@pytest.fixture(scope="module", params=CASES)
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    m, shape = _build(request.param)
    with torch.no_grad():
        _randomize_bn(m)
    x = torch.rand(300, *shape) * 2 - 0.5
    q = calibrate(to_quant_student(m), x[:200])
    with torch.no_grad():  # before QAT: the quantized graph computes the float model up to rounding
        agree = (predict_logits(q, x).argmax(1) == predict_logits(m, x).argmax(1)).float().mean()
    _qat_steps(q, x[200:])
    out = tmp_path_factory.mktemp(request.param)
    tfl = export_tflite_int8(q, shape, out / "m_int8.tflite")
    onx = export_onnx_int8(q, shape, CLASSES, out / "m_int8.onnx")
    return request.param, m, q, x, tfl.path, onx.path, float(agree)


def _check(name, ref, out, step, runtime):
    diff = np.abs(out - ref).max() / step
    agree = (out.argmax(1) == ref.argmax(1)).mean()
    assert diff <= 1.01, f"{name} on {runtime}: logits {diff:.2f} output steps from the QAT model"
    return agree


def test_quantized_graph_tracks_the_float_model(exported):
    name, *_, agree = exported
    assert agree >= 0.9, f"{name}: int8 simulation agrees with float on only {agree:.1%}"


def test_litert_matches_the_qat_model(exported):
    name, _, q, x, tfl, _, _ = exported
    ref = predict_logits(q, x).numpy()
    step = float(q.output_q.scale)
    agree = _check(name, ref, LiteRTRunner(tfl).predict_batched(x.numpy(), batch=100), step, "LiteRT")
    assert agree >= 0.999, f"{name}: top-1 agreement {agree:.2%} on LiteRT"


def test_tflite_micro_matches_the_qat_model_with_mcu_rounding(exported):
    """TFLite Micro (and LiteRT's reference kernels) round requantization in fixed point, differently from XNNPACK
    and torch by a few output steps on deeper graphs; the same QAT model with rounding="tflm" computes TFLite
    Micro's integers, so the same bound holds there."""
    name, _, q, x, tfl, _, _ = exported
    step = float(q.output_q.scale)
    q.set_rounding("tflm")
    try:
        ref = predict_logits(q, x).numpy()
    finally:
        q.set_rounding("float")
    n = 150  # TFLite Micro runs one sample per call
    agree = _check(name, ref[:n], TFLMRunner(tfl).predict(x[:n].numpy()), step, "TFLite Micro")
    assert agree >= 0.999, f"{name}: top-1 agreement {agree:.2%} on TFLite Micro"
    reference = LiteRTReferenceRunner(tfl).predict_batched(x.numpy(), batch=100)
    agree = _check(name, ref, reference, step, "LiteRT reference kernels")
    assert agree >= 0.999, f"{name}: top-1 agreement {agree:.2%} on LiteRT's reference kernels"


def test_onnx_matches_the_qat_model(exported):
    name, _, q, x, _, onx, _ = exported
    ref = predict_logits(q, x).numpy()
    agree = _check(name, ref, OnnxRunner(onx, optimization="basic").predict_batched(x.numpy(), batch=100),
                   float(q.output_q.scale), "onnxruntime")
    assert agree >= 0.999
    onnx.checker.check_model(onnx.load(str(onx)), full_check=True)


def test_tflite_is_full_integer_without_transposes(exported):
    name, _, q, _, tfl, _, _ = exported
    r = LiteRTRunner(tfl)
    ops = r.op_names()
    assert OPS.get(name, ops[-1]) in ops, ops
    # NHWC kernels throughout: a TRANSPOSE only takes the NCHW input in (1-D: after the RESHAPE to N×C×1×L);
    # none around a convolution, none before a flattening RESHAPE
    assert [i for i, op in enumerate(ops) if op == "TRANSPOSE"] in ([], [0], [1]), ops
    assert not {"DEQUANTIZE", "QUANTIZE"} & set(ops) or name == "concat", ops  # concat may requantize an input
    floats = [t["name"] for t in r.interp.get_tensor_details() if t["dtype"] == np.float32]
    assert not floats, floats
    assert r.inp["dtype"] == np.int8 and r.out["dtype"] == np.int8
    scale, zp = r.out["quantization"]
    assert scale == pytest.approx(float(q.output_q.scale)) and zp == int(q.output_q.zero_point)
