"""The int8 rewrite of one graph node at a time: a builder per op kind (`BUILDERS`), each appending the
quantize/ops.py op of its kind, with a quantizer wherever its output leaves the int8 grid, to the rewrite's context
(`RewriteContext`). quantize/graph.py walks the captured graph and calls them; the folding rules they apply
(BatchNorm into the conv before it, fused ReLU / ReLU6, hardsigmoid into a conv / linear, the input `Normalize`)
are described there."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from edgedistill.quantize.capture import UnsupportedOpError, node_path, op_kind, op_name, refuse
from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.input_head import CONSTANT_INV_STD, InputHead, needs_head
from edgedistill.quantize.ops import (Activation, AvgPool, Binary, Concat, GraphOp, Lambda, Mean, QLayer, SameGrid,
                                      global_max_pool, reshape_to)
from edgedistill.quantize.attention_ops import Attention, Constant, LayerNorm
from edgedistill.quantize.int16_attention import Attention16
from edgedistill.quantize.int16_ops import LayerNorm16
from edgedistill.quantize.sequence_ops import Embedding
from edgedistill.students.layers import TokenEmbedding, first_token

__all__ = ["BUILDERS", "RewriteContext"]


@dataclass
class RewriteContext:
    """The rewrite so far: the captured graph, the int8 ops built and their steps, each graph value's quantizer."""

    gm: fx.GraphModule
    modules: dict[str, nn.Module]
    alias: dict[str, str] = field(default_factory=dict)      # node name -> the value it is (identity ops)
    grids: dict[str, ActQuant] = field(default_factory=dict)  # value name -> quantizer of its grid
    ops: dict[str, GraphOp] = field(default_factory=dict)
    steps: list = field(default_factory=list)
    done: set = field(default_factory=set)                    # nodes absorbed by a fusion
    norm_into: dict = field(default_factory=dict)             # Linear node name -> Normalize folded into it
    pad_into: dict = field(default_factory=dict)              # conv node name -> zero padding folded into it
    meta: set = field(default_factory=set)                    # non-tensor values (x.size(0), x.shape)
    input_name: str = ""
    input_head: str = "auto"                                  # "auto" | "on" | "off" (quantize/input_head.py)
    head: InputHead | None = None
    int16: frozenset = frozenset()                            # op kinds built in 16×8 form (quantize/int16_ops.py)

    def val(self, node) -> str:
        if not isinstance(node, fx.Node):
            raise TypeError(node)
        name = node.name
        while name in self.alias:
            name = self.alias[name]
        return name

    def kind(self, node: fx.Node) -> str | None:
        return op_kind(node, self.modules)

    def only_user(self, node: fx.Node) -> fx.Node | None:
        users = list(node.users)
        return users[0] if len(users) == 1 else None

    def tensor_input(self, node: fx.Node, arg) -> str:
        if not isinstance(arg, fx.Node) or self.val(arg) in self.meta or self.val(arg) not in self.grids:
            raise refuse(node, self.modules, f"operand {arg!r} is not a tensor computed by the graph (constant "
                                             "operands are not supported in int8; make them a layer's weights)")
        return self.val(arg)

    def producer(self, value: str) -> GraphOp | None:
        """The op whose output is the graph value `value` (None for the input)."""
        key = next((k for k, _, out in self.steps if out == value), None)
        return None if key is None else self.ops[key]

    def add(self, node: fx.Node, op: GraphOp, inputs: list[str], out_node: fx.Node | None = None) -> None:
        op.set_inputs([self.grids[i] for i in inputs])
        out = (out_node or node).name
        key = node.name
        self.ops[key] = op
        self.steps.append((key, tuple(inputs), out))
        self.grids[out] = op.grid
        op.grid.name = op.grid.name or f"{node_path(node)!r}"


def _fold_bn(w: torch.Tensor, b: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm):
    b = torch.zeros(w.shape[0]) if b is None else b
    inv = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    shape = (-1,) + (1,) * (w.dim() - 1)
    return w * inv.view(shape), (b - bn.running_mean) * inv + bn.bias


