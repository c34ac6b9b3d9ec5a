"""`edgedistill export` of a causal-LM run (export/lm_run.py): the decoder step's files written again from the run's
corpus and QAT weights, checked on onnxruntime as the run checks them; a run without QAT weights refused."""

import json
import shutil

import numpy as np
import onnxruntime as ort
from click.testing import CliRunner

from edgedistill.cli import main


def _logits(path, ids):
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC  # the QDQ file's own arithmetic
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return s.run(None, {s.get_inputs()[0].name: ids})[0]


def test_export_of_a_causal_lm_run_writes_the_runs_int8_decoder_again_and_checks_it(lm_build, tmp_path):
    out = tmp_path / "export"
    r = CliRunner().invoke(main, ["export", str(lm_build["out"]), "--int8", "--formats", "onnx", "--out", str(out)],
                           catch_exceptions=False)
    assert r.exit_code == 0, r.output
    record = json.loads((out / "export.json").read_text())
    assert record["int8_source"] == "qat" and record["parity_passed"]
    rows = {(p["artifact"], p["runtime"]): p for p in record["parity"]}
    assert rows[("onnx-int8", "onnxruntime")]["checked"] and rows[("onnx-int8", "onnxruntime")]["positions"] > 0
    # the same weights, grids and windows as the run: the file computes what the run's own file computes
    context = lm_build["metrics"]["data"]["context"]
    ids = np.random.default_rng(0).integers(0, 20, size=(4, context)).astype(np.int32)
    np.testing.assert_array_equal(_logits(out / "student_int8.onnx", ids),
                                  _logits(lm_build["out"] / "student_int8.onnx", ids))
    assert "next-token agreement" in r.output and "positions" in r.output  # an LM's table, not a classifier's
    assert "int8 from the run's QAT weights" in r.output
    assert (out / "tokenizer.json").read_bytes() == (lm_build["out"] / "tokenizer.json").read_bytes()
    # the files probed for causality, said on the terminal and kept in export.json
    assert record["causality"] and all(c["passed"] for c in record["causality"])
    assert "Causality: the tokens after t changed" in r.output


def test_export_of_a_causal_lm_run_without_qat_weights_is_refused_and_writes_nothing(lm_build, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lm_build["out"], run)
    (run / "student_qat.safetensors").unlink()
    out = tmp_path / "export"
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--out", str(out)])
    assert r.exit_code != 0
    assert "without QAT weights" in r.output and "--qat" in r.output
    assert not out.exists() and not (tmp_path / "export.partial").exists()


def test_an_auto_task_run_whose_teacher_moved_exports_from_its_own_tokenizer(lm_build, tmp_path):
    """A run made without --task records "auto" in config.json (metrics.json has the task it detected), and its
    teacher folder may have moved since: neither stops the export, which windows the corpus with the run's own
    tokenizer.json and reads no teacher (a breaking session found both refused)."""
    run = tmp_path / "run"
    shutil.copytree(lm_build["out"], run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["task"] = "auto"
    cfg["teachers"][0]["path"] = str(tmp_path / "moved-away")
    (run / "config.json").write_text(json.dumps(cfg))
    out = tmp_path / "export"
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--formats", "onnx", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "export.json").read_text())["parity_passed"]


def test_another_corpus_is_read_with_the_runs_tokenizer(lm_build, tmp_path):
    """--data with words the student never saw: its own ids (the unknown id for new tokens), not a vocabulary fitted
    again on the new text (which crashed the int8 export: the model's output no longer matched the ids)."""
    corpus = tmp_path / "other.txt"
    corpus.write_text("\n".join(f"quantum zebra {i} orbits the violet harbour again" for i in range(60)) + "\n")
    out = tmp_path / "export"
    r = CliRunner().invoke(main, ["export", str(lm_build["out"]), "--int8", "--formats", "onnx", "--data",
                                  str(corpus), "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "export.json").read_text())["parity_passed"]


def test_an_invalid_run_config_is_named_as_the_runs_file(lm_build, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(lm_build["out"], run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["quant"]["kv_cache"] = "yes please"
    (run / "config.json").write_text(json.dumps(cfg))
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--out", str(tmp_path / "export")])
    assert r.exit_code == 2 and "config.json (the run's configuration) is not valid" in r.output
    assert "command line" not in r.output and not (tmp_path / "export").exists()


def test_a_corpus_the_run_named_by_a_relative_path_is_named_as_the_runs(lm_build, tmp_path):
    """A breaking session's run was started with `--data c/good.txt`; `export` from another directory said only
    "Text data path c/good.txt does not exist"."""
    run = tmp_path / "run"
    shutil.copytree(lm_build["out"], run)
    cfg = json.loads((run / "config.json").read_text())
    cfg["data"]["source"] = "c/good.txt"
    (run / "config.json").write_text(json.dumps(cfg))
    r = CliRunner().invoke(main, ["export", str(run), "--int8", "--out", str(tmp_path / "export")])
    assert r.exit_code == 2 and "config.json names the corpus c/good.txt, which does not exist here" in r.output
    assert "a relative path" in r.output and "--data PATH" in r.output and not (tmp_path / "export").exists()


def test_without_int8_only_the_float_files_are_written_and_checked(lm_build, tmp_path):
    out = tmp_path / "export"
    r = CliRunner().invoke(main, ["export", str(lm_build["out"]), "--formats", "onnx", "--out", str(out)])
    assert r.exit_code == 0, r.output
    record = json.loads((out / "export.json").read_text())
    assert [a["name"] for a in record["artifacts"]] == ["onnx-float"] and record["int8_source"] is None
    assert record["parity_passed"] and {p["artifact"] for p in record["parity"]} == {"onnx-float"}
