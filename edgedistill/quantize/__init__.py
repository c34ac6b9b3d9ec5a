"""Quantization: int8 fake quantization matching TFLite / ONNX QDQ kernels, calibration, PTQ and QAT students."""

from edgedistill.quantize.calibrate import calibrate, calibration_indices, post_training_quantize
from edgedistill.quantize.graph import QuantGraph, QuantStudent, UnsupportedOpError, to_quant_student
from edgedistill.quantize.ranges import RANGE_METHODS

__all__ = ["RANGE_METHODS", "QuantGraph", "QuantStudent", "UnsupportedOpError", "calibrate", "calibration_indices",
           "post_training_quantize", "to_quant_student"]
