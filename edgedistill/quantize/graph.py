"""The int8-simulating student: the float student's captured graph, rewritten op by op as int8 ops.

`to_quant_student(model)` traces the model (quantize/capture.py), then walks its nodes in order:

* BatchNorm folds into the conv / linear before it (y = γ(Wx + b − μ)/σ + β  →  W' = γW/σ, b' = γ(b − μ)/σ + β;
  Jacob et al. 2018 sec. 3.2); a BatchNorm2d with no such producer becomes a depthwise 1×1 conv.
* ReLU / ReLU6 fuse into the output range of the conv, linear, ADD, SUB or MUL that produces their input (the
  TFLite kernels' fused activation); hardsigmoid folds into a conv / linear (quantize/ops.py).
* The `Normalize` input layer becomes a depthwise 1×1 conv for images and signals (so the deployed file takes raw
  samples) or folds into the first Linear for feature vectors (W' = W·diag(1/σ), b' = b − W·(μ/σ)). A channel the
  normaliser found constant (σ at its floor) carries no information and is zeroed, so its 1/σ cannot blow up the
  weight scale of every other channel.
* Every other op becomes the quantize/ops.py op of its kind, each with a quantizer wherever its output leaves the
  int8 grid. Builders register per op kind (`BUILDERS`, quantize/builders.py); anything else is refused by name
  and module path.

`QuantGraph` executes the steps in order; one instance feeds QAT, the ONNX QDQ writer and the TFLite converter.
"""

from __future__ import annotations

import math

import torch
import torch.fx as fx
import torch.nn.functional as F
from torch import nn

from edgedistill.errors import ConfigError
from edgedistill.quantize.arithmetic import ARITHMETIC, ROUNDINGS
from edgedistill.quantize.builders import BUILDERS, RewriteContext
from edgedistill.quantize.capture import SUPPORTED, UnsupportedOpError, capture, check_supported
from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.input_head import InputHead
from edgedistill.quantize.int16_ops import INT16_KINDS
from edgedistill.quantize.ops import GraphOp

__all__ = ["QuantGraph", "QuantStudent", "UnsupportedOpError", "SUPPORTED", "to_quant_student", "BUILDERS"]


class QuantGraph(nn.Module):
    """input quantizer → int8 ops in graph order. `set_mode("observe"|"quant"|"export"|"float")` switches every
    quantizer; `steps` are (op key, input value names, output value name)."""

    def __init__(self, input_q: ActQuant | None, ops: dict[str, GraphOp], steps: list[tuple[str, tuple[str, ...], str]],
                 input_name: str, output_name: str, head: InputHead | None = None) -> None:
        super().__init__()
        self.input_q = input_q  # None: the input is token ids (int32), read only by embedding lookups
        self.head = head  # a float input head (quantize/input_head.py): raw float samples in, QUANTIZE to int8
        self.ops = nn.ModuleDict(ops)
        self.steps = steps
        self.input_name, self.output_name = input_name, output_name
        kinds = {getattr(op, "kind", "") for op in self.ops.values()} | {
            getattr(getattr(op, "fn", None), "_fn", None) for op in self.ops.values()}
        self.one_d = ("conv1d" in kinds or bool(kinds & {F.max_pool1d, F.avg_pool1d})) and not (
            "conv2d" in kinds or bool(kinds & {F.max_pool2d, F.avg_pool2d}))
        self.lifted = False
        self.rounding = "float"
        self.exact_in_training = True
        # the share of training steps, the last ones, whose forward computes the runtime's integers
        # (before_train_step); evaluation computes them always
        self.exact_share = 1.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quantize_input(x)
        if self.lifted and not self.index_input:  # int8 N×C×L as N×C×1×L: NHWC kernels, no transposes
            x = x.unsqueeze(2)
        env = {self.input_name: x}
        for key, ins, out in self.steps:
            env[out] = self.ops[key](*[env[i] for i in ins])
        y = env[self.output_name]
        return y.squeeze(2) if self.lifted and y.dim() == 4 else y

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        """The first int8 value: the raw samples on the input grid (the device app quantizes them), or, with a
        float input head, the head's output quantized by the file's own QUANTIZE op (the runtime's arithmetic)."""
        if self.input_q is None:
            return x
        if self.head is None:
            return self.input_q(x)
        y = self.head(x)
        q = self.input_q(y)
        if self.input_q.mode == "quant" and self.exact:
            s, z = float(self.input_q.scale), int(self.input_q.zero_point)
            q = q + ((ARITHMETIC.get(self.rounding).quantize(y.detach(), s, z) - z) * s - q).detach()
        return q

    @property
    def exact(self) -> bool:
        """Whether this forward computes the runtime's integers (GraphOp.exact)."""
        return self.rounding != "float" and (self.exact_in_training or not self.training)

    @property
    def index_input(self) -> bool:
        """True when the file takes int32 token ids (its input feeds embedding lookups only)."""
        return self.input_q is None

    @property
    def float_input(self) -> bool:
        """True when the file takes raw float32 samples (a float input head), else int8 samples."""
        return self.head is not None

    def quantizers(self) -> list[ActQuant]:
        return [m for m in self.modules() if isinstance(m, ActQuant)]

    def set_mode(self, mode: str) -> None:
        """Switch every quantizer. "export" also freezes constants for converters and, for a 1-D graph, carries
        its maps as N×C×1×L (litert-torch lowers 1-D convs with a transpose on each side; 2-D ones it keeps NHWC)."""
        for q in self.quantizers():
            q.mode = mode
        self.lifted = mode == "export" and self.one_d
        for op in self.ops.values():
            op.lifted = self.lifted
        if mode == "export":
            for m in self.modules():
                if hasattr(m, "prepare_export"):
                    m.prepare_export()

    def set_tracking(self, on: bool) -> None:
        """Let every calibrated quantizer follow its observed range while the graph trains (quantize/fake.py)."""
        for q in self.quantizers():
            q.track = on

    def set_rounding(self, rounding: str) -> None:
        """"float" (torch's fake quantization, as onnxruntime's QDQ reference computes it), or a runtime's integer
        arithmetic for every op that leaves its input's grid (quantize/arithmetic.py: "tflm" for TFLite Micro and
        LiteRT's reference kernels, "xnnpack" for LiteRT's default CPU delegate), for the "quant" forward."""
        if rounding not in ROUNDINGS:
            raise ValueError(f"rounding must be one of {ROUNDINGS}, not {rounding!r}")
        self.rounding = rounding
        for op in self.modules():  # the graph's ops and those inside composite ops (attention, LayerNorm)
            if isinstance(op, GraphOp):
                op.rounding = rounding

    def set_exact_training(self, on: bool) -> None:
        """Whether a training forward computes the runtime's integers (else torch's fake quantization alone, with
        the same grids, ranges and straight-through gradients); evaluation computes them either way."""
        self.exact_in_training = on
        for op in self.modules():
            if isinstance(op, GraphOp):
                op.exact_in_training = on

    def arithmetic_schedule(self) -> dict:
        """What a training checkpoint of this graph depends on beyond its weights: the runtime arithmetic its exact
        steps compute and the share of steps that compute it (distill/resume.py fingerprints)."""
        exact = self.rounding != "float"  # under "float" no step computes a runtime's integers: the share is moot
        return {"rounding": self.rounding, "exact_share": float(self.exact_share) if exact else None}

    def before_train_step(self, done: int, total: int) -> None:
        """Called by the trainers before each optimizer step (`done` steps of `total` taken): the last
        ceil(exact_share · total) steps compute the runtime's integers, the earlier ones fake-quantize only.
        Fake quantization differs from the runtime's integers by at most a step or so per op, and costs a third to
        a half of a step that computes them (tools/bench_qat_step.py); the last steps then settle the weights on
        the deployed arithmetic, and every validation point scores the weights in it."""
        on = done >= total - math.ceil(self.exact_share * total)
        if on != self.exact_in_training:  # a walk over every op only where the schedule switches
            self.set_exact_training(on)

    def grid_of(self, value: str) -> ActQuant:
        """The quantizer of a graph value's int8 grid."""
        if value == self.input_name:
            return self.input_q
        key = next(k for k, _, out in self.steps if out == value)
        return self.ops[key].grid

    @property
    def output_q(self) -> ActQuant:
        return self.grid_of(self.output_name)

    @property
    def stages(self) -> list[GraphOp]:
        """The ops in execution order (one per step)."""
        return [self.ops[k] for k, _, _ in self.steps]


