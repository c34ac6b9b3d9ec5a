"""Batch augmentations on tensors, driven by an explicit torch.Generator so runs are reproducible.

`Augment` is the recipe the trainer applies to every training batch. The student, its no-teacher twin and the
teacher (function matching: Beyer et al. 2022, "Knowledge distillation: A good teacher is patient and
consistent", arXiv:2106.05237) all see the *identical* augmented tensor: the trainer draws it from a generator
seeded by (seed, epoch, step) that nothing else consumes (`batch_generator`), so the stream depends neither on the
loss being trained nor on which DataLoader worker builds the batch.

Function matching on small data is the default (`auto_mixup`): with a teacher and fewer than FM_BELOW transfer
samples, every batch is mixed (mixup, Beta(1, 1)) and the teacher labels the mixed inputs, so a few hundred samples
become an unbounded transfer set (Beyer et al. 2022, sec. 3-4: mixup between transfer samples with consistent
teacher and student views, and long schedules). Measured on MNIST-1D with 400 labels (docs/scarce_labels.md): float
student 89.7 % without, 93.2 % with it (twin 85.5 %). That automatic mixup is for the teacher's sake: the
no-teacher twin trains on the un-mixed batches (`Augment.twin_mixup` False), because mixup with hard labels only
made it worse there (85.5 -> 82.4 %) and the twin is meant to be what a user without a teacher gets. A mixup the
user sets (`--augment mixup=A`) applies to both, as before; `--augment mixup=0` (or `none`) turns it off.

Text has its own views (edgedistill.data.text_augment): `token_dropout=p` hides each token with probability p,
`span_mask=f` one contiguous span of a fraction f of the sentence; the teacher labels the view through the student
tokenizer's `decode`. Arrays take shift / hflip / mixup only and token ids the text views only (`check`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from edgedistill.errors import ConfigError


@dataclass(frozen=True)
class Mix:
    """What mixup did to a batch: sample i became lam · x_i + (1 − lam) · x_perm[i]."""

    perm: torch.Tensor
    lam: float

    def soft_labels(self, y: torch.Tensor, num_classes: int) -> torch.Tensor:
        one_hot = F.one_hot(y, num_classes).float()
        return self.lam * one_hot + (1.0 - self.lam) * one_hot[self.perm]


@dataclass(frozen=True)
class Augment:
    """shift: random translation by up to this many pixels (images) or steps (signals), zero fill;
    hflip: mirror images left-right with probability 1/2 (only where the classes are mirror-invariant);
    mixup: Beta(mixup, mixup) mixing of a batch with a shuffled copy of itself (Zhang et al. 2018), 0 = off;
    twin_mixup: whether a run without a teacher (the no-teacher twin) mixes too; False for the automatic
    function-matching mixup (see the module docstring), which then only changes what the teacher and student see;
    token_dropout: text: probability that each token becomes the mask id (word dropout), 0 = off;
    span_mask: text: fraction of each sentence hidden as one contiguous span of mask ids, 0 = off."""

    shift: int = 0
    hflip: bool = False
    mixup: float = 0.0
    twin_mixup: bool = True
    token_dropout: float = 0.0
    span_mask: float = 0.0

    def for_twin(self) -> "Augment":
        """The recipe a run without a teacher uses: the same, less the automatic function-matching mixup or text
        views when they are the teacher's alone (`twin_mixup` False)."""
        if self.twin_mixup or not (self.mixup or self.text_views):
            return self
        return replace(self, mixup=0.0, token_dropout=0.0, span_mask=0.0, twin_mixup=True)

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.hflip or self.mixup > 0 or self.text_views

    @property
    def text_views(self) -> bool:
        """Whether a text view (token dropout, span masking) is on."""
        return self.token_dropout > 0 or self.span_mask > 0

    def describe(self) -> str:
        teacher_only = "" if self.twin_mixup else " (with the teacher only)"  # the automatic views: not the twin's
        parts = [f"shift ±{self.shift}"] * (self.shift > 0) + ["h-flip"] * self.hflip + \
            [f"mixup α={self.mixup:g}" + ("" if self.twin_mixup else " (with the teacher only)")] * (self.mixup > 0) + \
            [f"token dropout p={self.token_dropout:g}" + teacher_only] * (self.token_dropout > 0) + \
            [f"span masking {self.span_mask:g} of each text" + teacher_only] * (self.span_mask > 0)
        return ", ".join(parts) or "none"

    def check(self, ndim: int, text: bool = False) -> str | None:
        """Why this recipe cannot apply to samples of `ndim` dimensions (N excluded; `text`: token ids), or None."""
        if text:
            if self.shift > 0 or self.hflip or self.mixup > 0:
                return ("shift, hflip and mixup act on arrays; token ids neither shift, mirror nor mix (text takes "
                        "token_dropout=P and span_mask=F)")
            return None
        if self.text_views:
            return "token_dropout and span_mask hide tokens of texts; these samples are arrays, not token ids"
        if self.hflip and ndim != 3:
            return "hflip needs images (C×H×W samples)"
        if self.shift > 0 and ndim not in (2, 3):
            return "shift needs images (C×H×W) or signals (C×L)"
        return None

    def apply(self, x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, Mix | None]:
        """The augmented batch x (N×...) and what mixup did, drawn from `gen` (for arrays: draw() then
        apply_rows() on every row, so a rank that builds only some rows gets exactly those rows of this)."""
        if self.text_views:
            from edgedistill.data.text_augment import span_mask, token_dropout

            if self.token_dropout > 0:
                x = token_dropout(x, gen, self.token_dropout)
            if self.span_mask > 0:
                x = span_mask(x, gen, self.span_mask)
            return x, None
        drawn = self.draw(len(x), x.dim(), gen)
        rows = torch.arange(len(x))
        return self.apply_rows(x, rows, drawn, rows[drawn.mix.perm] if drawn.mix else None), drawn.mix

    def draw(self, n: int, ndim: int, gen: torch.Generator) -> "Drawn":
        """The random numbers of one batch of n array samples of `ndim` dimensions (N included), in the order
        `apply` has always drawn them: shifts, flips, then mixup's lam and partner permutation."""
        shift = None
        if self.shift > 0:
            k = 2 * self.shift + 1
            shift = torch.stack([torch.randint(0, k, (n,), generator=gen) for _ in range(2 if ndim == 4 else 1)])
        flip = torch.rand(n, generator=gen) < 0.5 if self.hflip else None
        mix = None
        if self.mixup > 0:
            lam = _beta(self.mixup, gen)
            mix = Mix(torch.randperm(n, generator=gen), lam)
        return Drawn(shift, flip, mix)

    def apply_rows(self, x: torch.Tensor, rows: torch.Tensor, drawn: "Drawn",
                   partners: torch.Tensor | None = None) -> torch.Tensor:
        """Rows `rows` (positions in the batch drawn for) of the augmented batch. `x` holds the samples at the
        distinct positions `pos` = sorted(rows ∪ partners), in that order; `partners`: the positions mixup pairs
        `rows` with (drawn.mix.perm[rows]), needed with mixup only. Row i of the result equals row rows[i] of the
        whole batch augmented: the same per-sample shifts and flips, lam · x_i + (1 − lam) · x_perm[i]."""
        pos = torch.unique(torch.cat([rows, partners])) if partners is not None else rows
        if drawn.shift is not None:
            x = shift_by(x, self.shift, drawn.shift[:, pos])
        if drawn.flip is not None:
            x = flip_where(x, drawn.flip[pos])
        if drawn.mix is None:
            return x
        at, other = torch.searchsorted(pos, rows.contiguous()), torch.searchsorted(pos, partners.contiguous())
        return drawn.mix.lam * x[at] + (1.0 - drawn.mix.lam) * x[other]


