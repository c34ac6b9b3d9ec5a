"""Public entry points. The CLI and the tests call exactly these."""

from edgedistill.config import DistillConfig, load_config
from edgedistill.distill.pipeline import DistillResult, distill
from edgedistill.export.run import ExportResult, export_checkpoint

__all__ = ["DistillConfig", "DistillResult", "ExportResult", "distill", "export_checkpoint", "load_config"]
