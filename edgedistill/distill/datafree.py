"""Data-free distillation: synthesize a transfer set from a teacher's BatchNorm statistics.

DeepInversion (Yin et al., CVPR 2020, "Dreaming to Distill") and ZeroQ (Cai et al., CVPR 2020): a network with
BatchNorm layers remembers the mean and variance of its training activations. Inputs x are optimised so that, for a
batch, every BN layer l sees activations with the same per-channel statistics:

    L(x) = CE(f(x), y)                                              class prior: each sample aims at a chosen class
         + w_bn · Σ_l m_l · ( ||μ_l(x) − μ̂_l||₂ + ||σ²_l(x) − σ̂²_l||₂ )   feature-statistics prior (m_1 = first_bn_mul)
         + w_tv · TV(x)                                               smoothness prior (mean |x_i − x_neighbour|)
         + w_l2 · mean(x²)                                            small-norm prior

μ_l, σ²_l are the batch statistics of BN layer l's input; μ̂_l, σ̂²_l its running statistics. Each step applies a
random jitter (a roll by up to `jitter` positions along every spatial axis) and, for images, a random horizontal
flip, so that the inputs cannot overfit one alignment. Inputs are kept in the data's value range by optimising
z with x = lo + (hi − lo)·sigmoid(z).

Written from the papers; the reference implementations are CUDA-only. The result is an unlabeled transfer set: the
student learns from the teacher's soft targets on it (and on its augmentations), never from the class it aimed at.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from edgedistill.data import DataSplits, Normalizer, Split
from edgedistill.errors import ConfigError


@dataclass(frozen=True)
class SynthesisConfig:
    """How many samples and how hard to optimise them. The defaults fit a CPU: minutes, not GPU-hours."""

    samples: int = 2048
    steps: int = 200
    batch: int = 256
    lr: float = 0.25
    bn_weight: float = 1.0
    first_bn_mul: float = 10.0
    tv_weight: float = 1e-4
    l2_weight: float = 1e-5
    jitter: int = 2
    flip: bool = True
    seed: int = 0
    value_range: tuple[float, float] | None = None  # None: the caller supplies one (e.g. the labelled data's)

    def key(self, teacher_identity: str, input_shape: tuple[int, ...], num_classes: int) -> str:
        blob = json.dumps([teacher_identity, list(input_shape), num_classes, asdict(self)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass
class SynthesisResult:
    x: np.ndarray  # (samples, *input_shape) float32, raw data space
    aimed: np.ndarray  # the class each sample was optimised towards (for diagnostics only)
    bn_loss: list[float] = field(default_factory=list)  # per step, first batch: the statistics mismatch
    teacher_agreement: float = 0.0  # fraction of samples the teacher assigns to the class they aimed at


class BNStatistics:
    """Forward hooks on every BatchNorm layer; `loss()` is the weighted statistics mismatch of the last forward."""

    def __init__(self, module: nn.Module, first_mul: float):
        self.layers = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not self.layers:
            raise ConfigError("Data-free distillation needs a teacher with BatchNorm layers (their running statistics "
                              "are what the synthetic inputs are matched to); this teacher has none.")
        self._terms: list[torch.Tensor] = []
        self._mul = [first_mul] + [1.0] * (len(self.layers) - 1)
        self._handles = [m.register_forward_hook(self._hook(i)) for i, m in enumerate(self.layers)]

    def _hook(self, i: int) -> Callable:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: torch.Tensor) -> None:
            x = inputs[0]
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dim=dims)
            var = x.var(dim=dims, unbiased=False)
            term = torch.norm(mean - module.running_mean, 2) + torch.norm(var - module.running_var, 2)
            self._terms.append(self._mul[i] * term)

        return hook

    def loss(self) -> torch.Tensor:
        out = torch.stack(self._terms).sum()
        self._terms.clear()
        return out

    def close(self) -> None:
        for h in self._handles:
            h.remove()


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbours along every spatial axis (axes 2..)."""
    if x.dim() < 3:
        return x.new_zeros(())
    return sum((x.narrow(d, 1, x.shape[d] - 1) - x.narrow(d, 0, x.shape[d] - 1)).abs().mean()
               for d in range(2, x.dim()))


