"""End to end through the top-k teacher cache (issue 31): a teacher of 400 classes built in code distils through
`edgedistill distill` with the cache in its top-k form, chosen automatically and recorded (metrics.json, report);
a second run at another stored temperature reuses the entries; augmented batches still run the teacher; the same
run with the full form (every logit) scores the teacher identically."""

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import save_file

from edgedistill.cli import main
from tiny_models import many_class_teacher

CLASSES = 400


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("topk")
    teacher = many_class_teacher(CLASSES)
    x = np.random.default_rng(0).integers(0, 256, (3000, 1, 8, 8), dtype=np.uint8)
    with torch.no_grad():
        y = teacher(torch.from_numpy(x).float()).argmax(1).numpy()
    y[:CLASSES] = np.arange(CLASSES)  # every class present (a few are never the teacher's argmax here)
    (root / "data").mkdir()
    np.save(root / "data" / "x.npy", x)
    np.save(root / "data" / "y.npy", y)
    save_file(teacher.state_dict(), str(root / "teacher.safetensors"))
    return root


def _distill(world, out, *extra):
    args = ["distill", "--data", str(world / "data"), "--teacher", str(world / "teacher.safetensors"),
            "--teacher-factory", "tiny_models:many_class_teacher", "--steps", "20", "--alpha", "0.9",
            "--no-baseline", "--threads", "1", "--cache-dir", str(world / "cache"), "--out", str(world / out), "-q",
            *extra]
    r = CliRunner().invoke(main, args, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    return json.loads((world / out / "metrics.json").read_text())


@pytest.mark.slow
def test_many_classes_distil_through_the_top_k_cache_and_record_it(world, monkeypatch):
    m = _distill(world, "topk", "-T", "4", "--augment", "none", "--qat", "--formats", "onnx")
    cache = m["teacher_cache"]
    form = cache["form"]
    assert (form["kind"], form["k"], form["temperatures"]) == ("top-k", 32, [1.0, 2.0, 4.0, 8.0])
    n_tr, n_te = m["data"]["sizes"]["transfer"], m["data"]["sizes"]["test"]
    assert (form["bytes_per_sample"], form["full_bytes_per_sample"]) == (148, 4 + 2 * CLASSES)
    assert cache["bytes"] == 148 * (n_tr + n_te) and (cache["misses"], cache["hits"]) == (2, 0)
    tails = [form["tail_mass"][f"T={t:g}"] for t in (1, 2, 4, 8)]
    assert 0 < tails[0] < tails[1] < tails[2] < tails[3] < 1  # the softer, the more mass outside the top 32
    assert m["student"]["history"][-1]["step"] == 20 and np.isfinite(m["student"]["history"][-1]["train_loss"])
    report = (world / "topk" / "report.md").read_text()
    assert "teacher cache: top 32 logits and the rest's mass (148 bytes a sample" in report

    again = _distill(world, "topk-T2", "-T", "2", "--augment", "none")  # T = 2 was stored: the entries are reused
    assert (again["teacher_cache"]["hits"], again["teacher_cache"]["misses"]) == (2, 0)

    augmented = _distill(world, "topk-aug", "-T", "4", "--augment", "shift=1")
    assert augmented["timings"]["teacher_batches_computed"] > 0  # the teacher ran on the augmented batches
    assert [e["samples"] for e in augmented["teacher_cache"]["entries"]] == [n_te]  # only the test split cached

    import edgedistill.teachers.cache_form as cache_form

    monkeypatch.setattr(cache_form, "MIN_SAVING", 1e9)  # the full form on the same run
    full = _distill(world, "full", "-T", "4", "--augment", "none")
    assert full["teacher_cache"]["form"]["kind"] == "full"
    assert full["teacher"]["test_acc"] == m["teacher"]["test_acc"]  # top-1 of the top-k form = argmax of all
    assert full["confusion"]["teacher"] == m["confusion"]["teacher"]
