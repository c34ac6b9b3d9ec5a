"""Optimizers and learning-rate schedules by name (schedules step once per batch), and the parameter groups a
student asks for (`lr_groups`)."""

from __future__ import annotations

import math

import torch
from torch import nn

from edgedistill.registry import Registry

OPTIMIZERS: Registry = Registry("optimizer")
SCHEDULES: Registry = Registry("schedule")


LR_SCALE = "lr_scale"  # a module attribute: its own parameters learn at lr × this (e.g. the bow student's table)


def lr_groups(model: nn.Module, lr: float) -> list[dict]:
    """The model's parameters as optimizer groups: one at `lr`, and one per distinct `lr_scale` attribute that a
    module sets for its own (direct) parameters, at lr × that scale. A schedule then scales every group alike. A
    model that sets none gives one group, as `model.parameters()` would, in the same order (a parameter shared by
    two modules counted once, in the first one's group)."""
    groups: dict[float, list] = {}
    seen: set[int] = set()
    for module in model.modules():
        scale = float(getattr(module, LR_SCALE, 1.0))
        for p in module.parameters(recurse=False):
            if id(p) not in seen:
                seen.add(id(p))
                groups.setdefault(scale, []).append(p)
    return [{"params": params, "lr": lr * scale} for scale, params in groups.items() if params]


@OPTIMIZERS.register("adamw", "AdamW (Loshchilov & Hutter 2019), decoupled weight decay")
def adamw(params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)


@OPTIMIZERS.register("sgd", "SGD with Nesterov momentum")
def sgd(params, lr: float, weight_decay: float, momentum: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum, nesterov=momentum > 0)


@SCHEDULES.register("cosine", "linear warm-up over the first 3% of steps, then cosine decay to zero")
def cosine(opt: torch.optim.Optimizer, total_steps: int, lr: float):
    warm = max(1, int(0.03 * total_steps))

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total_steps - warm))))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@SCHEDULES.register("onecycle", "one-cycle (Smith & Topin 2019): ramp up to lr, anneal down")
def onecycle(opt: torch.optim.Optimizer, total_steps: int, lr: float):
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, total_steps))


@SCHEDULES.register("constant", "constant learning rate")
def constant(opt: torch.optim.Optimizer, total_steps: int, lr: float):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
