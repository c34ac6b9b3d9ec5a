"""The int8 .tflite file's ops and tensors as `students.cost.graph_cost` predicts them, built op by op.

Each graph op is lowered (students/cost_ops.py, students/cost_text.py) to the TFLite ops the converter writes for
it; every written op reads named tensors and writes one. `FileGraph` keeps, per tensor, its bytes and its lifetime
[the op that writes it, the last op that reads it] (what TFLite Micro's planner sees: profile/tflm_planner.py), and
per op the row profile/cost.py reads from a file: MACs, weights, constant operand bytes, input and output bytes.
Constant tensors (an embedding table, learned positions, LayerNorm's γ and β) are never planned: an op reading one
counts its bytes as weight bytes, as profile/cost.py does for a file's constants. The scratch buffers a kernel
requests from TFLite Micro's arena (MEAN's: profile.cost.kernel_scratch) are planned after every tensor, each live
at its op only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from edgedistill.profile.tflm_planner import Buffer, align


# the TFLite builtin each file op kind is, and the cost class profile/estimate.py gives it (profile/cost.py's)
TFLITE_OP = {"conv": "CONV_2D", "depthwise": "DEPTHWISE_CONV_2D", "fc": "FULLY_CONNECTED", "maxpool": "MAX_POOL_2D",
             "avgpool": "AVERAGE_POOL_2D", "mean": "MEAN", "add": "ADD", "sub": "SUB", "mul": "MUL", "pad": "PAD",
             "reshape": "RESHAPE", "flatten": "RESHAPE", "transpose": "TRANSPOSE", "hardswish": "HARD_SWISH",
             "sigmoid": "LOGISTIC", "gelu": "GELU", "gelu_tanh": "GELU", "concat": "CONCATENATION", "relu": "RELU",
             "relu6": "RELU6", "first": "SLICE", "quantize": "QUANTIZE", "gather_nd": "GATHER_ND", "equal": "EQUAL",
             "greater": "GREATER", "select": "SELECT_V2", "softmax": "SOFTMAX", "rsqrt": "RSQRT",
             "matmul_fc": "FULLY_CONNECTED", "batch_matmul": "BATCH_MATMUL"}
# constant operands an op with `const` bytes of them reads (one unless listed): SLICE's begin and size
SMALL_CONSTANTS = {"first": 2}
COST_KIND = {"conv": "conv", "depthwise": "depthwise", "fc": "fc", "matmul_fc": "fc", "batch_matmul": "fc",
             "maxpool": "pool", "avgpool": "pool", "mean": "pool"}


@dataclass(frozen=True)
class OpCost:
    """One op of the int8 graph (as written to .tflite): its kind, MACs, weights and output bytes (int8: elements)."""

    name: str
    kind: str
    macs: int = 0
    weights: int = 0  # int8 weight elements of a conv / linear
    biases: int = 0   # int32 bias elements (= output channels of a conv / linear)
    out_elems: int = 0    # bytes of the output (int8 elements; 4 per element for float32 / int32 tensors)
    fused: bool = False  # an activation fused into this op's output (conv / linear / ADD / SUB / MUL + ReLU ...)
    in_elems: int = 0     # bytes of the activation tensors the op reads (all its non-constant inputs)
    first_in_elems: int = 0  # elements of its first input (the "ops" of an op without MACs, as profile/cost.py counts)
    const_bytes: int = 0  # constant operands besides a layer's weights: int32 shape / permutation / axis / padding
    #                       operands, scalars, and constant tensors such as an embedding table
    out_channels: int = 0  # a conv / linear's output channels: one weight scale each (with or without a bias)
    operand_bytes: tuple[int, ...] = ()  # bytes of each activation tensor it reads, in operand order
    out_itemsize: int = 1  # bytes per element of its output (2: an int16 tensor of a 16×8 op)


@dataclass
class Tensor:
    """One tensor of the file: bytes, elements, lifetime in op steps; `constant`: stored in the file, not planned."""

    bytes: int
    elems: int
    first: int
    last: int
    constant: bool = False


class FileGraph:
    """The file being predicted. `alias` maps a graph value to the tensor that holds it when the converter writes no
    op for it (a folded flatten); `shared` holds tensors the converter computes once for the whole graph (the
    attention's padding mask); `learned` counts the int8 elements of the model's constant tensors."""

    def __init__(self) -> None:
        self.tensors: dict[str, Tensor] = {}  # in creation order (the file's tensor order: the planner's tie-break)
        self.ops: list[OpCost] = []
        self.alias: dict[str, str] = {}
        self.shared: dict[str, str] = {}
        self.scratch: list[Buffer] = []
        self.learned = 0
        self.fixed: list[int] = []  # bytes of each constant tensor that is no parameter (a causal mask)
        self.small_constants = 0  # constant operands written per op (shape / axis / padding operands, scalars)

    def src(self, value: str) -> str:
        return self.alias.get(value, value)

    def input(self, name: str, elems: int, itemsize: int) -> None:
        """The graph input: alive from the first op."""
        self.tensors[name] = Tensor(elems * itemsize, elems, 0, 0)

    def constant(self, name: str, elems: int, learned: bool = True, itemsize: int = 1) -> str:
        """A constant tensor: an int8 one of the model (1 byte per element), or with `learned` False one that is no
        parameter (a causal mask; the KV-cache step's int32 slot indices, `itemsize` 4)."""
        self.tensors[name] = Tensor(elems * itemsize, elems, 0, 0, constant=True)
        self.learned += elems if learned else 0
        self.fixed += [] if learned else [elems * itemsize]
        return name

    def emit(self, name: str, kind: str, reads: list[str], out: str, elems: int, *, itemsize: int = 1,
             const: int = 0, macs: int = 0, cost: OpCost | None = None, scratch: tuple[int, ...] = ()) -> str:
        """Append one file op reading `reads` (graph values or tensors) and writing `out` (`elems` elements of
        `itemsize` bytes); `const`: bytes of its small constant operands; `cost`: a layer's row (weights, MACs);
        `scratch`: bytes of the kernel's scratch buffers. Returns `out`."""
        k = len(self.ops)
        tensors = [self.tensors[self.src(r)] for r in reads]
        for t in tensors:
            if not t.constant:
                t.last = k
        cost = cost or OpCost(name, kind, macs=macs)
        self.ops.append(replace(cost, out_elems=elems * itemsize,
                                in_elems=sum(t.bytes for t in tensors if not t.constant),
                                first_in_elems=tensors[0].elems if tensors else 0,
                                const_bytes=const + sum(t.bytes for t in tensors if t.constant),
                                operand_bytes=tuple(t.bytes for t in tensors if not t.constant),
                                out_itemsize=itemsize))
        self.small_constants += SMALL_CONSTANTS.get(kind, 1) if const > 0 else 0
        self.tensors[out] = Tensor(elems * itemsize, elems, k, k)
        self.scratch += [Buffer(align(b), k, k) for b in scratch]
        return out

    def buffers(self, output: str) -> list[Buffer]:
        """The planned tensors (aligned sizes, lifetimes), the graph output alive to the last op."""
        self.tensors[self.src(output)].last = len(self.ops) - 1
        return [Buffer(align(t.bytes), t.first, max(t.last, t.first)) for t in self.tensors.values()
                if not t.constant] + self.scratch
