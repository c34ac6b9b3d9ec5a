"""The causal-LM build's manifest: what a re-run compares to know that nothing changed (pipeline/lm_build.py).

As the classifier build's (pipeline/build.py), manifest.json beside the outputs holds the input hash, the inputs, the
budget, the tool versions, the resolved config and every artifact with its sha256 (pipeline/rundir.artifact_list).
A re-run whose input hash is the same and whose artifacts still verify trains nothing: it re-runs the gate and
publishes the same files. The hash covers:

* the documents' content (sha256 of the train and own-test documents as read, in order), not the data's path;
* the teacher's files (config.json, weights, tokenizer.json) by name within the folder and sha256, not its path;
* the resolved config (the chosen student, every training option) without `out`, `cache_dir`, the data path and the
  teacher's path (where the inputs live, and where the teacher cache is kept, change no result);
* the budget it was searched and gated under, and the versions of edgedistill, torch, the runtimes, transformers
  and tokenizers.

So a moved corpus or teacher folder, or another checkout of the same files, is still "unchanged"; any edit to a
document, a weight or an option retrains. Paths are recorded as the user gave them (the data source, checked by
pipeline/build._refuse_other_data) or relative to the teacher's folder (its files), never resolved to this
machine's absolute paths.
"""

from __future__ import annotations

import hashlib
import json
from importlib import metadata
from pathlib import Path

from edgedistill.budget import Budget
from edgedistill.config import DistillConfig
from edgedistill.pipeline.build import tool_versions
from edgedistill.pipeline.lm_inputs import LMInputs
from edgedistill.pipeline.rundir import MANIFEST, artifact_list, artifacts_verify, read_manifest
from edgedistill.util import write_json

LM_TOOLS = ("transformers", "tokenizers")


def lm_versions() -> dict:
    """tool_versions() and the text stack's (None where not installed)."""
    out = tool_versions()
    for name in LM_TOOLS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def documents_digest(inputs: LMInputs) -> str:
    """sha256 of the documents as read (train then own test, each in order; the split boundary is kept)."""
    return inputs.documents.digest()


def lm_inputs_record(config: DistillConfig, inputs: LMInputs) -> dict:
    """The inputs as the manifest records them: the data source as given and its documents' digest, the teacher's
    path as given and its files relative to its folder with their sha256."""
    teacher = inputs.teacher
    folder = Path(config.teachers[0].path).expanduser()
    files = [{"path": _relative(f, folder), "sha256": _digest(f)} for f in teacher.files]
    return {"data": {"source": config.data.source, "documents": len(inputs.documents.all),
                     "documents_sha256": documents_digest(inputs)},
            "teachers": [{"path": config.teachers[0].path, "files": files}]}


def lm_input_hash(config: DistillConfig, record: dict) -> str:
    """The key a re-run must match (module doc): sha256 over the config without paths (the chosen decoder included),
    the inputs' digests and the versions. Not the budget: it decides the decoder, which is in the config, and the
    gate."""
    cfg = config.model_dump(mode="json", exclude={"out", "cache_dir"})
    cfg["data"].pop("source", None)
    for t in cfg["teachers"]:
        t.pop("path", None)
        t.pop("tokenizer", None)  # its file is among the teacher's digests
    digests = [record["data"]["documents_sha256"], [f["sha256"] for t in record["teachers"] for f in t["files"]]]
    blob = json.dumps([cfg, digests, lm_versions()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def unchanged(out: Path, key: str) -> bool:
    """True when `out` holds a published build with input hash `key` whose artifacts verify."""
    old = read_manifest(out)
    return old is not None and old.get("input_hash") == key and artifacts_verify(out, old)


def manifest_writer(key: str, record: dict, budget: Budget, config: DistillConfig):
    """The callback pipeline/distill.finish runs on the work directory before publishing: writes manifest.json."""
    def write(work: Path) -> None:
        write_json(work / MANIFEST, {"input_hash": key, "inputs": record, "budget": budget.to_dict(),
                                     "versions": lm_versions(), "config": config.model_dump(mode="json"),
                                     "artifacts": artifact_list(work)})
    return write


def _relative(f: Path, folder: Path) -> str:
    try:
        return Path(f).relative_to(folder).as_posix()
    except ValueError:  # a tokenizer given from elsewhere (--teacher-tokenizer): its name only
        return Path(f).name


def _digest(f: Path) -> str:
    from edgedistill.teachers.base import file_digest

    return file_digest(f)
