"""Where int8 went, per layer: the deployed int8 graph's activations against the float student's, value by value.

For every op of the quantized graph (quantize/graph.py) on the calibration set:

* SQNR (signal-to-quantization-noise ratio, dB) of the op's output: 10 · log10(Σ f² / Σ (f − q)²), f the float
  student's activation (the same architecture rebuilt as a graph, every quantizer off: BN folding is exact), q the
  int8 model's dequantized activation. Errors accumulate: a layer's figure includes what the layers before it lost.
  For a QAT model the weights also moved during QAT, which the figure includes too (it compares the two models a user
  has). This is the per-tensor comparison of ai-edge-quantizer's `validate` (MSE / SNR per tensor) and Sony MCT's
  XQuant report. Exact agreement (no noise) is reported as `SQNR_CAP` dB.
* Weight range (min / max of the folded float weights the int8 weights were rounded from) for conv / linear ops.
* Activation range: the float activations' min / max, and the range the int8 grid of the output can represent,
  [(−128 − z) · s, (127 − z) · s].
* Saturation: the share of the op's output values that the int8 grid clipped, i.e. whose unclipped code
  round(x / s) + z lies below −128 or above 127 (so they were written as −128 / 127). A value that lands on the
  bound without being clipped (a ReLU's zero on zero point −128) is not saturation. Grids the int8 spec fixes
  (LOGISTIC's output, the hardsigmoid [0, 1] clamp) are skipped: their clipping is the op.

The int8 model is run as the QuantGraph that was exported; parity (export/parity.py) proves each file computes the
same. Neither model is modified (the temporary hooks are removed).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from edgedistill.quantize.graph import QuantGraph, to_quant_student
from edgedistill.quantize.ranges import QMAX, QMIN

SQNR_CAP = 120.0  # dB: float32 agreement; an exact match (zero noise) is reported as this
SATURATING = 0.01  # a layer whose output clips more than 1 % of its values is named as saturating
SAMPLES = 256  # calibration samples the build inspects: within ~0.2 dB of 1000 on digits' dscnn, 4x less time


@dataclass(frozen=True)
class LayerStats:
    """One graph op's figures on the calibration set. Ranges in the float units of the activations / weights."""

    name: str
    op: str
    sqnr_db: float
    act_min: float
    act_max: float
    grid_min: float
    grid_max: float
    clipped_low: float   # share of output values clipped to -128
    clipped_high: float  # share of output values clipped to 127
    weight_min: float | None = None
    weight_max: float | None = None
    fixed_grid: bool = False

    @property
    def saturation(self) -> float:
        return self.clipped_low + self.clipped_high

    def to_dict(self) -> dict:
        return {**asdict(self), "saturation": self.saturation}


def sqnr_db(signal_power: float, noise_power: float) -> float:
    """10 · log10(signal / noise), clamped to ±SQNR_CAP (zero noise: +SQNR_CAP)."""
    if noise_power <= 0.0:
        return SQNR_CAP
    if signal_power <= 0.0:
        return -SQNR_CAP
    return max(-SQNR_CAP, min(SQNR_CAP, 10.0 * math.log10(signal_power / noise_power)))


class _Acc:
    def __init__(self) -> None:
        self.sig = self.noise = 0.0
        self.lo, self.hi = math.inf, -math.inf
        self.low = self.high = self.total = 0

    def add(self, f: torch.Tensor, q: torch.Tensor) -> None:
        f64, q64 = f.double(), q.double()
        self.sig += float((f64 * f64).sum())
        self.noise += float(((f64 - q64) ** 2).sum())
        if f.numel():
            self.lo, self.hi = min(self.lo, float(f.min())), max(self.hi, float(f.max()))


def _run(graph: QuantGraph, x: torch.Tensor, on_step=None) -> dict[str, torch.Tensor]:
    """Every graph value of `graph` on `x` (QuantGraph.forward, step by step; not in export mode)."""
    env = {graph.input_name: graph.quantize_input(x)}
    for key, ins, out in graph.steps:
        if on_step is not None:
            on_step(key)
        env[out] = graph.ops[key](*[env[i] for i in ins])
    return env


