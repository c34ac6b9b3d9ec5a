"""Exporters: one module per format; each returns an Artifact record and never mutates its input model."""

from edgedistill.export.artifact import Artifact, TensorSpec
from edgedistill.export.onnx_export import export_onnx_float, export_onnx_int8
from edgedistill.export.tflite_export import export_tflite_float, export_tflite_int8

__all__ = ["Artifact", "TensorSpec", "export_onnx_float", "export_onnx_int8", "export_tflite_float",
           "export_tflite_int8"]