def _fuse_act(ctx: RewriteContext, node: fx.Node, allowed: tuple[str, ...]) -> tuple[str, fx.Node]:
    """If `node`'s only user is an activation in `allowed`, absorb it: returns (activation, last node)."""
    user = ctx.only_user(node)
    if user is not None and ctx.kind(user) in allowed:
        ctx.done.add(user.name)
        return ctx.kind(user), user
    return "none", node


def _conv_geometry(node: fx.Node, ctx: RewriteContext, m: nn.Module) -> dict:
    if m.dilation not in ((1, 1), (1,)) or m.padding_mode != "zeros":
        raise refuse(node, ctx.modules, "dilation and non-zero padding modes are not supported in int8 export")
    pad = m.padding
    if isinstance(pad, str):
        k = m.kernel_size
        if pad == "same" and all(v % 2 for v in k):
            pad = tuple(v // 2 for v in k)
        elif pad == "valid":
            pad = (0,) * len(k)
        else:
            raise refuse(node, ctx.modules, f"padding={pad!r} with an even kernel cannot be written as int8")
    pad = (pad,) * len(m.kernel_size) if isinstance(pad, int) else tuple(pad)
    extra = ctx.pad_into.pop(node.name, (0,) * len(pad))
    return dict(stride=m.stride, padding=tuple(p + e for p, e in zip(pad, extra)), groups=m.groups)


def _build_layer(ctx: RewriteContext, node: fx.Node) -> None:
    m = ctx.modules[node.target]
    w, b = m.weight.detach().float(), None if m.bias is None else m.bias.detach().float()
    own_bias = b is not None  # else a bias appears only if a fold below puts one there (QLayer: trainable_bias)
    src = node.args[0]
    norm = ctx.norm_into.pop(node.name, None)
    if norm is not None:
        inv, mean = norm.inv_std.reshape(-1).clone(), norm.mean.reshape(-1)
        inv[inv >= CONSTANT_INV_STD] = 0.0
        b = (torch.zeros(w.shape[0]) if b is None else b) - w @ (mean * inv)
        w = w * inv.reshape(1, -1)
    end = node
    user = ctx.only_user(node)
    if user is not None and ctx.kind(user) == "bn":
        w, b = _fold_bn(w, b, ctx.modules[user.target])
        ctx.done.add(user.name)
        end = user
    own_bias = own_bias or b is not None  # a normalization or BatchNorm folded in
    b = torch.zeros(w.shape[0]) if b is None else b
    act, end = _fuse_act(ctx, end, ("relu", "relu6", "hardsigmoid"))
    if act == "hardsigmoid":  # relu6(z + 3) / 6 = clamp(z / 6 + 1/2, 0, 1)
        w, b = w / 6.0, b / 6.0 + 0.5
    if isinstance(m, nn.Linear):
        layer = QLayer(node.target, w, b, "linear", act, trainable_bias=own_bias)
        flat = ctx.ops.get(src.name) if isinstance(src, fx.Node) and len(src.users) == 1 else None
        if isinstance(flat, SameGrid) and (flat.kind == "flatten" or flat.kind == "reshape"
                                           and flat.fn.kwargs["shape"] == (-1,)):
            layer.read_flattened(flat)
    else:
        kind = "conv2d" if isinstance(m, nn.Conv2d) else "conv1d"
        layer = QLayer(node.target, w, b, kind, act, **_conv_geometry(node, ctx, m), trainable_bias=own_bias)
    ctx.add(node, layer, [ctx.tensor_input(node, src)], end)


def _depthwise(node: fx.Node, ctx: RewriteContext, scale: torch.Tensor, shift: torch.Tensor, dims: int) -> None:
    """y = scale[c] · x + shift[c] per channel, as a depthwise 1×1 conv."""
    c = scale.numel()
    w = scale.reshape(c, 1, *([1] * dims))
    layer = QLayer(str(node_path(node)), w, shift.reshape(c), "conv2d" if dims == 2 else "conv1d", groups=c)
    ctx.add(node, layer, [ctx.tensor_input(node, node.args[0])])


def _build_normalize(ctx: RewriteContext, node: fx.Node) -> None:
    m = ctx.modules[node.target]
    reads_input = isinstance(node.args[0], fx.Node) and ctx.val(node.args[0]) == ctx.input_name
    wanted = ctx.input_head == "on" or (ctx.input_head == "auto" and needs_head(m.mean, m.inv_std))
    if reads_input and wanted and ctx.head is None:  # raw ranges one int8 scale cannot carry: standardise in float
        ctx.head = InputHead(m.mean, m.inv_std)
        ctx.alias[node.name] = ctx.input_name
        return
    dims = m.mean.dim() - 2
    if dims > 0:
        inv = m.inv_std.reshape(-1).clone()
        inv[inv >= CONSTANT_INV_STD] = 0.0
        _depthwise(node, ctx, inv, -m.mean.reshape(-1) * inv, dims)
        return
    user = ctx.only_user(node)
    if user is None or ctx.kind(user) != "layer" or not isinstance(ctx.modules[user.target], nn.Linear):
        raise refuse(node, ctx.modules, "per-feature normalisation must be followed by a Linear layer (its only "
                                        "user) to be folded into it for int8 export")
    ctx.norm_into[user.name] = m  # exact: the Linear absorbs it
    ctx.alias[node.name] = ctx.tensor_input(node, node.args[0])


def _build_bn(ctx: RewriteContext, node: fx.Node) -> None:
    bn = ctx.modules[node.target]
    if not isinstance(bn, nn.BatchNorm2d):
        raise refuse(node, ctx.modules, "a BatchNorm1d must follow a Conv1d / Linear (its only user) to be folded")
    inv = bn.weight.detach() / torch.sqrt(bn.running_var + bn.eps)
    _depthwise(node, ctx, inv, bn.bias.detach() - bn.running_mean * inv, 2)


def _arg(node: fx.Node, i: int, name: str, default=None):
    return node.args[i] if len(node.args) > i else node.kwargs.get(name, default)


def _build_binary(ctx: RewriteContext, node: fx.Node) -> None:
    kind = ctx.kind(node)
    if node.kwargs.get("alpha", 1) != 1 or len(node.args) != 2:
        raise refuse(node, ctx.modules, "only `a + b`, `a - b` and `a * b` of two tensors are supported")
    a, b = (ctx.tensor_input(node, x) for x in node.args)
    act, end = _fuse_act(ctx, node, ("relu", "relu6"))
    ctx.add(node, Binary(node_path(node), kind, act), [a, b], end)


def _build_cat(ctx: RewriteContext, node: fx.Node) -> None:
    """CONCATENATION. The int8 spec gives a concatenation's inputs and output one grid; the converter meets it by
    writing an input whose producer has no other user directly on the output's grid (one rounding), and by a
    requantizing QUANTIZE op otherwise. QAT does the same: such a producer shares the concatenation's quantizer."""
    xs, dim = _arg(node, 0, "tensors"), _arg(node, 1, "dim", 0)
    if dim == 0:
        raise refuse(node, ctx.modules, "concatenation along the batch dimension is not a model op")
    ins = [ctx.tensor_input(node, x) for x in xs]
    cat = Concat(node_path(node), dim)
    for x, value in zip(xs, ins):
        producer = ctx.producer(value)
        if (producer is not None and len(x.users) == 1 and ins.count(value) == 1 and x.name == value
                and isinstance(getattr(producer, "out_q", None), ActQuant) and producer.out_q.fixed is None):
            producer.out_q = cat.out_q
            ctx.grids[value] = cat.out_q
    ctx.add(node, cat, ins)


def _mean_dims(node: fx.Node, ctx: RewriteContext) -> tuple[tuple[int, ...], bool]:
    kind = ctx.kind(node)
    if kind == "gap":
        m = ctx.modules.get(node.target) if node.op == "call_module" else None
        size = getattr(m, "output_size", 1) if m is not None else _arg(node, 1, "output_size")
        if size not in (1, (1,), (1, 1)):
            raise refuse(node, ctx.modules, "adaptive average pooling is supported to output size 1 only")
        one_d = isinstance(m, nn.AdaptiveAvgPool1d) or node.target is F.adaptive_avg_pool1d
        return ((2,) if one_d else (2, 3)), True
    dims = _arg(node, 1, "dim")
    if dims is None:
        raise refuse(node, ctx.modules, "a mean over every dimension (batch included) is not a model op")
    dims = (dims,) if isinstance(dims, int) else tuple(dims)
    if 0 in dims:
        raise refuse(node, ctx.modules, "a mean over the batch dimension is not a model op")
    return dims, bool(_arg(node, 2, "keepdim", False))


def _build_mean(ctx: RewriteContext, node: fx.Node) -> None:
    dims, keep = _mean_dims(node, ctx)
    ctx.add(node, Mean(node_path(node), dims, keep), [ctx.tensor_input(node, node.args[0])])


def _build_embedding(ctx: RewriteContext, node: fx.Node) -> None:
    if node.op == "call_module":
        m = ctx.modules[node.target]
        weight, channels_first = m.weight, isinstance(m, TokenEmbedding)
        if m.max_norm is not None:
            raise refuse(node, ctx.modules, "an embedding with max_norm renormalises rows at run time; int8 tables "
                                            "are fixed")
    else:
        arg = _arg(node, 1, "weight")
        if not (isinstance(arg, fx.Node) and arg.op == "get_attr"):
            raise refuse(node, ctx.modules, "F.embedding's table must be a parameter of the model")
        weight, channels_first = ctx.gm.get_parameter(arg.target), False
    src = node.args[0]
    if not isinstance(src, fx.Node) or ctx.val(src) != ctx.input_name:
        raise refuse(node, ctx.modules, "an embedding must look up the model's input token ids directly")
    ctx.add(node, Embedding(node_path(node), weight, channels_first), [ctx.input_name])


def _build_constant(ctx: RewriteContext, node: fx.Node) -> None:
    if node.users and all(ctx.kind(u) == "embedding" for u in node.users):
        return  # an embedding table: the Embedding op holds it
    value = ctx.gm.get_parameter(node.target) if node.target in dict(ctx.gm.named_parameters()) else \
        ctx.gm.get_buffer(node.target)
    ctx.add(node, Constant(node_path(node), value), [])


def _build_attention(ctx: RewriteContext, node: fx.Node) -> None:
    x, ids = (node.args + (None,))[:2]
    if not isinstance(ids, fx.Node) or ctx.val(ids) != ctx.input_name:
        raise refuse(node, ctx.modules, "attention takes the token states and the model's input token ids")
    form = ATTENTION_FORMS[16 if "attention" in ctx.int16 else 8]
    try:
        op = form(node.target, ctx.modules[node.target])
    except ValueError as e:  # a 16×8 form the converter cannot write for this module (one head): the op itself is
        # supported, so the message names the way out rather than the supported set
        raise UnsupportedOpError(f"Layer {node_path(node)!r} ({op_name(node, ctx.modules)}): {e}.") from None
    ctx.add(node, op, [ctx.tensor_input(node, x), ctx.input_name])


ATTENTION_FORMS = {8: Attention, 16: Attention16}  # by the activation width of scores, SOFTMAX and context


def _build_layernorm(ctx: RewriteContext, node: fx.Node) -> None:
    m = ctx.modules[node.target]
    if len(m.normalized_shape) != 1:
        raise refuse(node, ctx.modules, "LayerNorm is supported over the last dimension only")
    form = LAYERNORM_FORMS[16 if "layernorm" in ctx.int16 else 8]
    ctx.add(node, form(node.target, m), [ctx.tensor_input(node, node.args[0])])


LAYERNORM_FORMS = {8: LayerNorm, 16: LayerNorm16}  # by activation width


def _build_gmp(ctx: RewriteContext, node: fx.Node) -> None:
    m = ctx.modules.get(node.target) if node.op == "call_module" else None
    size = getattr(m, "output_size", 1) if m is not None else _arg(node, 1, "output_size")
    if size not in (1, (1,), (1, 1)) or getattr(m, "return_indices", False):
        raise refuse(node, ctx.modules, "adaptive max pooling is supported to output size 1 only")
    _same(ctx, node, "maxpool", Lambda("maxpool", global_max_pool))


def _build_activation(ctx: RewriteContext, node: fx.Node) -> None:
    kind = ctx.kind(node)
    ctx.add(node, Activation(node_path(node), kind), [ctx.tensor_input(node, node.args[0])])


def _build_gelu(ctx: RewriteContext, node: fx.Node) -> None:
    """GELU: exact (erf) or its tanh form, as the module's / call's `approximate` says (TFLite's GELU option)."""
    m = ctx.modules.get(node.target) if node.op == "call_module" else None
    approximate = m.approximate if m is not None else _arg(node, 1, "approximate", "none")
    kind = {"none": "gelu", "tanh": "gelu_tanh"}.get(approximate)
    if kind is None:
        raise refuse(node, ctx.modules, f"GELU approximate={approximate!r} is not one of 'none', 'tanh'")
    ctx.add(node, Activation(node_path(node), kind), [ctx.tensor_input(node, node.args[0])])


def _same(ctx: RewriteContext, node: fx.Node, kind: str, fn: Lambda, requant: bool = False) -> None:
    ctx.add(node, SameGrid(node_path(node), kind, fn, requant), [ctx.tensor_input(node, node.args[0])])


def _pool_args(ctx: RewriteContext, node: fx.Node) -> dict:
    m = ctx.modules.get(node.target) if node.op == "call_module" else None
    if m is not None:
        k, stride, pad = m.kernel_size, m.stride or m.kernel_size, m.padding
        flags = [getattr(m, "ceil_mode", False), getattr(m, "return_indices", False),
                 getattr(m, "dilation", 1) not in (1, (1,), (1, 1)), getattr(m, "divisor_override", None)]
    else:
        k, stride, pad = _arg(node, 1, "kernel_size"), _arg(node, 2, "stride"), _arg(node, 3, "padding", 0)
        stride = stride or k
        kw = node.kwargs
        flags = [len(node.args) > 4, kw.get("ceil_mode"), kw.get("return_indices"), kw.get("divisor_override"),
                 kw.get("dilation", 1) not in (1, (1,), (1, 1))]
    if any(flags):
        raise refuse(node, ctx.modules, "ceil_mode, dilation, divisor_override and return_indices are not "
                                        "supported in int8 pooling")
    return dict(kernel_size=k, stride=stride, padding=pad)


def _two_d(ctx: RewriteContext, node: fx.Node) -> bool:
    m = ctx.modules.get(node.target) if node.op == "call_module" else None
    return isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) or node.target in (F.max_pool2d, F.avg_pool2d)


