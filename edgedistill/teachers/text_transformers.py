"""A `transformers` sequence classifier saved with `save_pretrained` (config.json, *.safetensors, tokenizer.json).

Loaded offline: the folder's own path with `local_files_only=True` (and HF_HUB_OFFLINE set in-process), so no
request to the Hugging Face Hub is ever attempted. Refused, each in one paragraph:
- a folder whose config needs code shipped with the model (`auto_map` in config.json, or a model_type this
  transformers does not know): transformers would import and run those Python files; `allow_remote_code=True`
  (--teacher-allow-remote-code) accepts them;
- weights only in `pytorch_model.bin` (a pickle, which can run code when loaded) unless allow_pickle;
- weights that leave part of the classifier newly initialized (a base or masked-LM checkpoint, not a fine-tuned
  classifier): its logits would be noise;
- no tokenizer.json (the `tokenizers` library reads only that file).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from edgedistill.errors import ModelLoadError
from edgedistill.optional import require
from edgedistill.teachers.text import (
    DEFAULT_MAX_LENGTH,
    Encoded,
    TextFeatures,
    TextTeacher,
    check_texts,
    tokenizer_max_length,
)

_PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt")
# position ids of these start after padding_idx, so max_position_embeddings counts pad_token_id + 1 unusable rows
_OFFSET_POSITIONS = {"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "xmod",
                     "data2vec-text", "longformer", "mpnet", "ernie_m", "luke", "ibert"}
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len")


def _transformers():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # belt and braces: local_files_only already keeps it offline
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    return require("transformers")


def read_config(folder: Path) -> dict:
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelLoadError(f"{folder / 'config.json'} is not a readable JSON file: {exc}.") from None
    if not isinstance(cfg, dict):
        raise ModelLoadError(f"{folder / 'config.json'} does not hold a JSON object.")
    return cfg


def remote_code_reason(config: dict) -> str | None:
    """Why loading this config would run Python code shipped with the model, or None when it would not."""
    if config.get("auto_map"):
        return f"its config.json has an auto_map ({', '.join(sorted(config['auto_map']))}) naming Python files in " \
               "the model that transformers would import and run"
    model_type = config.get("model_type")
    if model_type is not None:
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        if model_type not in CONFIG_MAPPING:
            return f"its model_type {model_type!r} is not one transformers {_transformers().__version__} knows, so " \
                   "only code shipped with the model could build it"
    return None


def weight_files(folder: Path, allow_pickle: bool) -> tuple[list[Path], bool]:
    """(weight files, whether they are safetensors). Pickle-only folders are refused unless allow_pickle."""
    safe = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.safetensors.index.json"))
    if safe:
        return safe, True
    pickles = sorted(p for pat in _PICKLE_WEIGHTS for p in folder.glob(pat)) + \
        sorted(folder.glob("*.bin.index.json"))
    if pickles and not allow_pickle:
        raise ModelLoadError(
            f"The teacher folder {folder} holds its weights only as {', '.join(p.name for p in pickles)}, a Python "
            "pickle, which can run arbitrary code when loaded, and edgedistill does not unpickle files unless told "
            "to. Save the model with safetensors (`model.save_pretrained(folder)` writes model.safetensors by "
            "default), or, if you trust the file, set allow_pickle (--teacher-allow-pickle).")
    if not pickles:
        raise ModelLoadError(
            f"The teacher folder {folder} has a config.json but no weights (*.safetensors or pytorch_model.bin). "
            "Save the trained model into it with `model.save_pretrained(folder)`.")
    return pickles, False


def positions(config: dict) -> int | None:
    """How many tokens the model's position embeddings cover (None: the config does not say)."""
    for key in _POSITION_KEYS:
        n = config.get(key)
        if isinstance(n, int) and n > 0:
            if config.get("model_type") in _OFFSET_POSITIONS:
                n -= int(config.get("pad_token_id") or 1) + 1
            return n
    return None


