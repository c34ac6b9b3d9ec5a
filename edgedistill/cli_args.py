"""Parsing of the CLI's compact option values (`--student cnn:width=8`, `--augment shift=2,hflip`, ...) into
config fields. Errors are ConfigErrors: one paragraph, non-zero exit."""

from __future__ import annotations

import click

from edgedistill.errors import ConfigError


def parse_student(value: str | None) -> dict | None:
    """'cnn', 'cnn:width=16,depth=3', 'width=8', 'mymodels.py:resnet,width=8' or 'pkg.mod:fn' -> StudentConfig
    fields (grammar and errors: edgedistill.students.spec)."""
    if not value:
        return None
    from edgedistill.students.spec import parse_student_spec

    return parse_student_spec(value)


def parse_feature(value: str) -> dict:
    """'loss=hint,student=body.1,teacher=layer2,weight=0.5' -> FeatureTermConfig fields."""
    out = {}
    for part in value.split(","):
        key, eq, val = part.strip().partition("=")
        if not eq or key not in ("loss", "student", "teacher", "weight"):
            raise ConfigError(f"--feature {value!r}: write loss=NAME,student=LAYER,teacher=LAYER[,weight=W].")
        out[key] = val
    return out


def parse_augment(value: str | None) -> dict | None:
    """'shift=2,hflip,mixup=0.2' -> {"shift": 2, "hflip": True, "mixup": 0.2}; 'none' -> everything off."""
    if value is None:
        return None
    out: dict = {"shift": 0, "hflip": False, "mixup": 0.0}
    if value.strip().lower() in ("", "none", "off"):
        return out
    for part in value.split(","):
        key, _, val = part.strip().partition("=")
        if key not in out:
            raise ConfigError(f"--augment: unknown augmentation {key!r}; use shift=N, hflip, mixup=A (comma-separated).")
        try:
            if key == "hflip":
                out[key] = not val or val.lower() in ("1", "true", "yes", "on")
            else:
                out[key] = type(out[key])(val)
        except ValueError:
            raise ConfigError(f"--augment: {part!r}: {key} takes a number.") from None
    return out


def float_or_auto(value: str | None):
    if value is None or value == "auto":
        return value
    try:
        return float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number nor 'auto'") from None
