"""Deployed = trained, one tiny module per op (residual add, concat, SE gates, hardswish, ReLU6, pooling, pad, view),
modules that compose them (two stems concatenated into SE inverted-residual blocks) and every student family:
trained on real data (scikit-learn's digits, float then QAT computing XNNPACK's arithmetic, as the default for
LiteRT and no target), exported to int8 TFLite and ONNX, and run on onnxruntime, LiteRT (XNNPACK and reference
kernels) and TFLite Micro. Each runtime is compared with the trained QAT model computing that runtime's integer
arithmetic (quantize/arithmetic.py): top-1 agreement >= 99.9 % and logits within one output step, as parity
requires (LiteRT and TFLite Micro: equal, 0 steps)."""

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from edgedistill.data import Normalizer
from edgedistill.distill.trainer import predict_logits
from edgedistill.export.onnx_export import export_onnx_int8
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, OnnxRunner, TFLMRunner
from edgedistill.students import STUDENT_FAMILIES, StudentArch, build_student

SHAPE = (1, 8, 8)  # digits
CLASSES = 10
C = SHAPE[0]


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
        self.stem = cbr(C, 8)
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
        self.stem = cbr(C, 8)
        self.a, self.b = cbr(8, 4, k=1), cbr(8, 6, k=3)
        self.head = Head(10)

    def forward(self, x):
        x = self.stem(x)
        return self.head(torch.cat([self.a(x), self.b(x)], dim=1))


