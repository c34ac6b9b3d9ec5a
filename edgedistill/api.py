"""Public entry points. The CLI and the tests call exactly these."""

from edgedistill.config import DistillConfig, load_config
from edgedistill.export.run import ExportResult, export_checkpoint
from edgedistill.pipeline import BuildResult, DistillResult, build, distill

__all__ = ["BuildResult", "DistillConfig", "DistillResult", "ExportResult", "build", "distill", "export_checkpoint",
           "load_config"]
