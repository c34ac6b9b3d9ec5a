"""Feature- and relation-based knowledge: losses between intermediate representations of student and teacher.

Each loss is a plain function of (student features, teacher features) for one batch; teacher features are treated
as constants (detached), so gradients reach only the student (and its regressor). Registered by name:

* `hint`   FitNets (Romero et al. 2015, arXiv:1412.6550): MSE between a learned regressor of the student's
           features (1×1 conv / linear to the teacher's width) and the teacher's features.
* `cosine` DistilBERT's hidden-state alignment (Sanh et al. 2019, arXiv:1910.01108): 1 − cos(r(f_s), f_t) per sample.
* `at`     attention transfer (Zagoruyko & Komodakis 2017, arXiv:1612.03928): the spatial map Σ_c f² of each layer,
           flattened and L2-normalised, compared by mean squared difference (maps resized to the teacher's size).
* `rkd_distance`, `rkd_angle`  relational KD (Park, Kim, Lu & Cho 2019, arXiv:1904.05068): pairwise distances
           (normalised by their mean) and triplet angles of the batch's embeddings, compared with smooth L1.
* `sp`     similarity-preserving KD (Tung & Mori 2019, arXiv:1907.09682): row-normalised batch Gram matrices,
           ||G_s − G_t||²_F / b².

`hint` and `cosine` need a regressor (student width -> teacher width); the others compare shapes that do not depend on
the widths.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from edgedistill.registry import Registry

FEATURE_LOSSES: Registry = Registry("feature / relation loss")
NEEDS_REGRESSOR = {"hint", "cosine"}


@FEATURE_LOSSES.register("hint", "FitNets hint: MSE(regressor(student features), teacher features)")
def hint(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(fs, ft.detach())


@FEATURE_LOSSES.register("cosine", "DistilBERT cosine embedding loss: mean of 1 − cos(r(f_s), f_t)")
def cosine(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    return (1.0 - F.cosine_similarity(fs.flatten(1), ft.detach().flatten(1), dim=1)).mean()


def attention_map(f: torch.Tensor, size: tuple[int, ...] | None = None) -> torch.Tensor:
    """Zagoruyko & Komodakis' spatial attention: mean over channels of f², optionally resized, flattened, L2-normed."""
    a = f.pow(2).mean(1, keepdim=True)
    if size is not None and tuple(a.shape[2:]) != tuple(size):
        a = F.adaptive_avg_pool2d(a, size) if a.dim() == 4 else F.adaptive_avg_pool1d(a, size)
    return F.normalize(a.flatten(1), dim=1)


@FEATURE_LOSSES.register("at", "attention transfer: mean squared difference of normalised spatial attention maps")
def attention_transfer(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    ft = ft.detach()
    size = tuple(ft.shape[2:])
    return (attention_map(fs, size) - attention_map(ft, size)).pow(2).mean()


def _pairwise_distances(e: torch.Tensor) -> torch.Tensor:
    d = (e.unsqueeze(0) - e.unsqueeze(1)).pow(2).sum(-1).clamp_min(1e-12).sqrt()
    return d * (1 - torch.eye(len(e), dtype=e.dtype))


@FEATURE_LOSSES.register("rkd_distance", "relational KD, distance-wise: smooth L1 of mean-normalised pairwise distances")
def rkd_distance(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    es, et = fs.flatten(1), ft.detach().flatten(1)
    ds, dt = _pairwise_distances(es), _pairwise_distances(et)
    off = ~torch.eye(len(es), dtype=torch.bool)
    ds = ds / ds[off].mean().clamp_min(1e-12)
    dt = dt / dt[off].mean().clamp_min(1e-12)
    return F.smooth_l1_loss(ds[off], dt[off])


def _angles(e: torch.Tensor) -> torch.Tensor:
    """cos of the angle at j for every triplet (i, j, k): <(e_i − e_j)/|·|, (e_k − e_j)/|·|>."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)  # diff[j, i] = e_i − e_j, normalised
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


@FEATURE_LOSSES.register("rkd_angle", "relational KD, angle-wise: smooth L1 of triplet angle cosines")
def rkd_angle(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(_angles(fs.flatten(1)), _angles(ft.detach().flatten(1)))


@FEATURE_LOSSES.register("sp", "similarity-preserving KD: ||G_s − G_t||²_F / b² of row-normalised batch Gram matrices")
def similarity_preserving(fs: torch.Tensor, ft: torch.Tensor) -> torch.Tensor:
    def gram(f: torch.Tensor) -> torch.Tensor:
        f = f.flatten(1)
        return F.normalize(f @ f.t(), p=2, dim=1)

    b = fs.shape[0]
    return (gram(fs) - gram(ft.detach())).pow(2).sum() / (b * b)


def regressor(student_shape: tuple[int, ...], teacher_shape: tuple[int, ...]) -> nn.Module:
    """The FitNets regressor from one sample's student features to the teacher's: a 1×1 conv (then resizing to the
    teacher's spatial size) for feature maps, a linear layer for vectors."""
    if len(student_shape) == 1:
        return nn.Linear(student_shape[0], int(torch.tensor(teacher_shape).prod()))
    conv = (nn.Conv2d if len(student_shape) == 3 else nn.Conv1d)(student_shape[0], teacher_shape[0], 1, bias=False)
    pool = (nn.AdaptiveAvgPool2d if len(student_shape) == 3 else nn.AdaptiveAvgPool1d)(tuple(teacher_shape[1:]))
    return nn.Sequential(conv, pool)


class FeatureTap:
    """Forward hooks that keep the outputs of named sub-modules for the current forward pass."""

    def __init__(self, model: nn.Module, names: list[str], what: str):
        modules = dict(model.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            available = [n for n in modules if n]
            raise KeyError(f"{what} has no layer named {', '.join(repr(m) for m in missing)}; available: "
                           f"{', '.join(available[:60])}{' ...' if len(available) > 60 else ''}")
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles = [modules[n].register_forward_hook(self._keep(n)) for n in names]

    def _keep(self, name: str):
        def hook(_module, _inp, out):
            self.outputs[name] = out[0] if isinstance(out, (tuple, list)) else out
        return hook

    def close(self) -> None:
        for h in self._handles:
            h.remove()
