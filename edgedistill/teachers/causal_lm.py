"""A `transformers` causal language model saved with `save_pretrained` (GPT-2 style: config.json, *.safetensors,
tokenizer.json), the teacher of `--task causal-lm`.

Loaded offline exactly as the text classifiers are (edgedistill.teachers.text_transformers: the folder's own path,
`local_files_only=True`, HF_HUB_OFFLINE set, the same refusals for remote code, pickle-only weights and a missing
tokenizer.json), but as AutoModelForCausalLM: token ids N×L -> next-token logits N×L×V over the teacher's whole
vocabulary. A folder is a causal LM when its config.json says so (`is_decoder: true`, or an architecture named
`*ForCausalLM` / `*LMHeadModel`, GPT-2's spelling); `is_causal_lm_folder` reads only that file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from edgedistill.errors import ModelLoadError
from edgedistill.teachers.base import file_digest
from edgedistill.teachers.text_transformers import checked_files, load_pretrained, positions, read_config

_CAUSAL_SUFFIXES = ("ForCausalLM", "LMHeadModel")
_BATCH = 64  # windows per forward pass


def causal_lm_reason(config: dict) -> str | None:
    """Why config.json describes a causal LM (`is_decoder`, or the architecture's name), or None when it does not."""
    if config.get("is_decoder") is True:
        return "its config.json sets is_decoder"
    for arch in config.get("architectures") or []:
        if isinstance(arch, str) and arch.endswith(_CAUSAL_SUFFIXES):
            return f"its architecture is {arch}"
    return None


def is_causal_lm_folder(path: str | Path) -> bool:
    """True when `path` is a folder whose config.json describes a causal LM (reads config.json only; False for a
    file, a folder without a readable config.json, or a classifier)."""
    folder = Path(path).expanduser()
    if not (folder / "config.json").is_file():
        return False
    try:
        return causal_lm_reason(read_config(folder)) is not None
    except ModelLoadError:
        return False


class CausalLMTeacher:
    """A `save_pretrained` causal LM (float32, eval mode, CPU). `logits(ids)`: int (N, L) teacher token ids ->
    float32 torch (N, L, V), row t scoring the token after position t. `tokenizer`: its tokenizer.json.
    Raises ModelLoadError (one paragraph) for a folder that is no transformers folder, is not a causal LM (a
    classifier, say), needs remote code (unless allowed), has pickle-only weights (unless allowed), no
    tokenizer.json, or anything transformers cannot load; MissingDependencyError without transformers."""

    format = "transformers-causal-lm"

    def __init__(self, folder: str | Path, tokenizer: str | Path | None = None, allow_remote_code: bool = False,
                 allow_pickle: bool = False):
        folder = Path(folder).expanduser()
        if not (folder / "config.json").is_file():
            raise ModelLoadError(f"{folder} is not a transformers model folder: it has no config.json. A causal-LM "
                                 "teacher is a folder written by `model.save_pretrained(folder)` (config.json, "
                                 "model.safetensors) with its tokenizer.json.")
        config = read_config(folder)
        if causal_lm_reason(config) is None:
            archs = ", ".join(config.get("architectures") or []) or "none named"
            raise ModelLoadError(
                f"--task causal-lm needs a causal language model, but {folder} is not one: its config.json names the "
                f"architecture(s) {archs} and does not set is_decoder. Give a folder saved from a *ForCausalLM / "
                "*LMHeadModel (e.g. GPT2LMHeadModel), or drop --task causal-lm to distill a classifier.")
        reason, tok, weights, safetensors = checked_files(folder, config, tokenizer, allow_remote_code, allow_pickle)
        self.name, self.tokenizer, self.files = folder.name, tok, [folder / "config.json", *weights, tok]
        self.max_positions = positions(config)
        self.module = self._load(folder, safetensors, bool(reason))
        self.vocab_size = int(self.module.get_output_embeddings().weight.shape[0])

    @staticmethod
    def _load(folder: Path, safetensors: bool, remote_code: bool) -> nn.Module:
        model, info = load_pretrained("AutoModelForCausalLM", folder, safetensors, remote_code,
                                      "a causal language model")
        fresh = [k for k in info.get("missing_keys") or [] if "lm_head" not in k or not _tied(model)]
        if fresh:
            raise ModelLoadError(f"The weights in {folder} do not cover the causal LM: {', '.join(sorted(fresh)[:6])} "
                                 "would be initialized at random, so its next-token logits would be noise.")
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        return model

    @torch.no_grad()
    def logits(self, ids: np.ndarray) -> torch.Tensor:
        """Next-token logits float32 (N, L, V) for teacher token ids int (N, L), in batches of 64 windows. Raises
        ModelLoadError when L exceeds the model's position embeddings."""
        ids = np.asarray(ids, np.int64)
        if self.max_positions is not None and ids.shape[1] > self.max_positions:
            raise ModelLoadError(f"The context window of {ids.shape[1]} tokens exceeds the {self.max_positions} "
                                 f"positions of the teacher {self.name}; give a smaller --max-length.")
        out = [self.module(input_ids=torch.from_numpy(ids[s:s + _BATCH])).logits.float()
               for s in range(0, len(ids), _BATCH)]
        return torch.cat(out) if out else torch.zeros(0, ids.shape[1], self.vocab_size)

    @torch.no_grad()
    def greedy(self, prompts: np.ndarray, total: int) -> np.ndarray:
        """Teacher ids int64 (N, P) -> (N, total): each row extended by the argmax of the teacher's next-token logits
        at its last position, one token a step (greedy decoding, beam size 1), reading the prompt once and then one
        token a step through transformers' key/value cache (`past_key_values`), as `generate` does, rather than
        re-reading the whole window each step. A model that returns no cache is re-read whole each step. Raises
        ModelLoadError when `total` exceeds the model's position embeddings."""
        ids = torch.from_numpy(np.asarray(prompts, np.int64))
        if self.max_positions is not None and total - 1 > self.max_positions:
            raise ModelLoadError(f"The context window of {total - 1} tokens exceeds the {self.max_positions} "
                                 f"positions of the teacher {self.name}; give a smaller --max-length.")
        out = self.module(input_ids=ids, use_cache=True)
        while ids.shape[1] < total:
            ids = torch.cat([ids, out.logits[:, -1].float().argmax(-1, keepdim=True)], dim=1)
            if ids.shape[1] == total:
                break
            past = getattr(out, "past_key_values", None)
            out = self.module(input_ids=ids[:, -1:], past_key_values=past, use_cache=True) if past is not None \
                else self.module(input_ids=ids, use_cache=False)
        return ids.numpy()

    @torch.no_grad()
    def last_hidden(self, ids: np.ndarray) -> torch.Tensor:
        """The last hidden state float32 (N, L, H) for teacher token ids int (N, L) (transformers'
        `hidden_states[-1]`, the input of the output head: after GPT-2's final LayerNorm), in batches of 64."""
        ids = np.asarray(ids, np.int64)
        out = [self.module(input_ids=torch.from_numpy(ids[s:s + _BATCH]), output_hidden_states=True)
               .hidden_states[-1].float() for s in range(0, len(ids), _BATCH)]
        return torch.cat(out) if out else torch.zeros(0, ids.shape[1], self.hidden_size)

    @property
    def hidden_size(self) -> int:
        """H, the width of the last hidden state (the output embedding's input)."""
        return int(self.module.get_output_embeddings().weight.shape[1])

    def identity(self) -> str:
        """Changes whenever the teacher's files do (cache key part)."""
        return f"{self.format}|" + ",".join(file_digest(f) for f in self.files)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.module.parameters())


def _tied(model: nn.Module) -> bool:
    out, inp = model.get_output_embeddings(), model.get_input_embeddings()
    return out is not None and inp is not None and out.weight.data_ptr() == inp.weight.data_ptr()
