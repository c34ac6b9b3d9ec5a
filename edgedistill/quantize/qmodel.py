"""The int8-simulating student's public names (kept for existing imports); the graph core is quantize/graph.py."""

from edgedistill.quantize.capture import SUPPORTED, UnsupportedOpError
from edgedistill.quantize.graph import QuantGraph, QuantStudent, to_quant_student
from edgedistill.quantize.ops import QLayer

__all__ = ["SUPPORTED", "QLayer", "QuantGraph", "QuantStudent", "UnsupportedOpError", "to_quant_student"]
