"""Exact cost on graphs: MACs against an independent per-layer count on the float model, the arena against TFLite
Micro's recording allocator on the exported int8 file, the greedy planner against hand-made lifetimes; image,
signal, feature-vector and text (token-id) students."""

import math

import pytest
import torch
from torch import nn

from edgedistill.data import Normalizer
from edgedistill.students import STUDENT_FAMILIES, StudentArch, build_student
from edgedistill.profile.tflm_planner import Buffer, align, greedy_arena_bytes, lower_bound_bytes
from edgedistill.students.cost import graph_cost
from edgedistill.students.tflm_tail import tflm_tail_bound
from edgedistill.students.layers import GlobalMaxPool, MaskedSelfAttention, TokenEmbedding


def greedy_arena(buffers):
    return greedy_arena_bytes([Buffer(align(b.size), b.first, b.last) for b in buffers])


def live_peak(buffers):
    return lower_bound_bytes([Buffer(align(b.size), b.first, b.last) for b in buffers], max(b.last for b in buffers) + 1)

SHAPES = {"resnet8": (3, 16, 16), "mobilenetv1": (3, 16, 16), "mbv3": (1, 16, 16), "cnn": (1, 8, 8),
          "dscnn": (1, 28, 28), "mlp": (12,), "conv1d": (2, 32), "resnet8_1d": (2, 32), "mbv3_1d": (2, 32)}
TEXT = ("textcnn", "bow", "transformer", "decoder")  # token-id families: samples are L ids (see the text tests below)
VOCAB = 257


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
    assert set(STUDENT_FAMILIES.names()) <= set(SHAPES) | set(TEXT)


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


def _assert_cost_equals_file(g, path, on_tflm: bool = True):
    """MACs, every planned tensor (size and lifetime), the live-sum bound and the greedy arena of the prediction
    equal the .tflite file's, the arena equals what TFLite Micro's recording allocator plans and the tail bound
    holds its runtime memory (`on_tflm`: False for a file with an op TFLite Micro lacks, GELU)."""
    from edgedistill.profile.cost import tflite_cost, tflite_planned_buffers
    from edgedistill.profile.tflm_arena import tflm_arena

    real, file_buffers = tflite_cost(path), tflite_planned_buffers(path)
    assert g.macs == real.macs
    key = lambda b: (b.first, b.last, b.size)  # noqa: E731
    assert sorted(g.buffers, key=key) == sorted(file_buffers, key=key)
    assert g.arena_lower_bound == lower_bound_bytes(file_buffers, max(b.last for b in file_buffers) + 1)
    assert g.arena_bytes == real.peak_activation_bytes
    if on_tflm:
        used = tflm_arena(path)
        assert g.arena_bytes == used.activation_bytes
        # the runtime's own memory (the arena's tail), bounded from the graph: at least it, and not far above
        assert used.persistent_bytes <= tflm_tail_bound(g) <= 1.3 * used.persistent_bytes
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


class _GlobalMax(nn.Module):
    """Global max pooling, then a flatten of the 1×1 map that the FULLY_CONNECTED reading it absorbs."""

    def __init__(self):
        super().__init__()
        self.c, self.pool, self.fc = nn.Conv2d(3, 8, 3, padding=1), GlobalMaxPool(), nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(torch.relu(self.c(x))), 1))


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
@pytest.mark.parametrize("body", [_Concat, _SigmoidSE, _PadFlatten, _GlobalMax],
                         ids=lambda c: c.__name__.strip("_"))
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


# --- text students: int32 token ids, embedding lookups, attention, LayerNorm ---------------------------------------

def _text_student(family, width, depth, length, **knobs):
    torch.manual_seed(0)
    arch = StudentArch(family, width, depth).with_knobs(**knobs)
    return build_student(arch, (length,), 5, None, vocab_size=VOCAB).eval()


def hand_text_cost(model: nn.Module, length: int) -> tuple[int, int, int]:
    """(MACs, parameters, weight bytes), counted independently on the float model. MACs: every Conv1d / Linear's
    output elements times its fan-in (the attention's projections included), plus each attention's two products
    (scores Q·Kᵀ and context P·V: L·L·d per head each, 2·L·L·D in all). Parameters: conv / linear weights, one bias
    per output channel (BatchNorm folds into its conv), and every other parameter but BatchNorm's (embedding tables,
    learned positions, LayerNorm's γ and β), which the file holds as int8 tensors; 4 bytes per bias, 1 per other."""
    total = [0]

    def layer(m, _inp, out):
        fan_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels // m.groups * math.prod(m.kernel_size)
        total[0] += out.numel() * fan_in

    def attention(_m, inp, _out):
        _, seq, dim = inp[0].shape
        total[0] += 2 * seq * seq * dim

    hooks = [m.register_forward_hook(layer) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    hooks += [m.register_forward_hook(attention) for m in model.modules() if isinstance(m, MaskedSelfAttention)]
    with torch.no_grad():
        model(torch.randint(1, VOCAB, (1, length), dtype=torch.int32))
    for h in hooks:
        h.remove()
    layers = [m for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear))]
    n_w, n_b = sum(m.weight.numel() for m in layers), sum(m.weight.shape[0] for m in layers)
    skip = {id(p) for m in model.modules() if isinstance(m, (nn.Conv1d, nn.Linear, nn.BatchNorm1d))
            for p in m.parameters(recurse=False)}
    other = sum(p.numel() for p in model.parameters() if id(p) not in skip)
    return total[0], n_w + n_b + other, n_w + 4 * n_b + other