@dataclass(frozen=True)
class Drawn:
    """The random numbers of one batch (Augment.draw): per-sample offsets (1 or 2 × N, in 0..2·shift), flips (N,
    bool), mixup (None where off)."""

    shift: torch.Tensor | None
    flip: torch.Tensor | None
    mix: Mix | None


DRAWS = "per-batch-v1"  # how batches draw their random numbers (batch_generator); part of every key that depends on it


def batch_generator(seed: int, epoch: int, step: int) -> torch.Generator:
    """The generator one training batch's augmentation draws from, seeded by (seed, epoch, step) alone: a batch's
    view does not depend on which process builds it, on how many batches were built before it (DataLoader workers,
    a resumed run) or on the loss trained. A hash, so that nearby (epoch, step) pairs get unrelated seeds."""
    digest = hashlib.sha256(f"{seed}|{epoch}|{step}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") % (2**63))


FM_BELOW = 10_000  # transfer samples below which function-matching mixup is on by default (with a teacher)
FM_MIXUP = 1.0  # its Beta(a, a) parameter: lam uniform on [0, 1]


FM_TOKEN_DROPOUT = 0.1  # text's function-matching view by default: token dropout p (docs/text_kd.md)


FM_BYTES_LABELLED_BELOW = 0.5  # a byte-level student gets the view only when fewer transfer samples carry a label


def auto_token_dropout(n_transfer: int, teacher: bool = True, byte_tokens: bool = False,
                       labelled_fraction: float = 0.0) -> float:
    """The default token dropout for a text transfer set of n samples: FM_TOKEN_DROPOUT with a teacher and
    n < FM_BELOW — for a byte-level student only where labels are scarce (labelled_fraction, the share of transfer
    samples with a label, below FM_BYTES_LABELLED_BELOW) — else 0. Measured (docs/text_kd.md, docs/text.md):
    * langid, byte student, 157 labels among 3,482 words: +1.66 / +1.13 points over KD alone (2 seeds, McNemar
      p = 0.0006 / 0.013);
    * builtin:docs (8,640 paragraphs, all labelled), teacher-vocabulary student, 20 epochs: 63.83 % against 51.04 %
      without, where the student otherwise memorises the teacher's confident targets;
    * builtin:docs, byte student, 816 steps: 57.79 % [55.8, 59.8] with the view against 62.17 % [60.2, 64.1]
      without (one seed): on fully labelled paragraphs of bytes the view hurt, so it is off there.
    The threshold lies between the two byte-level points measured (5 % and 100 % labelled). Like the automatic
    mixup it is the teacher's alone: the no-teacher twin trains on the plain texts."""
    if byte_tokens and labelled_fraction >= FM_BYTES_LABELLED_BELOW:
        return 0.0
    return FM_TOKEN_DROPOUT if teacher and n_transfer < FM_BELOW else 0.0