def label_names(config: dict) -> list[str] | None:
    """The class names of config.json's `id2label`, in output order; None when it is absent, incomplete, or holds
    only the generic names `transformers` writes by default (LABEL_0, LABEL_1, ...)."""
    id2label = config.get("id2label")
    if not isinstance(id2label, dict) or not id2label:
        return None
    try:
        by_index = {int(k): str(v) for k, v in id2label.items()}
    except (TypeError, ValueError):
        return None
    if sorted(by_index) != list(range(len(by_index))):
        return None
    names = [by_index[i] for i in range(len(by_index))]
    return None if all(re.fullmatch(r"LABEL_\d+", n) for n in names) else names


def missing_tokenizer(folder: Path) -> ModelLoadError:
    return ModelLoadError(
        f"The teacher folder {folder} has no tokenizer.json, and a text teacher must tokenize with its own "
        "tokenizer. Add it where the model was trained: `AutoTokenizer.from_pretrained(<the model's source>)"
        f".save_pretrained('{folder}')` writes tokenizer.json for every fast tokenizer (a slow one, e.g. a bare "
        "vocab.txt, is converted by loading it with use_fast=True first); or name a tokenizer.json elsewhere "
        "with --teacher-tokenizer FILE.")


class TransformersTeacher(TextTeacher):
    """A `save_pretrained` folder loaded as AutoModelForSequenceClassification (float32, eval mode, CPU).

    `logits(texts)`: float32 N×num_labels. `features(texts)`: hidden states and attention maps for feature terms.
    Raises ModelLoadError for the refusals listed in the module docstring and for anything transformers cannot
    load, MissingDependencyError when transformers / tokenizers are not installed (extra `text`)."""

    format = "transformers"

    def __init__(self, folder: str | Path, tokenizer: str | Path | None = None, allow_remote_code: bool = False,
                 allow_pickle: bool = False, max_length: int | None = None, name: str | None = None):
        folder = Path(folder).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a transformers model folder: it has no config.json.")
        config = read_config(folder)
        reason, tok, weights, safetensors = checked_files(folder, config, tokenizer, allow_remote_code, allow_pickle)
        self.module = self._load(folder, safetensors, bool(reason))
        self.allow_remote_code = bool(reason)
        limits = [n for n in (positions(config), tokenizer_max_length(tok)) if n]
        length = max_length or (min(limits) if limits else DEFAULT_MAX_LENGTH)
        self._type_ids = "token_type_ids" in inspect.signature(self.module.forward).parameters
        code = sorted(folder.glob("*.py")) if reason else []  # remote code computes the logits too
        super().__init__(name or folder.name, [folder / "config.json", *weights, *code], tok, length,
                         config.get("pad_token_id") if isinstance(config.get("pad_token_id"), int) else None)
        self.class_names = label_names(config)

    @staticmethod
    def _load(folder: Path, safetensors: bool, remote_code: bool) -> nn.Module:
        model, info = load_pretrained("AutoModelForSequenceClassification", folder, safetensors, remote_code,
                                      "a sequence classifier")
        fresh = sorted(info.get("missing_keys") or []) + sorted(str(k[0]) if isinstance(k, tuple) else str(k)
                                                                for k in info.get("mismatched_keys") or [])
        if fresh:
            raise ModelLoadError(
                f"The weights in {folder} do not cover the whole sequence classifier: {', '.join(fresh[:6])}"
                f"{' …' if len(fresh) > 6 else ''} would be initialized at random, so its logits would be noise. "
                "The folder holds a base (or other-task) checkpoint; fine-tune it for classification first and save "
                "that model with save_pretrained.")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    def _inputs(self, enc: Encoded) -> dict[str, torch.Tensor]:
        feed = {"input_ids": torch.from_numpy(enc.input_ids), "attention_mask": torch.from_numpy(enc.attention_mask)}
        if self._type_ids:
            feed["token_type_ids"] = torch.from_numpy(enc.token_type_ids)
        return feed

    @torch.no_grad()
    def _forward(self, enc: Encoded) -> list[torch.Tensor]:
        return [self.module(**self._inputs(enc)).logits]

    def torch_module(self) -> nn.Module:
        """The transformers model (takes input_ids / attention_mask, not an array batch)."""
        return self.module

    def recipe(self) -> str:
        return super().recipe() + ("|remote-code" if self.allow_remote_code else "")

    @torch.no_grad()
    def features(self, texts: Sequence[str]) -> TextFeatures:
        """Hidden states (embeddings + each layer, N×T×H) and attention probabilities (each layer, N×heads×T×T)
        for one batch of N texts padded to its longest T. Attention maps need the eager attention kernel (SDPA
        does not return them), so the model runs eagerly for this call."""
        return self.features_of(self.encode(check_texts(texts, repr(self.name))))

    @torch.no_grad()
    def features_of(self, enc: Encoded, attentions: bool = True) -> TextFeatures:
        """`features` of an already tokenized batch (teacher ids, e.g. the student's vocabulary ids mapped back to
        the teacher's between its special tokens, so that positions align). `attentions=False` skips the maps
        (`attentions` is then empty) and keeps the model's own attention kernel."""
        with _eager_attention(self.module) if attentions else contextlib.nullcontext():
            out = self.module(**self._inputs(enc), output_hidden_states=True, output_attentions=attentions)
        return TextFeatures(tuple(h.float() for h in out.hidden_states or ()),
                            tuple(a.float() for a in out.attentions or ()), torch.from_numpy(enc.attention_mask))