def _build_maxpool(ctx: RewriteContext, node: fx.Node) -> None:
    fn = F.max_pool2d if _two_d(ctx, node) else F.max_pool1d
    _same(ctx, node, "maxpool", Lambda("maxpool", fn, **_pool_args(ctx, node)))


def _build_avgpool(ctx: RewriteContext, node: fx.Node) -> None:
    args = _pool_args(ctx, node)
    if args["padding"] not in (0, (0, 0), (0,)):
        raise refuse(node, ctx.modules, "average pooling with padding (counted or not) is not supported in int8; "
                                        "pad explicitly with F.pad")
    fn = F.avg_pool2d if _two_d(ctx, node) else F.avg_pool1d
    ctx.add(node, AvgPool(node_path(node), Lambda("avgpool", fn, **args)), [ctx.tensor_input(node, node.args[0])])


def _build_relu(ctx: RewriteContext, node: fx.Node) -> None:
    kind = ctx.kind(node)
    _same(ctx, node, kind, Lambda(kind, F.relu if kind == "relu" else F.relu6), requant=kind == "relu6")


def _symmetric_pad(pad: tuple[int, ...], dims: int) -> tuple[int, ...] | None:
    """torch's (last begin, last end, previous begin, ...) as per-dimension padding, when symmetric."""
    pad = tuple(pad) + (0,) * (2 * dims - len(pad))
    if len(pad) != 2 * dims or any(pad[2 * i] != pad[2 * i + 1] for i in range(dims)):
        return None
    return tuple(pad[2 * (dims - 1 - d)] for d in range(dims))


