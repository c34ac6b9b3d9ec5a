"""docs/text_peers.md from the figures tools/bench_text_peers.py measured (its JSON document)."""

from __future__ import annotations


def _pct(row: dict | None) -> str:
    if not row or "accuracy" not in row:
        return "—"
    lo, hi = row["ci95"]
    return f"{row['accuracy']:.2f} % [{lo:.2f}, {hi:.2f}] (n {row['n']:,})"


def _p(g: dict) -> str:
    verdict = "within noise" if g["within_noise"] else "beyond noise"
    return (f"{g['gain_points']:+.2f} points, McNemar p = {g['p_value']:.3g} ({g['only_first_right']} vs "
            f"{g['only_second_right']} discordant samples): {verdict}")


def _ops(o: dict) -> str:
    floats = sorted(set(o["float_ops"]))
    return f"{', '.join(o['ops'])}" + (f"; **float: {', '.join(floats)}**" if floats else "; none in float")


def peer(doc: dict) -> list[str]:
    p = doc["peer_ptq"]
    r, t, b, a = p["runs"]["litert-reference"], p["runs"]["tflm"], p["bytes"], p["arena"]
    ob = p["offset_buffers"]["peer"]
    g = r["mcnemar_ours_vs_peer"]
    ahead = "tied within noise" if g["within_noise"] else ("ahead" if g["gain_points"] > 0 else "**behind**")
    verdict = (f"**Target** (ours ahead or tied within noise, file not larger): ours is {ahead} on the reference "
               f"kernels, in a file of {b['ours']:,} B against the peer's {b['peer']:,} B: "
               f"{'met' if ahead != '**behind**' and b['ours'] <= b['peer'] else '**not met**'}.")
    lines = [
        "## 1. The same float student: ai-edge-quantizer's static int8 PTQ against our QAT file", "", verdict, "",
        f"The build's float `student.tflite` quantized by ai-edge-quantizer {doc['versions']['ai-edge-quantizer']} "
        f"with its documented static recipe `recipe.static_wi8_ai8()` (int8 weights and activations, min / max "
        f"ranges), calibrated on {p['made']['calibration_samples']} training words drawn with seed {doc['seed']}; "
        "ours is the build's `student_int8.tflite` (QAT with TFLite Micro's arithmetic). Accuracy on the whole "
        f"test split ({doc['test_n']:,} words) with LiteRT's reference kernels (`BUILTIN_REF`, TFLite Micro's "
        "arithmetic) and on the TFLite Micro interpreter (tflite-micro "
        f"{doc['versions']['tflite-micro']}). Our file's {r['ours']['accuracy']:.4f} % reproduces metrics.json's "
        f"{p['reproduced_int8_accuracy']['metrics_json']:.4f} %, so the split and byte encoding are the build's.", "",
        "| file | bytes | ops (float ops) | TFLite Micro arena | LiteRT reference kernels | TFLite Micro |",
        "|---|---|---|---|---|---|",
        f"| float student (`student.tflite`) | {b['float']:,} | float throughout | — | "
        f"{p['float_student']['accuracy_litert']:.2f} % (LiteRT) | — |",
        f"| **ours**: QAT int8 | {b['ours']:,} | {_ops(p['ops']['ours'])} | {a['ours']['activation_bytes']:,} B "
        f"| {_pct(r['ours'])} | {_pct(t['ours'])} |",
        f"| peer: ai-edge-quantizer static int8, as written | {b['peer']:,} | {_ops(p['ops']['peer'])} | — | "
        f"{_pct(r['peer'])} | {_pct(t['peer_as_written'])}, top-1 agreement with the reference kernels "
        f"{t['peer_as_written'].get('top1_agreement_with_reference_kernels', 0):.1f} % |",
        f"| peer, its constants rewritten inline | {b['peer_inline']:,} | the same | "
        f"{a['peer_inline']['activation_bytes']:,} B | (the same file contents) | {_pct(t['peer_inline'])} |", "",
        f"- Accuracy, reference kernels: ours vs peer {_p(r['mcnemar_ours_vs_peer'])}.",
    ]
    if "mcnemar_ours_vs_peer_inline" in t:
        lines.append(f"- Accuracy, TFLite Micro: ours vs the peer's inline copy "
                     f"{_p(t['mcnemar_ours_vs_peer_inline'])}.")
    fw = p["ops"]["peer"]["float_weight_bytes"]
    lines += [
        f"- Size: the peer's file is {b['peer'] / b['ours']:.2f}× ours ({b['peer'] - b['ours']:+,} B). Its "
        f"float ops keep {fw:,} B of float32 constants: the recipe's op list (ai_edge_quantizer/default_policy.py, "
        "`static_wi8_ai8`) has no EMBEDDING_LOOKUP, so the embedding table stays float32 and a QUANTIZE follows "
        "the lookup. The file is not int8-only; TFLite Micro runs a float EMBEDDING_LOOKUP, a microcontroller "
        "without an FPU would emulate it.",
        f"- TFLite Micro: the peer's file loads and runs, but {ob['count']} of its constant buffers "
        f"({ob['bytes']:,} B: every weight tensor of 1 KB or more) are stored after the flatbuffer by offset "
        "(`Buffer.offset` / `size`), which ai-edge-quantizer's writer does once a model's packed constants reach "
        "256 KB. TFLite Micro does not read such buffers (tensorflow/tflite-micro#3196, open), so those weights "
        "are missing there and every word gets the same output: no error, silently wrong. The same model "
        "rewritten with its constants inline (LiteRT's `flatbuffer_utils.read_model` / `write_model`, same "
        "contents) runs correctly; that copy is the fair TFLite Micro row. Our files keep their constants inline.",
        "- The peer quantizes the float file as it is: BatchNorm stays as separate MUL and ADD ops (each a "
        "rounding step) between transposes; our exporter folds BatchNorm into the convolutions and trains through "
        "the int8 grid.", ""]
    return lines