@torch.no_grad()
def layer_report(float_model: nn.Module, qmodel: QuantGraph, x: torch.Tensor, batch: int = 256) -> list[LayerStats]:
    """Per-op figures (module docstring) of `qmodel` (the int8 graph, in "quant" mode) against `float_model` on the
    samples `x` (N × input shape, raw as the model takes them). Returns one LayerStats per op in graph order, the
    input quantizer first (name "input"). Raises ValueError when the two graphs differ in structure."""
    ref = to_quant_student(copy.deepcopy(float_model).eval(),  # every quantizer in "float" mode: the float model
                           input_head="on" if qmodel.head is not None else "off")
    ref.set_mode("float")
    if [(k, o) for k, _, o in ref.steps] != [(k, o) for k, _, o in qmodel.steps]:
        raise ValueError("layer_report: the float model and the int8 graph have different structures")
    # token ids (a text student's input) are not quantized: no "input" row then
    keys = ([] if qmodel.index_input else ["input"]) + [k for k, _, _ in qmodel.steps]
    accs = {k: _Acc() for k in keys}
    owner = {"input": qmodel.input_q, **{k: getattr(qmodel.ops[k], "out_q", None) for k, _, _ in qmodel.steps}}
    current = ["input"]

    def clip_hook(module, args):
        if module is not owner.get(current[0]) or module.mode != "quant" or module.fixed is not None:
            return
        code = torch.round(args[0] / float(module.scale)) + int(module.zero_point)
        acc = accs[current[0]]
        acc.low += int((code < QMIN).sum())
        acc.high += int((code > QMAX).sum())
        acc.total += code.numel()

    handles = [q.register_forward_pre_hook(clip_hook) for q in {id(q): q for q in owner.values() if q is not None}
               .values()]
    was_training = qmodel.training
    qmodel.eval()
    try:
        for i in range(0, len(x), batch):
            xb = x[i:i + batch]
            current[0] = "input"
            qv = _run(qmodel, xb, lambda k: current.__setitem__(0, k))
            fv = _run(ref, xb)
            if not qmodel.index_input:
                accs["input"].add(fv[ref.input_name], qv[qmodel.input_name])
            for key, _, out in qmodel.steps:
                accs[key].add(fv[out], qv[out])
    finally:
        for h in handles:
            h.remove()
        qmodel.train(was_training)
    return [_stats(k, qmodel, owner[k], accs[k]) for k in keys]


def _stats(key: str, qmodel: QuantGraph, q, acc: _Acc) -> LayerStats:
    op = None if key == "input" else qmodel.ops[key]
    grid = q if q is not None else qmodel.grid_of(next(o for k, _, o in qmodel.steps if k == key))
    s, z = float(grid.scale), int(grid.zero_point)
    w = getattr(op, "weight", None)
    n = max(acc.total, 1)
    return LayerStats(
        name="input" if op is None else op.name, op="quantize" if op is None else str(getattr(op, "kind", "op")),
        sqnr_db=sqnr_db(acc.sig, acc.noise), act_min=acc.lo, act_max=acc.hi,
        grid_min=(QMIN - z) * s, grid_max=(QMAX - z) * s, clipped_low=acc.low / n, clipped_high=acc.high / n,
        weight_min=None if w is None else float(w.min()), weight_max=None if w is None else float(w.max()),
        fixed_grid=q is not None and q.fixed is not None)


def layer_section(stats: list[LayerStats], samples: int) -> dict:
    """report.json's `int8_layers`: every op's figures, the saturating ones and the lowest-SQNR op named."""
    rows = [s.to_dict() for s in stats]
    saturating = [r["name"] for r in rows if r["saturation"] > SATURATING]
    ops = [r for r in rows if r["name"] != "input"]  # the input quantizer is no layer
    worst = min(ops or rows, key=lambda r: r["sqnr_db"]) if rows else None
    return {"samples": samples, "layers": rows, "saturating": saturating, "saturating_above": SATURATING,
            "lowest_sqnr": None if worst is None else {"name": worst["name"], "sqnr_db": worst["sqnr_db"]},
            "how": "SQNR of each op's int8 output (dequantized) against the float student's, on the calibration "
                   "set; errors accumulate through the graph"}
