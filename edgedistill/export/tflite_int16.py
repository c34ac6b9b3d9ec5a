"""A converted file's 16×8 parts (quantize/int16_ops.py), made to run as written on every runtime, and checked.

Three edits, each exact (the parity tests run the file on LiteRT's builtin and reference kernels and TFLite Micro):

* `drop_marker_clamps`: MAXIMUM(x, c) with c a constant holding its type's lowest code, or MINIMUM(x, c) with c
  at the highest, whose output shares x's grid, computes x. The int8 / int16 boundaries export as such a pair, the
  way to make the converter write the QUANTIZE between an int8 and an int16 tensor (quantize/int16_ops.py); the
  pass rewires their readers to x and removes them.
* `general_int16_add_sub`: ADD / SUB options carry `pot_scale_int16`, true by the schema's default, which the
  converter leaves. LiteRT then takes its LSTM-only path for int16 whenever all three scales are powers of two
  (symmetric POT scales, one input on the output's scale) and refuses the op in Prepare ("input1_shift == 0 ||
  input2_shift == 0", tflite/kernels/sub.cc); with it false both LiteRT and TFLite Micro rescale as for any
  scales. The pass sets it false on every int16 ADD / SUB.
* `int32_bias_16x8`: a 16×8 FULLY_CONNECTED with an int32 bias must say so in `quantized_bias_type`: LiteRT's
  reference kernel otherwise reads the bias as int64 (tflite/kernels/fully_connected.cc, the quantized_bias_type
  branch) and answers wrong without a word (measured: 19.2 off on a tiny layer; the optimized kernel and TFLite
  Micro were right). The pass sets INT32 where the bias is int32.

`int16_kernels(path)` counts the file's kernels that compute on int16 (input and output int16); the exporter
compares them with the 16×8 ops the graph asked for, so a converter that folds them to float or int8 (the
failure of litert-torch#627, "16x8 mode silently ignored") stops the export instead of passing as int16.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from edgedistill.optional import require


def _schema():
    return require("ai_edge_litert.schema_py_generated")


def _load(path: Path):
    s = _schema()
    return s.ModelT.InitFromObj(s.Model.GetRootAs(Path(path).read_bytes(), 0))


def _save(model, path: Path) -> None:
    flatbuffers = require("flatbuffers")
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    Path(path).write_bytes(builder.Output())


def _opcode(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


_CODES = {7: np.int16, 9: np.int8}  # TensorType: INT16, INT8


def _grid(t) -> tuple:
    q = t.quantization
    if q is None or q.scale is None:
        return (t.type,)
    return (t.type, tuple(float(v) for v in q.scale), tuple(int(v) for v in q.zeroPoint))


def _extreme_constant(model, t, end: str) -> bool:
    """Whether tensor t is a constant whose every element is its integer type's lowest (`end` "min") or highest
    ("max") code."""
    dtype = _CODES.get(t.type)
    data = model.buffers[t.buffer].data if t.buffer < len(model.buffers) else None
    if dtype is None or data is None or len(data) == 0:
        return False
    values = np.frombuffer(bytes(bytearray(data)), dtype)
    return values.size > 0 and bool((values == getattr(np.iinfo(dtype), end)).all())


def drop_marker_clamps(path: Path) -> int:
    """Remove every MAXIMUM(x, lowest constant) and MINIMUM(x, highest constant) whose output shares x's grid
    (module doc). Returns how many."""
    s = _schema()
    model = _load(path)
    ends = {s.BuiltinOperator.MAXIMUM: "min", s.BuiltinOperator.MINIMUM: "max"}
    removed = 0
    for graph in model.subgraphs:
        keep = []
        for op in graph.operators:
            end = ends.get(_opcode(model, op))
            if end is not None and len(op.inputs) == 2:
                a, b = (int(t) for t in op.inputs)
                x, c = (a, b) if _extreme_constant(model, graph.tensors[b], end) else (b, a)
                out = int(op.outputs[0])
                if _extreme_constant(model, graph.tensors[c], end) and \
                        _grid(graph.tensors[x]) == _grid(graph.tensors[out]):
                    for other in graph.operators:
                        other.inputs = [x if int(t) == out else int(t) for t in other.inputs]
                    graph.outputs = [x if int(t) == out else int(t) for t in graph.outputs]
                    removed += 1
                    continue
            keep.append(op)
        graph.operators = keep
    if removed:
        _save(model, path)
    return removed


def _set_options(path: Path, edit) -> int:
    """Run `edit(model, graph, op) -> bool` (True: it changed the op's options) on every op of the file and save it
    when one changed. Returns how many ops changed."""
    model = _load(path)
    changed = sum(bool(edit(model, graph, op)) for graph in model.subgraphs for op in graph.operators)
    if changed:
        _save(model, path)
    return changed


def general_int16_add_sub(path: Path) -> int:
    """Set pot_scale_int16 false on every int16 ADD / SUB (module doc). Returns how many ops changed."""
    s = _schema()

    def edit(model, graph, op) -> bool:
        if _opcode(model, op) in (s.BuiltinOperator.ADD, s.BuiltinOperator.SUB) and \
                graph.tensors[int(op.outputs[0])].type == s.TensorType.INT16 and \
                op.builtinOptions is not None and op.builtinOptions.potScaleInt16:
            op.builtinOptions.potScaleInt16 = False
            return True
        return False

    return _set_options(path, edit)


def int32_bias_16x8(path: Path) -> int:
    """Declare the int32 bias of every 16×8 FULLY_CONNECTED in its options (module doc). Returns how many."""
    s = _schema()

    def edit(model, graph, op) -> bool:
        if _opcode(model, op) != s.BuiltinOperator.FULLY_CONNECTED or len(op.inputs) < 3 or int(op.inputs[2]) < 0:
            return False
        x, bias = graph.tensors[int(op.inputs[0])], graph.tensors[int(op.inputs[2])]
        if x.type == s.TensorType.INT16 and bias.type == s.TensorType.INT32 and op.builtinOptions is not None \
                and op.builtinOptions.quantizedBiasType != s.TensorType.INT32:
            op.builtinOptions.quantizedBiasType = s.TensorType.INT32
            return True
        return False

    return _set_options(path, edit)


def fix_int16(path: Path) -> None:
    """All three edits (module doc), in place."""
    drop_marker_clamps(path)
    general_int16_add_sub(path)
    int32_bias_16x8(path)


def int16_kernels(path: Path) -> Counter:
    """Builtin op name -> how many of the file's ops read an int16 activation and write int16 (QUANTIZE and
    DEQUANTIZE excluded: they convert, they do not compute)."""
    s = _schema()
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}
    model = _load(path)
    found: Counter = Counter()
    for graph in model.subgraphs:
        for op in graph.operators:
            code = _opcode(model, op)
            if code in (s.BuiltinOperator.QUANTIZE, s.BuiltinOperator.DEQUANTIZE):
                continue
            ins = [graph.tensors[int(t)] for t in op.inputs if int(t) >= 0]
            if ins and ins[0].type == s.TensorType.INT16 and graph.tensors[int(op.outputs[0])].type == \
                    s.TensorType.INT16:
                found[names[code]] += 1
    return found


TFLITE_KERNEL = {"mean": "MEAN", "sub": "SUB", "mul": "MUL", "rsqrt": "RSQRT"}  # quantize/int16_ops.py OPS16


class Int16NotWrittenError(RuntimeError):
    """The converter wrote fewer int16 kernels than the graph's 16×8 ops asked for."""


def check_int16(qmodel, path: Path) -> Counter:
    """Raise Int16NotWrittenError unless the file at `path` holds, per kernel, at least as many int16 kernels as
    the graph has 16×8 ops (quantize/int16_ops.py Op16; quantize/int16_attention.py's ops name theirs in
    `int16_kernel`). Returns the asked-for counts (empty: nothing asked)."""
    from edgedistill.quantize.int16_ops import Op16

    asked = Counter(TFLITE_KERNEL[m.kind] if isinstance(m, Op16) else m.int16_kernel for m in qmodel.modules()
                    if isinstance(m, Op16) or hasattr(m, "int16_kernel"))
    if asked:
        found = int16_kernels(path)
        missing = {k: n - found.get(k, 0) for k, n in asked.items() if found.get(k, 0) < n}
        if missing:
            raise Int16NotWrittenError(
                f"The TFLite file does not compute the 16×8 ops asked for: {dict(asked)} int16 kernels were asked, "
                f"the converter wrote {dict(found) or 'none'} ({missing} missing: folded to float or int8). The file "
                "was not kept; export without quant.int16, or report the converter version.")
    return asked
