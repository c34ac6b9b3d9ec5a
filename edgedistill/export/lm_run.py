"""`export` for a causal-LM run (`distill --task causal-lm`): the decoder step's files written again from the
run's own weights, with the exporters of the installed version, and their parity checked as the run checks it.

The run's config.json names its corpus and teacher: the windows are cut again from them exactly as the run cut them
(pipeline/lm_inputs.read_lm_inputs), so parity runs on the same test windows (pipeline/lm_int8.parity_windows).
int8 files come from the run's QAT weights (`student_qat.safetensors`) with the arithmetic its QAT trained
(metrics.json); a causal-LM run without them is refused: its int8 model is trained, never post-training quantized.
With `quant.kv_cache` in the config the KV-cache step files are written and checked too (pipeline/lm_kv.py).
Uses: a run's files written by an older exporter (the int8 ONNX layout changes in this version's README), or a
run whose directory lost them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from edgedistill.errors import ConfigError


def export_lm_checkpoint(checkpoint: Path, work: Path, config: dict, formats: list[str], int8: bool,
                         rounding: str, data: str | None = None) -> dict:
    """Write the files into `work` and return export.json's record (artifacts, parity; `int8_source` "qat").
    `config`: the run's config.json; `data`: another corpus in its place (--data). Raises ConfigError (one paragraph) for a run without QAT weights when int8
    is asked, and whatever reading the run's corpus and teacher raises (ConfigError, DataError, ModelLoadError)."""
    from edgedistill.config import load_config
    from edgedistill.pipeline.lm_inputs import read_lm_inputs
    from edgedistill.pipeline.lm_int8 import export_and_check
    from edgedistill.progress import Bars
    from edgedistill.quantize.qat import rebuild_quant_student
    from edgedistill.students.checkpoint import load_student

    qat_path = checkpoint / "student_qat.safetensors"
    if int8 and not qat_path.exists():
        raise ConfigError(f"{checkpoint} is a causal-LM run without QAT weights ({qat_path.name}); its int8 decoder "
                          "comes from quantization-aware training only. Re-run distill with --qat, or export the "
                          "float files without --int8.")
    cfg = load_config(None, {**config, "data": {**(config.get("data") or {}), "source": data}} if data else config)
    if not int8:
        cfg = cfg.model_copy(update={"quant": cfg.quant.model_copy(update={"kv_cache": False})})
    cfg = cfg.model_copy(update={"quant": cfg.quant.model_copy(update={"formats": list(formats)})})
    inputs = read_lm_inputs(cfg)
    model, _ = load_student(checkpoint)
    if not int8:
        from edgedistill.export.registry import export_all
        from edgedistill.export.parity import check_parity
        from edgedistill.distill.lm_trainer import lm_logits
        from edgedistill.pipeline.lm_int8 import lm_row, parity_failure, parity_windows

        s = inputs.splits
        artifacts = export_all(model, None, (s.context,), inputs.tokenizer.vocab_size, work, formats, int8=False)
        pick = parity_windows(len(s.test), s.context, inputs.tokenizer.vocab_size)
        x = np.ascontiguousarray(s.test.ids[pick])
        rows = check_parity(artifacts, lm_logits(model, torch.from_numpy(x)).numpy(), None, x,
                            s.test.targets[pick], None, cfg.quant.tflm_max_samples)
        parity = [lm_row(r.to_dict(), s.context) for r in rows]
        return {"artifacts": [a.to_dict() for a in artifacts], "parity": parity, "int8_source": None,
                "parity_passed": all(r["passed"] for r in parity if r["checked"]),
                "failures": [parity_failure(r) for r in parity if r["checked"] and not r["passed"]]}
    sample = torch.from_numpy(np.ascontiguousarray(inputs.splits.test.ids[:1]))
    qs = rebuild_quant_student(model, load_file(str(qat_path)), rounding, sample)
    res = export_and_check(cfg, inputs, model, qs, None, {}, {}, work, Bars(None))
    record = {k: res.metrics[k] for k in ("artifacts", "parity", "parity_windows", "parity_passed")}
    if res.kv_artifacts:
        record["kv_cache"] = res.metrics.get("kv_cache")
    return {**record, "int8_source": "qat", "failures": res.failures}
