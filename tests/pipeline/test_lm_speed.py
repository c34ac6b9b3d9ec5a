"""Tokens per second of a causal LM (pipeline/lm_speed.py) on a tiny decoder exported to int8 ONNX / TFLite and a
GPT-2 teacher built from a config: every figure is present, positive and consistent (tokens/s = 1000 / median ms,
ratio = student / teacher on one runtime); the teacher's float files compute the teacher's logits; the per-target
estimates follow the targets' throughput; a teacher no converter takes leaves no ratio. Speeds are recorded, never
asserted."""

import numpy as np
import pytest
import torch

from edgedistill.export.registry import export_all
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.estimate import estimate_latency
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTRunner, OnnxRunner
from edgedistill.pipeline.lm_speed import TeacherStep, host_speed, lm_speed, teacher_files, target_speeds
from edgedistill.students.decoder_family import decoder
from edgedistill.targets import load_target

V, L = 40, 8


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    import transformers

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        m = decoder((L,), V, 16, 1, V, heads=1).eval()
        x = torch.randint(1, V, (32, L), dtype=torch.int32)
        out = tmp_path_factory.mktemp("speed")
        arts = export_all(m, calibrate(to_quant_student(m), x), (L,), V, out, ["onnx", "tflite"], True)
        cfg = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=2, n_head=2)
        teacher = transformers.GPT2LMHeadModel(cfg).eval()
        return {"arts": arts, "teacher": teacher, "out": out}
    finally:
        torch.set_num_threads(threads)


def test_host_rows_are_positive_and_consistent(world):
    s = host_speed(world["arts"], world["teacher"], L, threads=1, runs=20, min_seconds=0.05)
    got = {(r["model"], r["runtime"]) for r in s["host"]}
    assert got == {(m, rt) for m in ("student (int8)", "student (float32)", "teacher (float32)")
                   for rt in ("litert", "onnxruntime")}
    for r in s["host"]:
        assert r["median_ms"] > 0 and r["runs"] >= 20 and r["p90_ms"] >= r["median_ms"]
        assert r["tokens_per_s"] == pytest.approx(1000.0 / r["median_ms"])
    by = {(r["model"], r["runtime"]): r["tokens_per_s"] for r in s["host"]}
    for rt, ratio in s["ratio"].items():
        assert ratio["ratio"] == pytest.approx(by[("student (int8)", rt)] / by[("teacher (float32)", rt)])
        assert s["int8_over_float"][rt] == pytest.approx(by[("student (int8)", rt)] / by[("student (float32)", rt)])
    assert set(s["ratio"]) == {"litert", "onnxruntime"} and s["not_timed"] == {}
    assert s["context"] == L and "greedy" in s["step"]


def test_teacher_files_compute_the_teachers_logits(world, tmp_path):
    """Independent reference: the transformers model itself in torch."""
    files, missing = teacher_files(world["teacher"], L, tmp_path)
    assert missing == {}
    ids = np.random.default_rng(0).integers(0, 64, (1, L)).astype(np.int32)
    with torch.no_grad():
        ref = world["teacher"](input_ids=torch.from_numpy(ids).long()).logits.numpy()
    assert np.abs(OnnxRunner(files["onnxruntime"]).predict(ids) - ref).max() < 1e-4
    assert np.abs(LiteRTRunner(files["litert"]).predict(ids) - ref).max() < 1e-3


class _Unconvertible(torch.nn.Module):
    def forward(self, input_ids, attention_mask=None, use_cache=False):
        raise RuntimeError("no converter takes this")


def test_a_teacher_no_converter_takes_leaves_no_ratio_and_says_why(world):
    s = host_speed(world["arts"], _Unconvertible(), L, threads=1, runs=5, min_seconds=0.0)
    assert s["ratio"] == {} and set(s["not_timed"]) == {"litert", "onnxruntime"}
    assert {r["model"] for r in s["host"]} == {"student (int8)", "student (float32)"}  # no teacher row


def test_target_estimates_follow_each_targets_throughput(world):
    path = next(a.path for a in world["arts"] if a.name == "tflite-int8")
    est = target_speeds(path)
    assert {"cortex-m4", "cortex-m7", "android", "cpu", "rpi4"} <= set(est)
    for name, t in est.items():
        assert t["tokens_per_s"] == pytest.approx(1000.0 / t["estimate_ms"])
    # the same file on a 4x faster core of the same kind (both TFLite Micro, int8): faster, never slower
    assert est["cortex-m7"]["tokens_per_s"] > est["cortex-m4"]["tokens_per_s"]
    cost = tflite_cost(path)
    assert est["cortex-m4"]["estimate_ms"] == pytest.approx(
        estimate_latency(cost, load_target("cortex-m4"), "int8").total_ms)


def test_the_gated_figure_is_measured_on_a_host_target_and_estimated_on_a_microcontroller(world):
    host = lm_speed(world["arts"], None, L, load_target("cpu"), runs=5)
    row = next(r for r in host["host"] if r["file"] == "student_int8.tflite")
    assert host["target"]["tokens_per_s"] == row["tokens_per_s"] and "measured-host" in \
        host["target"]["tokens_per_s_how"]
    assert host["ratio"] == {} and "no teacher" in host["not_timed"]["litert"]
    mcu = lm_speed(world["arts"], None, L, load_target("cortex-m4"), runs=5)
    t = mcu["target"]
    assert t["tokens_per_s"] == pytest.approx(1000.0 / t["estimate_ms"]) and "estimated" in t["tokens_per_s_how"]
    assert t["tokens_per_s"] == pytest.approx(mcu["targets"]["cortex-m4"]["tokens_per_s"])
    fit = {f["check"]: f for f in t["fit"]}
    assert fit["flash"]["value"] == next(a.bytes for a in world["arts"] if a.name == "tflite-int8")
    assert mcu["threads"] == 1


