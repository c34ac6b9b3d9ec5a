import subprocess
import sys

HEAVY = ("onnxruntime", "ai_edge_litert", "litert_torch", "tflite_micro", "onnx")


def test_list_shows_every_registry_without_heavy_imports():
    """`edgedistill list` must work (and stay fast) without importing the optional runtimes."""
    code = ("import sys\nfrom edgedistill.cli import main\nsys.argv = ['edgedistill', 'list']\n"
            "code = 'returned'\ntry:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\nprint('EXIT', code)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for section in ("losses:", "students:", "teachers:", "calibration:", "exporters:", "runtimes:"):
        assert section in out
    assert "tflite-int8" in out and "tflm" in out and "kd" in out
    assert out.strip().splitlines()[-2:] == ["HEAVY []", "EXIT 0"]  # click's standalone mode exits 0 on success


def test_unknown_registry_name_lists_the_known_ones_in_plain_english():
    import pytest

    from edgedistill.errors import ConfigError
    from edgedistill.students.families import STUDENT_FAMILIES

    with pytest.raises(ConfigError, match="Known student families: .*dscnn"):
        STUDENT_FAMILIES.get("nope")


def test_list_keeps_one_summary_column_per_section():
    """`schedule onecycle` is longer than the other names; its summary used to start one column further right."""
    from click.testing import CliRunner

    from edgedistill.cli import main
    from edgedistill.distill.optim import OPTIMIZERS, SCHEDULES

    out = CliRunner().invoke(main, ["list", "optimizers"]).output.splitlines()
    rows = out[1:]
    assert len(rows) == len(list(OPTIMIZERS)) + len(list(SCHEDULES))
    starts = {line.index(summary) for line in rows for summary in
              [e.summary for e in list(OPTIMIZERS) + list(SCHEDULES) if e.summary in line][:1]}
    assert len(starts) == 1, out
    assert any(line.lstrip().startswith("schedule onecycle ") for line in rows)