# (family, width, depth, length): textcnn with and without pooling between blocks; the transformer with one head
# (its products are FULLY_CONNECTED ops) and two (BATCH_MATMUL), one and two layers (the padding mask is shared)
TEXT_SIZES = [("textcnn", 8, 2, 24), ("textcnn", 16, 3, 40), ("textcnn", 12, 1, 10), ("bow", 16, 1, 24),
              ("bow", 32, 2, 40), ("transformer", 16, 1, 8),
              ("transformer", 32, 2, 16), ("transformer", 64, 1, 32), ("transformer", 64, 2, 12)]


@pytest.mark.parametrize("family, width, depth, length", TEXT_SIZES)
def test_text_macs_and_weights_match_an_independent_count(family, width, depth, length):
    model = _text_student(family, width, depth, length)
    g = graph_cost(model, (length,))
    assert (g.macs, g.params, g.weight_bytes) == hand_text_cost(model, length)


@pytest.mark.parametrize("width, length", [(32, 48), (64, 24)])  # one head, two heads
def test_the_attention_scores_and_probabilities_are_in_the_arena(width, length):
    """At the SOFTMAX its N×H×L×L input and output are alive beside the layer's input (read again by the residual
    ADD) and V (read by the context product): the arena holds at least those four tensors."""
    model = _text_student("transformer", width, 1, length)
    g = graph_cost(model, (length,))
    k = next(i for i, o in enumerate(g.ops) if o.kind == "softmax")
    alive = [b.size for b in g.buffers if b.first <= k <= b.last]
    scores, states = align(model.layers[0].attn.heads * length * length), align(length * width)
    assert alive.count(scores) >= 2 and alive.count(states) >= 2
    assert g.arena_bytes >= g.arena_lower_bound >= 2 * scores + 2 * states