def _build_pad(ctx: RewriteContext, node: fx.Node) -> None:
    pad, mode, value = _arg(node, 1, "pad"), _arg(node, 2, "mode", "constant"), _arg(node, 3, "value", None)
    if mode != "constant" or value not in (None, 0, 0.0):
        raise refuse(node, ctx.modules, "only zero padding (mode='constant', value=0) is supported in int8")
    user = ctx.only_user(node)
    conv = ctx.modules.get(user.target) if user is not None and user.op == "call_module" else None
    if isinstance(conv, (nn.Conv1d, nn.Conv2d)) and conv.padding_mode == "zeros" and user.name not in ctx.pad_into:
        per_dim = _symmetric_pad(pad, conv.weight.dim() - 2)
        if per_dim is not None:  # symmetric zero padding before a conv is the conv's own padding (no PAD op)
            ctx.pad_into[user.name] = per_dim
            ctx.alias[node.name] = ctx.tensor_input(node, node.args[0])
            return
    _same(ctx, node, "pad", Lambda("pad", F.pad, pad=tuple(pad)))


def _build_first(ctx: RewriteContext, node: fx.Node) -> None:
    """The first position of N×L×D token states (FirstToken): a selection, so the value keeps its grid."""
    _same(ctx, node, "first", Lambda("first", first_token))