def _jitter(x: torch.Tensor, cfg: SynthesisConfig, gen: torch.Generator) -> torch.Tensor:
    dims = list(range(2, x.dim()))
    if cfg.jitter and dims:
        shifts = [int(s) for s in torch.randint(-cfg.jitter, cfg.jitter + 1, (len(dims),), generator=gen)]
        x = torch.roll(x, shifts=shifts, dims=dims)
    if cfg.flip and x.dim() == 4 and bool(torch.rand((), generator=gen) < 0.5):
        x = torch.flip(x, dims=[3])
    return x


def synthesize(module: nn.Module, input_shape: tuple[int, ...], num_classes: int, cfg: SynthesisConfig,
               progress: Callable[[int], None] | None = None) -> SynthesisResult:
    """Optimise `cfg.samples` inputs against `module`'s BN statistics (the module is left exactly as it was)."""
    if cfg.value_range is None:
        raise ValueError("SynthesisConfig.value_range must be set")
    lo, hi = cfg.value_range
    was_training = module.training
    module.eval()  # running statistics are the targets; they must not move
    stats = BNStatistics(module, cfg.first_bn_mul)
    gen = torch.Generator().manual_seed(cfg.seed)
    xs, aimed, history = [], [], []
    try:
        for start in range(0, cfg.samples, cfg.batch):
            n = min(cfg.batch, cfg.samples - start)
            y = torch.arange(start, start + n) % num_classes  # balanced classes
            z = (0.5 * torch.randn((n, *input_shape), generator=gen)).requires_grad_(True)
            opt = torch.optim.Adam([z], lr=cfg.lr, betas=(0.5, 0.9))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
            for _ in range(cfg.steps):
                x = lo + (hi - lo) * torch.sigmoid(z)
                opt.zero_grad(set_to_none=True)
                logits = module(_jitter(x, cfg, gen))
                bn = stats.loss()
                loss = (F.cross_entropy(logits, y) + cfg.bn_weight * bn + cfg.tv_weight * total_variation(x)
                        + cfg.l2_weight * x.pow(2).mean())
                loss.backward()
                opt.step()
                sched.step()
                if start == 0:
                    history.append(float(bn.detach()))
                if progress is not None:
                    progress(1)
            with torch.no_grad():
                xs.append((lo + (hi - lo) * torch.sigmoid(z)).float())
            aimed.append(y)
    finally:
        stats.close()
        module.train(was_training)
    x = torch.cat(xs)
    y = torch.cat(aimed)
    with torch.no_grad():
        agree = float((_eval_argmax(module, x) == y).float().mean())
    return SynthesisResult(x.numpy(), y.numpy(), history, agree)