def _export_text(model, length, path):
    from edgedistill.export.tflite_export import export_tflite_int8
    from edgedistill.quantize import calibrate, to_quant_student

    ids = torch.randint(1, VOCAB, (64, length), dtype=torch.int32)
    ids[::3, length // 2:] = 0  # padded texts
    export_tflite_int8(calibrate(to_quant_student(model), ids), (length,), path)


@pytest.mark.slow
@pytest.mark.parametrize("family, width, depth, length", TEXT_SIZES)
def test_text_students_cost_exactly_what_the_int8_file_holds(tmp_path, family, width, depth, length):
    model = _text_student(family, width, depth, length)
    g = graph_cost(model, (length,))
    path = tmp_path / f"{family}.tflite"
    _export_text(model, length, path)
    _assert_cost_equals_file(g, path)


# the transformer's knobs: heads and ffn away from their defaults, each activation (GELU and HARD_SWISH are ops of
# their own, ReLU fuses), first-token pooling (a SLICE instead of the MEAN)
KNOBS = [dict(heads=4, ffn=48, activation="gelu"), dict(heads=1, activation="hardswish", pool="first"),
         dict(activation="gelu", pool="first")]


@pytest.mark.parametrize("knobs", KNOBS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_transformer_knobs_cost_what_the_int8_file_holds(tmp_path, knobs):
    model = _text_student("transformer", 32, 1, 12, **knobs)
    g = graph_cost(model, (12,))
    assert (g.macs, g.params, g.weight_bytes) == hand_text_cost(model, 12)
    path = tmp_path / "transformer.tflite"
    _export_text(model, 12, path)
    _assert_cost_equals_file(g, path, on_tflm=knobs.get("activation") != "gelu")


def _decoder(width, depth, heads, length):
    from edgedistill.students.decoder_family import decoder

    torch.manual_seed(0)
    return decoder((length,), VOCAB, width, depth, VOCAB, heads=heads).eval()


@pytest.mark.parametrize("heads", [1, 2])
def test_decoder_macs_and_weights_match_an_independent_count(heads):
    """The causal decoder as the text students are counted, except what the file does with the tied output
    embedding: it holds the table twice (the GATHER_ND's and the FULLY_CONNECTED's weights, quantized per row each),
    and the output projection has no bias (V bias entries fewer)."""
    model = _decoder(32, 2, heads, 12)
    macs, params, weight_bytes = hand_text_cost(model, 12)
    table = model.embed.weight.numel()
    g = graph_cost(model, (12,))
    assert (g.macs, g.params, g.weight_bytes) == (macs, params + table - VOCAB, weight_bytes + table - 4 * VOCAB)


@pytest.mark.slow
@pytest.mark.parametrize("heads", [1, 2])
def test_decoder_costs_exactly_what_the_int8_file_holds(tmp_path, heads):
    """Including the causal mask: a constant L×L tensor ADDed to the scores, no EQUAL on the ids."""
    model = _decoder(32, 2, heads, 12)
    g = graph_cost(model, (12,))
    path = tmp_path / "decoder.tflite"
    _export_text(model, 12, path)
    _assert_cost_equals_file(g, path)


class _BagOfEmbeddings(nn.Module):
    """The mean of the token embeddings, then a linear classifier (a MEAN over positions, no convolution)."""

    def __init__(self):
        super().__init__()
        self.embed, self.fc = nn.Embedding(VOCAB, 16, padding_idx=0), nn.Linear(16, 5)

    def forward(self, ids):
        return self.fc(self.embed(ids).mean(1))


class _ConvText(nn.Module):
    """Channels-first embeddings into a 1-D conv, global average pooling (a MEAN absorbing the flatten), linear."""

    def __init__(self):
        super().__init__()
        self.embed, self.conv = TokenEmbedding(VOCAB, 12, padding_idx=0), nn.Conv1d(12, 16, 3, padding=1)
        self.pool, self.fc = nn.AdaptiveAvgPool1d(1), nn.Linear(16, 5)

    def forward(self, ids):
        return self.fc(torch.flatten(self.pool(torch.relu(self.conv(self.embed(ids)))), 1))


class _MaxOfEmbeddings(nn.Module):
    """Channels-first embeddings max-pooled over the positions with no convolution (the map stays N×L×D: the pooling
    reshapes it to N×1×L×D itself), linear."""

    def __init__(self):
        super().__init__()
        self.embed, self.pool, self.fc = TokenEmbedding(VOCAB, 16, padding_idx=0), GlobalMaxPool(), nn.Linear(16, 5)

    def forward(self, ids):
        return self.fc(torch.flatten(self.pool(self.embed(ids)), 1))


class _FourHeads(nn.Module):
    """Token and position embeddings, one pre-LN attention with four heads, a token-wise ReLU layer, mean, linear."""

    def __init__(self, length=10):
        super().__init__()
        self.embed, self.pos = nn.Embedding(VOCAB, 32, padding_idx=0), nn.Parameter(torch.randn(1, length, 32) * 0.1)
        self.norm, self.attn = nn.LayerNorm(32), MaskedSelfAttention(32, 4)
        self.ff, self.fc = nn.Linear(32, 24), nn.Linear(24, 5)

    def forward(self, ids):
        x = self.embed(ids) + self.pos
        x = x + self.attn(self.norm(x), ids)
        return self.fc(torch.relu(self.ff(x)).mean(1))


@pytest.mark.slow
@pytest.mark.parametrize("body", [_BagOfEmbeddings, _ConvText, _MaxOfEmbeddings, _FourHeads],
                         ids=lambda c: c.__name__.strip("_"))
def test_user_text_modules_cost_exactly_what_the_int8_file_holds(tmp_path, body):
    from edgedistill.profile.cost import tflite_cost

    torch.manual_seed(0)
    model = body().eval()
    g = graph_cost(model, (10,))
    path = tmp_path / "user_text.tflite"
    _export_text(model, 10, path)
    assert len(g.ops) == len(tflite_cost(path).layers)
    assert (g.macs, g.params, g.weight_bytes) == hand_text_cost(model, 10)
    _assert_cost_equals_file(g, path)


def test_a_zero_initialised_bias_that_qat_trains_is_costed():
    """A user's Linear whose bias starts at zero: QAT trains it (it is the layer's own), so the file holds it; it was
    costed as bias-less while zero (12,104 B against 8,104 B of weights, a breaking session). A Linear with no bias
    of its own keeps an untrained zero one and is costed without it."""
    from torch import nn

    from edgedistill.students.cost import graph_cost

    m = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 1000))
    before = graph_cost(m.eval(), (1, 8, 8)).weight_bytes
    nn.init.zeros_(m[4].bias)
    assert graph_cost(m.eval(), (1, 8, 8)).weight_bytes == before
    m[4] = nn.Linear(8, 1000, bias=False)
    assert graph_cost(m.eval(), (1, 8, 8)).weight_bytes == before - 4 * 1000
