"""The package's layering, checked on its own import graph (every `import` / `from ... import` in every module,
including imports inside functions), so a change that breaks it fails CI:

* distill/ holds the algorithms only: it imports no stage (pipeline), no report, export, targets, profile, device,
  or the CLI, and nothing of quantize/ (QAT is a stage built on the algorithms, not part of them);
* data/ and teachers/ import no stage and nothing above them;
* only the CLI imports the CLI helpers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import edgedistill

ROOT = Path(edgedistill.__file__).parent

RULES = {
    "distill": ("edgedistill.pipeline", "edgedistill.report", "edgedistill.export", "edgedistill.targets",
                "edgedistill.profile", "edgedistill.device", "edgedistill.quantize", "edgedistill.cli",
                "edgedistill.api", "edgedistill.gate"),
    "data": ("edgedistill.pipeline", "edgedistill.distill", "edgedistill.quantize", "edgedistill.export",
             "edgedistill.report", "edgedistill.students", "edgedistill.teachers", "edgedistill.cli",
             "edgedistill.api", "edgedistill.gate"),
    "teachers": ("edgedistill.pipeline", "edgedistill.distill", "edgedistill.quantize", "edgedistill.export",
                 "edgedistill.report", "edgedistill.cli", "edgedistill.api", "edgedistill.gate"),
}


def imports_of(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(RULES))
def test_layer_imports_nothing_above_it(package):
    assert _modules(package), f"no modules found under {package}/"
    bad = []
    for path in _modules(package):
        for name in imports_of(path):
            if any(name == f or name.startswith(f + ".") for f in RULES[package]):
                bad.append(f"{path.relative_to(ROOT)} imports {name}")
    assert not bad, "layering broken:\n" + "\n".join(bad)


def test_the_checker_sees_imports_inside_functions(tmp_path):
    """The rule must be able to fail: a function-level import of a forbidden module is found."""
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from edgedistill.report import write_reports\n")
    assert "edgedistill.report" in imports_of(f)


def test_the_pipeline_has_one_module_per_stage():
    stages = ["inputs", "teacher_outputs", "search", "tune", "train", "int8", "measure", "report"]
    assert all((ROOT / "pipeline" / f"{s}.py").is_file() for s in stages)
    assert not (ROOT / "distill" / "pipeline.py").exists() and not (ROOT / "deploy.py").exists()