def _build_flatten(ctx: RewriteContext, node: fx.Node) -> None:
    m = ctx.modules.get(node.target) if node.op == "call_module" else None
    start = m.start_dim if m is not None else _arg(node, 1, "start_dim", 0)
    end = m.end_dim if m is not None else _arg(node, 2, "end_dim", -1)
    if start != 1 or end != -1:
        raise refuse(node, ctx.modules, "only flattening from dimension 1 to the end is supported (the batch stays)")
    _same(ctx, node, "flatten", Lambda("flatten", torch.flatten, start_dim=1))


def _build_reshape(ctx: RewriteContext, node: fx.Node) -> None:
    shape = list(node.args[1:])
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = list(shape[0])
    rest = shape[1:]  # the first entry is the batch (x.size(0), -1 or a number)
    if not rest or not all(isinstance(v, int) for v in rest):
        raise refuse(node, ctx.modules, "view / reshape must keep the batch first and give the other sizes as "
                                        "numbers, e.g. x.view(x.size(0), -1)")
    _same(ctx, node, "reshape", Lambda("reshape", reshape_to, shape=tuple(rest)))


def _build_identity(ctx: RewriteContext, node: fx.Node) -> None:
    ctx.alias[node.name] = ctx.tensor_input(node, node.args[0])


