"""Public entry points. The CLI and the tests call exactly these."""

from edgedistill.config import DistillConfig, load_config
from edgedistill.distill.pipeline import DistillResult, distill

__all__ = ["DistillConfig", "DistillResult", "distill", "load_config"]