QuantStudent = QuantGraph  # the name the pipeline has always used




@torch.no_grad()
def to_quant_student(model: nn.Module, rounding: str = "float", input_head: str = "auto",
                     int16: tuple[str, ...] = ()) -> QuantGraph:
    """Rewrite a float student (any nn.Module torch.fx can trace, made of the supported ops) as a QuantGraph.
    The input model is not modified. `rounding`: the runtime arithmetic QAT computes (quantize/arithmetic.py).
    `input_head`: "auto" standardises the input in float before one QUANTIZE when its channels' ranges cannot share
    one int8 scale (quantize/input_head.py), "on" always (a student with a Normalize layer first), "off" never.
    `int16`: op kinds built with int16 activations and int8 weights (TFLite's 16×8 mode; names in
    quantize/int16_ops.py INT16_KINDS). Raises UnsupportedOpError naming the layer it cannot express in int8,
    ValueError for an unknown `int16` kind, ConfigError for one the model does not have."""
    unknown = sorted(set(int16) - set(INT16_KINDS))
    if unknown:
        raise ValueError(f"no 16×8 form for {unknown}; int16 activations exist for {list(INT16_KINDS)}")
    was_training = model.training
    model.eval()
    try:
        gm = capture(model)
    finally:
        model.train(was_training)
    check_supported(gm)
    ctx = RewriteContext(gm, dict(gm.named_modules()), input_head=input_head, int16=frozenset(int16))
    input_q, input_name, output_name = ActQuant(), None, None
    for node in gm.graph.nodes:
        if node.name in ctx.done:
            continue
        kind = ctx.kind(node)
        if kind == "input":
            input_name = ctx.input_name = node.name
            readers = [u for u in node.users if ctx.kind(u) != "meta"]  # ids.shape[0] / ids.size(0) read no values
            if readers and all(ctx.kind(u) in ("embedding", "attention") for u in readers):
                input_q = None  # token ids: gathered, never quantized
            else:
                input_q.name = "the input"
            ctx.grids[node.name] = input_q
        elif kind == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node):
                raise UnsupportedOpError("The student's forward must return one tensor (the logits); it returns "
                                         f"{type(out).__name__}.")
            output_name = ctx.tensor_input(node, out)
        else:
            BUILDERS[kind](ctx, node)
    graph = QuantGraph(input_q, ctx.ops, ctx.steps, input_name, output_name, ctx.head)
    unused = [k for k in int16 if not any(getattr(op, "kind", "") == k for op in graph.ops.values())]
    if unused:  # asked for and silently not done would be litert-torch#627's failure
        raise ConfigError(f"int16 activations were asked for {unused} (quant.int16), but the student has no such op "
                          f"({type(model).__name__}); remove them from quant.int16.")
    graph.set_rounding(rounding)
    return graph
