"""`edgedistill distill` end to end on real data (digits), and every bad input the issue lists."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from edgedistill.cli import main
from tiny_models import tiny_cnn


def run(args):
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """One real `distill --qat` on digits, shared by the tests that inspect its outputs. A fixed objective: the
    automatic choice of T and alpha (most of this run's time when it was on) is test_augmented_run_with_loss_auto's."""
    out = tmp_path_factory.mktemp("digits") / "run"
    r = run(["distill", "--out", str(out), "--epochs", "8", "--quiet", "-T", "4", "--alpha", "0.9",
             "--qat", "--qat-epochs", "1", "--calibration", "percentile",
             "--target", "cortex-m4"])
    assert r.exit_code == 0, r.output
    return out


@pytest.mark.slow
def test_distill_digits_end_to_end(digits_run, tmp_path):
    out = digits_run
    files = {p.name for p in out.iterdir()}
    assert {"student.safetensors", "student.json", "baseline.safetensors", "config.json", "metrics.json"} <= files
    assert not (out.parent / "run.partial").exists()
    m = json.loads((out / "metrics.json").read_text())
    assert m["teacher"]["test_acc"] > 95
    assert m["student"]["test_acc"] > 80 and m["baseline"]["test_acc"] > 80  # chance is 10%
    assert m["gain_vs_baseline"] == pytest.approx(m["student"]["test_acc"] - m["baseline"]["test_acc"])
    behind = [w for w in m["warnings"] if "the no-teacher twin (float) by" in w]
    assert bool(behind) == (m["gain_vs_baseline"] < 0)
    # "LOST" only when the paired test puts the difference beyond noise; within it, "trails ... may be chance"
    assert all(("LOST" in w) != m["gain_vs_baseline_test"]["within_noise"] for w in behind)
    assert m["student"]["params"] == m["baseline"]["params"] and 0 < m["student"]["params"] < m["teacher"]["params"]
    assert len(m["student"]["history"]) == 8
    assert (m["student"]["objective"]["temperature"], m["student"]["objective"]["alpha"]) == (4, 0.9)
    assert m["data"]["normalizer"]["mean"] and m["timings"]["distill_s"] > 0
    q = m["int8"]
    assert q["parity_passed"] and q["calibration"] == {"method": "percentile", "samples": 1000}
    assert q["qat_test_acc"] > 80 and q["ptq_test_acc"] > 80 and q["baseline_qat_test_acc"] > 80
    paired = q["qat_vs_ptq_test"]  # QAT vs PTQ on the same test samples; warned about only when beyond noise
    assert paired["gain_points"] == pytest.approx(q["qat_test_acc"] - q["ptq_test_acc"])
    assert any("below post-training int8" in w for w in m["warnings"]) == (
        paired["gain_points"] < 0 and not paired["within_noise"])
    assert {a["name"] for a in q["artifacts"]} == {"onnx-float", "onnx-int8", "tflite-float", "tflite-int8"}
    assert {(r["artifact"], r["runtime"]) for r in q["parity"] if r["checked"]} >= {
        ("onnx-int8", "onnxruntime"), ("tflite-int8", "litert"), ("tflite-int8", "tflm")}
    tfl = next(a for a in q["artifacts"] if a["name"] == "tflite-int8")
    assert tfl["input"]["dtype"] == "int8" and tfl["input"]["scale"] > 0  # what a device app needs
    assert (out / "student_int8.tflite").exists() and (out / "student_qat.safetensors").exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["teachers"][0]["path"] == "builtin:digits" and cfg["train"]["epochs"] == 8

    # The student checkpoint reloads and reproduces the reported accuracy.
    from edgedistill.data import make_splits, read_dataset
    from edgedistill.students.checkpoint import load_student

    model, _ = load_student(out)
    s = make_splits(read_dataset("builtin:digits"))
    with torch.no_grad():
        acc = 100 * float((model(torch.from_numpy(s.test.x)).argmax(1).numpy() == s.test.y).mean())
    # The reported figure is a float32 mean (rounding ~1e-5 points); one test image is 0.28 points.
    assert acc == pytest.approx(m["student"]["test_acc"], abs=1e-4)
    np.testing.assert_allclose(m["data"]["normalizer"]["mean"], s.normalizer.mean, rtol=1e-12)  # train-only stats
    np.testing.assert_allclose(m["data"]["normalizer"]["std"], s.normalizer.std, rtol=1e-12)

    # `export` reuses the QAT weights: its int8 TFLite file is byte-identical to the one distill wrote.
    r_exp = run(["export", str(out), "--int8", "--format", "tflite", "--out", str(tmp_path / "exp")])
    assert r_exp.exit_code == 0, r_exp.output
    rec = json.loads((tmp_path / "exp" / "export.json").read_text())
    assert rec["int8_source"] == "qat" and rec["parity_passed"]
    assert (tmp_path / "exp" / "student_int8.tflite").read_bytes() == (out / "student_int8.tflite").read_bytes()
    # export --overwrite replaces only an earlier export's output: never a user's folder, the checkpoint or its parent
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("mine")
    for dest, needle in ((user, "not an edgedistill output (no export.json)"), (out, "would delete the checkpoint"),
                         (out.parent, "would delete the checkpoint")):
        r = run(["export", str(out), "--formats", "onnx", "--out", str(dest), "--overwrite"])
        assert r.exit_code == 2 and needle in r.output, r.output
    assert [p.name for p in user.iterdir()] == ["notes.txt"] and (out / "student.safetensors").exists()
    from edgedistill.pipeline.rundir import check_out_dir

    check_out_dir(tmp_path / "exp", overwrite=True, marks=("export.json",))  # an earlier export: replaceable

    # Refusing to clobber without --overwrite; a second run with the same teacher and data hits the logit cache.
    r2 = run(["distill", "--out", str(out), "--epochs", "1", "-q", "-T", "2", "--alpha", "0.5"])
    assert r2.exit_code != 0 and "already exists" in r2.output
    out2 = tmp_path / "run2"
    r3 = run(["distill", "--out", str(out2), "--epochs", "1", "-q", "-T", "2", "--alpha", "0.5"])
    assert r3.exit_code == 0, r3.output
    m2 = json.loads((out2 / "metrics.json").read_text())
    # digits is a small set, so the transfer split goes through the function-matching stream (auto mixup) and only
    # the test split's logits come from the per-sample cache
    assert m2["timings"]["teacher_cache_hits"] == 1 and m2["timings"]["teacher_cache_misses"] == 0


@pytest.fixture
def tiny_teacher(tmp_path):
    path = tmp_path / "teacher.safetensors"
    save_file(tiny_cnn().state_dict(), str(path))
    return path


def _npz(tmp_path, x, y, name="d.npz"):
    np.savez(tmp_path / name, x=x, y=y)
    return str(tmp_path / name)


def _images(n=120, size=8, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, size, size)).astype(np.float32), rng.integers(0, 10, n)


def _expect_clean_failure(tmp_path, args, *needles):
    out = tmp_path / "out"
    r = run(["distill", "--out", str(out), "--epochs", "1", "-q", *args])
    assert r.exit_code != 0
    assert "Traceback" not in r.output and r.output.startswith("error: ")
    assert len(r.output.strip().splitlines()) == 1  # one paragraph
    for n in needles:
        assert n in r.output, r.output
    assert not out.exists() and not (tmp_path / "out.partial").exists()
    return r.output


def test_missing_teacher_file(tmp_path):
    _expect_clean_failure(tmp_path, ["--teacher", str(tmp_path / "missing.onnx")], "does not exist")


def test_corrupt_teacher(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model" * 10)
    _expect_clean_failure(tmp_path, ["--teacher", str(bad)], "not a loadable ONNX model")


def test_data_shape_does_not_fit_teacher(tmp_path, tiny_teacher):
    x, y = _images(size=6)
    _expect_clean_failure(tmp_path, ["--teacher", str(tiny_teacher), "--teacher-factory", "tiny_models:tiny_cnn",
                                     "--data", _npz(tmp_path, x, y)], "(1, 6, 6)", "cannot run on them")


def test_labels_out_of_range(tmp_path, tiny_teacher):
    x, y = _images()
    y[5] = 12  # the teacher has 10 classes; labels {0..9, 12} are 11 classes, mapped in sorted order
    _expect_clean_failure(tmp_path, ["--teacher", str(tiny_teacher), "--teacher-factory", "tiny_models:tiny_cnn",
                                     "--data", _npz(tmp_path, x, y)], "11 classes (its labels mapped")
    y[5] = -3
    _expect_clean_failure(tmp_path, ["--teacher", str(tiny_teacher), "--teacher-factory", "tiny_models:tiny_cnn",
                                     "--data", _npz(tmp_path, x, y, "neg.npz")], "labels range from -3")


def test_nan_in_data(tmp_path, tiny_teacher):
    x, y = _images()
    x[17, 0, 3, 3] = np.nan
    _expect_clean_failure(tmp_path, ["--teacher", str(tiny_teacher), "--teacher-factory", "tiny_models:tiny_cnn",
                                     "--data", _npz(tmp_path, x, y)], "NaN", ": [17]")


def test_pickle_where_weights_expected(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(tiny_cnn(), path)
    x, y = _images()
    _expect_clean_failure(tmp_path, ["--teacher", str(path), "--teacher-factory", "tiny_models:tiny_cnn",
                                     "--data", _npz(tmp_path, x, y)], "refuses to unpickle")


def test_invalid_option_values(tmp_path):
    _expect_clean_failure(tmp_path, ["--alpha", "1.5"], "alpha")
    _expect_clean_failure(tmp_path, ["--student", "resnet"], "Unknown student family 'resnet'", "cnn")
    _expect_clean_failure(tmp_path, ["--data", "builtin:mnist"], "digits")
    _expect_clean_failure(tmp_path, ["--augment", "rotate=10"], "unknown augmentation 'rotate'")
    _expect_clean_failure(tmp_path, ["--augment", "shift=two"], "shift takes a number")
    _expect_clean_failure(tmp_path, ["--workers", "-1"], "workers must be in 0..64")


def test_augmentation_that_does_not_fit_the_data_fails_before_writing(tmp_path):
    """Mirroring needs images; on feature vectors it is refused before anything is written."""
    rng = np.random.default_rng(0)
    x, y = rng.random((120, 12), dtype=np.float32), np.arange(120) % 3
    torch.jit.trace(torch.nn.Linear(12, 3), torch.zeros(1, 12)).save(str(tmp_path / "t.pt"))
    np.savez(tmp_path / "f.npz", x=x, y=y)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["distill", "--data", str(tmp_path / "f.npz"), "--teacher", str(tmp_path / "t.pt"),
                                  "--augment", "hflip", "--out", str(out), "-q"])
    assert r.exit_code != 0
    assert "hflip needs images" in r.output and "Traceback" not in r.output
    assert not out.exists() and not (tmp_path / "out.partial").exists()


@pytest.mark.slow
def test_augmented_run_with_loss_auto(tmp_path):
    """Function matching on digits: the teacher runs on the augmented batches, DKD and kd-std join the tuning."""
    out = tmp_path / "aug"
    # trials long enough to rank (tuning.MIN_MATURITY 0.5): the reference reached 0.60 at 2 epochs, 0.89 at 6
    r = run(["distill", "--out", str(out), "--epochs", "3", "-q", "--augment", "shift=1,mixup=0.2", "--loss", "auto",
             "--tune-epochs", "3", "--max-train", "600"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert {t["loss"] for t in m["tuning"]["trials"]} == {"kd", "dkd", "kd-std"}
    assert len(m["tuning"]["trials"]) == 25  # 24 distillation trials + the no-teacher objective
    tu, o = m["tuning"], m["student"]["objective"]
    assert tu["reference"] == "kd T 1 alpha 1" and tu["chosen"] in (tu["reference"], tu["best"])
    assert tu["chosen"] == f"{o['loss']} T {o['temperature']:g} alpha {o['alpha']:g}"
    assert (tu["chosen"] == tu["best"]) == (tu["best_minus_reference"] > 2 * tu["std_error"] or tu["best"] ==
                                            tu["reference"])
    assert m["training"]["teacher_outputs"].startswith("on the fly")
    assert m["timings"]["teacher_batches_computed"] > 0 and m["timings"]["teacher_batches_reused"] > 0
    assert "augmentation: shift ±1, mixup α=0.2" in r.output


def test_user_teacher_on_npz_data_runs(tmp_path, tiny_teacher):
    x, y = _images(200)
    out = tmp_path / "ok"
    r = run(["distill", "--out", str(out), "--epochs", "2", "-q", "-T", "3", "--alpha", "0.8",
             "--teacher", str(tiny_teacher), "--teacher", str(tiny_teacher), "--ensemble", "geometric",
             "--teacher-factory", "tiny_models:tiny_cnn", "--data", _npz(tmp_path, x, y), "--student", "dscnn:width=4"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert len(m["teachers"]) == 2 and m["teacher"]["ensemble"] == "geometric"
    assert m["student"]["arch"] == {"family": "dscnn", "width": 4, "depth": 3}


def test_help_explains_every_option():
    r = run(["distill", "--help"])
    assert r.exit_code == 0
    for opt in ("--teacher", "--data", "--student", "--temperature", "--alpha", "--ensemble", "--out", "--overwrite"):
        assert opt in r.output


def test_export_bad_inputs(tmp_path):
    r = run(["export", str(tmp_path / "nothing"), "--int8"])
    assert r.exit_code != 0 and r.output.startswith("error: ") and "not a directory" in r.output
    (tmp_path / "ck").mkdir()
    r = run(["export", str(tmp_path / "ck"), "--format", "coreml"])
    assert r.exit_code != 0 and "coreml" in r.output
    r = run(["export", str(tmp_path / "ck")])
    assert r.exit_code != 0 and "student.json" in r.output
    assert not (tmp_path / "ck" / "export").exists()


def test_export_refuses_a_checkpoint_config_it_cannot_honour(tmp_path):
    """export --int8 of a checkpoint trained without --qat reads quant.int16 from its config.json: a hand-edited
    config (not JSON, an unknown kind, a string, a kind twice) is refused in one paragraph, exit 2, nothing
    written (it was a traceback, or silently accepted)."""
    from edgedistill.data.splits import Normalizer
    from edgedistill.students import StudentArch, build_student
    from edgedistill.students.checkpoint import StudentCheckpoint, save_student

    rng = np.random.default_rng(0)
    data = _npz(tmp_path, rng.normal(size=(200, 4)).astype(np.float32), rng.integers(0, 3, 200))
    arch, norm = StudentArch("mlp", 8, 1), Normalizer([0.0] * 4, [1.0] * 4, "feature")
    ck = tmp_path / "ck"
    save_student(ck, build_student(arch, (4,), 3, norm), StudentCheckpoint(arch, (4,), 3, ["0", "1", "2"], norm))
    for text, needle in (("{not json", "Cannot read"), ('{"data": {"source": "%s"}, "quant": {"int16": ["gelu"]}}',
                                                         "quant.int16"),
                         ('{"data": {"source": "%s"}, "quant": {"int16": "attention"}}', "quant.int16"),
                         ('{"data": {"source": "%s"}, "quant": {"int16": ["attention", "attention"]}}', "once")):
        (ck / "config.json").write_text(text.replace("%s", data) if "%s" in text else text)
        r = run(["export", str(ck), "--int8", "--formats", "onnx", "--out", str(tmp_path / "exp")])
        msg = r.output.strip()
        assert r.exit_code == 2 and needle in msg and "config.json" in msg and "Traceback" not in msg, msg
        assert "\n" not in msg and not (tmp_path / "exp").exists() and not (tmp_path / "exp.partial").exists()


@pytest.mark.slow
def test_report_files(digits_run):
    rep = json.loads((digits_run / "report.json").read_text())
    assert rep["schema_version"] == 1
    s = rep["summary"]
    rows = {m["name"]: m for m in rep["models"]}
    teacher, deployed = rows["teacher"], rows["int8 TFLite"]
    # the headline figures recomputed from the report's own measurements
    assert s["speedup_vs_teacher"] == pytest.approx(teacher["latency_ms"] / deployed["latency_ms"], rel=1e-9)
    assert s["size_ratio_teacher_over_student"] == pytest.approx(teacher["bytes"] / deployed["bytes"], rel=1e-9)
    assert s["size_ratio_teacher_over_student"] > 1 and deployed["bytes"] == (digits_run / "student_int8.tflite").stat().st_size
    # parity: each row's verdict from its own agreement and step bound, the run's from its rows; the int8 TFLite
    # file on LiteRT and TFLite Micro computes exactly what the QAT model computes in that runtime's arithmetic
    for r in rep["parity"]:
        within = r["top1_agreement"] >= 99.9 and (r["max_steps"] is None or r["max_steps"] <= r["step_bound"] + 1e-3)
        assert r["passed"] == (not r["checked"] or within), r
    checked = [r for r in rep["parity"] if r["checked"]]
    assert len(checked) == 6 and all(r["passed"] for r in checked)
    exact = {(r["artifact"], r["runtime"]): r for r in checked if r["artifact"] == "tflite-int8"}
    assert {rt: r["arithmetic"] for (_, rt), r in exact.items()} == {"litert": "xnnpack", "tflm": "tflm",
                                                                     "litert-reference": "reference"}
    assert all(r["max_steps"] == 0 for r in exact.values()), exact
    assert s["deployed_matches_measured"] is True and rep["usage"]["parity_passed"] is True
    q = json.loads((digits_run / "metrics.json").read_text())["int8"]
    assert s["gain_vs_no_teacher_twin_int8"] == pytest.approx(q["qat_test_acc"] - q["baseline_qat_test_acc"])
    names = [m["name"] for m in rep["models"]]
    assert names == ["teacher", "no-teacher twin (float)", "distilled (float)", "QAT int8 ONNX", "int8 TFLite",
                     "int8 TFLite on LiteRT's reference kernels (TFLite Micro's arithmetic within one code)", "no-teacher twin (QAT int8, simulated)"]  # cortex-m4
    assert s["accuracy_deployed_runtime"] == "litert-reference"
    # the twin's int8 file is not exported; the reference-kernels row is an accuracy run of the timed int8 file
    measured = [m for m in rep["models"] if "simulated" not in m["name"] and "reference kernels" not in m["name"]]
    assert all(m["latency_ms"] > 0 and m["where"].startswith("measured-host") for m in measured)
    ref = next(m for m in rep["models"] if "reference kernels" in m["name"])
    assert ref.get("latency_ms") is None and ref["where"].startswith("not timed")
    t = rep["target"]
    assert t["name"] == "cortex-m4" and t["estimate_ms"] > 0 and t["estimate_error"] is None
    assert {f["check"] for f in t["fit"]} == {"flash", "ram", "ops", "precision"}
    md = (digits_run / "report.md").read_text()
    assert "Deployed = measured" in md and "| int8 TFLite |" in md
    # what the run cost: its stages add up to at most the wall time, the throughput is the student's own record
    m = json.loads((digits_run / "metrics.json").read_text())
    c = rep["cost"]
    assert 0 < sum(c["stages"].values()) <= c["total_s"] == m["timings"]["total_s"]
    assert {"float distillation", "QAT (student and twin)", "parity"} <= set(c["stages"])
    assert c["samples_per_s"] == m["student"]["samples_per_s"] > 0 and 0 < c["data_share"] < 1
    assert 100 * 2**20 < c["peak_rss_bytes"] < 24 * 2**30  # torch alone is over 100 MiB resident
    assert "## Cost of this run" in md and "samples/s" in md and "peak memory" in md


@pytest.mark.slow
def test_feature_terms_compose_and_are_reported(tmp_path):
    """Hint (with its regressor) + attention transfer + RKD on digits: each term's mean per epoch is recorded."""
    out = tmp_path / "feat"
    r = run(["distill", "--out", str(out), "--epochs", "2", "-q", "-T", "4", "--alpha", "0.9", "--max-train", "600",
             "--feature", "loss=hint,student=features.block2,teacher=layer2,weight=0.5",
             "--feature", "loss=at,student=features.block1,teacher=layer1,weight=50",
             "--feature", "loss=rkd_distance,student=head.flatten,teacher=head.1"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    terms = [h["terms"] for h in m["student"]["history"]]
    assert len(terms) == 2 and set(terms[0]) == {"hint:features.block2->layer2", "at:features.block1->layer1",
                                                 "rkd_distance:head.flatten->head.1"}
    assert all(v > 0 for v in terms[0].values())
    assert terms[1]["hint:features.block2->layer2"] < terms[0]["hint:features.block2->layer2"]  # the hint is learned
    assert m["baseline"]["history"][0]["terms"] == {}  # the twin has no teacher terms


def test_feature_terms_bad_layer_and_runtime_teacher(tmp_path):
    _expect_clean_failure(tmp_path, ["--feature", "loss=hint,student=block9,teacher=layer2"],
                          "the student has no layer named 'block9'; available: normalize")
    _expect_clean_failure(tmp_path, ["--feature", "loss=at,student=features.block1,teacher=layerX"],
                          "the teacher has no layer named 'layerX'")
    _expect_clean_failure(tmp_path, ["--feature", "loss=magic,student=a,teacher=b"], "unknown feature loss 'magic'")


def test_overwrite_never_deletes_what_the_user_put_in_an_earlier_run(tmp_path, tiny_teacher):
    """A breaking session kept its corpus (and a notes file) inside an earlier run's directory and re-ran with
    --overwrite: the publish replaced the directory and both were gone. The run records what it published
    (rundir.RUN_INDEX); anything else there is refused in one paragraph and left as it was."""
    x, y = _images()
    out = tmp_path / "out"
    args = ["distill", "--teacher", str(tiny_teacher), "--teacher-factory", "tiny_models:tiny_cnn", "--out", str(out),
            "--epochs", "1", "-q", "-T", "2", "--alpha", "0.5"]
    assert run([*args, "--data", _npz(tmp_path, x, y)]).exit_code == 0
    corpus = out / "mine.npz"
    np.savez(corpus, x=x, y=y)
    (out / "export").mkdir()  # what `export RUN` writes by default: the run's, not the user's
    (out / "export" / "export.json").write_text("{}")
    r = run([*args, "--data", str(corpus), "--overwrite"])
    assert r.exit_code == 2 and "mine.npz" in r.output and "nothing was touched" in r.output, r.output
    assert "export" not in r.output.split("(")[1].split(")")[0]  # only the user's entry is named
    assert corpus.is_file() and (out / "metrics.json").is_file()
    corpus.unlink()
    assert run([*args, "--data", _npz(tmp_path, x, y), "--overwrite"]).exit_code == 0  # the run's own: replaced