def teacher(doc: dict) -> list[str]:
    d = doc["teacher_dynamic"]
    b, acc, lat = d["bytes"], d["accuracy"], d["latency"]
    ours_ms = lat["ours_litert_xnnpack"]["median_ms"]
    rows = [("teacher, float ONNX (onnxruntime)", b["teacher_float_onnx_preprocessed"], _pct(acc["float_pre"]),
             lat["teacher_float"]),
            ("teacher, dynamic int8 ONNX (onnxruntime)", b["teacher_dynamic_int8_onnx"], _pct(acc["dynamic_int8"]),
             lat["teacher_dynamic_int8"]),
            ("**ours**, int8 TFLite (LiteRT, XNNPACK)", b["ours_int8_tflite"],
             _pct(doc["peer_ptq"]["runs"]["litert-reference"]["ours"]), lat["ours_litert_xnnpack"])]
    if "ours_onnxruntime" in lat:
        rows.append(("**ours**, int8 ONNX (onnxruntime)", b["ours_int8_onnx"], "(the same model)",
                     lat["ours_onnxruntime"]))
    lines = [
        "## 2. The teacher under onnxruntime's dynamic quantization (what a user would do instead)", "",
        f"The `transformers` teacher exported to ONNX (torch.onnx, `input_ids` + `attention_mask`, dynamic batch and "
        f"sequence: {b['teacher_float_onnx']:,} B as exported), onnxruntime's pre-processing (`quant_pre_process`, "
        "graph optimization; its symbolic shape inference does not complete on this export and is skipped), then "
        f"`quantize_dynamic` (onnxruntime {doc['versions']['onnxruntime']}, int8 weights, activations quantized at "
        "run time). Accuracy on the texts the build's teacher read (each test word as the student's 19 bytes "
        f"spell it); the float ONNX teacher scores {acc['float_pre']['accuracy']:.2f} % against the build's "
        f"{d['build_teacher_accuracy']:.2f} % for the torch teacher. Latency: one sample per call, one thread, the "
        f"median over {d['latency_samples']} test words × {d['latency_repeats']} passes, the models interleaved; "
        "tokenization not included (the teacher needs its WordPiece tokenizer on the device, ours UTF-8 bytes).", "",
        "| model | bytes | test accuracy | latency, median wall (CPU) | vs ours on LiteRT |", "|---|---|---|---|---|"]
    for name, size, a, t in rows:
        lines.append(f"| {name} | {size:,} | {a} | {t['median_ms']:.3f} ms ({t['median_cpu_ms']:.3f} ms) | "
                     f"{size / b['ours_int8_tflite']:.1f}× bytes, {t['median_ms'] / ours_ms:.1f}× time |")
    lines += ["",
              f"- Dynamic int8 vs float teacher: {_p(d['mcnemar_float_vs_dynamic'])}.",
              f"- Ours vs the dynamic int8 teacher: {_p(d['mcnemar_ours_vs_dynamic'])}.",
              f"- The dynamic teacher is {d['size_ratio_dynamic_over_ours']:.1f}× our file's bytes and "
              f"{d['latency_ratio_dynamic_over_ours_litert']:.1f}× its latency on this host. It keeps float "
              "activations (DynamicQuantizeLinear before each integer matmul; LayerNorm, GELU and softmax in "
              "float): a model for onnxruntime on a host or phone, with no path to TFLite Micro.", ""]
    return lines


