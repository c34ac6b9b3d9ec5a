"""The build as one chain of stages, one module each, in the order they run:

    inputs -> teacher_outputs -> search (build only) -> tune -> train -> int8 -> measure -> report -> gate (build)

`distill.py` and `build.py` compose them and read top to bottom; `rundir.py` owns the output directory (OUT.partial
-> OUT, the lock against a second process, resume checkpoints, the manifest). Each stage is a function from typed
inputs to a frozen result; none mutates its inputs.
"""

from edgedistill.pipeline.build import BuildResult, build
from edgedistill.pipeline.distill import DistillResult, ParityError, distill

__all__ = ["BuildResult", "DistillResult", "ParityError", "build", "distill"]
