"""Family knobs beyond width and depth: each family that has some declares them here (`FAMILY_KNOBS`), with the
values each takes; the `--student family:knob=value` parser, the config file's `[student] knobs` table and
`edgedistill list students` read the declaration, and the family's builder receives them as keyword arguments.

A knob is either a positive whole number (`choices` empty) or one word out of `choices`. A bad value, an unknown
knob or a knob of another family is one ConfigError naming what the family takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgedistill.errors import ConfigError


@dataclass(frozen=True)
class Knob:
    """One knob: its name, the words it takes (empty: a positive whole number) and its default, as shown."""

    name: str
    default: str
    choices: tuple[str, ...] = ()
    top: int = 4096  # the largest whole number taken (a student for a device: width is capped at 1,024 likewise)

    def spelling(self) -> str:
        values = "|".join(self.choices) if self.choices else "N"
        return f"{self.name}={values} (default {self.default})"

    def parse(self, value, where: str):
        """`value` (text, or a number / word from a config file) as the builder's argument; ConfigError if bad."""
        text = str(value).strip()
        if self.choices:
            if text.lower() in self.choices:
                return text.lower()
            raise ConfigError(f"{where}: {self.name} takes one of {', '.join(self.choices)}, not {text!r}.")
        if isinstance(value, bool) or not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= self.top:
            raise ConfigError(f"{where}: {self.name} takes a whole number from 1 to {self.top:,}, not {text!r}.")
        return int(text)


ACTIVATION_CHOICES = ("relu", "gelu", "hardswish")

# family -> its knobs besides width / depth (the builder's keyword arguments of the same names)
FAMILY_KNOBS: dict[str, tuple[Knob, ...]] = {
    "transformer": (Knob("heads", "width / 32, at least 1", top=64), Knob("ffn", "2 × width"),
                    Knob("activation", "relu", ACTIVATION_CHOICES), Knob("pool", "mean", ("mean", "first"))),
    "decoder": (Knob("heads", "width / 32, at least 1", top=64), Knob("ffn", "4 × width")),
}


def knob_names(family: str) -> tuple[str, ...]:
    return tuple(k.name for k in FAMILY_KNOBS.get(family, ()))


def describe_knobs(family: str) -> str:
    """'width=N, depth=N' and the family's own knobs with their values and defaults, for `edgedistill list`."""
    return ", ".join(["width=N", "depth=N", *(k.spelling() for k in FAMILY_KNOBS.get(family, ()))])


def check_knobs(family: str, knobs: dict, where: str) -> dict:
    """`knobs` ({name: value}) parsed for `family`'s builder; ConfigError for a knob the family lacks (naming the
    family that has it, when one does) or a bad value. `where` opens the message (e.g. "--student 'x'")."""
    own = {k.name: k for k in FAMILY_KNOBS.get(family, ())}
    out = {}
    for name, value in knobs.items():
        if name not in own:
            owners = [f for f, ks in FAMILY_KNOBS.items() if name in (k.name for k in ks)]
            takes = f"{family or 'a student family'} takes {describe_knobs(family)}"
            hint = f"; {name} is a knob of {', '.join(owners)}: name that family" if owners else ""
            raise ConfigError(f"{where}: unknown knob {name!r}; {takes}{hint}.")
        out[name] = own[name].parse(value, where)
    return dict(sorted(out.items()))