def test_lm_speed_times_on_the_users_threads(world):
    """--threads 1 on the cpu target (2 threads in its profile) timed the student on 2 threads."""
    cpu = load_target("cpu")
    assert cpu.kind == "host" and cpu.threads != 1  # else the check below could not fail
    s = lm_speed(world["arts"], None, L, cpu, runs=5, threads=1)
    assert s["threads"] == 1 and all(r["threads"] == 1 for r in s["host"])
    assert "1 thread," in s["target"]["tokens_per_s_how"]
    assert s["target"]["estimate_error"] is None  # cpu's estimate is for its 2 threads: no ground truth on 1
    own = lm_speed(world["arts"], None, L, cpu, runs=5)
    assert own["threads"] == cpu.threads and own["target"]["estimate_error"] is not None  # none given: the target's


def test_with_a_kv_cache_step_the_judged_figure_is_that_steps():
    """--kv-cache: the app decodes with the KV-cache step, so the gate's tokens/s is its figure (measured on a host
    target, its estimate elsewhere) and the window step's is kept beside it; a target the KV step has no estimate
    for leaves the window step's figure judged."""
    from edgedistill.pipeline.lm_speed import kv_judged

    kv = {"host": [{"file": "student_int8_kv.tflite", "runtime": "litert", "tokens_per_s": 900.0}],
          "targets": {"cortex-m4": {"tokens_per_s": 40.0}}}
    window = {"tokens_per_s": 100.0, "tokens_per_s_how": "measured-host (litert, 1 thread, student_int8.tflite)"}
    host = kv_judged(kv, window, load_target("cpu"), 1)
    assert host["tokens_per_s"] == 900.0 and "KV-cache" in host["tokens_per_s_how"]
    assert host["window_tokens_per_s"] == 100.0
    mcu = kv_judged(kv, {"tokens_per_s": 4.0}, load_target("cortex-m4"), 1)
    assert mcu["tokens_per_s"] == 40.0 and "estimated on cortex-m4" in mcu["tokens_per_s_how"]
    assert kv_judged(kv, window, load_target("rpi4"), 1) == {}


def test_with_a_kv_cache_step_flash_ram_and_macs_judge_that_steps_file(tmp_path):
    """--kv-cache on a microcontroller: the device holds the KV-cache step's file, so the fit checks and the MACs per
    token are that file's (its TFLite Micro arena after a step plus the int8 key / value caches the app keeps), and
    the window file's figures are kept under `window`. The KV step's MACs are about one window position's."""
    from edgedistill.export.kv_cache import export_kv_tflite
    from edgedistill.profile.tflm_arena import tflm_arena

    torch.set_num_threads(1)
    torch.manual_seed(1)
    m = decoder((L,), V, 16, 2, V, heads=2).eval()
    x = torch.randint(1, V, (32, L), dtype=torch.int32)
    q = calibrate(to_quant_student(m), x)
    arts = export_all(m, q, (L,), V, tmp_path, ["tflite"], True)
    kv = export_kv_tflite(q, tmp_path / "student_int8_kv.tflite")
    t = lm_speed(arts, None, L, load_target("cortex-m4"), runs=3, threads=1, kv_files=[kv], tokenizer_bytes=100)
    section = t["target"]
    fit = {f["check"]: f for f in section["fit"]}
    caches = 2 * 2 * 2 * L * 8  # layers × (K, V) × heads × L × head_dim, one byte each
    assert section["kv_cache_bytes"] == caches
    assert fit["ram"]["value"] == tflm_arena(kv.path).total_bytes + caches and "KV-cache step" in fit["ram"]["detail"]
    assert fit["flash"]["value"] == kv.bytes + 100 and section["file_bytes"] == kv.bytes
    window = next(a for a in arts if a.name == "tflite-int8")
    assert section["window"]["file_bytes"] == window.bytes
    assert section["macs"] == tflite_cost(kv.path).macs < section["window"]["macs"]
    assert "KV-cache" in section["macs_how"]
    assert section["file"] == kv.path.name and section["window"]["file"] == window.path.name
    assert section["estimate_ms"] == t["kv_cache"]["targets"]["cortex-m4"]["estimate_ms"]
    assert section["window"]["estimate_ms"] == t["targets"]["cortex-m4"]["estimate_ms"] != section["estimate_ms"]



@pytest.mark.parametrize("runtime", ["tflm", "litert", "onnxruntime"])
def test_the_kv_steps_ram_figure_reads_as_one_sentence(runtime):
    """The RAM row's words with --kv-cache (a breaking session read "...LiteRT's own arena is not measured of the
    KV-cache step + its key / value caches"): the step is named first, the caches follow the figure, and the
    figure's own clause stays at the end."""
    from edgedistill.pipeline.lm_speed import kv_ram_figure
    from edgedistill.profile.ram import ram_figure

    line = kv_ram_figure(runtime, 8192)
    assert line.startswith("the KV-cache step's ") and "+ its key / value caches (8,192 B)" in line
    head, _, tail = ram_figure(runtime).partition("; ")
    assert head in line and (line.endswith(f"; {tail}") if tail else line.endswith("(8,192 B)")), line
