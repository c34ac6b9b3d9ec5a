"""Student search under a budget: enumerate architectures, cost each exactly enough to decide, keep those that
fit every hard limit, pick by a documented rule.

Cost per candidate (no training, no export): the int8 QuantStudent is built from the float architecture and run once
on a dummy input; parameters and MACs are counted on its layers, weight bytes are int8 weights + int32 biases,
the arena is the largest sum of int8 activations alive at once in the chain (the same rule as the .tflite cost
model), and the file size adds the flatbuffer overhead fitted on our exports (per layer and per channel). Tests check the chosen student against its
exported .tflite file.

Rule: among candidates that fit (every budget limit, and at most half the teacher's parameters in a build), the one
with the most parameters (capacity), ties broken by fewer MACs. It is cheap, monotone in the budget, and needs no
proxy training; its weakness (capacity is not accuracy) is stated in the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from edgedistill.budget import Budget
from edgedistill.data.splits import Normalizer
from edgedistill.errors import EdgeDistillError
from edgedistill.students import DEFAULT_FAMILY, STUDENT_FAMILIES, StudentArch, build_student, count_params

WIDTHS = (4, 6, 8, 12, 16, 24, 32, 48, 64)
DEPTHS = (2, 3, 4)
# int8 .tflite bytes beyond weights + biases, fitted on 7 of our exports (cnn/dscnn, 4-11 layers, 67-1547 output
# channels): 2,753 B + 22.6 B per output channel (scales, zero points) + 696 B per layer; worst residual 325 B.
# A 512 B margin keeps the estimate on the safe side of a flash limit.
OVERHEAD_FIXED, OVERHEAD_PER_CHANNEL, OVERHEAD_PER_LAYER, OVERHEAD_MARGIN = 2753, 22.6, 696, 512
ALIGN = 16


class InfeasibleBudgetError(EdgeDistillError):
    """No candidate fits the budget; raised before any training."""


@dataclass(frozen=True)
class Candidate:
    arch: StudentArch
    params: int
    macs: int
    weight_bytes: int
    file_bytes: int
    arena_bytes: int
    violations: tuple[str, ...] = ()

    @property
    def fits(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = self.arch.describe()
        d["fits"] = self.fits
        return d


@dataclass
class SearchResult:
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    rule: str = "most parameters among the candidates that fit every limit (ties: fewer MACs)"
    max_params: int | None = None


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@torch.no_grad()
def candidate_cost(arch: StudentArch, input_shape: tuple[int, ...], num_classes: int) -> Candidate:
    from edgedistill.quantize import to_quant_student
    from edgedistill.quantize.qmodel import QLayer

    c = input_shape[0]
    model = build_student(arch, input_shape, num_classes, Normalizer([0.0] * c, [1.0] * c, "channel")).eval()
    q = to_quant_student(model)
    sizes, macs = [int(torch.Size(input_shape).numel())], 0
    for stage in q.stages:
        def hook(mod, inp, out):
            nonlocal macs
            if isinstance(mod, QLayer):
                w = mod.weight
                macs += out.numel() * (w.shape[1] if mod.kind == "linear" else w.shape[1] * w[0, 0].numel())
            sizes.append(int(out.numel()))
        stage.register_forward_hook(hook)
    q(torch.zeros(1, *input_shape))
    peak = max(_aligned(a) + _aligned(b) for a, b in zip(sizes, sizes[1:]))
    layers = [m for m in q.modules() if isinstance(m, QLayer)]
    weights = sum(m.weight.numel() for m in layers)
    weight_bytes = weights + 4 * sum(m.bias.numel() for m in layers)
    channels = sum(m.weight.shape[0] for m in layers)
    file_bytes = int(weight_bytes + OVERHEAD_FIXED + OVERHEAD_PER_CHANNEL * channels + OVERHEAD_PER_LAYER * len(layers)
                     + OVERHEAD_MARGIN)
    # parameters as the report counts them: the float model's torch parameters (BatchNorm included, not folded)
    return Candidate(arch, count_params(model), int(macs), weight_bytes, file_bytes, peak)


def _violations(c: Candidate, b: Budget, max_params: int | None = None) -> tuple[str, ...]:
    v = []
    if max_params is not None and c.params > max_params:
        v.append("params")
    if b.flash_bytes is not None and c.file_bytes > b.flash_bytes:
        v.append("flash")
    if b.ram_bytes is not None and c.arena_bytes > b.ram_bytes:
        v.append("ram")
    if b.macs is not None and c.macs > b.macs:
        v.append("macs")
    return tuple(v)


def search(kind: str, input_shape: tuple[int, ...], num_classes: int, budget: Budget,
           families: list[str] | None = None, max_params: int | None = None) -> SearchResult:
    """Cost every candidate of the data kind's families and choose one; infeasible budgets fail here.
    `max_params` caps the student's size (the build passes half the teacher's parameters: a student as large as
    its teacher is not compression, however loose the device budget)."""
    fams = families or [DEFAULT_FAMILY[kind]] + (["dscnn"] if kind == "image" else [])
    cands = []
    for fam in fams:
        STUDENT_FAMILIES.get(fam)
        for depth in DEPTHS:
            for width in WIDTHS:
                c = candidate_cost(StudentArch(fam, width, depth), input_shape, num_classes)
                cands.append(Candidate(**{**c.__dict__, "violations": _violations(c, budget, max_params)}))
    fitting = [c for c in cands if c.fits]
    if not fitting:
        smallest = min(cands, key=lambda c: (c.file_bytes, c.arena_bytes, c.macs))
        limits = sorted({v for c in cands for v in c.violations if v in smallest.violations})
        raise InfeasibleBudgetError(
            f"No student fits the budget: the {', '.join(limits)} limit cannot be met by any of {len(cands)} "
            f"candidates. The smallest, {smallest.arch.describe()}, needs flash {smallest.file_bytes:,} B, "
            f"RAM {smallest.arena_bytes:,} B and {smallest.macs:,} MACs; a budget of at least that would work.")
    chosen = max(fitting, key=lambda c: (c.params, -c.macs))
    return SearchResult(chosen, cands, max_params=max_params)