def qat(doc: dict) -> list[str]:
    q = doc["qat_step"]
    st = q["steps"]
    r = q["deployed_rounding"]
    exact, fake, scheduled = st[f"qat_{r}"], st.get(f"qat_{r}_fake"), st.get(f"qat_{r}_scheduled")
    judged = scheduled or exact
    verdict = ("**Target** (a QAT step at most 1.5× the float step): "
               + (f"{scheduled['ratio_cpu']:.1f}× CPU ({scheduled['ratio_wall']:.1f}× wall) for a QAT run's mean step "
                  f"(the last {100 * scheduled['exact_share']:.0f} % of the steps computing the deployed {r} arithmetic: "
                  f"{exact['ratio_cpu']:.1f}× each; the others fake-quantized: {fake['ratio_cpu']:.1f}× each)"
                  if scheduled else f"{exact['ratio_cpu']:.1f}× CPU ({exact['ratio_wall']:.1f}× wall) with the "
                  f"deployed {r} arithmetic")
               + (": met." if judged["ratio_cpu"] <= 1.5 else ": **not met**."))
    lines = [
        "## 3. The transformer student's QAT step against its float step", "", verdict, "",
        f"`{q['student']}` ({q['params']:,} parameters): what `build --family transformer` picks on "
        f"{doc['data']} for cortex-m4, batch {q['batch']} (the sized schedule), one torch thread. Each step timed "
        "between the trainer's progress calls (`distill.trainer.fit` for float, `quantize.qat.qat_distill` for QAT, "
        "the pipeline's own calls), medians after warm-up, float and QAT runs alternating. CPU time is the "
        "process's; it is the steadier figure on a shared machine.", "",
        "| step | wall, median | CPU, median | ratio to float (wall / CPU) |", "|---|---|---|---|"]
    names = {"float": "float", f"qat_{r}": f"QAT, {r} arithmetic (deployed on cortex-m4)",
             f"qat_{r}_fake": f"QAT, {r} graph fake-quantized only (exact_share 0)",
             f"qat_{r}_scheduled": "QAT run's mean step at the default exact_share (computed from the two above)",
             "qat_float": "QAT, float fake quantization only", "qat_xnnpack": "QAT, XNNPACK arithmetic"}
    for k, v in st.items():
        lines.append(f"| {names.get(k, k)} | {v['wall_ms']:.1f} ms | {v['cpu_ms']:.1f} ms | "
                     f"{v['ratio_wall']:.2f}× / {v['ratio_cpu']:.2f}× |")
    prof = q["profile"]["qat"]
    step_cpu = prof["cpu_ms_per_step"]
    fwd = prof["forward_by_op"]
    exact = sum(v["exact_integers_cpu_ms_per_step"] for v in fwd.values())
    lines += ["", f"Where a QAT step ({r} arithmetic) goes: CPU time per step in each int8 op kind's forward, and the "
              "part of it spent computing the runtime's exact integers (`_int_output`), from a run of "
              f"{q['profile_steps']} steps whose median step took {step_cpu:.1f} ms CPU; the exact integers take "
              f"{exact:.1f} ms of it ({100 * exact / step_cpu:.0f} %; SOFTMAX computes its integers inside its "
              "forward, not counted there):", "",
              "| int8 op (kind) | forward, CPU ms per step | of which exact integers |", "|---|---|---|"]
    for k, v in fwd.items():
        lines.append(f"| {k} | {v['cpu_ms_per_step']:.1f} | {v['exact_integers_cpu_ms_per_step']:.1f} |")
    lines += ["", "torch.profiler's top ops by self CPU time (ms per step; float step beside):", "",
              "| op | QAT | calls | | float step op | float | calls |", "|---|---|---|---|---|---|---|"]
    for a, f in zip(prof["top_ops"], q["profile"]["float"]["top_ops"]):
        lines.append(f"| {a['op']} | {a['self_cpu_ms_per_step']:.1f} | {a['calls_per_step']:.0f} | | {f['op']} | "
                     f"{f['self_cpu_ms_per_step']:.1f} | {f['calls_per_step']:.0f} |")
    lines.append("")
    return lines


def render(doc: dict) -> str:
    load = doc["machine"]["load_average_at_end"][0]
    head = ["# Text peers: ai-edge-quantizer's PTQ and onnxruntime's dynamic teacher beside our int8 student", "",
            f"Written by `tools/bench_text_peers.py` from the build `{doc['run']}` ({doc['data']}), one thread, "
            f"{doc['seconds']:.0f} s; the machine's load average at the end {load:.1f} on {doc['machine']['cpus']} "
            "CPUs. Figures: docs/text_peers.json. The targets are issue #28's: ours "
            "ahead of or tied with the peer within noise, in a file not larger; the teacher's size and latency "
            "ratios; a QAT step at most 1.5× the float step.", ""]
    return "\n".join(head + peer(doc) + teacher(doc) + qat(doc))
