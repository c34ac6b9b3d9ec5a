"""A causal LM's KV-cache step on a device (`build --task causal-lm --kv-cache --device URL`): the device benchmark
(device/bench.py) runs the cached loop an app runs, one token a step with the caches carried over, through the `local`
runner (a separate process, the real LiteRT interpreter); its logits equal the library's own cached loop
(runtimes/kv_loop.py) on every position, and its timed unit is one step. benchmark_model (adb) gets the input layers'
shapes and the id / position ranges read from the file."""

import numpy as np
import pytest
import torch

from edgedistill.device.collect import host_reference
from edgedistill.export.kv_cache import export_kv_tflite
from edgedistill.export.registry import export_all
from edgedistill.pipeline.lm_device import KV_FILE, kv_benchmark_flags, measure_lm_device
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes.kv_loop import KVStepRunner
from edgedistill.students.decoder_family import decoder

V, L = 48, 12


@pytest.fixture(scope="module")
def kv(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(2)
        m = decoder((L,), V, 16, 2, V, heads=2).eval()
        x = torch.randint(1, V, (16, L), dtype=torch.int32)
        x[::4, 9:] = 0  # windows that end before the context does
        out = tmp_path_factory.mktemp("kvdev")
        q = calibrate(to_quant_student(m), x)
        art = export_kv_tflite(q, out / KV_FILE)
        window = {a.name: a for a in export_all(m, q, (L,), V, out, ["onnx"], True)}
    finally:
        torch.set_num_threads(threads)
    return {"out": out, "art": art, "x": x.numpy(), "onnx": window["onnx-int8"].path}


def test_the_device_runs_the_cached_loop_and_reproduces_the_librarys(kv):
    ref, tolerance = host_reference(kv["art"].path, kv["x"][:4])
    loop = KVStepRunner(kv["art"].path, "litert", kv["art"].extra).window_logits(kv["x"][:4])
    assert ref.shape == (4, L, V) and np.array_equal(ref.reshape(loop.shape), loop)
    assert tolerance == pytest.approx(kv["art"].output.scale * 1.001)
    d = measure_lm_device("local", kv["out"], kv["x"], 1, KV_FILE)
    assert d["status"] == "measured" and d["model"]["path"] == KV_FILE
    assert d["parity"]["passed"] and d["parity"]["samples"] == len(kv["x"]) and d["parity"]["max_abs_diff"] == 0.0
    assert d["latency_ms"]["runs"] == 50 and d["tokens_per_s"] == pytest.approx(1000.0 / d["latency_ms"]["p50"])


def test_benchmark_model_gets_the_kv_steps_inputs_and_their_ranges(kv):
    from ai_edge_litert.interpreter import Interpreter

    ins = Interpreter(model_path=str(kv["art"].path)).get_input_details()
    layers, shapes, ranges = kv_benchmark_flags(kv["art"].path)
    assert layers == "--input_layer=" + ",".join(d["name"] for d in ins) and len(ins) == 2 + 2 * 2
    assert shapes.split("=", 1)[1].split(":")[:3] == ["1,1", "1", "1,2,12,8"]
    assert ranges == f"--input_layer_value_range={ins[0]['name']},0,{V - 1}:{ins[1]['name']},0,{L - 1}"


@pytest.mark.parametrize("which", ["art", "onnx"])
def test_profile_device_feeds_a_text_model_token_ids(kv, which):
    """`profile FILE --device` without inputs draws samples itself: whole token ids for a file that takes ids (a
    breaking session's `profile student_int8.tflite --device local` on a causal LM stopped on 'token ids must be
    whole numbers', and the device's onnxruntime was fed float32), uniform floats otherwise."""
    from edgedistill.device.collect import sample_inputs
    from edgedistill.device.show import profile_on_device

    path = kv[which].path if which == "art" else kv[which]
    x = sample_inputs(path, n=4)
    assert np.array_equal(x, np.round(x)) and x.min() >= 1
    d = profile_on_device("local", path, None, 1, runs=5, warmup=1)
    assert d["status"] == "measured", d
    assert d["parity"]["passed"]
