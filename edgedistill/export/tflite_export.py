"""TFLite export through litert-torch (no TensorFlow): float, and full-integer int8 from the QAT quantizers.

Int8 route: the quantized graph (quantize/graph.py) in "export" mode places explicit quantize/dequantize ops (torch's
quantized_decomposed ops) with the trained scales around every op; litert-torch lowers them to StableHLO uniform
quantization and the LiteRT converter's STATIC QDQ mode folds them into int8 kernels with int8 input and output.
We do not use litert-torch's PT2E quantizer (it fails on torch 2.13) nor ai-edge-quantizer's own calibration
(it would re-derive scales and so re-approximate what QAT trained); the scales in the file are QAT's.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill import interrupt
from edgedistill.export.artifact import Artifact, TensorSpec, finish, sample_input
from edgedistill.export.tflite_fixups import drop_identity_quantize, drop_index_wraparound, drop_unused_tensors
from edgedistill.export.tflite_int16 import check_int16, fix_int16
from edgedistill.optional import require
from edgedistill.quantize.capture import UnsupportedOpError
from edgedistill.quantize.fake import ActQuant
from edgedistill.quantize.graph import QuantGraph


def _static_qdq_config():
    """A QuantConfig that only switches the converter to STATIC QDQ folding (the graph already holds Q/DQ)."""
    from litert_torch.quantize.quant_config import QuantConfig

    qc = QuantConfig.__new__(QuantConfig)
    object.__setattr__(qc, "pt2e_quantizer", None)
    object.__setattr__(qc, "generative_recipe", None)
    object.__setattr__(qc, "_quantizer_mode", QuantConfig._QuantizerMode.PT2E_STATIC)
    return qc


def _convert(module: nn.Module, sample: torch.Tensor | tuple, path: Path, quant_config=None,
             fixup=None) -> tuple[int, str]:
    """Convert, apply `fixup(tmp_path)` (export/tflite_fixups.py) and write atomically; returns size and sha256.
    `sample`: the one input, or a tuple of inputs (the KV-cache step's)."""
    litert_torch = require("litert_torch")
    logging.getLogger("litert_torch").setLevel(logging.ERROR)
    tmp = path.with_name(path.name + ".tmp")
    said = io.StringIO()  # torch.export prints the half-captured graph on failure: kept out of the terminal
    try:
        with interrupt.deferred("the TFLite converter"), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(said):
            litert_torch.convert(module.eval(), sample if isinstance(sample, tuple) else (sample,),
                                 quant_config=quant_config).export(str(tmp))
    except BaseException as exc:  # a Ctrl-C held back until the converter returned included
        tmp.unlink(missing_ok=True)
        if not _is_capture_failure(exc):
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UnsupportedOpError(
            f"The student cannot be converted to TFLite: torch.export could not capture its forward as one graph "
            f"({type(exc).__name__}: {first[:240]}). Data-dependent control flow (an `if` or loop on a tensor's "
            "values, `.item()`, `.tolist()`) cannot be exported; write the forward as a fixed sequence of ops, or "
            "export ONNX only (--formats onnx traces the branch taken on a zero input).") from None
    if fixup is not None:
        fixup(tmp)
    return finish(tmp, path)


def _is_capture_failure(exc: BaseException) -> bool:
    """Whether torch.export refused the model's forward (as opposed to a bug in the conversion itself)."""
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode

    try:
        from torch._dynamo.exc import Unsupported, UserError
    except ImportError:  # pragma: no cover - torch internals moved
        Unsupported = UserError = ()
    return isinstance(exc, (GuardOnDataDependentSymNode, Unsupported, UserError))


def _io(path: Path) -> tuple[TensorSpec, TensorSpec]:
    interp = require("ai_edge_litert.interpreter").Interpreter(model_path=str(path))
    specs = []
    for d in (interp.get_input_details()[0], interp.get_output_details()[0]):
        scale, zp = d["quantization"]
        q = d["dtype"] in (np.int8, np.uint8)
        specs.append(TensorSpec([int(v) for v in d["shape"]], np.dtype(d["dtype"]).name,
                                float(scale) if q else None, int(zp) if q else None))
    return specs[0], specs[1]


def export_tflite_float(model: nn.Module, input_shape: tuple[int, ...], path: Path, name: str = "float") -> Artifact:
    size, digest = _convert(copy.deepcopy(model), sample_input(model, input_shape), path)
    i, o = _io(path)
    return Artifact(name, "tflite", "float32", path, size, digest, i, o)


def _fixups(qmodel: QuantGraph):
    """The edits a converted file needs (export/tflite_fixups.py; export/tflite_int16.py for a graph with 16×8
    ops, then the check that the file computes them in int16), or None."""
    has16 = any(isinstance(m, ActQuant) and m.bits == 16 for m in qmodel.modules())
    if not (qmodel.index_input or has16):
        return None

    def fix(path: Path) -> None:
        if qmodel.index_input:
            drop_index_wraparound(path)
            drop_identity_quantize(path)
        if has16:
            fix_int16(path)
        drop_unused_tensors(path)  # the removed ops' tensors would each take arena on TFLite Micro
        try:
            check_int16(qmodel, path)
        except Exception:
            path.unlink(missing_ok=True)
            raise
    return fix


def export_tflite_int8(qmodel: QuantGraph, input_shape: tuple[int, ...], path: Path, name: str = "int8") -> Artifact:
    m = copy.deepcopy(qmodel)
    m.set_mode("export")
    sample = torch.zeros(1, *input_shape, dtype=torch.int32 if qmodel.index_input else torch.float32)
    # token ids are never negative: the gather's index wrap-around goes (export/tflite_fixups.py)
    size, digest = _convert(m, sample, path, _static_qdq_config(), fixup=_fixups(m))
    i, o = _io(path)
    # raw float samples with a float input head, int32 token ids for a text student, else int8 samples
    want_in = "float32" if qmodel.float_input else "int32" if qmodel.index_input else "int8"
    if i.dtype != want_in or o.dtype != "int8":
        raise RuntimeError(f"TFLite int8 export produced {i.dtype} input / {o.dtype} output, expected {want_in} / int8")
    return Artifact(name, "tflite", "int8", path, size, digest, i, o)
