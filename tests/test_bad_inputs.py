"""Inputs a breaking session found: each is a one-paragraph error with exit 2 (a refused input), and a refused run adds nothing to the
user's existing output directory."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.data import read_dataset
from edgedistill.errors import DataError, ModelLoadError
from edgedistill.teachers.torch_formats import load_state_dict


def test_npz_whose_x_and_y_do_not_pair_up(tmp_path):
    p = tmp_path / "mm.npz"
    np.savez(p, x=np.random.rand(20, 4).astype("f4"), y=np.arange(15) % 2)
    with pytest.raises(DataError, match="`x` has 20 samples but `y` has 15 labels"):
        read_dataset(str(p))


@pytest.mark.parametrize("content, why", [(b"", "the file is empty"),
                                          (np.random.default_rng(0).bytes(500), "not a .npz archive")])
def test_empty_or_garbage_npz(tmp_path, content, why):
    p = tmp_path / "bad.npz"
    p.write_bytes(content)
    with pytest.raises(DataError, match=why):
        read_dataset(str(p))


def test_garbage_torch_weights_are_a_load_error(tmp_path):
    p = tmp_path / "w.pt"
    p.write_bytes(np.random.default_rng(1).bytes(5000))
    with pytest.raises(ModelLoadError):
        load_state_dict(p)


def test_a_refused_run_leaves_the_users_directory_as_it_was(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    user = tmp_path / "userdir"
    user.mkdir()
    (user / "mine.txt").write_text("mine")
    r = CliRunner().invoke(main, ["distill", "--out", "userdir", "-q", "--epochs", "1"])
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert sorted(p.name for p in user.iterdir()) == ["mine.txt"]


def test_steps_on_the_command_line_override_a_config_files_epochs(tmp_path):
    from edgedistill.cli import distill as distill_cmd
    from edgedistill.cli_options import distill_overrides
    from edgedistill.config import load_config

    cfg = tmp_path / "d.toml"
    cfg.write_text("[train]\nepochs = 20\n")
    names = [p.name for p in distill_cmd.params]  # every option the command parses, so new ones are covered
    opts = {n: None for n in names} | {"teachers": (), "features": (), "steps": 40}
    c = load_config(str(cfg), distill_overrides(opts))
    assert c.train.steps == 40 and c.train.epochs == "auto"


@pytest.mark.parametrize("args, needle", [
    (["search", "--budget", "flash=64KiB,flash=1MiB", "--data", "builtin:digits"], "'flash' is given twice"),
    (["search", "--data", "builtin:digits", "--family", "cnn", "--budget", "ram=1MiB,ram=2MiB"], "given twice"),
    (["distill", "--student", "cnn:width=8,width=16", "-q"], "'width' is given twice"),
    (["distill", "--student", "tiny.py:make,k=1,k=2", "-q"], "'k' is given twice"),
    (["distill", "--student", "", "-q"], "--student is empty"),
    (["distill", "--augment", "mixup=0,mixup=1", "-q"], "'mixup' is given twice"),
    (["distill", "--student", "cnn:width=²", "-q"], "positive whole number"),
    (["distill", "--student", "  ", "-q"], "--student is empty"),
    (["distill", "--threads", "100000", "-q"], "1024"),  # was an OpenBLAS thread-creation failure, a segfault
])
def test_repeated_keys_and_an_empty_student_are_refused(tmp_path, monkeypatch, args, needle):
    """Before: the last of two values silently won, and `--student ""` quietly meant the default student."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny.py").write_text("def make(num_classes, k=0):\n    raise AssertionError('never built')\n")
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and r.output.startswith("error: ") and "Traceback" not in r.output, r.output
    assert needle in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.py"]  # nothing written


