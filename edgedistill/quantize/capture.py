"""Capture a float student as a graph, and name every node's int8 op kind (or refuse it, before training).

Why torch.fx (`symbolic_trace`) and not torch.export: fx records the student at the level of its own modules
(`call_module` nodes carry the module path, `features.block1.0`, and the module itself, so Conv-BN-ReLU, the
`Normalize` input layer and BatchNorm statistics are read directly and folded), with functional ops (`+`,
`torch.cat`, `F.hardswish`, `x.mean`) as `call_function` / `call_method` nodes tagged with the module they ran in.
It needs no sample input and runs in milliseconds, so a student is checked before anything trains. torch.export
would decompose modules into ATen ops (BatchNorm into `_native_batch_norm_legit_no_training`, Linear into
`addmm` / `permute`), lose the module boundaries the refusals and the fusions need, and cost seconds per call; it is
used where it belongs, downstream, when litert-torch converts the already-quantized graph. What fx cannot capture
(data-dependent control flow) is refused with the module where tracing stopped.
"""

from __future__ import annotations

import operator

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from edgedistill.errors import EdgeDistillError
from edgedistill.students.layers import FirstToken, GlobalMaxPool, MaskedSelfAttention, Normalize, TokenEmbedding


class UnsupportedOpError(EdgeDistillError):
    """A layer the int8 pipeline (and so the TFLite / TFLite Micro kernels) cannot express."""


SUPPORTED = ("Conv1d / Conv2d (incl. depthwise; + BatchNorm, + ReLU / ReLU6 / Hardsigmoid), Linear, BatchNorm2d, "
             "ReLU, ReLU6, Hardswish, GELU (exact or tanh), Hardsigmoid (after a conv / linear), Sigmoid, tensor + - * tensor, torch.cat, "
             "MaxPool1d/2d, AvgPool1d/2d, global average / max pooling (AdaptiveAvgPool(1), AdaptiveMaxPool(1), mean "
             "over spatial dims), F.pad (zeros), Flatten / view / reshape, Dropout, Identity, Normalize, Embedding "
             "(of the input token ids), a parameter as an operand (e.g. learned positions), LayerNorm, "
             "edgedistill's MaskedSelfAttention and FirstToken")

_MODULES: dict[type, str] = {
    nn.Conv1d: "layer", nn.Conv2d: "layer", nn.Linear: "layer", nn.BatchNorm1d: "bn", nn.BatchNorm2d: "bn",
    nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hardswish", nn.Hardsigmoid: "hardsigmoid", nn.GELU: "gelu",
    nn.Sigmoid: "sigmoid", nn.MaxPool1d: "maxpool", nn.MaxPool2d: "maxpool", nn.AvgPool1d: "avgpool",
    nn.AvgPool2d: "avgpool", nn.AdaptiveAvgPool1d: "gap", nn.AdaptiveAvgPool2d: "gap", nn.Flatten: "flatten",
    nn.Dropout: "identity", nn.Dropout1d: "identity", nn.Dropout2d: "identity", nn.Identity: "identity",
    Normalize: "normalize", nn.Embedding: "embedding", TokenEmbedding: "embedding",
    nn.AdaptiveMaxPool1d: "gmp", nn.AdaptiveMaxPool2d: "gmp", GlobalMaxPool: "gmp",
    MaskedSelfAttention: "attention", nn.LayerNorm: "layernorm", FirstToken: "first",
}
_FUNCTIONS: dict = {
    operator.add: "add", operator.iadd: "add", torch.add: "add", operator.sub: "sub", torch.sub: "sub",
    operator.mul: "mul", operator.imul: "mul", torch.mul: "mul", torch.cat: "cat", torch.concat: "cat",
    torch.flatten: "flatten", F.relu: "relu", torch.relu: "relu", F.relu6: "relu6", F.hardswish: "hardswish", F.gelu: "gelu",
    F.hardsigmoid: "hardsigmoid", torch.sigmoid: "sigmoid", F.sigmoid: "sigmoid", F.max_pool1d: "maxpool",
    F.max_pool2d: "maxpool", F.avg_pool1d: "avgpool", F.avg_pool2d: "avgpool", F.adaptive_avg_pool1d: "gap",
    F.adaptive_avg_pool2d: "gap", F.pad: "pad", torch.mean: "mean", F.dropout: "identity",
    F.embedding: "embedding", F.adaptive_max_pool1d: "gmp", F.adaptive_max_pool2d: "gmp",
    operator.getitem: "meta", getattr: "meta", torch.reshape: "reshape",
}
_METHODS: dict[str, str] = {
    "mean": "mean", "view": "reshape", "reshape": "reshape", "flatten": "flatten", "size": "meta",
    "relu": "relu", "sigmoid": "sigmoid", "contiguous": "identity", "add": "add", "sub": "sub", "mul": "mul",
}