class SE(nn.Module):
    def __init__(self, gate: nn.Module):
        super().__init__()
        self.stem = cbr(C, 8)
        self.fc1, self.fc2, self.gate = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1), gate
        self.head = Head(8)

    def forward(self, x):
        x = self.stem(x)
        s = self.gate(self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return self.head(x * s)


class HardSwish(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.dw = cbr(C, 8, act=nn.Hardswish()), cbr(8, 8, groups=8, act=nn.Hardswish())
        self.head = Head(8)

    def forward(self, x):
        return self.head(self.dw(self.stem(x)))


class ReLU6(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.dw = cbr(C, 8, stride=2, act=nn.ReLU6()), cbr(8, 8, groups=8, act=nn.ReLU6())
        self.head = Head(8)

    def forward(self, x):
        return self.head(self.dw(self.stem(x)))


class Pooling(nn.Module):
    """Average pooling, zero padding, max pooling and a view."""

    def __init__(self):
        super().__init__()
        self.stem, self.avg, self.conv = cbr(C, 8), nn.AvgPool2d(2), nn.Conv2d(8, 8, 3)
        self.fc = nn.Linear(8 * 2 * 2, CLASSES)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv(F.pad(self.avg(self.stem(x)), (1, 1, 1, 1)))), 2)
        return self.fc(x.view(x.size(0), -1))


class MeanHead(nn.Module):
    """A head that averages away the spatial (or temporal) dims without keeping them: x.mean((2, 3)) / x.mean(-1)."""

    def __init__(self, dims: int):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.c, self.c2 = conv(C, 16, 3, padding=1), conv(16, 16, 3, padding=1, stride=2)
        self.fc, self.dims = nn.Linear(16, CLASSES), dims

    def forward(self, x):
        y = F.relu(self.c2(F.relu(self.c(x))))
        return self.fc(y.mean((2, 3)) if self.dims == 2 else y.mean(-1))


class Inverted(nn.Module):
    """An SE inverted-residual block: expand (hardswish), depthwise (hardswish), SE (hardsigmoid gate), project, add."""

    def __init__(self, c, e=2):
        super().__init__()
        self.expand, self.dw = cbr(c, c * e, 1, act=nn.Hardswish()), cbr(c * e, c * e, groups=c * e, act=nn.Hardswish())
        self.fc1, self.fc2 = nn.Conv2d(c * e, c // 2, 1), nn.Conv2d(c // 2, c * e, 1)
        self.project = nn.Sequential(nn.Conv2d(c * e, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        y = self.dw(self.expand(x))
        y = y * F.hardsigmoid(self.fc2(F.relu(self.fc1(y.mean((2, 3), keepdim=True)))))
        return x + self.project(y)


class Composed(nn.Module):
    """A user's student of the kind issue #30 held out: two stems (ReLU, hardswish) concatenated, SE inverted-residual
    blocks with residual adds, a strided conv, a mean head."""

    def __init__(self):
        super().__init__()
        self.stem_a = cbr(C, 8, 3)
        self.stem_b = cbr(C, 8, 5, act=nn.Hardswish())
        self.b1, self.b2 = Inverted(16), Inverted(16)
        self.down = cbr(16, 24, 3, stride=2, act=nn.Hardswish())
        self.b3 = Inverted(24)
        self.fc = nn.Linear(24, CLASSES)

    def forward(self, x):
        x = torch.cat([self.stem_a(x), self.stem_b(x)], 1)
        return self.fc(self.b3(self.down(self.b2(self.b1(x)))).mean((2, 3)))


MODULES = {"residual-add": Residual, "sub": Subtract, "concat": Concat, "se-sigmoid": lambda: SE(nn.Sigmoid()),
           "se-hardsigmoid": lambda: SE(nn.Hardsigmoid()), "hardswish": HardSwish, "relu6": ReLU6,
           "pool-pad-view": Pooling, "mean-2d": lambda: MeanHead(2), "mean-1d": lambda: MeanHead(1),
           "composed": Composed}
SHAPES = {"mean-1d": (1, 64)}
OPS = {"residual-add": "ADD", "sub": "SUB", "concat": "CONCATENATION", "se-sigmoid": "LOGISTIC",
       "se-hardsigmoid": "MUL", "hardswish": "HARD_SWISH", "relu6": "DEPTHWISE_CONV_2D",
       "pool-pad-view": "AVERAGE_POOL_2D", "mean-2d": "MEAN", "mean-1d": "MEAN", "composed": "CONCATENATION"}
# Every student family on the same core: (width, depth, sample shape: digits as images, 64-step signals, 64 features)
FAMILIES = {"cnn": (8, 3, (1, 8, 8)), "dscnn": (8, 3, (1, 8, 8)), "conv1d": (8, 3, (1, 64)),
            "mlp": (8, 3, (64,)), "resnet8": (8, 3, (1, 8, 8)), "resnet8_1d": (8, 2, (1, 64)),
            "mobilenetv1": (8, 3, (1, 8, 8)), "mbv3": (8, 3, (1, 8, 8)), "mbv3_1d": (8, 3, (1, 64))}
CASES = sorted(MODULES) + [pytest.param(f, marks=pytest.mark.slow) for f in sorted(FAMILIES)
                           if f in STUDENT_FAMILIES.names()]


def _build(name: str) -> tuple[nn.Module, tuple[int, ...]]:
    if name in MODULES:
        return MODULES[name]().eval(), SHAPES.get(name, SHAPE)
    width, depth, shape = FAMILIES[name]
    c = shape[0]
    norm = Normalizer([0.3] * c, [0.35] * c, "feature" if len(shape) == 1 else "channel")
    return build_student(StudentArch(name, width, depth), shape, CLASSES, norm).eval(), shape


def _digits(shape: tuple[int, ...]):
    """scikit-learn's digits in [0, 1] in the sample shape: (train x, train y, test x, test y), 360 test samples."""
    d = load_digits()
    x = torch.from_numpy((d.images / 16.0).astype(np.float32)).reshape(len(d.images), *shape)
    y = torch.from_numpy(d.target).long()
    return x[:-360], y[:-360], x[-360:], y[-360:]


def _train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> None:
    """Real training: Adam on cross-entropy, batch 32, a fixed order."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(32):
            opt.zero_grad()
            F.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()


@pytest.fixture(scope="module", params=CASES)
def exported(request, tmp_path_factory):
    torch.manual_seed(0)
    m, shape = _build(request.param)
    x, y, x_test, y_test = _digits(shape)
    _train(m, x, y, epochs=6, lr=5e-3)
    q = calibrate(to_quant_student(m, rounding="xnnpack"), x[:256])
    with torch.no_grad():  # before QAT: the quantized graph computes the float model up to rounding
        agree = (predict_logits(q, x_test).argmax(1) == predict_logits(m, x_test).argmax(1)).float().mean()
    _train(q, x, y, epochs=1, lr=3e-4)  # QAT: fake quantization + XNNPACK's integers, straight-through gradients
    out = tmp_path_factory.mktemp(request.param)
    tfl = export_tflite_int8(q, shape, out / "m_int8.tflite")
    onx = export_onnx_int8(q, shape, CLASSES, out / "m_int8.onnx")
    accuracy = float((predict_logits(q, x_test).argmax(1) == y_test).float().mean())
    return request.param, m, q, x_test, tfl.path, onx.path, float(agree), accuracy


def _reference(q, x: torch.Tensor, arithmetic: str) -> np.ndarray:
    trained = q.rounding
    q.set_rounding(arithmetic)
    try:
        return predict_logits(q, x).numpy()
    finally:
        q.set_rounding(trained)


def _check(name, ref, out, step, runtime, max_steps=1.0):
    diff = np.abs(out - ref).max() / step
    agree = (out.argmax(1) == ref.argmax(1)).mean()
    assert diff <= max_steps + 1e-3, f"{name} on {runtime}: logits {diff:.2f} output steps from the QAT model"
    assert agree >= 0.999, f"{name}: top-1 agreement {agree:.2%} on {runtime}"


def test_trained_model_learned_and_tracks_the_float_model(exported):
    name, *_, agree, accuracy = exported
    assert agree >= 0.9, f"{name}: int8 simulation agrees with float on only {agree:.1%}"
    assert accuracy >= 0.3, f"{name}: QAT model reaches only {accuracy:.1%} on digits (chance 10 %): not trained"


def test_litert_computes_what_qat_trained(exported):
    """XNNPACK (LiteRT's default CPU kernels) computes exactly the QAT model's xnnpack arithmetic."""
    name, _, q, x, tfl, *_ = exported
    out = LiteRTRunner(tfl).predict_batched(x.numpy(), batch=120)
    _check(name, _reference(q, x, "xnnpack"), out, float(q.output_q.scale), "LiteRT", max_steps=0)


def test_tflite_micro_and_reference_kernels_compute_their_arithmetic(exported):
    """TFLite Micro equals the QAT model computing tflm arithmetic; LiteRT's reference kernels equal it computing
    reference arithmetic (the two differ at FULLY_CONNECTED, which LiteRT's reference kernel rounds once)."""
    name, _, q, x, tfl, *_ = exported
    step = float(q.output_q.scale)
    n = 120  # TFLite Micro runs one sample per call
    _check(name, _reference(q, x[:n], "tflm"), TFLMRunner(tfl).predict(x[:n].numpy()), step, "TFLite Micro", 0)
    out = LiteRTReferenceRunner(tfl).predict_batched(x.numpy(), batch=120)
    _check(name, _reference(q, x, "reference"), out, step, "LiteRT reference kernels", 0)


def test_onnx_matches_the_qat_model(exported):
    """onnxruntime's QDQ reference computes the fake quantization in float32, accumulating in its own order: on these
    students within three output steps (0-2 on one host, 3 for mbv3 on an AVX-512 host: a near-tie rounded the other
    way and carried by the layers' gain), top-1 agreement >= 99.9 %; OnnxRunner.step_bound allows for deeper graphs."""
    name, _, q, x, _, onx, *_ = exported
    out = OnnxRunner(onx, optimization="basic").predict_batched(x.numpy(), batch=120)
    _check(name, _reference(q, x, "float"), out, float(q.output_q.scale), "onnxruntime", min(3, OnnxRunner.step_bound))
    onnx.checker.check_model(onnx.load(str(onx)), full_check=True)


def test_tflite_is_full_integer_without_transposes(exported):
    name, _, q, _, tfl, *_ = exported
    r = LiteRTRunner(tfl)
    ops = r.op_names()
    assert OPS.get(name, ops[-1]) in ops, ops
    # NHWC kernels throughout: a TRANSPOSE only takes the NCHW input in (1-D: after the RESHAPE to N×C×1×L);
    # none around a convolution, none before a flattening RESHAPE
    assert [i for i, op in enumerate(ops) if op == "TRANSPOSE"] in ([], [0], [1]), ops
    # a concatenation's inputs share its grid (a single-user producer writes on it): no requantizing QUANTIZE
    assert not {"DEQUANTIZE", "QUANTIZE"} & set(ops), ops
    floats = [t["name"] for t in r.interp.get_tensor_details() if t["dtype"] == np.float32]
    assert not floats, floats
    assert r.inp["dtype"] == np.int8 and r.out["dtype"] == np.int8
    scale, zp = r.out["quantization"]
    assert scale == pytest.approx(float(q.output_q.scale)) and zp == int(q.output_q.zero_point)