def test_overwrite_never_replaces_a_directory_an_earlier_run_did_not_write(tmp_path, monkeypatch):
    """`--overwrite` replaces the whole directory; pointed at the user's own folder (their data in it) it deleted
    the data and their notes. Now only an earlier run's output (config.json + metrics.json) is replaced."""
    from edgedistill.pipeline.rundir import check_out_dir

    monkeypatch.chdir(tmp_path)
    user = tmp_path / "udir"
    user.mkdir()
    np.savez(user / "d.npz", x=np.random.rand(30, 4).astype("f4"), y=np.arange(30) % 2)
    (user / "notes.txt").write_text("mine")
    r = CliRunner().invoke(main, ["distill", "--data", "udir/d.npz", "--teacher", "builtin:digits", "--out", "udir", "--overwrite", "-q",
                                  "--epochs", "1"])
    assert r.exit_code == 2 and "not an edgedistill output" in r.output and "Traceback" not in r.output, r.output
    assert sorted(p.name for p in user.iterdir()) == ["d.npz", "notes.txt"]
    for out in (".", "", "..", "/"):
        r = CliRunner().invoke(main, ["distill", "--out", out, "-q", "--epochs", "1"])
        assert r.exit_code == 2 and "must name a directory" in r.output and "Traceback" not in r.output, r.output
    (user / "config.json").write_text("{}")
    (user / "metrics.json").write_text("{}")
    # the marks of a run's output, but the user's files beside them: still refused, naming them (rundir.RUN_NAMES)
    with pytest.raises(Exception, match=r"did not write \(d.npz, notes.txt\)"):
        check_out_dir(user, overwrite=True)
    for f in ("d.npz", "notes.txt"):
        (user / f).unlink()
    check_out_dir(user, overwrite=True)  # an earlier run's output: replaceable (after the new run succeeds)
    with pytest.raises(Exception, match="already exists"):
        check_out_dir(user, overwrite=False)


def test_an_edited_report_is_not_a_verified_artifact(tmp_path):
    """A build re-run gated an edited report.json as 'nothing changed' (the report was not in the manifest)."""
    from edgedistill.pipeline.rundir import artifact_list, artifacts_verify

    (tmp_path / "student_int8.tflite").write_bytes(b"model")
    (tmp_path / "report.json").write_text('{"usage": {"latency_ms": 13.5}}')
    (tmp_path / "gate.md").write_text("PASS")
    manifest = {"artifacts": artifact_list(tmp_path)}
    assert {a["path"] for a in manifest["artifacts"]} == {"student_int8.tflite", "report.json"}
    assert artifacts_verify(tmp_path, manifest)
    (tmp_path / "gate.md").write_text("FAIL")  # the gate's own files are re-derived on every re-run
    assert artifacts_verify(tmp_path, manifest)
    (tmp_path / "report.json").write_text('{"usage": {"latency_ms": 1e-7}}')
    assert not artifacts_verify(tmp_path, manifest)


def test_config_file_spellings_of_the_cli_values(tmp_path):
    """`student = "cnn:width=8"` means what --student cnn:width=8 means; `mixup = "none"` and an unknown family get
    one readable line each instead of pydantic's union internals."""
    from edgedistill.config import load_config
    from edgedistill.errors import ConfigError

    cfg = tmp_path / "c.toml"
    cfg.write_text('student = "cnn:width=8,depth=3"\n[augment]\nmixup = "0.5"\n')
    c = load_config(str(cfg), {})
    assert (c.student.family, c.student.width, c.student.depth, c.augment.mixup) == ("cnn", 8, 3, 0.5)
    cfg.write_text('augment = "none"\n')
    assert load_config(str(cfg), {}).augment.mixup == 0.0  # as --augment none
    for text, needle in (('[augment]\nmixup = "none"\n', "augment.mixup: mixup is a number"),
                         ('epochs = 3\n', "epochs: unknown key; it belongs in the [train] section (train.epochs)"),
                         ('augment = "shift=x"\n', "augment: 'shift=x': shift takes a number"),
                         ('student = "nope:width=8"\n', "student: Unknown student family 'nope' in student"),
                         ('[quant]\nint16 = ["attention", "attention"]\n', "quant.int16: quant.int16 names an op kind "
                          "more than once"),
                         ('[kd]\ntemperature = true\n', "kd.temperature: takes a number, not true"),  # was T = 1
                         ('[train]\nepochs = false\n', "train.epochs: takes a number, not false"),
                         ('[data]\nsource = true\n', "data.source: takes text, not true")):
        cfg.write_text(text)
        with pytest.raises(ConfigError) as err:
            load_config(str(cfg), {})
        assert needle in str(err.value) and "Value error" not in str(err.value) and ".." not in str(err.value)