def _eval_argmax(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    was = module.training
    module.eval()
    try:
        return module(x).argmax(1)
    finally:
        module.train(was)


def cached_synthesis(cache_dir: Path, teacher_identity: str, module: nn.Module, input_shape: tuple[int, ...],
                     num_classes: int, cfg: SynthesisConfig,
                     progress: Callable[[int], None] | None = None) -> tuple[SynthesisResult, bool]:
    """`synthesize`, stored under `cache_dir` by (teacher, shape, classes, config); returns (result, was_cached)."""
    path = Path(cache_dir) / f"synthetic-{cfg.key(teacher_identity, input_shape, num_classes)}.npz"
    if path.is_file():
        with np.load(path) as z:
            return SynthesisResult(z["x"], z["aimed"], z["bn_loss"].tolist(), float(z["agreement"])), True
    res = synthesize(module, input_shape, num_classes, cfg, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=res.x, aimed=res.aimed, bn_loss=np.asarray(res.bn_loss), agreement=res.teacher_agreement)
    tmp.replace(path)
    return res, False


SYNTHETIC_PREFIX = "synthetic"
_FIELDS = {"samples": int, "steps": int, "batch": int, "lr": float, "bn_weight": float, "first_bn_mul": float,
           "tv_weight": float, "l2_weight": float, "jitter": int, "seed": int}


def parse_synthetic(spec: str | None, seed: int = 0) -> SynthesisConfig | None:
    """`synthetic[:samples=2048,steps=200,range=0:1,flip=0,...]` -> SynthesisConfig; any other transfer spec -> None."""
    if not spec or not (spec == SYNTHETIC_PREFIX or spec.startswith(SYNTHETIC_PREFIX + ":")):
        return None
    kwargs: dict = {"seed": seed}
    body = spec[len(SYNTHETIC_PREFIX) + 1:]
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, _, value = part.partition("=")
        try:
            if key == "range":
                lo, hi = (float(v) for v in value.split(":"))
                if not lo < hi:
                    raise ValueError
                kwargs["value_range"] = (lo, hi)
            elif key == "flip":
                kwargs["flip"] = value.lower() not in ("0", "false", "no", "off")
            elif key in _FIELDS:
                kwargs[key] = _FIELDS[key](value)
            else:
                raise KeyError(key)
        except KeyError:
            raise ConfigError(f"Transfer {spec!r}: unknown option {key!r}; options are "
                              f"{', '.join(sorted([*_FIELDS, 'range', 'flip']))}.") from None
        except ValueError:
            raise ConfigError(f"Transfer {spec!r}: {part!r} is not a valid value (e.g. samples=2048, "
                              "range=0:1).") from None
    cfg = SynthesisConfig(**kwargs)
    if cfg.samples < 1 or cfg.steps < 1 or cfg.batch < 2:
        raise ConfigError(f"Transfer {spec!r}: samples and steps must be positive and batch at least 2 (batch "
                          "statistics need two samples).")
    return cfg


def check_teacher(config, teachers: list) -> None:
    """Data-free distillation needs one raw-fed torch teacher with BatchNorm layers; say so before any work."""
    if any(getattr(t, "is_text", False) for t in teachers):
        raise ConfigError("A synthetic transfer set (data-free distillation) optimises continuous inputs through the "
                          "teacher's BatchNorm statistics, and text has neither: the student reads discrete token ids, "
                          "which no gradient moves, and text teachers normalise with LayerNorm, which keeps no "
                          "training statistics. For text, give unlabelled texts instead: --transfer FILE.jsonl with "
                          "no label (or a null one) on each line, which the teacher labels, or such lines in --data.")
    if len(teachers) != 1 or teachers[0].torch_module() is None or config.teachers[0].input != "raw":
        raise ConfigError("A synthetic transfer set (data-free distillation) needs one teacher in a torch format fed "
                          "raw samples: the inputs are optimised through the teacher's BatchNorm statistics, which "
                          "ONNX/TFLite files and ensembles do not expose.")
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in teachers[0].torch_module().modules()):
        raise ConfigError(f"Teacher {teachers[0].name!r} has no BatchNorm layers, so there are no training "
                          "statistics to synthesize a transfer set from; pass real (even unlabeled) samples with "
                          "--transfer instead.")


def synthetic_splits(config, s: DataSplits, teacher, cache_dir: Path, ui) -> tuple[DataSplits, dict]:
    """`s` with its transfer set replaced by inputs synthesized from `teacher`, and what the synthesis did. No real
    training sample is used: the student's input normalisation is fitted on the synthetic set too."""
    cfg = parse_synthetic(config.data.transfer, config.train.seed)
    if cfg.value_range is None:  # the data's value range (a scalar pair), read off the labelled validation split
        cfg = replace(cfg, value_range=(float(s.val.x.min()), float(s.val.x.max())))
    t0 = time.perf_counter()
    upd = ui.task(f"synthesize {cfg.samples} inputs", -(-cfg.samples // cfg.batch) * cfg.steps)
    res, cached = cached_synthesis(cache_dir, teacher.identity(), teacher.torch_module(),
                                   s.input_shape, s.num_classes, cfg, progress=lambda k: upd(k))
    splits = replace(s, transfer=Split(res.x, None), normalizer=Normalizer.fit(res.x))
    info = {"samples": cfg.samples, "steps": cfg.steps, "value_range": list(cfg.value_range), "cached": cached,
            "bn_loss_first": res.bn_loss[0], "bn_loss_last": res.bn_loss[-1],
            "teacher_agrees_with_aimed_class": res.teacher_agreement, "seconds": time.perf_counter() - t0,
            "real_training_samples_used": 0}
    return splits, info
