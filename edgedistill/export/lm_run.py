"""`export` for a causal-LM run (`distill --task causal-lm`): the decoder step's files written again from the
run's own weights, with the exporters of the installed version, and their parity checked as the run checks it.

The run's config.json names its corpus; the run's tokenizer.json (its vocabulary) cuts the documents into the same
windows the run cut (run_inputs), so parity runs on the same test windows (pipeline/lm_int8.parity_windows), and the
teacher is not read (it may have moved).
int8 files come from the run's QAT weights (`student_qat.safetensors`) with the arithmetic its QAT trained
(metrics.json); a causal-LM run without them is refused: its int8 model is trained, never post-training quantized.
With `quant.kv_cache` in the config the KV-cache step files are written and checked too (pipeline/lm_kv.py).
Uses: a run's files written by an older exporter (the int8 ONNX layout changes in this version's README), or a
run whose directory lost them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from safetensors.torch import load_file

from edgedistill.errors import ConfigError, DataError


def run_inputs(checkpoint: Path, cfg, tokenizer, context: int):
    """The run's documents cut into its windows with its own tokenizer (the run's tokenizer.json: the vocabulary it
    fitted on its training documents), so the splits are the run's (pipeline/lm_inputs._vocabulary_and_windows
    windows the documents with this tokenizer last) and no teacher is read. Another corpus (--data) is tokenized
    the same way: the student's own ids, its unknown id where a token is new to it. Raises DataError for a corpus
    with a split too short to predict a token."""
    from edgedistill.data.lm_text import read_documents
    from edgedistill.data.lm_windows import lm_windows
    from edgedistill.pipeline.lm_inputs import LMInputs

    docs = read_documents(cfg.data.source, cfg.data.text_field)
    splits = lm_windows(list(docs.train), tokenizer, context, val_fraction=cfg.data.val_fraction,
                        test_fraction=cfg.data.test_fraction, seed=cfg.data.seed, test_documents=docs.test)
    if splits.test.tokens == 0:
        raise DataError(f"{docs.source}: its test split has no token to predict (its documents are shorter than two "
                        f"tokens), so parity has nothing to run on. Give the corpus {checkpoint} was trained on, or "
                        "leave --data out.")
    return LMInputs(None, docs, tokenizer, splits, None)


def _corpus_there(checkpoint: Path, source: str, given: str | None) -> None:
    """Refuse, saying where the path came from, a corpus the run's config.json names that is not here (a relative
    path is read from the directory `export` runs in, not the one the run started in)."""
    if given or source.startswith("builtin:") or Path(source).exists():
        return
    where = (" (a relative path: it is read from this directory, and the run may have started in another)"
             if not Path(source).is_absolute() else "")
    raise DataError(f"{checkpoint / 'config.json'} names the corpus {source}, which does not exist here{where}. Give "
                    "the corpus with --data PATH (parity runs on its test split, cut with the run's tokenizer).")


def lm_export_writer(checkpoint: Path, config: dict, formats: list[str], int8: bool, rounding: str,
                     data: str | None = None) -> Callable[[Path], dict]:
    """Check the run and read its corpus now, and return `write(work)`, which writes the files into `work` and
    returns export.json's record (artifacts, parity, failures; `int8_source` "qat", or None without int8).
    `config`: the run's config.json; `data`: another corpus in its place (--data), tokenized with the run's
    tokenizer. Raises ConfigError (one paragraph) for a run without QAT weights when int8 is asked or without its
    tokenizer, and whatever reading the corpus raises (DataError), before anything is written."""
    from edgedistill.config import load_config
    from edgedistill.pipeline.lm_int8 import export_and_check
    from edgedistill.progress import Bars
    from edgedistill.quantize.qat import rebuild_quant_student
    from edgedistill.students.checkpoint import load_student

    qat_path = checkpoint / "student_qat.safetensors"
    if int8 and not qat_path.exists():
        raise ConfigError(f"{checkpoint} is a causal-LM run without QAT weights ({qat_path.name}); its int8 decoder "
                          "comes from quantization-aware training only. Re-run distill with --qat, or export the "
                          "float files without --int8.")
    try:
        cfg = load_config(None, {**config, "data": {**(config.get("data") or {}), "source": data}} if data
                          else config)
    except ConfigError as exc:
        why = str(exc).split(": ", 1)[-1].rstrip(".")
        raise ConfigError(f"{checkpoint / 'config.json'} (the run's configuration) is not valid: {why}. Restore it "
                          "from the run, or re-run distill.") from None
    cfg = cfg.model_copy(update={"quant": cfg.quant.model_copy(update={"formats": list(formats)})})
    model, ck = load_student(checkpoint)
    if ck.tokenizer is None:
        raise ConfigError(f"{checkpoint} has no tokenizer.json beside its student; a causal-LM run writes one. "
                          "Restore it from the run, or re-run distill.")
    _corpus_there(checkpoint, cfg.data.source, data)
    inputs = run_inputs(checkpoint, cfg, ck.tokenizer, int(ck.input_shape[0]))
    qs = None
    if int8:
        sample = torch.from_numpy(np.ascontiguousarray(inputs.splits.test.ids[:1]))
        qs = rebuild_quant_student(model, load_file(str(qat_path)), rounding, sample)

    def write(work: Path) -> dict:
        ck.tokenizer.save(work / "tokenizer.json")  # the device app's first step, beside the files it feeds
        res = export_and_check(cfg, inputs, model, qs, None, {}, {}, work, Bars(None))
        record = {k: res.metrics[k] for k in ("artifacts", "parity", "parity_windows", "causality", "parity_passed")}
        if res.kv_artifacts:
            record["kv_cache"] = res.metrics["kv_cache"]
            record["artifacts"] = record["artifacts"] + [a.to_dict() for a in res.kv_artifacts]
        return {**record, "int8_source": "qat" if int8 else None, "failures": res.failures}

    return write
