"""Exporters by name. Each writes one file and returns an Artifact; none mutates the model it is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from edgedistill.export.artifact import Artifact
from edgedistill.registry import Registry


@dataclass(frozen=True)
class Exporter:
    format: str
    precision: str
    suffix: str
    runtimes: tuple[str, ...]  # runtimes that must reproduce the reference on this file
    write: Callable[..., Artifact]


EXPORTERS: Registry[Exporter] = Registry("exporter")


def _onnx_float(model, qmodel, shape, classes, path):
    from edgedistill.export.onnx_export import export_onnx_float

    return export_onnx_float(model, shape, path, "onnx-float")


def _onnx_int8(model, qmodel, shape, classes, path):
    from edgedistill.export.onnx_export import export_onnx_int8

    return export_onnx_int8(qmodel, shape, classes, path, "onnx-int8")


def _tflite_float(model, qmodel, shape, classes, path):
    from edgedistill.export.tflite_export import export_tflite_float

    return export_tflite_float(model, shape, path, "tflite-float")


def _tflite_int8(model, qmodel, shape, classes, path):
    from edgedistill.export.tflite_export import export_tflite_int8

    return export_tflite_int8(qmodel, shape, path, "tflite-int8")


EXPORTERS.register("onnx-float", "ONNX float32 (torch.onnx, opset 17)")(
    Exporter("onnx", "float32", ".onnx", ("onnxruntime",), _onnx_float))
EXPORTERS.register("onnx-int8", "ONNX QDQ int8: int8 weights, int32 bias, QAT scales (opset 17)")(
    Exporter("onnx", "int8", "_int8.onnx", ("onnxruntime",), _onnx_int8))
EXPORTERS.register("tflite-float", "TFLite float32 (litert-torch, NHWC)")(
    Exporter("tflite", "float32", ".tflite", ("litert",), _tflite_float))
EXPORTERS.register("tflite-int8", "TFLite full-integer int8 with int8 I/O (litert-torch STATIC QDQ)")(
    Exporter("tflite", "int8", "_int8.tflite", ("litert", "tflm"), _tflite_int8))


def planned_exports(formats, int8: bool) -> list[Exporter]:
    """The exporters `export_all` runs for these formats (float, and int8 when `int8`), in order."""
    return [e.obj for e in EXPORTERS if e.obj.format in formats and (e.obj.precision != "int8" or int8)]


def export_all(model: nn.Module, qmodel, input_shape, num_classes: int, out_dir: Path, formats, int8: bool,
               stem: str = "student", progress=None) -> list[Artifact]:
    """Write every requested format (float, and int8 when `int8`), returning their records; `progress(1)` after
    each file."""
    arts = []
    for exp in planned_exports(formats, int8):
        arts.append(exp.write(model, qmodel, tuple(input_shape), num_classes, out_dir / f"{stem}{exp.suffix}"))
        if progress:
            progress(1)
    return arts
