"""Edits of a converted .tflite file that the converter cannot be asked for, each exact and checked by parity.

* `drop_index_wraparound`: an embedding lookup `table[ids]` follows Python's indexing, where a negative index counts
  from the end, so the converter writes `SELECT(LESS(ids, 0), ADD(ids, V), ids)` before the GATHER_ND. Token ids
  are never negative (the tokenizers write 0 … V − 1), so the three ops compute `ids`; TFLite Micro cannot run them
  (its SELECT_V2 takes no int32, and it has no SELECT at all). The pass rewires every reader of the SELECT to `ids`
  and removes the three ops.
* `drop_identity_quantize`: a QUANTIZE from int8 to int8 with the same scale and zero point computes its input. The
  converter writes one over a whole embedding table (the table's weight-style Q/DQ and the gather's output differ
  in type only), so every inference would copy the table into the arena; the pass rewires its readers to the input
  and removes it.

The file is read and written with the TFLite flatbuffer schema's object API (ai_edge_litert's generated module).
"""

from __future__ import annotations

from pathlib import Path

from edgedistill.optional import require


def _schema():
    return require("ai_edge_litert.schema_py_generated")


def _opcode(model, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _same_grid(a, b) -> bool:
    qa, qb = a.quantization, b.quantization
    if qa is None or qb is None or a.type != b.type:
        return False
    return (list(qa.scale if qa.scale is not None else []) == list(qb.scale if qb.scale is not None else [])
            and list(qa.zeroPoint if qa.zeroPoint is not None else []) ==
            list(qb.zeroPoint if qb.zeroPoint is not None else []))


def drop_identity_quantize(path: Path) -> int:
    """Remove every int8 -> int8 QUANTIZE whose input and output share scale and zero point (rewritten in place
    when anything changed). Returns the number of ops removed."""
    s = _schema()
    flatbuffers = require("flatbuffers")
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(Path(path).read_bytes(), 0))
    removed = 0
    for graph in model.subgraphs:
        keep = []
        for op in graph.operators:
            if _opcode(model, op) == s.BuiltinOperator.QUANTIZE and len(op.inputs) == 1:
                src, out = int(op.inputs[0]), int(op.outputs[0])
                if _same_grid(graph.tensors[src], graph.tensors[out]) and out not in [int(t) for t in graph.outputs]:
                    for other in graph.operators:
                        other.inputs = [src if int(t) == out else int(t) for t in other.inputs]
                    removed += 1
                    continue
            keep.append(op)
        graph.operators = keep
    if removed:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        Path(path).write_bytes(builder.Output())
    return removed


def drop_index_wraparound(path: Path) -> int:
    """Remove the negative-index wrap-around before each gather in the .tflite file at `path` (rewritten in place
    when anything changed). Returns the number of lookups fixed."""
    s = _schema()
    flatbuffers = require("flatbuffers")
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(Path(path).read_bytes(), 0))
    op_ids = s.BuiltinOperator
    fixed = 0
    for graph in model.subgraphs:
        producer = {int(t): k for k, op in enumerate(graph.operators) for t in op.outputs}
        readers: dict[int, list[int]] = {}
        for k, op in enumerate(graph.operators):
            for t in op.inputs:
                readers.setdefault(int(t), []).append(k)
        dead: set[int] = set()
        for k, op in enumerate(graph.operators):
            if _opcode(model, op) not in (op_ids.SELECT, op_ids.SELECT_V2) or len(op.inputs) != 3:
                continue
            cond, then, other = (int(t) for t in op.inputs)
            less, add = producer.get(cond), producer.get(then)
            if less is None or add is None:
                continue
            less_op, add_op = graph.operators[less], graph.operators[add]
            if (_opcode(model, less_op) != op_ids.LESS or _opcode(model, add_op) != op_ids.ADD
                    or int(less_op.inputs[0]) != other or int(add_op.inputs[0]) != other
                    or len(readers.get(cond, [])) != 1 or len(readers.get(then, [])) != 1):
                continue
            out = int(op.outputs[0])
            for r in readers.get(out, []):
                graph.operators[r].inputs = [other if int(t) == out else int(t) for t in graph.operators[r].inputs]
            graph.outputs = [other if int(t) == out else int(t) for t in graph.outputs]
            dead |= {k, less, add}
            fixed += 1
        graph.operators = [op for k, op in enumerate(graph.operators) if k not in dead]
    if fixed:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        Path(path).write_bytes(builder.Output())
    return fixed


def drop_unused_tensors(path: Path) -> int:
    """Remove every tensor that no operator reads or writes and that is no subgraph input / output (the file at
    `path` is rewritten in place when anything changed; tensor indices in operators, subgraph inputs / outputs and
    signatures are renumbered). Returns the number of tensors removed."""
    s = _schema()
    flatbuffers = require("flatbuffers")
    model = s.ModelT.InitFromObj(s.Model.GetRootAs(Path(path).read_bytes(), 0))
    removed = 0
    for k, graph in enumerate(model.subgraphs):
        used = {int(t) for t in list(graph.inputs) + list(graph.outputs)}
        for op in graph.operators:
            for field in (op.inputs, op.outputs, op.intermediates):
                used |= {int(t) for t in (field if field is not None else []) if int(t) >= 0}
        keep = [i for i in range(len(graph.tensors)) if i in used]
        if len(keep) == len(graph.tensors):
            continue
        new = {old: i for i, old in enumerate(keep)}
        renumber = lambda ts: [new[int(t)] if int(t) >= 0 else int(t) for t in ts]  # noqa: E731  (-1: no operand)
        for op in graph.operators:
            op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
            if op.intermediates is not None:
                op.intermediates = renumber(op.intermediates)
        graph.inputs, graph.outputs = renumber(graph.inputs), renumber(graph.outputs)
        for sig in model.signatureDefs or []:
            if sig.subgraphIndex == k:
                for t in list(sig.inputs or []) + list(sig.outputs or []):
                    t.tensorIndex = new[int(t.tensorIndex)]
        removed += len(graph.tensors) - len(keep)
        graph.tensors = [graph.tensors[i] for i in keep]
    if removed:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        Path(path).write_bytes(builder.Output())
    return removed
