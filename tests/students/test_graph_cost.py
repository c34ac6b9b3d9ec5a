"""Exact cost on graphs: MACs against an independent per-layer count on the float model, the arena against TFLite
Micro's recording allocator on the exported int8 file, the greedy planner against hand-made lifetimes."""

import math

import pytest
import torch
from torch import nn

from edgedistill.data import Normalizer
from edgedistill.students import STUDENT_FAMILIES, StudentArch, build_student
from edgedistill.profile.tflm_planner import Buffer, align, greedy_arena_bytes, lower_bound_bytes
from edgedistill.students.cost import graph_cost


def greedy_arena(buffers):
    return greedy_arena_bytes([Buffer(align(b.size), b.first, b.last) for b in buffers])


def live_peak(buffers):
    return lower_bound_bytes([Buffer(align(b.size), b.first, b.last) for b in buffers], max(b.last for b in buffers) + 1)

SHAPES = {"resnet8": (3, 16, 16), "mobilenetv1": (3, 16, 16), "mbv3": (1, 16, 16), "cnn": (1, 8, 8),
          "dscnn": (1, 28, 28), "mlp": (12,), "conv1d": (2, 32), "resnet8_1d": (2, 32), "mbv3_1d": (2, 32)}


def _student(family, width=8, depth=2, shape=None):
    shape = shape or SHAPES[family]
    torch.manual_seed(0)
    return build_student(StudentArch(family, width, depth), shape, 10,
                         Normalizer([0.3] * shape[0], [0.4] * shape[0], "channel")).eval(), shape


def hand_macs(model: nn.Module, shape) -> int:
    """Independent count on the float model: every Conv / Linear's output elements times its fan-in, plus the
    input normalisation (one multiply per input element for images / signals; folded into the first Linear for
    feature vectors). BatchNorm folds into its conv; pooling, adds and activations are not MACs."""
    total = [0]

    def hook(m, _inp, out):
        fan_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels // m.groups * math.prod(m.kernel_size)
        total[0] += out.numel() * fan_in

    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model(torch.zeros(1, *shape))
    for h in hs:
        h.remove()
    return total[0] + (math.prod(shape) if len(shape) > 1 else 0)


def test_every_registered_family_is_covered():
    assert set(STUDENT_FAMILIES.names()) <= set(SHAPES)


@pytest.mark.parametrize("family", sorted(SHAPES))
@pytest.mark.parametrize("width, depth", [(4, 2), (8, 3)])
def test_macs_and_weights_match_an_independent_count(family, width, depth):
    model, shape = _student(family, width, depth)
    g = graph_cost(model, shape)
    assert g.macs == hand_macs(model, shape)
    # Deployed parameters: every conv / linear weight, one bias per output channel (BN folded), the normaliser's
    # depthwise scale + shift (images / signals).
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear))]
    n_w = sum(m.weight.numel() for m in layers)
    n_b = sum(m.weight.shape[0] for m in layers)
    if len(shape) > 1:
        n_w, n_b = n_w + shape[0], n_b + shape[0]
    assert (g.params, g.weight_bytes) == (n_w + n_b, n_w + 4 * n_b)


def test_resnet8_reference_size():
    """MLPerf Tiny's ResNet-8 at 32×32×3, 10 classes: 77,946 trainable parameters (Keras reference ~78 K)."""
    model = build_student(StudentArch("resnet8", 16, 3), (3, 32, 32), 10, Normalizer([0.0] * 3, [1.0] * 3, "channel"))
    assert sum(p.numel() for n, p in model.named_parameters() if not n.startswith("normalize")) == 77_946
    g = graph_cost(model.eval(), (3, 32, 32))
    # Conv MACs by hand: stem 32·32·16·27, stack1 2·(32·32·16·144), stack2 16·16·32·(144 + 288 + 16),
    # stack3 8·8·64·(288 + 576 + 32) (the last term: 1×1 shortcut), fc 64·10, normaliser 3072.
    hand = (32 * 32 * 16 * 27 + 2 * 32 * 32 * 16 * 144 + 16 * 16 * 32 * (144 + 288 + 16)
            + 8 * 8 * 64 * (288 + 576 + 32) + 640 + 3072)
    assert g.macs == hand