def _build_meta(ctx: RewriteContext, node: fx.Node) -> None:
    ctx.meta.add(node.name)  # x.size(0) / x.shape[...]: only reshape may read it (as the batch)


BUILDERS: dict[str, Callable[[RewriteContext, fx.Node], None]] = {
    "layer": _build_layer, "normalize": _build_normalize, "bn": _build_bn, "add": _build_binary,
    "sub": _build_binary, "mul": _build_binary, "cat": _build_cat, "mean": _build_mean, "gap": _build_mean,
    "hardswish": _build_activation, "sigmoid": _build_activation, "maxpool": _build_maxpool,
    "avgpool": _build_avgpool, "relu": _build_relu, "relu6": _build_relu, "pad": _build_pad,
    "flatten": _build_flatten, "reshape": _build_reshape, "identity": _build_identity, "meta": _build_meta,
    "embedding": _build_embedding, "gmp": _build_gmp, "constant": _build_constant, "attention": _build_attention,
    "layernorm": _build_layernorm, "gelu": _build_gelu, "first": _build_first,
}


def _build_hardsigmoid(ctx: RewriteContext, node: fx.Node) -> None:
    raise refuse(node, ctx.modules, "hardsigmoid is supported as the activation of a conv / linear layer (its only "
                                    "user), where it folds into the weights, e.g. an SE gate's last layer")


BUILDERS["hardsigmoid"] = _build_hardsigmoid
