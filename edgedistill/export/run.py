"""`export(checkpoint)`: write a distilled student as ONNX / TFLite files and check their parity.

Int8 uses the checkpoint's QAT weights and scales when it has them (`student_qat.safetensors`, written by
`distill --qat`; their 16×8 ops come with them); otherwise the float student is quantized post-training with a
calibration set from the data, in the 16×8 form its config.json's `quant.int16` asks for (a run without --qat
records it for this step). export.json names the 16×8 op kinds the int8 files hold (`int16`).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from pydantic import ValidationError
from safetensors.torch import load_file

from edgedistill import interrupt
from edgedistill.data import make_splits, read_dataset
from edgedistill.data.arrays import model_input
from edgedistill.distill.trainer import predict_logits
from edgedistill.config import QuantConfig
from edgedistill.errors import ConfigError, ModelLoadError
from edgedistill.export.parity import check_parity, int8_references
from edgedistill.export.registry import export_all
from edgedistill.quantize import calibration_indices, post_training_quantize
from edgedistill.quantize.int16_attention import Attention16
from edgedistill.quantize.int16_ops import LayerNorm16
from edgedistill.quantize.qat import rebuild_quant_student
from edgedistill.students.checkpoint import load_student
from edgedistill.util import write_json


@dataclass(frozen=True)
class ExportResult:
    out_dir: Path
    record: dict


def _checkpoint_config(checkpoint: Path) -> dict:
    """The checkpoint's config.json as a dict ({} when there is none); a file that is not a JSON object is refused
    in one paragraph naming it (ConfigError), never a traceback."""
    path = checkpoint / "config.json"
    if not path.exists():
        return {}
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}. It is the run's resolved configuration, written by distill; "
                          "restore it from the run, or re-run distill.") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} holds a {type(cfg).__name__}, not the run's configuration (a JSON object); "
                          "restore it from the run, or re-run distill.")
    return cfg


def _data_spec(checkpoint: Path, data: str | None) -> dict:
    spec = _checkpoint_config(checkpoint).get("data") or {}
    if not isinstance(spec, dict):
        spec = {}
    if data:
        spec = {"source": data}
    if "source" not in spec:
        raise ConfigError(f"{checkpoint} has no config.json naming its data; pass --data for calibration and parity.")
    return spec


def _read(spec: dict, ck, checkpoint: Path):
    """The checkpoint's data as arrays: texts become the token ids its student was trained on (its own tokenizer and
    sequence length, labels numbered by its classes)."""
    from edgedistill.data.text import TextCorpus
    from edgedistill.data.text_encode import encode_corpus

    raw = read_dataset(spec["source"], spec.get("text_field"), spec.get("label_field"))
    if not isinstance(raw, TextCorpus):
        return raw
    if ck.tokenizer is None:
        raise ConfigError(f"{spec['source']} holds texts, but the student in {checkpoint} reads arrays; pass the data "
                          "it was trained on with --data.")
    return encode_corpus(raw, ck.tokenizer, ck.input_shape[0], classes=list(ck.class_names))


def export_checkpoint(checkpoint: Path, out: Path, formats: list[str], int8: bool, data: str | None = None,
                      calibration: str = "minmax", calibration_size: int = 1000, tflm_max_samples: int = 1000,
                      overwrite: bool = False, rounding: str | None = None, started=None) -> ExportResult:
    """`rounding`: the integer arithmetic the int8 model was trained with (quantize/arithmetic.py; it is recorded
    with the export). None: what the checkpoint's QAT used (metrics.json), else "xnnpack". Parity compares each
    file with the model computing its own runtime's arithmetic, whatever the training used. `started()`, when
    given, is called once the inputs are checked, before export and parity (the long step)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        raise ModelLoadError(f"Checkpoint {checkpoint} is not a directory written by `edgedistill distill`.")
    from edgedistill.pipeline.rundir import check_out_dir

    ck, dest = checkpoint.resolve(), Path(out).resolve()
    if dest == ck or dest in ck.parents:
        raise ConfigError(f"--out {out} is the checkpoint {checkpoint} or a directory holding it; the export replaces "
                          f"its --out, so it would delete the checkpoint. Choose another --out (e.g. {checkpoint}/export).")
    check_out_dir(Path(out), overwrite, marks=("export.json",))  # only an earlier export's output is replaced
    metrics, config = _run_metrics(checkpoint), _checkpoint_config(checkpoint)
    rounding = rounding or _trained_rounding(metrics)
    if _task(metrics, config) == "causal-lm":  # the decoder step's files, from the run's corpus and weights
        from edgedistill.export.lm_run import lm_export_writer

        write_lm = lm_export_writer(checkpoint, config, formats, int8, rounding, data)
        return _publish(Path(out), lambda work: {
            "checkpoint": str(checkpoint), "int8_rounding": rounding if int8 else None, **write_lm(work)}, started)
    model, ck = load_student(checkpoint)
    spec = _data_spec(checkpoint, data)
    splits = make_splits(_read(spec, ck, checkpoint), val_fraction=spec.get("val_fraction", 0.1),
                         test_fraction=spec.get("test_fraction", 0.2), seed=spec.get("seed", 0))
    if splits.input_shape != tuple(ck.input_shape):
        raise ConfigError(f"The data's samples have shape {splits.input_shape}; the student expects {ck.input_shape}.")
    qmodel, source = None, None
    if int8:
        qat_path = checkpoint / "student_qat.safetensors"
        if qat_path.exists():
            sample = torch.from_numpy(model_input(splits.test.x[:1]))
            qmodel, source = rebuild_quant_student(model, load_file(str(qat_path)), rounding, sample), "qat"
        else:
            idx = calibration_indices(len(splits.train), calibration_size, 0)
            x_calib = torch.from_numpy(model_input(splits.train.x[idx]))  # a stored dtype (x.npy) becomes float32
            qmodel = post_training_quantize(model, x_calib, calibration, rounding, int16=_asked_int16(checkpoint))
            source = f"ptq-{calibration}"

    def write(work: Path) -> dict:
        artifacts = export_all(model, qmodel, ck.input_shape, ck.num_classes, work, formats, int8)
        x = splits.test.x
        ref_f = predict_logits(model, torch.from_numpy(x)).numpy()
        ref_q = None if qmodel is None else int8_references(qmodel, x, predict_logits)
        step = None if qmodel is None else float(qmodel.output_q.scale)
        skipped: list[str] = []
        rows = check_parity(artifacts, ref_f, ref_q, x, splits.test.y, step, tflm_max_samples, skipped=skipped)
        return {"checkpoint": str(checkpoint), "int8_source": source, "int8_rounding": rounding if int8 else None,
                "parity_skipped": skipped,
                "int16": None if qmodel is None else int16_kinds(qmodel),
                "artifacts": [a.to_dict() for a in artifacts], "parity": [r.to_dict() for r in rows],
                "parity_passed": all(r.passed for r in rows if r.checked)}

    return _publish(Path(out), write, started)


