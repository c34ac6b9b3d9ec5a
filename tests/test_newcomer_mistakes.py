"""The mistakes of a user's first hour: each gets one paragraph on stderr, a non-zero exit and no traceback; and the
quieter surprises (a student larger than its teacher, a missing figure shown as passing, a warning build did not
print, a warning printed once per training run under torchrun) are said once, where the user looks."""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from edgedistill.cli import main
from edgedistill.pipeline.rundir import artifact_list
from edgedistill.sanity import student_not_smaller_warning, teacher_size
from tiny_models import tiny_cnn


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)  # a raw exception fails the test with its traceback


def _one_paragraph_error(r, *needles):
    assert r.exit_code != 0, r.output
    assert "Traceback" not in r.output and r.output.startswith("error: "), r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    for n in needles:
        assert n in r.output, r.output
    return r.output


@pytest.mark.parametrize("args,needles", [
    (["--augment", "shift=x"], ["--augment", "shift takes a number"]),
    (["--augment", "hflip=maybe"], ["hflip takes on or off"]),
    (["--augment", "blur=3"], ["unknown augmentation 'blur'", "shift=N, hflip, mixup=A"]),
    (["--augment", "mixup=nan"], ["augment.mixup"]),
    (["--feature", "loss"], ["--feature 'loss'", "loss=NAME,student=LAYER,teacher=LAYER"]),
    (["--feature", "loss=hint,student=a,teacher=b,weight=heavy"], ["kd.features.0.weight"]),
    (["--feature", "loss=glue,student=a,teacher=b"], ["unknown feature loss 'glue'"]),
    (["--temperature", "hot"], ["--temperature: 'hot' is neither a number nor 'auto'"]),
    (["--alpha", "half"], ["--alpha: 'half' is neither a number nor 'auto'"]),
    (["--alpha", "nan"], ["alpha must be in [0, 1]"]),
    (["--formats", "onnx,coreml"], ["unknown export format(s) coreml", "onnx, tflite"]),
    (["--formats", ","], ["no format named"]),
])
def test_malformed_distill_options(tmp_path, args, needles):
    out = tmp_path / "out"
    _one_paragraph_error(run(["distill", "--out", str(out), "--epochs", "1", "-q", *args]), *needles)
    assert not out.exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.parametrize("name,text,needle", [
    ("list.json", "[1, 2]", "must hold a table of settings"),
    ("scalar.toml", "data = 5", "data: Input should be a valid dictionary"),
    ("typo.toml", "[data]\nsorce = 'builtin:digits'", "data.sorce: Extra inputs are not permitted"),
    ("broken.toml", "[data\n", "does not parse as TOML"),
    ("config.yaml", "data: {source: x}", "does not parse as JSON"),
    ("binary.json", None, "does not parse as JSON"),
])
def test_malformed_config_files(tmp_path, name, text, needle):
    p = tmp_path / name
    p.write_bytes(b"\xff\xfe\x00garbage" if text is None else text.encode())
    _one_paragraph_error(run(["distill", "--config", str(p), "--out", str(tmp_path / "o"), "-q"]), needle)
    _one_paragraph_error(run(["build", "--config", str(p), "--out", str(tmp_path / "b"), "-q"]), needle)


