"""Run a frozen torch teacher through onnxruntime when that computes the same function, faster.

Teacher inference is the main cost of distilling with augmentation (the teacher runs on every batch) and of the
first logit pass. On this project's CPUs onnxruntime runs the built-in conv teachers about 2× faster than eager
torch (tools/bench_teacher_runtime.py). The module is exported once (torch.onnx, TorchScript-based exporter) and the
session is used only if it reproduces torch's logits on the first (up to 64) samples it sees (max |Δ| <= 1e-4 · (1 + max |z|));
a module that does not export, or does not match, silently stays on torch. EDGEDISTILL_TEACHER_RUNTIME=torch turns
the acceleration off.
"""

from __future__ import annotations

import io
import os
import warnings

import numpy as np
import torch
from torch import nn

TOLERANCE = 1e-4


class OrtRunner:
    """Holds the onnxruntime session of a torch module, once proven equal on a batch."""

    def __init__(self, module: nn.Module):
        self.module = module
        self.session = None
        self.state = "unchecked"  # -> "onnxruntime" | "torch"
        self.max_abs_diff: float | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray | None:
        """Logits from onnxruntime, or None when the caller should use torch."""
        if self.state == "torch":
            return None
        if self.state == "unchecked":
            self._try_enable(x)
            if self.state == "torch":
                return None
        return self.session.run(None, {"x": x})[0]

    def _try_enable(self, x: np.ndarray) -> None:
        self.state = "torch"
        if os.environ.get("EDGEDISTILL_TEACHER_RUNTIME", "auto") == "torch":
            return
        try:
            import onnxruntime as ort
        except ImportError:
            return
        try:
            buf = io.BytesIO()
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(self.module, torch.from_numpy(x[:1]), buf, dynamo=False, input_names=["x"],
                                  output_names=["y"], dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17)
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = torch.get_num_threads()
            opts.log_severity_level = 3
            session = ort.InferenceSession(buf.getvalue(), opts, providers=["CPUExecutionProvider"])
            probe = x[:64]
            got = session.run(None, {"x": probe})[0]
            with torch.no_grad():
                ref = self.module(torch.from_numpy(probe))
            ref = (ref[0] if isinstance(ref, (tuple, list)) else ref).numpy()
        except Exception:  # anything the exporter or runtime cannot handle: stay on torch
            return
        if got.shape != ref.shape:
            return
        self.max_abs_diff = float(np.abs(got - ref).max())
        if self.max_abs_diff <= TOLERANCE * (1.0 + float(np.abs(ref).max())):
            self.session, self.state = session, "onnxruntime"
