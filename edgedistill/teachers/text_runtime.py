"""Text teachers run by an inference runtime: ONNX (onnxruntime) and TFLite (LiteRT interpreter).

The model takes integer token ids: `input_ids`, `attention_mask` and, optionally, `token_type_ids`, as optimum's
export writes them (int64 in ONNX; int32 or int64 in TFLite, where litert-torch narrows int64 to int32). Inputs
are matched by name (a name containing `input_ids`, `attention_mask`, `token_type_ids`), else by position in that
order. A static sequence dimension is the model's maximum length and every batch is padded to it; a static batch
dimension is fed slice by slice (the last slice padded with empty texts, whose outputs are dropped).

The tokenizer is the `tokenizer.json` beside the model file, or the file named by `tokenizer=` (--teacher-tokenizer).
The maximum length, when the model's shape does not fix it: the tokenizer files' own limit, else a config.json
beside the model (optimum writes it), else 512.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from edgedistill.errors import ModelLoadError
from edgedistill.runtimes import LiteRTRunner, OnnxRunner
from edgedistill.runtimes.base import dequantize_output
from edgedistill.teachers.base import existing_file
from edgedistill.teachers.contract import OutputInfo
from edgedistill.teachers.runtime_formats import _dim, _onnx_final_ops, _tflite_final_ops
from edgedistill.teachers.text import DEFAULT_MAX_LENGTH, Encoded, TextTeacher, tokenizer_max_length

ROLES = ("input_ids", "attention_mask", "token_type_ids")
_INT_DTYPES = {"tensor(int64)": np.int64, "tensor(int32)": np.int32}


def input_roles(names: list[str], where: Path) -> list[str]:
    """The role (one of ROLES) of each model input: by name, else by position (ids, mask, types)."""
    by_name = [next((r for r in ROLES if r in n.lower()), None) for n in names]
    if all(by_name) and len(set(by_name)) == len(by_name) and "input_ids" in by_name:
        return by_name
    if not any(by_name) and 1 <= len(names) <= len(ROLES):
        return list(ROLES[: len(names)])
    raise ModelLoadError(
        f"{where} takes inputs {', '.join(repr(n) for n in names)}; a text teacher feeds input_ids, attention_mask "
        "and optionally token_type_ids (integer token ids, as optimum's export names them). Export the model with "
        "those inputs only.")


def find_tokenizer(model: Path, tokenizer: str | Path | None) -> Path:
    if tokenizer:
        return existing_file(tokenizer, "Tokenizer file")
    beside = model.with_name("tokenizer.json")
    if beside.is_file():
        return beside
    raise ModelLoadError(
        f"{model} takes token ids, so it needs its tokenizer, and there is no tokenizer.json beside it. Name the "
        "tokenizer.json the model was trained with: --teacher-tokenizer FILE (tokenizer= in the API), or copy it "
        f"next to the model as {beside}. A transformers tokenizer writes one with `tokenizer.save_pretrained(dir)`.")


def max_length_for(model: Path, tokenizer: Path, fixed: int | None, requested: int | None) -> int:
    if fixed:
        return fixed if not requested else min(fixed, requested)
    if requested:
        return requested
    from edgedistill.teachers.text_transformers import positions, read_config

    config = model.with_name("config.json")
    limits = [n for n in (tokenizer_max_length(tokenizer), positions(read_config(model.parent))
                          if config.is_file() else None) if n]
    return min(limits) if limits else DEFAULT_MAX_LENGTH


def onnx_files(path: Path) -> list[Path]:
    """The .onnx file and the external-data files its initializers name: together they are the weights, and the
    teacher's identity (its logit-cache key) must change when either does."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # onnxruntime reports an unreadable file in its own words
        return [path]
    names = {e.value for init in graph.initializer if init.data_location == onnx.TensorProto.EXTERNAL
             for e in init.external_data if e.key == "location"}
    return [path, *(path.parent / n for n in sorted(names) if (path.parent / n).is_file())]


# ops that carry token ids to the embedding lookup unchanged in value (a cast to int32, a reshape)
_ID_PASS_THROUGH = {"Cast", "Identity", "Reshape", "Unsqueeze", "Squeeze", "Flatten"}


