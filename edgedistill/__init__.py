"""edgedistill: turn a big teacher model into a small int8 student that fits an edge device's budget."""

__version__ = "0.1.0"

from edgedistill.errors import EdgeDistillError  # noqa: E402

__all__ = ["EdgeDistillError", "__version__"]
