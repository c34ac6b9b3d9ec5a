"""Parsing of the CLI's compact option values (`--student cnn:width=8`, `--augment shift=2,hflip`, ...) into
config fields. Errors are ConfigErrors: one paragraph, non-zero exit."""

from __future__ import annotations

from edgedistill.errors import ConfigError

EXPORT_FORMATS = ("onnx", "tflite")


def parse_student(value: str | None) -> dict | None:
    """'cnn', 'cnn:width=16,depth=3', 'width=8', 'mymodels.py:resnet,width=8' or 'pkg.mod:fn' -> StudentConfig
    fields (grammar and errors: edgedistill.students.spec)."""
    if value is None:
        return None
    if not value.strip():
        raise ConfigError("--student is empty: give a family (cnn, resnet8, ...; see `edgedistill list`), knobs "
                          "(width=8) or your own factory (path/to/file.py:function), or leave the option out.")
    from edgedistill.students.spec import parse_student_spec

    return parse_student_spec(value)


def parse_feature(value: str) -> dict:
    """'loss=hint,student=body.1,teacher=layer2,weight=0.5' -> FeatureTermConfig fields."""
    out = {}
    for part in value.split(","):
        key, eq, val = part.strip().partition("=")
        if not eq or key not in ("loss", "student", "teacher", "weight"):
            raise ConfigError(f"--feature {value!r}: write loss=NAME,student=LAYER,teacher=LAYER[,weight=W] (for a "
                              "text student loss=cosine or loss=minilm alone picks the layers).")
        out[key] = val
    return out


def parse_augment(value: str | None) -> dict | None:
    """'shift=2,hflip,mixup=0.2' -> AugmentConfig fields; 'none' -> everything off (edgedistill.data.augment)."""
    from edgedistill.data.augment import parse_augment_spec

    return None if value is None else parse_augment_spec(value)


def float_or_auto(value: str | None, option: str = "") -> float | str | None:
    """'auto' or a number ('0.5', '4'); anything else is a ConfigError naming the option."""
    if value is None or value.strip().lower() == "auto":
        return None if value is None else "auto"
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{option + ': ' if option else ''}{value!r} is neither a number nor 'auto'.") from None


def parse_formats(value: str | None) -> list[str] | None:
    """'onnx,tflite' -> ['onnx', 'tflite']; None -> None (the default); unknown or empty -> ConfigError."""
    if value is None:
        return None
    fmts = [f.strip().lower() for f in value.split(",") if f.strip()]
    unknown = sorted(set(fmts) - set(EXPORT_FORMATS))
    if unknown or not fmts:
        raise ConfigError(f"--formats {value!r}: " + (f"unknown export format(s) {', '.join(unknown)}; " if unknown
                          else "no format named; ") + f"choose from {', '.join(EXPORT_FORMATS)} (comma-separated).")
    return list(dict.fromkeys(fmts))
