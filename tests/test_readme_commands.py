"""Every command of the README's "Using it" section, read from README.md and run in order in one empty directory,
as a new user would: small stand-in files where the README names the user's own (teacher.onnx, my.npz, images/,
a.tflite, b.pt2, w.safetensors with models.py, model.tflite), and only the size of the work shrunk (1 epoch, 300
training and 1,000 test samples, fixed T and alpha). Each command must succeed (gate: decide, 0 or 1) and write the directory the
README names for it (`-> DIR/` in its comment, or its --out) with the files the README lists.

Not run here: the device and torchrun sections (they need a device and several processes; tests/device and
tests/test_distributed.py cover them) and `build` (tests/test_build.py)."""

import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from edgedistill.cli import main
from tiny_models import tiny_cnn

README = Path(__file__).resolve().parents[1] / "README.md"
DISTILL_FILES = {"student.safetensors", "student.json", "baseline.safetensors", "config.json", "metrics.json"}
QAT_FILES = {"student.onnx", "student_int8.onnx", "student.tflite", "student_int8.tflite", "student_qat.safetensors",
             "report.json", "report.md", "report.html"}
SMALL = {"distill": ["--epochs", "1", "--qat-epochs", "1", "--max-train", "300", "--max-test", "1000", "-T", "4",
                     "--alpha", "0.9", "-q"]}


def using_it_section() -> str:
    text = README.read_text()
    return text[text.index("## Using it"):text.index("### Measuring on the device")]


def readme_commands() -> list[tuple[list[str], str]]:
    """(argv after `edgedistill`, the line's comment) for each command line of the section's bash blocks."""
    out = []
    for block in re.findall(r"```bash\n(.*?)```", using_it_section(), re.S):
        for line in block.splitlines():
            if line.startswith("edgedistill "):
                cmd, _, comment = line.partition(" # ")
                out.append((shlex.split(cmd)[1:], comment))
    return out


def expected_dir(argv: list[str], comment: str) -> str | None:
    if "--out" in argv:
        return argv[argv.index("--out") + 1]
    m = re.search(r"-> (\S+)", comment)
    return m.group(1).rstrip("/") if m else None


def make_stand_ins(d: Path) -> None:
    """The user's files the README names, small: every teacher takes 1×8×8 inputs and has 10 classes."""
    from edgedistill.export.onnx_export import export_onnx_float
    from edgedistill.export.tflite_export import export_tflite_float
    from PIL import Image

    rng = np.random.default_rng(0)
    np.savez(d / "my.npz", x=rng.random((200, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 10, 200))
    for c in range(10):
        (d / "images" / f"class{c}").mkdir(parents=True)
        for i in range(12):
            pixels = rng.integers(0, 256, (8, 8), dtype=np.uint8)
            Image.fromarray(pixels, "L").save(d / "images" / f"class{c}" / f"{i}.png")
    teacher = tiny_cnn()
    export_onnx_float(teacher, (1, 8, 8), d / "teacher.onnx")
    export_tflite_float(teacher, (1, 8, 8), d / "a.tflite")
    batch = {0: torch.export.Dim("batch", min=1, max=1024)}
    torch.export.save(torch.export.export(tiny_cnn(seed=1), (torch.rand(2, 1, 8, 8),), dynamic_shapes=(batch,)),
                      str(d / "b.pt2"))
    save_file(tiny_cnn(seed=2).state_dict(), str(d / "w.safetensors"))
    (d / "models.py").write_text("from tiny_models import tiny_cnn\n\n\ndef resnet():\n    return tiny_cnn()\n")
    toml = re.search(r"```toml\n(# distill.toml\n.*?)```", using_it_section(), re.S).group(1)
    (d / "distill.toml").write_text(toml)


def test_readme_lists_the_commands_this_test_runs():
    cmds = [argv for argv, _ in readme_commands()]
    assert ["distill"] in cmds and ["list"] in cmds and any("--config" in c for c in cmds)
    assert sum(c[0] == "distill" for c in cmds) >= 7 and any(c[0] == "gate" for c in cmds)
    outs = [expected_dir(argv, comment) for argv, comment in readme_commands() if argv[0] == "distill"]
    assert None not in outs and len(set(outs)) == len(outs), outs  # each writes its own directory


@pytest.mark.slow
def test_readme_commands_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_stand_ins(tmp_path)
    for argv, comment in readme_commands():
        if argv[:1] == ["profile"] and not Path(argv[1]).exists():  # "any .tflite": the int8 file distilled above
            shutil.copy(tmp_path / "runs/distill-fashion-mnist-int8/student_int8.tflite", argv[1])
        r = CliRunner().invoke(main, argv + SMALL.get(argv[0], []), catch_exceptions=False)
        ok = (0, 1) if argv[0] == "gate" else (0,)
        assert r.exit_code in ok, f"edgedistill {shlex.join(argv)}\n{r.output}"
        where = expected_dir(argv, comment)
        if argv[0] == "distill":
            files = {p.name for p in Path(where).iterdir()}
            assert DISTILL_FILES <= files, (argv, files)
            assert ("--qat" in argv) == (QAT_FILES <= files), (argv, files)
        elif argv[0] == "export":
            assert {"student.onnx", "student.tflite", "student_int8.onnx", "student_int8.tflite",
                    "export.json"} <= {p.name for p in Path(where).iterdir()}
        elif argv[0] == "gate":
            assert Path("gate.xml").is_file() and Path("gate.md").read_text().strip()
        elif argv[0] == "profile":
            assert "[measured-host]" in r.output and "fit flash" in r.output
        else:
            assert r.output.strip()
    assert not list(tmp_path.glob("runs/*.partial"))
