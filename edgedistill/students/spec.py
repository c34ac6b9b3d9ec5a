"""The `--student` value: a registered family with knobs, or the user's factory with keyword arguments.

    cnn                              family, default knobs
    dscnn:width=8,depth=3            family with knobs (width, depth: positive whole numbers)
    transformer:heads=4,activation=gelu   a family's own knobs (students/knobs.py; `edgedistill list students`)
    width=8                          knobs for the family chosen from the data's shape
    mymodels.py:resnet               a function in a Python file (relative to the current directory)
    mymodels.py:resnet,width=8,se=true   ... called with keyword arguments (int, float, true/false or text)
    mypkg.models:resnet,width=8      a function in an importable module

Every malformed value is a one-paragraph ConfigError naming what is wrong and what would be valid. Nothing here
imports the user's code: a factory is only located (a file must exist); it is called when the student is built.
"""

from __future__ import annotations

from pathlib import Path

from edgedistill.errors import ConfigError
from edgedistill.students.custom import RESERVED
from edgedistill.students.families import CUSTOM, STUDENT_FAMILIES
from edgedistill.students.knobs import FAMILY_KNOBS, check_knobs, knob_names
from edgedistill.user_code import absolute_spec, is_factory_spec, is_file_spec, split_spec

KNOBS = ("width", "depth")
EXAMPLES = "e.g. dscnn:width=8,depth=3, or your own model: mymodels.py:resnet,width=8 or mypkg.models:resnet"


def _value(text: str):
    """'8' -> 8, '0.5' -> 0.5, 'true' / 'false' -> bool, anything else stays text."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _pairs(text: str, value: str) -> list[tuple[str, str]]:
    out = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, val = part.partition("=")
        if not eq or not key.strip() or not val.strip():
            raise ConfigError(f"--student {value!r}: {part!r} needs the form key=value ({EXAMPLES}).")
        if key.strip() in (k for k, _ in out):
            raise ConfigError(f"--student {value!r}: {key.strip()!r} is given twice; give each key once.")
        out.append((key.strip(), val.strip()))
    return out


def _family_knobs(family: str, text: str, value: str) -> dict:
    out: dict = {"family": family} if family else {}
    own: dict = {}
    for key, val in _pairs(text, value):
        if key in knob_names(family):
            own[key] = val
            continue
        if key not in KNOBS:
            also = f", and {family} also {', '.join(knob_names(family))}" if knob_names(family) else ""
            owners = [f for f, ks in FAMILY_KNOBS.items() if key in (k.name for k in ks)]
            hint = (f"; {key} is a knob of {', '.join(owners)}: name the family, e.g. --student {owners[0]}:{key}="
                    f"{val}" if owners else f" ({EXAMPLES})")
            raise ConfigError(f"--student {value!r}: unknown knob {key!r}; a student family takes "
                              f"{' and '.join(KNOBS)}{also}{hint}.")
        if not (val.isascii() and val.isdigit()) or int(val) < 1:
            raise ConfigError(f"--student {value!r}: {key} takes a positive whole number, not {val!r}.")
        out[key] = int(val)
    if own:
        out["knobs"] = check_knobs(family, own, f"--student {value!r}")
    return out


def check_factory(spec: str) -> str:
    """A factory spec made absolute (file form); ConfigError when malformed or the file does not exist."""
    if not is_factory_spec(spec):
        raise ConfigError(f"Student factory {spec!r} must look like 'path/to/file.py:function' or "
                          "'package.module:function'.")
    if is_file_spec(spec):
        path = Path(split_spec(spec)[0]).expanduser()
        if not path.is_file():
            raise ConfigError(f"Student factory file {path} does not exist (looked in {path.resolve().parent}); "
                              "give a path relative to the current directory or an absolute one.")
    return absolute_spec(spec)


def check_factory_kwargs(kwargs: dict) -> dict:
    bad = [k for k in kwargs if k in RESERVED or not str(k).isidentifier()]
    if bad:
        raise ConfigError(f"Student factory keyword arguments {', '.join(map(repr, bad))} are not allowed: "
                          f"{', '.join(RESERVED)} are passed by edgedistill from the data, and names must be "
                          "Python identifiers.")
    return kwargs


def parse_student_spec(value: str) -> dict:
    """Parse a `--student` value into StudentConfig fields (family / width / depth / knobs, or factory /
    factory_kwargs)."""
    head, _, rest = value.strip().partition(",")
    if is_factory_spec(head) and head.partition(":")[0] not in STUDENT_FAMILIES:
        kwargs = {k: _value(v) for k, v in _pairs(rest, value)}
        return {"family": CUSTOM, "factory": check_factory(head), "factory_kwargs": check_factory_kwargs(kwargs)}
    if head.endswith(".py") and ":" not in head:
        raise ConfigError(f"--student {value!r}: name the function in the file that builds the model, "
                          f"e.g. {head}:make_model.")
    if ":" in head or "=" not in head:  # 'family' or 'family:knobs'
        family, _, knobs = value.strip().partition(":")
        if family not in STUDENT_FAMILIES:
            raise ConfigError(f"Unknown student family {family!r} in --student {value!r}; the families are "
                              f"{', '.join(STUDENT_FAMILIES.names())} ({EXAMPLES}).")
        return _family_knobs(family, knobs, value)
    return _family_knobs("", value, value)  # knobs only
