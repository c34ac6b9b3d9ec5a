"""`edgedistill profile` on real files with the real runtimes, and its bad-input errors."""

import json

import pytest
import torch
from click.testing import CliRunner

from edgedistill.cli import main
from edgedistill.data import Normalizer
from edgedistill.export.tflite_export import export_tflite_float, export_tflite_int8
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import StudentArch, build_student


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("prof")
    torch.manual_seed(0)
    m = build_student(StudentArch("cnn", 8, 3), (1, 8, 8), 10, Normalizer([0.3], [0.4], "channel")).eval()
    q = calibrate(to_quant_student(m), torch.rand(64, 1, 8, 8))
    return {"int8": export_tflite_int8(q, (1, 8, 8), d / "m_int8.tflite").path,
            "float": export_tflite_float(m, (1, 8, 8), d / "m.tflite").path, "dir": d}


def run(args):
    return CliRunner().invoke(main, args)


def test_profile_int8_on_microcontroller(files, tmp_path):
    out = tmp_path / "p.json"
    r = run(["profile", str(files["int8"]), "--target", "cortex-m4", "--runs", "20", "--json", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    wheres = [m["where"] for m in rep["measured"]]
    assert wheres == ["measured-host", "measured-host-tflm"]
    for m in rep["measured"]:
        assert 0 < m["median_ms"] <= m["p90_ms"] <= m["p99_ms"] and m["runs"] >= 20
    assert rep["estimate"]["where"] == "estimated" and rep["estimate"]["total_ms"] > 0
    assert "measured_error" not in rep["estimate"]  # no ground truth for a microcontroller here
    fit = {f["check"]: f for f in rep["fit"]}
    assert fit["ram"]["value"] == rep["tflm_arena"]["total_bytes"] and fit["ram"]["passed"]
    assert fit["precision"]["passed"] and fit["ops"]["passed"]


def test_profile_on_host_reports_estimator_error(files, tmp_path):
    out = tmp_path / "host.json"
    r = run(["profile", str(files["int8"]), "--target", "cpu", "--runs", "20", "--json", str(out)])
    assert r.exit_code == 0, r.output
    assert "error vs measured" in r.output and "[measured-host] litert x2" in r.output
    rep = json.loads(out.read_text())
    host = next(m for m in rep["measured"] if m["where"] == "measured-host")
    est = rep["estimate"]
    # the error is the estimate against this host's measured median, recomputed from the file's own figures
    assert est["measured_error"] == pytest.approx(est["total_ms"] / host["median_ms"] - 1.0, rel=1e-9)
    assert rep["target"] == "cpu" and rep["precision"] == "int8" and rep["file_bytes"] == files["int8"].stat().st_size


def test_float_model_on_int8_only_target_names_the_problem(files):
    r = run(["profile", str(files["float"]), "--target", "cortex-m4"])
    assert r.exit_code == 1 and "does not fit cortex-m4" in r.output  # after every figure it measured
    assert "float activations" in r.output and "int8" in r.output and "MACs" in r.output


def test_bad_inputs(files, tmp_path):
    junk = tmp_path / "x.tflite"
    junk.write_bytes(b"hello world, not a model")
    r = run(["profile", str(junk)])
    assert r.exit_code == 2 and "not a TFLite flatbuffer" in r.output
    txt = tmp_path / "notes.txt"
    txt.write_text("x")
    assert "neither an ONNX" in run(["profile", str(txt)]).output
    r = run(["profile", str(files["int8"]), "--target", "esp32"])
    assert r.exit_code == 2 and "Known targets" in r.output
    r = run(["profile", str(files["int8"]), "--target", "cpu", "--json", str(tmp_path / "one.json"), "--runs", "1"])
    assert r.exit_code == 0
    one = json.loads((tmp_path / "one.json").read_text())  # a valid report even for a single timed run
    assert one["model"] == str(files["int8"]) and one["measured"][0]["runs"] >= 1
    bad = run(["profile", str(files["float"]), "--target", "cortex-m7", "--json", str(tmp_path / "no.json")])
    assert bad.exit_code == 1  # the figures are written, with the verdict saying it does not fit
    assert json.loads((tmp_path / "no.json").read_text())["fits"] is False


def test_a_truncated_tflite_or_an_unwritable_json_path_is_one_paragraph(files, tmp_path):
    """A file cut short in the middle of its flatbuffer (a copy interrupted) and a --json path whose directory does
    not exist were tracebacks."""
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(files["int8"].read_bytes()[:5000])
    r = run(["profile", str(cut)])
    assert r.exit_code == 2 and r.output.startswith("error: ") and "Traceback" not in r.output, r.output
    assert "truncated or damaged" in r.output and len(r.output.strip().splitlines()) == 1, r.output
    r = run(["profile", str(files["int8"]), "--runs", "1", "--json", str(tmp_path / "nowhere" / "p.json")])
    assert r.exit_code == 2 and "Traceback" not in r.output and "nowhere" in r.output, r.output
    assert r.output.strip().splitlines()[-1].startswith("error: cannot write or read"), r.output


def test_a_text_int8_file_is_profiled_as_int8(tmp_path):
    """Before: a text student's int8 file (int32 token ids in) was called float32: no arena, no estimate."""
    torch.manual_seed(0)
    m = build_student(StudentArch("textcnn", 8, 1), (12,), 3, None, vocab_size=257).eval()
    q = calibrate(to_quant_student(m), torch.randint(1, 257, (64, 12), dtype=torch.int32))
    path = export_tflite_int8(q, (12,), tmp_path / "text_int8.tflite").path
    out = tmp_path / "p.json"
    r = run(["profile", str(path), "--target", "cortex-m4", "--runs", "5", "--json", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["precision"] == "int8" and rep["tflm_arena"]["total_bytes"] > 0 and rep["estimate"]["total_ms"] > 0


def test_flash_counts_the_tokenizer_tables_beside_a_text_model(tmp_path):
    """A build writes tokenizer.json beside its model files; profile counts its device tables in flash as the build
    did (budget.flash_use), --tokenizer none counts the file alone, and a file that is not a student tokenizer is
    one paragraph, exit 2."""
    from tiny_text import save_tiny_bert  # tests/ is on sys.path (conftest.py)

    from edgedistill.data.tokenizers import VocabTokenizer, load_tokenizer

    torch.manual_seed(0)
    m = build_student(StudentArch("textcnn", 8, 1), (12,), 3, None, vocab_size=257).eval()
    q = calibrate(to_quant_student(m), torch.randint(1, 257, (64, 12), dtype=torch.int32))
    model = export_tflite_int8(q, (12,), tmp_path / "student_int8.tflite").path
    teacher = save_tiny_bert(tmp_path / "teacher") / "tokenizer.json"
    VocabTokenizer.fit(teacher, ["haus garten baum", "the cat sat"]).save(tmp_path / "tokenizer.json")
    tables = load_tokenizer(tmp_path / "tokenizer.json").device_bytes()
    file_bytes = model.stat().st_size
    assert tables > 0

    def flash(*extra):
        out = tmp_path / "p.json"
        r = run(["profile", str(model), "--target", "cortex-m4", "--runs", "3", "--json", str(out), *extra])
        assert r.exit_code == 0, r.output
        return next(c for c in json.loads(out.read_text())["fit"] if c["check"] == "flash"), r.output

    auto, printed = flash()
    assert auto["value"] == file_bytes + tables and f"tokenizer tables {tables:,} B" in printed
    # cortex-m4's whole flash is the fit check's limit; the model's share, what build and gate judge, is said too
    from edgedistill.targets import load_target

    share = load_target("cortex-m4").model_flash_bytes
    assert f"the model's share of cortex-m4's flash" in printed and f"{share:,} B (within)" in printed
    assert flash("--tokenizer", "none")[0]["value"] == flash("--tokenizer", "NONE")[0]["value"] == file_bytes
    assert flash("--tokenizer", "bytes")[0]["value"] == file_bytes  # the byte tokenizer reads no tables
    r = run(["profile", str(model), "--target", "cortex-m4", "--tokenizer", "vocab"])
    assert r.exit_code == 2 and "tokenizer.json" in r.output, r.output
    assert flash("--tokenizer", str(tmp_path / "tokenizer.json"))[0]["value"] == file_bytes + tables
    # a teacher's transformers tokenizer.json beside the file (an optimum export's folder): a note, not a refusal
    (tmp_path / "tokenizer.json").write_bytes(teacher.read_bytes())
    foreign, printed = flash()
    assert foreign["value"] == file_bytes and "not counted" in printed
    for bad in ('{"tokenizer": ["vocab"], "format_version": 1}', '{"not": "a student tokenizer"}'):
        (tmp_path / "bad.json").write_text(bad)
        r = run(["profile", str(model), "--target", "cortex-m4", "--tokenizer", str(tmp_path / "bad.json")])
        assert r.exit_code == 2 and "Traceback" not in r.output and r.output.strip().count("\n") == 0, r.output
    r = run(["profile", str(model), "--target", "cortex-m4", "--tokenizer", str(tmp_path / "absent.json")])
    assert r.exit_code == 2 and "absent.json" in r.output and "none" in r.output, r.output


def test_an_image_model_never_counts_a_tokenizer(files, tmp_path):
    """A stray student tokenizer beside an image model is not its flash; naming one for it is refused."""
    import shutil

    from edgedistill.data.tokenizers import ByteTokenizer

    model = tmp_path / "m_int8.tflite"
    shutil.copy(files["int8"], model)
    ByteTokenizer().save(tmp_path / "tokenizer.json")
    out = tmp_path / "p.json"
    r = run(["profile", str(model), "--target", "cortex-m4", "--runs", "3", "--json", str(out)])
    assert r.exit_code == 0 and json.loads(out.read_text())["tokenizer_bytes"] is None, r.output
    r = run(["profile", str(model), "--target", "cortex-m4", "--tokenizer", str(tmp_path / "tokenizer.json")])
    assert r.exit_code == 2 and "not token ids" in r.output, r.output


def test_a_runtime_refusing_the_generated_inputs_is_one_paragraph(files, monkeypatch):
    """A build's KV-cache step (ids, position and caches in) made TFLite Micro's GATHER_ND fail on profile's
    generated inputs: a traceback. The runtime's refusal (stood in for here, as the position input's value is
    whatever the interpreter's memory holds) is now one paragraph that says where that file's timing is."""
    import edgedistill.profile.run as run_mod

    def refuse(*a, **k):
        raise RuntimeError("Interpreter invocation failed.")

    monkeypatch.setattr(run_mod, "measure", refuse)
    r = run(["profile", str(files["int8"]), "--target", "cortex-m4", "--runs", "3"])
    assert r.exit_code == 2 and "Traceback" not in r.output and "speed.kv_cache" in r.output, r.output
    assert r.output.strip().count("\n") == 0, r.output


class _TwoInputs(torch.nn.Module):
    def forward(self, ids, pos):
        return ids.float() + pos.float()


class _Sequence(torch.nn.Module):
    def forward(self, ids):
        return ids.float().cumsum(-1)


@pytest.mark.parametrize("case", ["two inputs", "dynamic sequence", "fixed batch 4"])
def test_a_file_profile_cannot_feed_is_refused_before_timing(tmp_path, case):
    """Files profile cannot time on one generated sample are refused in one paragraph, not a traceback (a KV-cache
    step's .onnx: onnxruntime's ValueError) nor a silent figure (a dynamic sequence axis was timed at length 1)."""
    path = tmp_path / "m.onnx"
    ids = torch.zeros(4 if case == "fixed batch 4" else 1, 8, dtype=torch.int32)
    if case == "two inputs":
        torch.onnx.export(_TwoInputs(), (ids, torch.zeros(1, dtype=torch.int32)), str(path), dynamo=False)
        said = "2 inputs"
    else:
        dynamic = {"ids": {0: "batch", 1: "seq"}} if case == "dynamic sequence" else None
        torch.onnx.export(_Sequence(), (ids,), str(path), input_names=["ids"], dynamic_axes=dynamic, dynamo=False)
        said = "dynamic dimension" if case == "dynamic sequence" else "fixed batch of 4"
    r = run(["profile", str(path), "--target", "cpu", "--runs", "3"])
    assert r.exit_code == 2 and "Traceback" not in r.output and said in r.output, r.output