@pytest.mark.parametrize("command", ["distill", "build"])
@pytest.mark.parametrize("file_text,args,needles,not_there", [
    ("[train]\nepochs = 3\n", ["--epochs", "0"], ["(command line)", "--epochs (train.epochs): epochs must be in"],
     ["c.toml"]),
    ("[train]\nepochs = 3\n", ["--steps", "0"], ["(command line)", "--steps (train.steps): Input should be"],
     ["c.toml"]),
    ("[train]\nepochs = 0\n", [], ["(c.toml)", "train.epochs: epochs must be in"], ["command line", "--epochs"]),
    ("[kd]\ntemperature = -1\n", ["--steps", "0"], ["(c.toml and the command line)", "kd.temperature in c.toml",
                                                      "--steps (train.steps): Input should be"], []),
    ("[train]\nepochs = 0\n", ["--steps", "40"], None, None),  # --steps replaces the file's epochs: no error
])
def test_a_bad_setting_is_blamed_on_where_it_was_given(tmp_path, monkeypatch, command, file_text, args, needles,
                                                         not_there):
    """With --config, an invalid flag value names the flag, not the file (flags override the file); an invalid
    file value names the file; both at once name each where it was given."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(file_text)
    if needles is None:
        from edgedistill.cli_options import build_overrides, distill_overrides, flag_namer
        from edgedistill.config import load_config
        cmd = main.commands[command]
        with cmd.make_context(command, list(args)) as ctx:
            overrides = (build_overrides if command == "build" else distill_overrides)(ctx.params)
        assert load_config("c.toml", overrides, flag_namer(cmd)).train.steps == 40
        return
    out = _one_paragraph_error(run([command, "--config", "c.toml", "--out", str(tmp_path / "o"), "-q", *args]),
                               *needles)
    assert not any(n in out for n in not_there), out


def test_a_distill_flag_value_out_of_range_names_the_flag_over_a_config_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text("[kd]\ntemperature = 4.0\n")
    for args, needle in ((["--temperature", "-1"], "--temperature (kd.temperature): temperature must be in"),
                         (["--alpha", "2"], "--alpha (kd.alpha): alpha must be in"),
                         (["--lr", "-1"], "--lr (train.lr): Input should be"),
                         (["--feature", "loss=hint,student=a,teacher=b,weight=heavy"],
                          "--feature (kd.features.0.weight)")):
        out = _one_paragraph_error(run(["distill", "--config", "c.toml", "-q", *args]), "(command line)", needle)
        assert "c.toml" not in out, out


@pytest.mark.parametrize("command", ["distill", "build"])
def test_every_option_that_sets_a_config_value_has_its_flag_named(command):
    """flag_namer finds, for each setting a flag writes into the config, that flag among the command's options; only
    build's own defaults (not flags) have none."""
    from edgedistill.cli_options import build_overrides, distill_overrides, flag_namer

    cmd = main.commands["build" if command == "build" else "distill"]
    given = {p.name: ("x",) if p.multiple else "1" for p in cmd.params}  # every option set: each override non-None
    given.update(config_file=None, student="cnn", family="cnn", augment_text="none", formats="onnx", features=(),
                 temperature="2", alpha="0.5", target="cpu")
    overrides = (build_overrides if command == "build" else distill_overrides)(given)
    flag_of = flag_namer(cmd)

    def leaves(tree, loc=()):
        for k, v in tree.items():
            if isinstance(v, dict):
                yield from leaves(v, loc + (k,))
            elif isinstance(v, list):
                yield from (x for i, item in enumerate(v) for x in (leaves(item, loc + (k, i)) if isinstance(
                    item, dict) else [loc + (k, i)]))
            elif v is not None:
                yield loc + (k,)

    build_defaults = {("train", "min_steps"), ("kd", "tune_max_samples"), ("quant", "qat"),
                      ("quant", "qat_max_samples")}
    paths = list(leaves(overrides))
    missing = [loc for loc in paths if flag_of(loc) is None and loc not in build_defaults]
    assert len(paths) > 20 and not missing, missing
    assert flag_of(("data", "source")) == "--data" and flag_of(("teachers", 0, "path")) == "--teacher"
    assert flag_of(("kd", "temperature")) == "--temperature"  # build takes -T as distill does


@pytest.mark.parametrize("budget,needles", [
    ("flash=64", ["'64' for flash has no unit", "KiB", "flash=64KiB"]),
    ("ram=256", ["'256' for ram has no unit", "ram=128KiB"]),
    ("latency=5", ["'5' for latency has no unit", "us, ms, s"]),
    ("flash=1e999KiB", ["not a finite number"]),
])
def test_bare_size_or_time_in_a_budget_is_refused_with_its_units(tmp_path, budget, needles):
    _one_paragraph_error(run(["search", "--data", "builtin:digits", "--budget", budget]), *needles)
    _one_paragraph_error(run(["build", "--data", "builtin:digits", "--budget", budget,
                              "--out", str(tmp_path / "b")]), *needles)
    assert not (tmp_path / "b").exists()


def test_bare_count_and_accuracy_stay_accepted():
    r = run(["search", "--data", "builtin:digits", "--target", "cortex-m4", "--budget", "macs=200000,flash=64KiB"])
    assert r.exit_code == 0, r.output
    assert "MACs <= 200,000" in r.output and "flash <= 65,536" in r.output and "None" not in r.output


def test_missing_data_file_is_said_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = _one_paragraph_error(run(["distill", "--data", "mydata.npz", "-q"]), "mydata.npz does not exist")
    assert "teacher" not in out  # "no teacher given" would send the user after the wrong problem
    _one_paragraph_error(run(["distill", "--data", "builtin:nope", "-q"]), "Unknown built-in dataset 'nope'")
    # with a teacher, the missing data is still the error
    _one_paragraph_error(run(["distill", "--data", "mydata.npz", "--teacher", "builtin:digits", "-q"]),
                         "mydata.npz does not exist")