def auto_mixup(n_transfer: int, teacher: bool = True) -> float:
    """The default mixup parameter for a transfer set of n samples: FM_MIXUP with a teacher and n < FM_BELOW, else
    0 (off: a large set keeps today's cost, the teacher's outputs come from the per-sample cache)."""
    return FM_MIXUP if teacher and n_transfer < FM_BELOW else 0.0


def _beta(a: float, gen: torch.Generator) -> float:
    """One Beta(a, a) draw from `gen` (torch.distributions cannot take a generator): X/(X+Y), X, Y ~ Gamma(a)."""
    g = torch._standard_gamma(torch.full((2,), float(a)), generator=gen)
    return float(g[0] / g.sum().clamp_min(1e-12))


def shift_by(x: torch.Tensor, pad: int, offsets: torch.Tensor) -> torch.Tensor:
    """Shift each sample (N×C×H×W images: offsets 2×N, rows then columns; N×C×L signals: 1×N) by offset − pad,
    zero fill: pad then crop at the offset."""
    if x.dim() == 4:
        n, c, h, w = x.shape
        dy, dx = offsets
        padded = F.pad(x, (pad, pad, pad, pad))
        rows = (dy.view(n, 1, 1, 1) + torch.arange(h).view(1, 1, h, 1)).expand(n, c, h, w + 2 * pad)
        cols = (dx.view(n, 1, 1, 1) + torch.arange(w).view(1, 1, 1, w)).expand(n, c, h, w)
        return padded.gather(2, rows).gather(3, cols)
    n, c, length = x.shape
    padded = F.pad(x, (pad, pad))
    cols = (offsets[0].view(n, 1, 1) + torch.arange(length).view(1, 1, length)).expand(n, c, length)
    return padded.gather(2, cols)


def flip_where(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Mirror left-right the samples where `flip` (N, bool) holds."""
    if not flip.any():
        return x
    out = x.clone()
    out[flip] = out[flip].flip(-1)
    return out


def random_shift(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each image by up to `pad` pixels in each direction (zero fill): pad then take a random crop."""
    if pad <= 0:
        return x
    n = x.shape[0]
    return shift_by(x, pad, torch.stack([torch.randint(0, 2 * pad + 1, (n,), generator=gen) for _ in range(2)]))


def random_shift_1d(x: torch.Tensor, pad: int, gen: torch.Generator) -> torch.Tensor:
    """Shift each N×C×L signal by up to `pad` steps either way (zero fill)."""
    return shift_by(x, pad, torch.randint(0, 2 * pad + 1, (x.shape[0],), generator=gen)[None])


def random_hflip(x: torch.Tensor, gen: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror each sample left-right with probability p."""
    return flip_where(x, torch.rand(x.shape[0], generator=gen) < p)


_TRUE, _FALSE = ("", "1", "true", "yes", "on"), ("0", "false", "no", "off")


def parse_augment_spec(value: str, option: str = "--augment") -> dict:
    """'shift=2,hflip,mixup=0.2' -> {"shift": 2, "hflip": True, "mixup": 0.2}; 'none' -> everything off (the
    automatic mixup too). A mixup not named keeps its default (auto: function matching on small data). Text:
    'token_dropout=0.1,span_mask=0.15'. The same spelling works in a config file (`augment = "none"`). Raises
    ConfigError naming `option`."""
    out: dict = {"shift": 0, "hflip": False, "mixup": "auto", "token_dropout": 0.0, "span_mask": 0.0}
    if value.strip().lower() in ("", "none", "off"):
        return {**out, "mixup": 0.0}
    seen: set[str] = set()
    for part in value.split(","):
        key, _, val = part.strip().partition("=")
        if key not in out:
            raise ConfigError(f"{option}: unknown augmentation {key!r}; use shift=N, hflip, mixup=A for arrays, "
                              "token_dropout=P, span_mask=F for texts (comma-separated).")
        if key in seen:
            raise ConfigError(f"{option} {value!r}: {key!r} is given twice; give each once.")
        seen.add(key)
        try:
            if key == "hflip":
                if val.lower() not in _TRUE + _FALSE:
                    raise ValueError
                out[key] = val.lower() in _TRUE
            elif key == "mixup":
                out[key] = "auto" if val.strip().lower() == "auto" else float(val)
            else:
                out[key] = type(out[key])(val)
        except ValueError:
            what = "on or off (hflip, hflip=1, hflip=0)" if key == "hflip" else "a number"
            raise ConfigError(f"{option}: {part!r}: {key} takes {what}.") from None
    return out
