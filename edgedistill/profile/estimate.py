"""Per-op roofline estimate of latency on a target profile, and fit checks against its limits.

    t = invoke overhead + Σ_op [ op overhead + max( MACs / (peak · efficiency[class]) , bytes moved / bandwidth ) ]

with peak the target's int8 or fp32 MAC rate (by the file's precision), efficiency the profile's per-kernel
factor, and bytes moved = weights + inputs + outputs of the op. Non-MAC ops (pooling, mean, reshape ...) count one
operation per input element at efficiency["other"] / ["pool"]. A fully-connected or batch-matmul op is costed as a
matrix-vector product ("fc": each weight byte used at most once, a classifier's head at batch 1) or a matrix-matrix
product ("matmul": MACs > weight bytes, i.e. several rows share the weights, as a decoder's projections over its
window, or the weight operand is an activation, as an attention's scores): the two run at very different shares of
the peak (a GEMV streams its weights once; a GEMM reuses them from cache). A profile without a "matmul" efficiency
costs both as "fc". The invoke overhead (`invoke_overhead_s`, once per model run) and the per-op overhead are
fitted separately where a profile has both (tools/bench_estimator.py: conv students with few ops and decoders with
many); a profile without the former folds it into the latter. The estimate is a model, not a measurement: the report
always prints it with its source and, where ground truth exists, its measured error.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from edgedistill.budget import flash_use
from edgedistill.profile.cost import ModelCost
from edgedistill.profile.ram import ram_figure
from edgedistill.targets import TargetProfile


@dataclass
class Estimate:
    target: str
    precision: str
    total_ms: float
    per_op: list[dict] = field(default_factory=list)
    model: str = "roofline: invoke overhead + per op (overhead + max(MACs / (peak x efficiency), bytes / bandwidth))"

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_latency(cost: ModelCost, target: TargetProfile, precision: str) -> Estimate:
    peak = target.peak_int8_macs_per_s if precision == "int8" else target.peak_fp32_macs_per_s
    if peak is None:
        raise ValueError(f"target {target.name} has no {precision} throughput")
    per_op, total = [], target.invoke_overhead_s or 0.0
    for layer in cost.layers:
        kind = cost_class(layer)
        eff = target.efficiency.get(kind, target.efficiency.get("fc" if kind == "matmul" else "other",
                                                                target.efficiency.get("other", 0.5)))
        work = layer.macs if layer.macs else layer.ops
        t_compute = work / (peak * eff)
        t_memory = (layer.weight_bytes + layer.input_bytes + layer.output_bytes) / target.memory_bandwidth_bytes_per_s
        t = target.op_overhead_s + max(t_compute, t_memory)
        total += t
        per_op.append({"index": layer.index, "op": layer.op, "kind": layer.kind, "macs": layer.macs,
                       "ms": t * 1e3, "bound": "compute" if t_compute >= t_memory else "memory"})
    return Estimate(target.name, precision, total * 1e3, per_op)


def cost_class(layer) -> str:
    """The efficiency key of one op (module doc): "matmul" for a fully-connected or batch-matmul op that reuses its
    weights (MACs > weight bytes), else its kind (profile.cost.OpCost.kind)."""
    if layer.kind == "fc" and layer.macs > layer.weight_bytes:
        return "matmul"
    return layer.kind


@dataclass(frozen=True)
class FitCheck:
    check: str
    value: float | str | None
    limit: float | str | None
    passed: bool
    detail: str = ""


def fit_checks(cost: ModelCost, file_bytes: int, ram_bytes: int | None, op_names: list[str], float_tensors: int,
               target: TargetProfile, precision_detail: str = "", tokenizer_bytes: int | None = None) -> list[FitCheck]:
    """Flash, RAM, operator support and precision against the target's limits. Flash is the model file plus the
    tables its device tokenizer reads (`tokenizer_bytes`, StudentTokenizer.device_bytes(); None: no tokenizer),
    edgedistill.budget.flash_use, and its detail names both parts. `ram_bytes` is the figure
    edgedistill.profile.ram names for the target's runtime (None: not known, not checked). The operators a target
    runs are its runtime's own set (targets/ops/, derived from the runtime), narrowed by the profile's `ops` if given;
    `precision_detail` names the cause when float tensors remain (a hybrid file, float ops)."""
    from edgedistill.profile.opsets import target_ops

    flash = flash_use(file_bytes, tokenizer_bytes)
    checks = [
        FitCheck("flash", flash, target.flash_bytes, target.flash_bytes is None or flash <= target.flash_bytes,
                 f"model file {file_bytes:,} B + tokenizer tables {tokenizer_bytes:,} B" if tokenizer_bytes
                 else "bytes of the model file"),
        FitCheck("ram", ram_bytes, target.ram_bytes,
                 target.ram_bytes is None or ram_bytes is None or ram_bytes <= target.ram_bytes,
                 ram_figure(target.runtime)),
    ]
    provided = target_ops(target)
    unsupported = [] if provided is None else sorted(set(op_names) - provided)
    checks.append(FitCheck("ops", ", ".join(unsupported) or "all supported", None, not unsupported,
                           f"operators not provided by {target.runtime} on {target.name}: {', '.join(unsupported)}"
                           if unsupported else ""))
    if target.precisions == ["int8"]:
        detail = (precision_detail or "the target runs only int8 kernels") if float_tensors else ""
        checks.append(FitCheck("precision", f"{float_tensors} float tensors", "int8 only", float_tensors == 0, detail))
    return checks
