"""Combining teachers: arithmetic mean of probabilities or geometric mean (mean of log-probabilities).

Soft targets are combined *at the distillation temperature*, as in Hinton et al. 2015 (sec. 2): the ensemble's
soft target is mean_i softmax(z_i / T), not a softening of an already combined distribution. To keep one loss
contract ("teacher logits in"), we return effective logits z_eff such that softmax(z_eff / T) is the combined
distribution:

    arithmetic:  z_eff = T · log( (1/M) Σ_i softmax(z_i / T) )
    geometric:   z_eff = T · (1/M) Σ_i log_softmax(z_i / T)        (softmax renormalises the geometric mean)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgedistill.registry import Registry

ENSEMBLE_METHODS: Registry = Registry("ensemble method")


@ENSEMBLE_METHODS.register("arithmetic", "mean of the members' probabilities at temperature T")
def arithmetic(member_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """member_logits: M×N×K -> N×K effective logits."""
    logp = F.log_softmax(member_logits / temperature, dim=-1)
    return temperature * (torch.logsumexp(logp, dim=0) - math.log(member_logits.shape[0]))


@ENSEMBLE_METHODS.register("geometric", "mean of the members' log-probabilities at temperature T")
def geometric(member_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    return temperature * F.log_softmax(member_logits / temperature, dim=-1).mean(dim=0)


def combine(member_logits: torch.Tensor, method: str, temperature: float = 1.0) -> torch.Tensor:
    """Effective teacher logits for M members (M = 1 returns the member's logits unchanged)."""
    if member_logits.shape[0] == 1:
        return member_logits[0]
    return ENSEMBLE_METHODS.get(method)(member_logits, temperature)
