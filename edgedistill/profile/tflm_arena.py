"""What TFLite Micro's recording allocator reports for a model: the planned activation area ("head") and the
persistent runtime structures ("tail"), read from the interpreter's own allocation report."""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgedistill.optional import require


@dataclass(frozen=True)
class ArenaUsage:
    total_bytes: int
    activation_bytes: int  # head: tensors planned by the memory planner
    persistent_bytes: int  # tail: runtime structures, quantization data, kernel state


def _capture_stderr(fn) -> str:
    """print_allocations() writes from C++ to file descriptor 2 (stderr); capture it there."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            fn()
        finally:
            ctypes.CDLL(None).fflush(None)  # C++ stdio may buffer until flushed
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")


def _input_count(path: Path) -> int:
    """How many inputs the model has (TFLite Micro's Python interpreter has no count: it prints an error past the
    last), read by LiteRT's interpreter, which parses the file without allocating."""
    return len(require("ai_edge_litert.interpreter").Interpreter(model_path=str(path)).get_input_details())


def tflm_arena(path: Path) -> ArenaUsage:
    """The arena after one invoke on zeros in every input: for a KV-cache decoder step (ids, position, caches) that
    is token 0 at position 0 with empty caches, a step like any other (each reads all L cache slots)."""
    runtime = require("tflite_micro").python.tflite_micro.runtime
    interp = runtime.Interpreter.from_file(str(path))
    for i in range(_input_count(path)):
        d = interp.get_input_details(i)
        interp.set_input(np.zeros([int(v) for v in d["shape"]], d["dtype"]), i)
    interp.invoke()
    text = _capture_stderr(interp.print_allocations)

    def grab(label: str) -> int:
        m = re.search(rf"Arena allocation {label} (\d+) bytes", text)
        if not m:
            raise RuntimeError(f"TFLite Micro did not report its arena {label}: {text[:200]!r}")
        return int(m.group(1))
    return ArenaUsage(grab("total"), grab("head"), grab("tail"))
