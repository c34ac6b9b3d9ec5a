"""Reports: report.json (versioned), report.md, and a self-contained report.html with inline SVG plots (matplotlib)."""

from __future__ import annotations

from pathlib import Path

from edgedistill.report.render import to_html, to_markdown
from edgedistill.report.schema import REPORT_SCHEMA_VERSION, assemble
from edgedistill.util import write_json


def write_reports(report: dict, directory: Path) -> None:
    write_json(directory / "report.json", report)
    (directory / "report.md").write_text(to_markdown(report))
    (directory / "report.html").write_text(to_html(report))


__all__ = ["REPORT_SCHEMA_VERSION", "assemble", "to_html", "to_markdown", "write_reports"]
