"""Text "function matching" views: token dropout and span masking on student token ids.

Function matching (Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and consistent") shows
teacher and student the same augmented input, so the teacher labels the view the student sees. For text, the views
are the same sentence with tokens hidden: token dropout replaces each non-padding token by a mask id with
probability p (the word dropout of Iyyer et al. 2015 / the token cutoff of Shen et al. 2020, "A Simple but
Tough-to-Beat Data Augmentation Approach"); span masking hides one contiguous run of tokens (SpanBERT, Joshi et
al. 2020, with one span of a fixed fraction of the sentence instead of geometric span lengths).

Both are pure functions of (ids, generator): the input is not modified, padding (0) stays padding, and the same
generator state gives the same view. `mask_id` defaults to 1: the vocab tokenizer's unknown id; for the byte
tokenizer it is the byte 0x00 (NUL), which text data does not hold. The teacher sees the view through the
student tokenizer's `decode` (a masked vocab token decodes to the teacher's unknown token; a masked byte is left out
of the teacher's text, edgedistill.pipeline.text_inputs.teacher_view). Wired in as `--augment token_dropout=P` /
`span_mask=F` (edgedistill.data.augment.Augment).
"""

from __future__ import annotations

import torch

from edgedistill.errors import ConfigError

PAD_ID = 0
MASK_ID = 1


def _check(ids: torch.Tensor, fraction: float, what: str) -> None:
    if not isinstance(ids, torch.Tensor) or ids.dtype.is_floating_point or ids.dtype.is_complex or ids.dim() != 2:
        raise TypeError(f"token ids must be an integer (N, T) tensor, got {getattr(ids, 'dtype', type(ids))} "
                        f"of shape {tuple(getattr(ids, 'shape', ()))}")
    if not 0.0 <= fraction <= 1.0:
        raise ConfigError(f"The {what} must lie in [0, 1], got {fraction}.")


def _uniform(ids: torch.Tensor, shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    """U[0, 1) draws from `generator` (on its own device), moved to the ids' device."""
    return torch.rand(shape, generator=generator, device=generator.device).to(ids.device)


def token_dropout(ids: torch.Tensor, generator: torch.Generator, p: float = 0.1, mask_id: int = MASK_ID
                  ) -> torch.Tensor:
    """Replace each non-padding token by `mask_id` independently with probability `p`.

    ids: integer (N, T) tensor, 0 = padding; returns a new tensor of the same shape, dtype and device.
    Raises TypeError for non-integer or non-2-D ids, ConfigError for p outside [0, 1]."""
    _check(ids, p, "token dropout probability")
    hit = (_uniform(ids, tuple(ids.shape), generator) < p) & (ids != PAD_ID)
    return torch.where(hit, torch.full_like(ids, mask_id), ids)


def span_mask(ids: torch.Tensor, generator: torch.Generator, fraction: float = 0.15, mask_id: int = MASK_ID
              ) -> torch.Tensor:
    """Replace one contiguous span of each row by `mask_id`: its length is round(fraction * n) tokens (at least one
    when fraction > 0), n the row's non-padding tokens, and its start uniform over the n - length + 1 places
    inside the text. Rows of padding only are returned unchanged.

    ids: integer (N, T) tensor, 0 = padding after the text (left-aligned); returns a new tensor of the same shape,
    dtype and device. Raises TypeError for non-integer or non-2-D ids, ConfigError for fraction outside [0, 1]."""
    _check(ids, fraction, "span-masking fraction")
    n = (ids != PAD_ID).sum(dim=1)
    span = torch.round(n.double() * fraction).long()
    if fraction > 0:
        span = torch.maximum(span, (n > 0).long())
    start = (_uniform(ids, (ids.shape[0],), generator).double() * (n - span + 1).double()).floor().long()
    pos = torch.arange(ids.shape[1], device=ids.device)[None]
    hit = (pos >= start[:, None]) & (pos < (start + span)[:, None]) & (ids != PAD_ID)
    return torch.where(hit, torch.full_like(ids, mask_id), ids)
