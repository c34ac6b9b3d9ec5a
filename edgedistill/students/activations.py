"""Activations a target's runtime may lack, and what a student asking for one gets there instead.

`activation=gelu` (the transformer's knob) is an int8 GELU op in the file, which LiteRT runs (a lookup table:
quantize/lut.py) and TFLite Micro does not: it registers no GELU kernel (tflite-micro issue #3218; its derived
operator set, targets/ops/tflm.json, has none). On a target whose operator set lacks GELU the student is built with
hardswish instead, and the build says so once, in a note kept among metrics.json's warnings.

Why hardswish and not ReLU or GELU's tanh form: the tanh form is the same GELU op (approximate=True), so it is
missing wherever GELU is; ReLU and hardswish both run on TFLite Micro with exact integer arithmetic in the int8 core
(a fused FULLY_CONNECTED clamp; HARD_SWISH's fixed-point kernel, quantize/mcu.py hard_swish_table), and hardswish is
the one shaped like GELU: smooth near zero with a small negative lobe (x · relu6(x + 3) / 6: minimum −0.375 at
x = −1.5, GELU's −0.17 at x ≈ −0.75; Howard et al. 2019, "Searching for MobileNetV3", introduced it as the cheap
stand-in for swish, to which GELU is close). Its cost is one HARD_SWISH op per feed-forward (a ReLU is free, fused).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Substitute:
    """An activation's TFLite op, and the activation a target without that op builds instead."""

    op: str
    instead: str


SUBSTITUTES: dict[str, Substitute] = {"gelu": Substitute("GELU", "hardswish")}


def fit_activation(knobs: dict, ops: frozenset[str] | None, target: str) -> tuple[dict, str | None]:
    """`knobs` (a family's, e.g. {"activation": "gelu"}) for a target running `ops` (None: unknown, kept as is):
    the knobs with a missing activation replaced, and the one-line note saying so (None when nothing changed)."""
    act = knobs.get("activation")
    sub = SUBSTITUTES.get(act)
    if sub is None or ops is None or sub.op in ops:
        return knobs, None
    note = (f"activation={act}: {target}'s runtime has no {sub.op} kernel, so the student is built with "
            f"activation={sub.instead} (the documented substitute: students/activations.py); use a LiteRT target "
            f"for {act}")
    return {**knobs, "activation": sub.instead}, note