def test_export_formats_one_name_old_spelling_hidden(tmp_path):
    (tmp_path / "ck").mkdir()
    _one_paragraph_error(run(["export", str(tmp_path / "ck"), "--formats", "coreml"]),
                         "unknown export format(s) coreml")
    r = run(["export", str(tmp_path / "ck"), "--format", "tflite", "--formats", "onnx"])
    assert r.exit_code != 0 and "disagree" in r.output and "--format is deprecated" in r.output
    helps = [run([cmd, "--help"]).output for cmd in ("distill", "export")]
    assert all("--formats" in h for h in helps) and not any("--format " in h for h in helps)


def test_empty_summary_path_is_refused(tmp_path):
    report = tmp_path / "report.json"
    report.write_text("{}")
    _one_paragraph_error(run(["gate", str(report), "--summary", ""]), "--summary was given an empty path")


def test_default_outs_are_named_after_data_teachers_and_qat(tmp_path, monkeypatch):
    from edgedistill.config import load_config

    monkeypatch.chdir(tmp_path)
    (tmp_path / "images").mkdir()
    for f in ("my.npz", "a.tflite", "b.pt2"):
        (tmp_path / f).write_bytes(b"")
    cases = [({}, "runs/distill-digits"),
             ({"data": {"source": "builtin:fashion-mnist"}}, "runs/distill-fashion-mnist"),
             ({"data": {"source": "builtin:fashion-mnist"}, "quant": {"qat": True}}, "runs/distill-fashion-mnist-int8"),
             ({"data": {"source": "images/"}, "teachers": [{"path": "a.tflite"}, {"path": "b.pt2"}]},
              "runs/distill-images-a-b"),
             ({"data": {"source": "my.npz"}, "teachers": [{"path": "builtin:digits"}]}, "runs/distill-my-digits"),
             ({"out": "elsewhere"}, "elsewhere")]
    outs = [load_config(None, over).out for over, _ in cases]
    assert outs == [want for _, want in cases]


def test_teacher_factory_from_a_file_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models.py").write_text("import tiny_models\n\ndef resnet():\n    return tiny_models.tiny_cnn()\n")
    save_file(tiny_cnn().state_dict(), str(tmp_path / "w.safetensors"))
    from edgedistill.teachers import TeacherSpec, load_teacher

    t = load_teacher(TeacherSpec("w.safetensors", "auto", "models.py:resnet"))
    assert t.num_params() == sum(p.numel() for p in tiny_cnn().parameters())
    t2 = load_teacher(TeacherSpec(str(tmp_path / "w.safetensors"), "auto", f"{tmp_path / 'models.py'}:resnet"))
    assert t2.num_params() == t.num_params()
    r = run(["distill", "--teacher", "w.safetensors", "--teacher-factory", "nowhere.py:resnet", "-q",
             "--data", "builtin:digits"])
    _one_paragraph_error(r, "nowhere.py", "does not exist")
    r = run(["distill", "--teacher", "w.safetensors", "--teacher-factory", "no_such_pkg_xyz.models:resnet", "-q",
             "--data", "builtin:digits"])
    _one_paragraph_error(r, "No module named 'no_such_pkg_xyz", "path/to/file.py:function")


def test_student_not_smaller_than_teacher_rule():
    assert student_not_smaller_warning(999, 1000) is None
    w = student_not_smaller_warning(24058, 19658)
    assert "24,058" in w and "19,658" in w and "1.22x" in w and "half the teacher" in w
    assert student_not_smaller_warning(100, None) is None


def test_teacher_size_from_file_when_not_counted(tmp_path):
    f = tmp_path / "t.onnx"
    f.write_bytes(b"\0" * 4000)
    assert teacher_size(None, [f]) == (1000, "estimated from the file size at 4 bytes per parameter")
    assert teacher_size(77, [f]) == (77, "counted")
    assert teacher_size(None, [tmp_path / "gone.onnx"]) == (None, "")


def test_distill_warns_when_the_student_is_larger_than_the_teacher(tmp_path):
    teacher = tmp_path / "teacher.safetensors"
    save_file(tiny_cnn().state_dict(), str(teacher))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=rng.random((200, 1, 8, 8)).astype(np.float32), y=rng.integers(0, 10, 200))
    out = tmp_path / "out"
    r = run(["distill", "--teacher", str(teacher), "--teacher-factory", "tiny_models:tiny_cnn", "--data",
             str(tmp_path / "d.npz"), "--epochs", "1", "-T", "2", "--alpha", "0.5", "--no-baseline", "-q",
             "--out", str(out)])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    t_params = sum(p.numel() for p in tiny_cnn().parameters())
    assert m["student"]["params"] > t_params == m["teacher"]["params"]
    warning = next(w for w in m["warnings"] if "not smaller than the teacher" in w)
    assert f"{m['student']['params']:,}" in warning and f"{t_params:,}" in warning
    assert "WARNING" in r.output and "not smaller than the" in r.output


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from edgedistill.data import Normalizer
    from edgedistill.export.onnx_export import export_onnx_float
    from edgedistill.export.tflite_export import export_tflite_int8
    from edgedistill.quantize import calibrate, to_quant_student
    from edgedistill.students import StudentArch, build_student

    d = tmp_path_factory.mktemp("prof")
    torch.manual_seed(0)
    m = build_student(StudentArch("cnn", 8, 2), (1, 8, 8), 10, Normalizer([0.3], [0.4], "channel")).eval()
    q = calibrate(to_quant_student(m), torch.rand(64, 1, 8, 8))
    return {"int8": export_tflite_int8(q, (1, 8, 8), d / "m_int8.tflite").path,
            "onnx": export_onnx_float(m, (1, 8, 8), d / "m.onnx").path}