def test_a_residual_input_stays_alive_so_the_arena_exceeds_any_single_layer():
    model, shape = _student("resnet8", 8, 2)
    g = graph_cost(model, shape)
    sizes = [math.prod(shape)] + [o.out_elems for o in g.ops]
    chain_rule = max(a + b for a, b in zip(sizes, sizes[1:]))  # one op's input + output: right for chains only
    assert g.arena_bytes >= g.arena_lower_bound > chain_rule
    plain, _ = _student("cnn", 8, 2)
    gp = graph_cost(plain, SHAPES["cnn"])
    sizes = [math.prod(SHAPES["cnn"])] + [-(-o.out_elems // 16) * 16 for o in gp.ops]
    assert gp.arena_bytes == max(a + b for a, b in zip(sizes, sizes[1:]))  # a chain: exactly the pair rule


def test_greedy_planner_on_hand_made_lifetimes():
    # A chain: only neighbours overlap, so two buffers suffice.
    chain = [Buffer(64, 0, 1), Buffer(64, 1, 2), Buffer(64, 2, 3)]
    assert greedy_arena(chain) == live_peak(chain) == 128
    # A residual: x (0..3) lives across the branch a (1..2), b (2..3); three at op 2.
    res = [Buffer(64, 0, 3), Buffer(32, 1, 2), Buffer(32, 2, 3)]
    assert live_peak(res) == 128 and greedy_arena(res) == 128
    # Fragmentation the greedy order cannot avoid: sizes align to 16 bytes.
    assert greedy_arena([Buffer(1, 0, 0), Buffer(17, 0, 0)]) == 48


@pytest.mark.parametrize("family, shape", [(f, None) for f in sorted(SHAPES)]
                         + [("resnet8", (3, 15, 15)), ("mobilenetv1", (2, 19, 13))])  # odd sizes: SAME, no PAD
@pytest.mark.slow
def test_predicted_arena_and_macs_equal_the_exported_int8_file_on_tflite_micro(tmp_path, family, shape):
    model, shape = _student(family, shape=shape)
    g = graph_cost(model, shape)
    path = tmp_path / f"{family}.tflite"
    _export(model, shape, path)
    _assert_cost_equals_file(g, path)


def _export(model, shape, path):
    from edgedistill.export.tflite_export import export_tflite_int8
    from edgedistill.quantize import calibrate, to_quant_student

    export_tflite_int8(calibrate(to_quant_student(model), torch.rand(32, *shape)), shape, path)


def _assert_cost_equals_file(g, path):
    """MACs, every planned tensor (size and lifetime), the live-sum bound and the greedy arena of the prediction
    equal the .tflite file's, and the arena equals what TFLite Micro's recording allocator plans."""
    from edgedistill.profile.cost import tflite_cost, tflite_planned_buffers
    from edgedistill.profile.tflm_arena import tflm_arena

    real, file_buffers = tflite_cost(path), tflite_planned_buffers(path)
    assert g.macs == real.macs
    key = lambda b: (b.first, b.last, b.size)  # noqa: E731
    assert sorted(g.buffers, key=key) == sorted(file_buffers, key=key)
    assert g.arena_lower_bound == lower_bound_bytes(file_buffers, max(b.last for b in file_buffers) + 1)
    assert g.arena_bytes == real.peak_activation_bytes == tflm_arena(path).activation_bytes
    # every op as the latency model reads it (TFLite op, cost class, MACs, ops, bytes), so a candidate's estimated
    # latency before training equals the estimate from the exported file on every target
    from edgedistill.profile.estimate import estimate_latency
    from edgedistill.targets import load_target

    row = lambda o: (o.op, o.kind, o.macs, o.ops, o.weight_bytes, o.input_bytes, o.output_bytes)  # noqa: E731
    predicted = g.model_cost()
    assert [row(o) for o in predicted.layers] == [row(o) for o in real.layers]
    for name in ("cortex-m4", "cpu", "android"):
        t = load_target(name)
        assert estimate_latency(predicted, t, "int8").total_ms == pytest.approx(
            estimate_latency(real, t, "int8").total_ms, rel=1e-12)


class _Concat(nn.Module):
    """Two branches concatenated, then a mean that drops the spatial dims."""

    def __init__(self):
        super().__init__()
        self.a, self.b, self.fc = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(3, 4, 1), nn.Linear(12, 5)

    def forward(self, x):
        return self.fc(torch.cat([torch.relu(self.a(x)), torch.relu(self.b(x))], 1).mean((2, 3)))


class _SigmoidSE(nn.Module):
    """ReLU6, average pooling, a squeeze-excite with a sigmoid gate (LOGISTIC), MUL, hardswish."""

    def __init__(self):
        super().__init__()
        self.c, self.p = nn.Conv2d(3, 8, 3, padding=1), nn.AvgPool2d(2)
        self.r, self.e, self.fc = nn.Conv2d(8, 4, 1), nn.Conv2d(4, 8, 1), nn.Linear(8, 5)

    def forward(self, x):
        x = self.p(nn.functional.relu6(self.c(x)))
        g = torch.sigmoid(self.e(torch.relu(self.r(x.mean((2, 3), keepdim=True)))))
        return self.fc(nn.functional.hardswish(x * g).mean((2, 3)))


class _PadFlatten(nn.Module):
    """Explicit zero padding, max pooling and a flatten of a feature map (one RESHAPE in the file)."""

    def __init__(self):
        super().__init__()
        self.c, self.m, self.fc = nn.Conv2d(3, 8, 3), nn.MaxPool2d(2), nn.Linear(8 * 4 * 4, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.m(torch.relu(self.c(nn.functional.pad(x, (1, 1, 1, 1))))), 1))


@pytest.mark.slow
@pytest.mark.parametrize("body", [_Concat, _SigmoidSE, _PadFlatten], ids=lambda c: c.__name__.strip("_"))
def test_user_graphs_cost_exactly_what_the_int8_file_holds(tmp_path, body):
    from edgedistill.profile.cost import tflite_cost
    from edgedistill.students.layers import Normalize

    torch.manual_seed(0)
    model = nn.Sequential(Normalize([0.5] * 3, [0.2] * 3, ndim=4), body()).eval()
    g = graph_cost(model, (3, 8, 8))
    path = tmp_path / "user.tflite"
    _export(model, (3, 8, 8), path)
    assert len(g.ops) == len(tflite_cost(path).layers) and g.macs == hand_macs(model, (3, 8, 8))
    _assert_cost_equals_file(g, path)


@pytest.mark.slow
@pytest.mark.parametrize("family, shape", [("mlp", (6,)), ("cnn", (3, 8, 8)), ("conv1d", (3, 32))])
def test_a_float_input_head_costs_what_the_file_holds(tmp_path, family, shape):
    """Raw ranges one int8 scale cannot carry (a channel around 1,000, the others around 0.01): the graph starts with
    the float input head (float MUL, ADD, QUANTIZE), and the prediction still equals the file op by op."""
    from edgedistill.export.tflite_export import export_tflite_int8
    from edgedistill.quantize import calibrate, to_quant_student

    c, rest = shape[0], (1,) * (len(shape) - 1)
    mean, std = [1000.0] + [0.01] * (c - 1), [300.0] + [0.003] * (c - 1)
    torch.manual_seed(0)
    model = build_student(StudentArch(family, 8, 2), shape, 10,
                          Normalizer(mean, std, "feature" if len(shape) == 1 else "channel")).eval()
    q = to_quant_student(model)
    assert q.head is not None  # chosen automatically
    x = torch.randn(32, *shape) * torch.tensor(std).view(1, -1, *rest) + torch.tensor(mean).view(1, -1, *rest)
    path = tmp_path / "head.tflite"
    export_tflite_int8(calibrate(q, x), shape, path)
    _assert_cost_equals_file(graph_cost(model, shape), path)