def onnx_embedding_rows(path: Path, ids_input: str) -> int | None:
    """Rows of the embedding table the model's token-id input indexes: the first Gather fed by `ids_input` (through
    casts and reshapes) whose data is a constant 2-D table. None when the graph shows no such lookup (the ids then
    reach the model's own code path unchecked here; onnxruntime still refuses an id out of range)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    tables = {i.name: tuple(i.dims) for i in graph.initializer}
    tables.update({n.output[0]: tuple(n.attribute[0].t.dims) for n in graph.node
                   if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"})
    frontier, seen = [ids_input], {ids_input}
    while frontier:
        name = frontier.pop(0)
        for n in graph.node:
            table = tables.get(n.input[0], ()) if n.input else ()
            if n.op_type == "Gather" and len(n.input) > 1 and n.input[1] == name and len(table) == 2:
                return int(table[0])
            if n.op_type in _ID_PASS_THROUGH and n.input and n.input[0] == name and n.output[0] not in seen:
                seen.add(n.output[0])
                frontier.append(n.output[0])
    return None


def vocabulary_mismatch(model: Path, tokenizer: Path, tokens: int, rows: int | None, detail: str = ""
                        ) -> ModelLoadError:
    """The refusal for a tokenizer whose ids do not fit the model's embedding table (`rows`; None: unknown)."""
    table = f"an embedding table of {rows:,} rows (ids 0..{rows - 1:,})" if rows else "a smaller vocabulary"
    return ModelLoadError(
        f"The tokenizer {tokenizer} has {tokens:,} tokens (ids 0..{tokens - 1:,}), but {model} has {table} for its "
        f"input_ids{detail}: ids past the table make the runtime fail (or, where it wraps them, read other rows), so "
        "this is not the tokenizer the model was trained with. Give the model's own tokenizer.json with "
        "--teacher-tokenizer FILE (tokenizer= in the API); optimum's export writes it beside model.onnx.")


def _feeds(enc: Encoded, roles: list[str]) -> list[np.ndarray]:
    return [getattr(enc, r) for r in roles]


def _padded(enc: Encoded, rows: int) -> Encoded:
    """`enc` with rows of token id 0 appended (only the first unmasked, so no row is all-masked: no NaN)."""
    extra = rows - len(enc.input_ids)
    if extra <= 0:
        return enc
    t = enc.input_ids.shape[1]
    mask = np.zeros((extra, t), np.int64)
    mask[:, 0] = 1
    pad = np.zeros((extra, t), np.int64)
    return Encoded(np.concatenate([enc.input_ids, pad]), np.concatenate([enc.attention_mask, mask]),
                   np.concatenate([enc.token_type_ids, np.zeros_like(pad)]), enc.truncated)


def _sliced(run, enc: Encoded, batch: int | None) -> list[np.ndarray]:
    """Run `run(enc)` on a model with a static batch `batch` (None: any batch) and concatenate the outputs."""
    n = len(enc.input_ids)
    if batch in (None, n):
        return run(enc)
    parts = []
    for i in range(0, n, batch):
        part = Encoded(enc.input_ids[i : i + batch], enc.attention_mask[i : i + batch],
                       enc.token_type_ids[i : i + batch], 0)
        parts.append([o[: len(part.input_ids)] for o in run(_padded(part, batch))])
    return [np.concatenate(col) for col in zip(*parts)]


class OnnxTextTeacher(TextTeacher):
    """An ONNX text classifier run by onnxruntime: `logits(texts)` float32 N×K."""

    format = "onnx-text"

    def __init__(self, path: str | Path, tokenizer: str | Path | None = None, max_length: int | None = None,
                 name: str | None = None):
        p = existing_file(path, "ONNX file")
        self.runner = OnnxRunner(p)
        self._final = _onnx_final_ops(p)
        inputs = self.runner.session.get_inputs()
        self.roles = input_roles([i.name for i in inputs], p)
        self._names = [i.name for i in inputs]
        self._dtypes = [_INT_DTYPES.get(i.type, np.int64) for i in inputs]
        ids = inputs[self.roles.index("input_ids")]
        self.fixed_length = _dim(ids.shape[1]) if len(ids.shape) > 1 else None
        self._batch = _dim(ids.shape[0])
        tok = find_tokenizer(p, tokenizer)
        super().__init__(name or p.stem, onnx_files(p), tok, max_length_for(p, tok, self.fixed_length, max_length))
        self.embedding_rows = onnx_embedding_rows(p, ids.name)
        tokens = self.tokenizer.tok.get_vocab_size(with_added_tokens=True)
        if self.embedding_rows is not None and tokens > self.embedding_rows:
            raise vocabulary_mismatch(p, tok, tokens, self.embedding_rows)

    def output_infos(self) -> list[OutputInfo]:
        return [OutputInfo(o.name, tuple(_dim(d) for d in o.shape), self._final.get(o.name))
                for o in self.runner.session.get_outputs() if "float" in o.type]

    def runtime(self) -> str:
        return "onnxruntime"

    def _run(self, enc: Encoded) -> list[np.ndarray]:
        feed = {n: a.astype(d) for n, a, d in zip(self._names, _feeds(enc, self.roles), self._dtypes)}
        try:
            return self.runner.session.run([o.name for o in self.output_infos()], feed)
        except Exception as exc:  # onnxruntime's own error types; the ids are the one input the user chose
            if "out of" not in str(exc) or "bound" not in str(exc):
                raise
            first = str(exc).strip().splitlines()[0]
            raise vocabulary_mismatch(self.runner.path, self.tokenizer.path,
                                      self.tokenizer.tok.get_vocab_size(with_added_tokens=True), self.embedding_rows,
                                      f" (onnxruntime: {first[first.find('indices'):][:200]})") from None

    def _forward(self, enc: Encoded) -> list[np.ndarray]:
        return _sliced(self._run, enc, self._batch)