@contextlib.contextmanager
def _eager_attention(model: nn.Module):
    before = getattr(model.config, "_attn_implementation", None)
    switch = before not in (None, "eager") and hasattr(model, "set_attn_implementation")
    if switch:
        model.set_attn_implementation("eager")
    try:
        yield
    finally:
        if switch:
            model.set_attn_implementation(before)


def checked_files(folder: Path, config: dict, tokenizer: str | Path | None, allow_remote_code: bool,
                  allow_pickle: bool) -> tuple[str | None, Path, list[Path], bool]:
    """The refusals every transformers teacher folder goes through, in order: transformers installed, no remote code
    unless allowed, a tokenizer.json (the folder's or `tokenizer`), loadable weights (safetensors, or pickles only
    when allowed). Returns (why remote code is needed or None, tokenizer path, weight files, whether safetensors).
    Raises ModelLoadError / MissingDependencyError (one paragraph)."""
    _transformers()
    reason = remote_code_reason(config)
    if reason and not allow_remote_code:
        raise ModelLoadError(
            f"The teacher folder {folder} needs remote code: {reason}. edgedistill does not run code that comes "
            "with a model unless told to. Read those files; if you trust them, set allow_remote_code "
            "(--teacher-allow-remote-code).")
    tok = Path(tokenizer).expanduser() if tokenizer else folder / "tokenizer.json"
    if not tok.is_file():
        raise missing_tokenizer(folder) if tokenizer is None else ModelLoadError(f"Tokenizer file {tok} does not exist.")
    weights, safetensors = weight_files(folder, allow_pickle)
    return reason, tok, weights, safetensors


def load_pretrained(auto_class: str, folder: Path, safetensors: bool, remote_code: bool, what: str):
    """(model, loading info) of `transformers.<auto_class>.from_pretrained(folder)`, offline (local_files_only),
    float32, with transformers' own log lines and "Loading weights" bar silenced while it loads (they would precede a
    one-paragraph error on the terminal). Raises ModelLoadError naming the folder and `what` it was read as."""
    transformers = _transformers()
    hf_logging = transformers.utils.logging
    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return getattr(transformers, auto_class).from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=remote_code, use_safetensors=safetensors,
            dtype=torch.float32, output_loading_info=True)
    except Exception as exc:  # transformers raises ValueError / OSError / KeyError / its own errors
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"transformers could not load {folder} as {what} "
                             f"({type(exc).__name__}: {first[:300]}).") from None
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()
