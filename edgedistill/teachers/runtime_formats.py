"""Teachers run by an inference runtime: ONNX (onnxruntime) and TFLite (LiteRT interpreter).

Both declare their inputs and outputs, so the output contract (edgedistill.teachers.contract) reads the graph:
every output's name and shape, whether it ends in a Softmax / LOGISTIC op, and the declared input layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edgedistill.runtimes import LiteRTRunner, OnnxRunner
from edgedistill.runtimes.base import dequantize_output, quantize_input
from edgedistill.teachers.base import Teacher, existing_file
from edgedistill.teachers.contract import PASS_THROUGH_OPS, PROBABILITY_OPS, OutputInfo


def _dim(d) -> int | None:
    return int(d) if isinstance(d, (int, np.integer)) and int(d) > 0 else None


def _onnx_final_ops(path: Path) -> dict[str, str]:
    """Output name -> 'softmax' / 'sigmoid' for outputs a Softmax / Sigmoid node ends (through reshapes)."""
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception:  # no onnx package, or a file only onnxruntime reads: no graph evidence
        return {}
    producer = {o: n for n in graph.node for o in n.output}
    found = {}
    for out in graph.output:
        node = producer.get(out.name)
        while node is not None and node.op_type in PASS_THROUGH_OPS and node.input:
            node = producer.get(node.input[0])
        if node is not None and node.op_type in PROBABILITY_OPS:
            found[out.name] = PROBABILITY_OPS[node.op_type]
    return found


class OnnxTeacher(Teacher):
    format = "onnx"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "ONNX file")
        self.runner = OnnxRunner(p)
        self._final = _onnx_final_ops(p)
        super().__init__(name or p.stem, [p])

    def output_infos(self) -> list[OutputInfo]:
        return [OutputInfo(o.name, tuple(_dim(d) for d in o.shape), self._final.get(o.name))
                for o in self.runner.session.get_outputs() if "float" in o.type]

    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(_dim(d) for d in self.runner.session.get_inputs()[0].shape)

    def _run(self, x: np.ndarray) -> list[np.ndarray]:
        names = [o.name for o in self.output_infos()]
        return self.runner.session.run(names, {self.runner.input_name: x})

    def _outputs(self, x: np.ndarray) -> list[np.ndarray]:
        b = self.runner.fixed_batch
        if b in (None, len(x)):
            return self._run(x)
        parts = [self._run(x[i : i + b]) for i in range(0, len(x), b)]
        return [np.concatenate(col) for col in zip(*parts)]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self._outputs(x)[0]


def _tflite_final_ops(interp) -> dict[int, str]:
    """Output tensor index -> 'softmax' / 'sigmoid' for outputs a SOFTMAX / LOGISTIC op ends."""
    ops = [op for op in interp._get_ops_details() if op["op_name"] != "DELEGATE"]  # XNNPACK's, added at load
    producer = {t: op for op in ops for t in op["outputs"]}
    found = {}
    for d in interp.get_output_details():
        op = producer.get(d["index"])
        while op is not None and op["op_name"] in PASS_THROUGH_OPS and len(op["inputs"]):
            op = producer.get(op["inputs"][0])
        if op is not None and op["op_name"] in PROBABILITY_OPS:
            found[d["index"]] = PROBABILITY_OPS[op["op_name"]]
    return found


class TFLiteTeacher(Teacher):
    """Float or int8 .tflite; int8 / uint8 inputs and outputs are (de)quantized with the file's own parameters."""

    format = "tflite"

    def __init__(self, path: str | Path, name: str | None = None):
        p = existing_file(path, "TFLite file")
        self.runner = LiteRTRunner(p)
        self._final = _tflite_final_ops(self.runner.interp)
        super().__init__(name or p.stem, [p])

    def output_infos(self) -> list[OutputInfo]:
        infos = []
        for d in self.runner.interp.get_output_details():
            quant = d["dtype"] in (np.int8, np.uint8)
            infos.append(OutputInfo(d["name"], tuple(_dim(s) for s in d["shape_signature"]),
                                    self._final.get(d["index"]), float(d["quantization"][0]) if quant else None))
        return infos

    def input_shape(self) -> tuple[int | None, ...]:
        return tuple(_dim(s) for s in self.runner.inp["shape_signature"])

    def _invoke(self, x: np.ndarray) -> list[np.ndarray]:
        r = self.runner
        if x.shape[0] != int(r.inp["shape"][0]):
            r.interp.resize_tensor_input(r.inp["index"], list(x.shape))
            r.interp.allocate_tensors()
            r._details()
        if r.inp["dtype"] in (np.int8, np.uint8):
            scale, zero = r.inp["quantization"]
            x = quantize_input(x, scale, zero, r.inp["dtype"])
        r.interp.set_tensor(r.inp["index"], np.ascontiguousarray(x))
        r.interp.invoke()
        outs = []
        for d in r.interp.get_output_details():
            y = r.interp.get_tensor(d["index"])
            outs.append(dequantize_output(y, *d["quantization"]) if d["dtype"] in (np.int8, np.uint8)
                        else y.astype(np.float32))
        return outs

    def _outputs(self, x: np.ndarray) -> list[np.ndarray]:
        want = self.runner.inp["shape_signature"]
        if x.ndim == 4 and list(x.shape[1:]) != [int(d) for d in want[1:]] and \
                [*x.shape[2:], x.shape[1]] == [int(d) for d in want[1:]]:
            x = x.transpose(0, 2, 3, 1)  # unbound: the runner's own channels-last rule
        if int(want[0]) == -1:
            return self._invoke(x)
        b = int(want[0])
        if len(x) % b:
            raise ValueError(f"the model's static batch size {b} does not divide the batch of {len(x)}")
        parts = [self._invoke(x[i : i + b]) for i in range(0, len(x), b)]
        return [np.concatenate(col) for col in zip(*parts)]

    def _logits(self, x: np.ndarray) -> np.ndarray:
        return self._outputs(x)[0]
