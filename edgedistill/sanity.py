"""Plausibility warnings about a finished run that are not errors: the run is valid, but probably not what the user
wanted. Each function returns the warning's text, or None; the pipeline adds it to metrics.json's `warnings` (and so
to the summary and the report)."""

from __future__ import annotations

from pathlib import Path

FLOAT32_BYTES = 4


def teacher_size(teacher_params: int | None, teacher_files: list[str | Path]) -> tuple[int | None, str]:
    """The teacher's parameter count and how it was obtained: counted (torch teachers), or estimated from its files
    at 4 bytes per float32 parameter (ONNX / TFLite / TorchScript teachers whose count is unknown). (None, "") when
    neither is available."""
    if teacher_params:
        return int(teacher_params), "counted"
    sizes = [Path(f).stat().st_size for f in teacher_files if Path(f).is_file()]
    if not sizes:
        return None, ""
    return sum(sizes) // FLOAT32_BYTES, "estimated from the file size at 4 bytes per parameter"


def student_not_smaller_warning(student_params: int, teacher_params: int | None, how: str = "counted") -> str | None:
    """A warning when the student has at least as many parameters as the teacher (distillation is meant to compress;
    `build` caps the student at half the teacher). Parameters are counted as torch counts them on the float model
    (`sum(p.numel() for p in model.parameters())`, BatchNorm scales and shifts included)."""
    if not teacher_params or student_params < teacher_params:
        return None
    ratio = student_params / teacher_params
    return (f"The student ({student_params:,} parameters) is not smaller than the teacher ({teacher_params:,}, {how}; "
            f"{ratio:.2f}x): this compresses nothing. Choose a smaller student (--student FAMILY:width=N,depth=N, "
            "`edgedistill search` lists sizes) or a larger teacher; `edgedistill build` caps the student at half the "
            "teacher.")