def test_profile_never_shows_a_missing_figure_as_ok(exported):
    r = run(["profile", str(exported["int8"]), "--target", "android", "--runs", "5", "--warmup", "1"])
    assert r.exit_code == 0, r.output
    ram = next(line for line in r.output.splitlines() if line.strip().startswith("fit ram"))
    assert "NOT CHECKED" in ram and "TFLite Micro" in ram and "ok" not in ram.split("NOT CHECKED")[0]
    assert "value None" not in r.output
    r = run(["profile", str(exported["int8"]), "--target", "cortex-m4", "--runs", "5", "--warmup", "1"])
    ram = next(line for line in r.output.splitlines() if line.strip().startswith("fit ram"))
    assert r.exit_code == 0 and " ok " in ram and "NOT CHECKED" not in ram  # TFLite Micro's arena is the figure


def test_profile_of_onnx_says_what_is_not_available_and_why(exported):
    r = run(["profile", str(exported["onnx"]), "--target", "cpu", "--runs", "5", "--warmup", "1"])
    assert r.exit_code == 0, r.output
    tail = r.output.split("not available for ONNX files")[1]
    for what in ("target latency estimate", "fit checks", "TFLite Micro arena", "TFLite kernels", ".tflite files only"):
        assert what in tail, r.output
    assert "[measured-host] onnxruntime" in r.output


def test_profile_runs_must_be_positive(exported):
    r = run(["profile", str(exported["int8"]), "--runs", "0"])
    assert r.exit_code != 0 and "Traceback" not in r.output and "--runs" in r.output


@pytest.mark.slow
def test_build_prints_the_reports_warnings_and_counts_parameters_one_way(tmp_path):
    out = tmp_path / "b"
    args = ["build", "--data", "builtin:digits", "--target", "cortex-m4", "--epochs", "1", "--qat-epochs", "1", "-q",
            "-T", "4", "--alpha", "0.9", "--out", str(out)]  # a fixed objective: no trials (not what this tests)
    r = run(args)
    assert r.exit_code in (0, 1) and (out / "report.json").is_file(), r.output
    m = json.loads((out / "metrics.json").read_text())
    rep = json.loads((out / "report.json").read_text())
    params = m["student"]["params"]
    assert f"{params:,} parameters" in r.output.splitlines()[0]  # the search line counts as the report does
    assert rep["search"]["chosen"]["params"] == params
    assert {row["params"] for row in rep["models"] if row["name"].startswith("distilled")} == {params}
    printed = " ".join(r.output.split())  # the console wraps long lines
    for w in rep["warnings"]:
        assert " ".join(w.split()) in printed
    # the warnings build prints are the report's (e.g. distillation lost to the twin): a re-run (nothing changed,
    # re-checked only) prints one recorded there
    # (the manifest records the report's digest, so the edited report is re-recorded there: an edit the manifest does
    # not know of is rebuilt, not re-checked; tests/test_bad_inputs.py)
    rep["warnings"].append("Distillation LOST to the no-teacher twin by 0.50 points [recorded]")
    (out / "report.json").write_text(json.dumps(rep))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["artifacts"] = artifact_list(out)
    (out / "manifest.json").write_text(json.dumps(manifest))
    r2 = run(args)
    printed = " ".join(r2.output.split())
    assert "re-checked only" in printed
    assert "WARNING: Distillation LOST to the no-teacher twin by 0.50 points [recorded]" in printed


@pytest.mark.slow
def test_torchrun_prints_no_future_warning_of_ours(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d",
           f"--rdzv-endpoint=127.0.0.1:{port}", "-m", "edgedistill", "distill", "--data", "builtin:digits",
           "--epochs", "2", "-q", "-T", "4", "--alpha", "0.9", "--threads", "1", "--out", str(tmp_path / "o")]
    env = {**os.environ, "EDGEDISTILL_CACHE": str(tmp_path / "cache"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "broadcast_buffers" not in p.stderr and "FutureWarning" not in p.stderr, p.stderr[-3000:]
