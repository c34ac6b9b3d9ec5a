"""Runtimes: one predict() over onnxruntime, LiteRT and TFLite Micro (and torch for the reference model)."""

from edgedistill.runtimes.base import RUNTIMES, Runner, dequantize_output, quantize_input
from edgedistill.runtimes.litert import LiteRTReferenceRunner, LiteRTRunner
from edgedistill.runtimes.onnxrt import OnnxRunner
from edgedistill.runtimes.tflm import TFLMRunner

__all__ = ["RUNTIMES", "LiteRTReferenceRunner", "LiteRTRunner", "OnnxRunner", "Runner", "TFLMRunner",
           "dequantize_output", "quantize_input"]
