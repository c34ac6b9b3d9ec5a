"""Which RAM figure a build reports for its target, and what to call it.

The figure the report's `usage.ram_bytes` holds (and the gate's RAM row judges) depends on the target's runtime:

* `tflm` (microcontrollers): TFLite Micro's own figure, read from its recording allocator on this host
  (edgedistill.profile.tflm_arena): the planned activation area plus the runtime's persistent structures. It is
  exact for any device running the same TFLite Micro build.
* `litert`, `onnxruntime` (phones, boards, this host): edgedistill has no measurement of these runtimes' own arena
  (LiteRT's Python API exposes none, XNNPACK keeps its own workspace). The figure is the int8 file's activation
  tensors laid out as TFLite Micro's greedy planner does (`ModelCost.peak_activation_bytes`,
  edgedistill.profile.tflm_planner): the activation memory the file needs, without the runtime's own overhead.

`RAM_FIGURE` maps a runtime to the words every table uses for that figure, so the gate, the report's fit lines and
the profile command name the same figure the same way.
"""

from __future__ import annotations

_PLANNED = ("activation tensors of the int8 file, planned as TFLite Micro's greedy planner does; {runtime}'s own "
            "arena is not measured")

RAM_FIGURE = {
    "tflm": "TFLite Micro arena incl. its runtime overhead (its recording allocator)",
    "litert": _PLANNED.format(runtime="LiteRT"),
    "onnxruntime": _PLANNED.format(runtime="onnxruntime"),
}


def ram_figure(runtime: str | None) -> str:
    """The name of the RAM figure reported for a target whose runtime is `runtime` (a key of RAM_FIGURE, as in
    targets/*.toml); an unknown or missing runtime gets the planned figure's generic wording."""
    if runtime in RAM_FIGURE:
        return RAM_FIGURE[runtime]
    return _PLANNED.format(runtime=runtime or "the target's runtime")