def _publish(out: Path, write, started=None) -> ExportResult:
    """`write(work)` fills a sibling OUT.partial and returns export.json's record; the directory then replaces
    `out` whole. Nothing half-written survives a failure or an interrupt. `started()`, when given, is called once
    the inputs are checked, before the long step."""
    if started is not None:
        started()
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        record = write(work)
        write_json(work / "export.json", record)
        from edgedistill.pipeline.rundir import write_index

        write_index(work)
        interrupt.raise_if_interrupted()  # a Ctrl-C some library swallowed still stops the publish
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(work, out)
    return ExportResult(out, record)


def int16_kinds(qmodel) -> list[str]:
    """The op kinds a quantized student computes in 16×8 form ("attention", "layernorm"), in that order."""
    kinds = {m.kind for m in qmodel.modules() if isinstance(m, (Attention16, LayerNorm16))}
    return [k for k in ("attention", "layernorm") if k in kinds]


def _asked_int16(checkpoint: Path) -> tuple[str, ...]:
    """The op kinds the checkpoint's config.json asks in 16×8 form (quant.int16), validated as `--config` validates
    them (a list of known kinds, each once; ConfigError naming the file otherwise); none without a config."""
    asked = (_checkpoint_config(checkpoint).get("quant") or {}).get("int16") or []
    try:
        return tuple(QuantConfig.model_validate({"int16": asked}).int16)
    except ValidationError as exc:
        why = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"{checkpoint / 'config.json'}: quant.int16 = {asked!r} is not a list of the op kinds "
                          f"with a 16×8 form (\"attention\", \"layernorm\"), each once: {why}.") from None


def _run_metrics(checkpoint: Path) -> dict:
    """The run's metrics.json ({} when it is missing or unreadable: the export then falls back to config.json)."""
    try:
        metrics = json.loads((checkpoint / "metrics.json").read_text())
    except (OSError, ValueError):
        return {}
    return metrics if isinstance(metrics, dict) else {}


def _task(metrics: dict, config: dict) -> str | None:
    """The task the run carried out: metrics.json's (a run with `--task auto` records the task it detected there),
    else its config.json's."""
    return metrics.get("task") or config.get("task")


def _trained_rounding(metrics: dict) -> str:
    """The integer arithmetic the checkpoint's QAT trained with (recorded in metrics.json), "xnnpack" when not
    recorded."""
    return (metrics.get("int8") or {}).get("rounding") or "xnnpack"