class TFLiteTextTeacher(TextTeacher):
    """A TFLite text classifier run by the LiteRT interpreter (XNNPACK): `logits(texts)` float32 N×K. Int8 / uint8
    outputs are dequantized with the file's own parameters."""

    format = "tflite-text"

    def __init__(self, path: str | Path, tokenizer: str | Path | None = None, max_length: int | None = None,
                 name: str | None = None):
        p = existing_file(path, "TFLite file")
        self.runner = LiteRTRunner(p)
        self._final = _tflite_final_ops(self.runner.interp)
        self.inputs = self.runner.interp.get_input_details()
        self.roles = input_roles([d["name"] for d in self.inputs], p)
        sig = self.inputs[self.roles.index("input_ids")]["shape_signature"]
        self.fixed_length = _dim(sig[1]) if len(sig) > 1 else None
        self._batch = _dim(sig[0])
        tok = find_tokenizer(p, tokenizer)
        super().__init__(name or p.stem, [p], tok, max_length_for(p, tok, self.fixed_length, max_length))

    def output_infos(self) -> list[OutputInfo]:
        infos = []
        for d in self.runner.interp.get_output_details():
            quant = d["dtype"] in (np.int8, np.uint8)
            infos.append(OutputInfo(d["name"], tuple(_dim(s) for s in d["shape_signature"]),
                                    self._final.get(d["index"]), float(d["quantization"][0]) if quant else None))
        return infos

    def _invoke(self, enc: Encoded) -> list[np.ndarray]:
        interp = self.runner.interp
        arrays = _feeds(enc, self.roles)
        if any(list(a.shape) != list(d["shape"]) for a, d in zip(arrays, self.inputs)):
            for a, d in zip(arrays, self.inputs):
                interp.resize_tensor_input(d["index"], list(a.shape))
            interp.allocate_tensors()
            self.inputs = interp.get_input_details()
        for a, d in zip(arrays, self.inputs):
            interp.set_tensor(d["index"], np.ascontiguousarray(a.astype(d["dtype"])))
        interp.invoke()
        outs = []
        for d in interp.get_output_details():
            y = interp.get_tensor(d["index"])
            outs.append(dequantize_output(y, *d["quantization"]) if d["dtype"] in (np.int8, np.uint8)
                        else y.astype(np.float32))
        return outs

    def _forward(self, enc: Encoded) -> list[np.ndarray]:
        return _sliced(self._invoke, enc, self._batch)


def takes_token_ids(path: Path) -> bool:
    """Whether an .onnx / .tflite model takes integer token ids (int32 / int64 inputs, or an input named
    input_ids): a text teacher. Array teachers take float (or int8 / uint8 quantized) samples."""
    if path.suffix not in (".onnx", ".tflite") or not path.is_file():
        return False
    st = path.stat()
    return _takes_token_ids(str(path.resolve()), st.st_mtime_ns, st.st_size)  # the file once, not per matcher


@functools.lru_cache(maxsize=32)
def _takes_token_ids(path: str, mtime_ns: int, size: int) -> bool:
    try:
        if path.endswith(".onnx"):
            import onnx

            graph = onnx.load(path, load_external_data=False).graph
            inits = {i.name for i in graph.initializer}
            elem = {onnx.TensorProto.INT64, onnx.TensorProto.INT32}
            inputs = [i for i in graph.input if i.name not in inits]
            return any(i.type.tensor_type.elem_type in elem or "input_ids" in i.name for i in inputs)
        from ai_edge_litert.interpreter import Interpreter

        details = Interpreter(model_path=path).get_input_details()
        return any(d["dtype"] in (np.int32, np.int64) or "input_ids" in d["name"] for d in details)
    except Exception:  # unreadable file, or the runtime package missing: the array adapter gives the error
        return False