class _Tracer(fx.Tracer):
    """torch.fx's tracer, with `Normalize` (one depthwise conv, a Linear's folded input, or the float input head)
    and `TokenEmbedding` (one gather) kept whole."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (Normalize, TokenEmbedding, GlobalMaxPool, MaskedSelfAttention, FirstToken)) or \
            super().is_leaf_module(m, qualname)


def capture(model: nn.Module) -> fx.GraphModule:
    """Trace `model` (eval mode) into an fx graph. Raises UnsupportedOpError naming the module where tracing
    failed (data-dependent control flow, an untraceable call)."""
    tracer = _Tracer()
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises TraceError, TypeError, RuntimeError ... from user code
        stack = list(tracer.module_stack.values())
        where, cls = stack[-1] if stack else ("", None)
        place = f"module {where!r} ({getattr(cls, '__name__', cls)})" if where else "the model's forward"
        raise UnsupportedOpError(
            f"The student cannot be captured as a graph for int8: tracing stopped in {place}: {exc}. Data-dependent "
            f"control flow (an `if` on a tensor's values) and untraceable calls cannot be exported to int8 TFLite / "
            f"TFLite Micro; write the forward as a fixed sequence of supported ops. Supported: {SUPPORTED}.") from None
    return fx.GraphModule(model, graph)


def node_path(node: fx.Node) -> str:
    """The float model's module path of a node (`blocks.2.attn`), or the node's name at the top level."""
    if node.op == "call_module":
        return str(node.target)
    stack = node.meta.get("nn_module_stack") or {}
    return next(reversed(stack.values()))[0] if stack else node.name


def op_name(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    if node.op == "call_module":
        return type(modules[node.target]).__name__
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    return f"{getattr(node.target, '__module__', '') or ''}.{getattr(node.target, '__name__', node.target)}".lstrip(".")


def op_kind(node: fx.Node, modules: dict[str, nn.Module]) -> str | None:
    """The int8 op kind of a node ("layer", "add", "relu", ...; "input" / "output" / "meta" for the rest), or None
    when the int8 set has no such op."""
    if node.op == "placeholder":
        return "input"
    if node.op == "output":
        return "output"
    if node.op == "call_module":
        return _MODULES.get(type(modules[node.target]))
    if node.op == "call_function":
        return _FUNCTIONS.get(node.target)
    if node.op == "call_method":
        return _METHODS.get(node.target)
    return "constant"  # get_attr: a parameter used as a tensor operand


def check_supported(gm: fx.GraphModule) -> None:
    """Refuse every node outside the int8 set, all at once, each with its module path and op."""
    modules = dict(gm.named_modules())
    bad: dict[str, list[str]] = {}
    for node in gm.graph.nodes:
        if op_kind(node, modules) is None:
            what = f"a tensor attribute ({node.target})" if node.op == "get_attr" else op_name(node, modules)
            bad.setdefault(node_path(node), []).append(what)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise UnsupportedOpError(f"The student's forward takes {len(placeholders)} inputs; the int8 pipeline "
                                 "supports exactly one input tensor.")
    if bad:
        where = "; ".join(f"{path!r}: {', '.join(dict.fromkeys(ops))}" for path, ops in bad.items())
        raise UnsupportedOpError(
            f"The student uses ops outside the int8 set that TFLite / TFLite Micro int8 kernels run, at {where}. "
            f"Supported: {SUPPORTED}.")


def refuse(node: fx.Node, modules: dict[str, nn.Module], why: str) -> UnsupportedOpError:
    """An error naming the node's module path and op, with `why` and the supported set."""
    return UnsupportedOpError(f"Layer {node_path(node)!r} ({op_name(node, modules)}): {why}. Supported: {SUPPORTED}.")
