"""One typed budget shared by the report and the gate (and, next, the student search).

`None` means unconstrained. Budget strings: comma-separated `key=value` with units, e.g.
`flash=64KiB,ram=128KiB,latency=5ms,macs=2M,accuracy=90%,drop=1.0`; a causal LM's decoding speed as
`tokens_per_s=50` (a floor: generated tokens per second, one fixed-window decoder step a token) and its quality as
`perplexity=40` (a ceiling on the deployed model's test perplexity), `int8_rise=2%` (the int8 perplexity's rise over
the float student's, default 2 %) and `top1=30%` / `top3=50%` (floors on next-token top-1 / top-3 accuracy).
`LM_ONLY` names the limits only a causal-LM run can be judged on, `CLASSIFIER_ONLY` those only a classifier can.
Units: bytes B, KB/MB/GB (powers of 1000) and KiB/MiB/GiB (powers of 1024); time us, ms, s; counts K, M, G (or a bare
number); accuracy in percent (`90` or `90%`); drop in accuracy points. A size or a time needs its unit: a bare
`flash=64` is refused (64 bytes or 64 KiB? the budget says which).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, fields, replace

from edgedistill.errors import ConfigError

_BYTES = {"b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_TIME_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_COUNT = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}
KEYS = {"flash": ("flash_bytes", _BYTES), "ram": ("ram_bytes", _BYTES), "latency": ("latency_ms", _TIME_MS),
        "macs": ("macs", _COUNT), "accuracy": ("min_accuracy", {"": 1, "%": 1}),
        "drop": ("max_accuracy_drop", {"": 1, "pt": 1, "points": 1}),
        "tokens_per_s": ("min_tokens_per_s", {"": 1, "k": 1e3}), "perplexity": ("max_perplexity", {"": 1}),
        "int8_rise": ("max_int8_rise", {"": 1, "%": 1}), "top1": ("min_top1", {"": 1, "%": 1}),
        "top3": ("min_top3", {"": 1, "%": 1})}
_FLOORS = ("min_accuracy", "min_tokens_per_s", "min_top1", "min_top3")  # a larger value is the stricter one
_PERCENT_POINTS = ("accuracy", "drop", "top1", "top3")  # in percent: a value above 100 is a mistake
_PERCENT_FLOORS = ("accuracy", "top1", "top3")  # a value in (0, 1] without "%" is probably a fraction
LM_ONLY = {"tokens_per_s": "min_tokens_per_s", "perplexity": "max_perplexity", "int8_rise": "max_int8_rise",
           "top1": "min_top1", "top3": "min_top3"}
CLASSIFIER_ONLY = {"accuracy": "min_accuracy", "drop": "max_accuracy_drop"}

# the least value a limit can sensibly take, where it is above 0: no model has a perplexity below 1 (exp of a mean
# negative log-likelihood >= 0), so `perplexity=0` could never pass
_LEAST = {"perplexity": (1.0, "a perplexity is exp(mean next-token NLL), at least 1 for any model")}
_EXAMPLE = {"flash": "64KiB", "ram": "128KiB", "latency": "5ms", "accuracy": "90%", "drop": "1.5",
            "tokens_per_s": "50", "perplexity": "40", "int8_rise": "2%", "top1": "30%", "top3": "50%"}


def flash_use(file_bytes: int | None, tokenizer_bytes: int | None = None) -> int | None:
    """What a deployed model takes of the flash: its model file plus the tables its device tokenizer reads
    (StudentTokenizer.device_bytes(): a text student's vocabulary; 0 or None for bytes, images and other data).
    The one definition the search's fit, the measure stage's fit check, the report and the gate use. None when the
    file's size is unknown."""
    return None if file_bytes is None else int(file_bytes) + int(tokenizer_bytes or 0)


def limit_figure(value: float) -> str:
    """A limit as a user reads it: thousands separated at 1,000 and up ('262,144', '1,500,000'), else its own
    digits ('5', '0.25', '2.5'), never '1e+06' nor a fraction rounded to 0."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.6g}"


def flash_parts(file_bytes, tokenizer_bytes) -> str:
    """How a flash figure is made up, as the gate and the report name it: '12,000 B model file + 3,000 B tokenizer
    tables', or 'model file bytes' where the run has no tokenizer tables to count."""
    if not tokenizer_bytes:
        return "int8 TFLite file bytes" + (" (the byte tokenizer needs no tables)" if tokenizer_bytes == 0 else "")
    file = f"{file_bytes:,.0f} B" if file_bytes is not None else "? B"
    return f"int8 TFLite file {file} + tokenizer tables {tokenizer_bytes:,.0f} B"


def _spelled(units: dict) -> str:
    """Units as a user writes them: 'B, KB, MB, GB, KiB, MiB, GiB'."""
    cased = {"b": "B", "kb": "KB", "mb": "MB", "gb": "GB", "kib": "KiB", "mib": "MiB", "gib": "GiB", "k": "K",
             "m": "M", "g": "G"}
    return ", ".join(cased.get(u, u) or "(none)" for u in units)


@dataclass(frozen=True)
class Budget:
    flash_bytes: float | None = None
    ram_bytes: float | None = None
    latency_ms: float | None = None
    macs: float | None = None
    min_accuracy: float | None = None
    max_accuracy_drop: float | None = None
    min_tokens_per_s: float | None = None  # causal LM: generated tokens per second at least
    max_perplexity: float | None = None  # causal LM: the deployed model's test perplexity at most
    max_int8_rise: float | None = None  # causal LM: int8 perplexity / float perplexity - 1, in percent, at most
    min_top1: float | None = None  # causal LM: next-token top-1 accuracy in percent at least
    min_top3: float | None = None  # causal LM: next-token top-3 accuracy in percent at least

    @classmethod
    def from_target(cls, target) -> "Budget":
        """Defaults from a target profile's hard limits."""
        return cls(flash_bytes=target.flash_bytes, ram_bytes=target.ram_bytes)

    @classmethod
    def for_target(cls, target, user: "Budget") -> "Budget":
        """The budget a build searches and gates under: the target's limits tightened by the user's, except flash,
        whose default is the target's share for the model (`model_flash_bytes`: on a microcontroller the model
        shares the flash with the firmware) where the user names no flash limit; a user's flash limit counts up
        to the target's whole flash (`flash_bytes`), beyond which it is ignored like any looser limit."""
        budget = cls.from_target(target).tighten(user)
        if user.flash_bytes is None and target.model_flash_bytes is not None:
            budget = replace(budget, flash_bytes=target.model_flash_bytes)
        return budget

    def looser_than(self, target) -> list[str]:
        """A note for each of this (user's) budget's flash / RAM limits above the target profile's whole flash / RAM
        (`target`: a targets.TargetProfile): for_target keeps the target's, so the user's value is not the limit
        they will see applied."""
        notes = []
        for key, mine, its in (("flash", self.flash_bytes, target.flash_bytes), ("ram", self.ram_bytes,
                                                                                  target.ram_bytes)):
            if mine is not None and its is not None and mine > its:
                notes.append(f"{key}={limit_figure(mine)} B is more than {target.name}'s {its:,} B of {key}; the "
                             f"target's {its:,} B is the limit.")
        return notes

    def tighten(self, other: "Budget") -> "Budget":
        """Each limit becomes the stricter of the two (a user can tighten a target's defaults, never loosen
        them silently: a looser value is ignored)."""
        def pick(a, b, smaller_is_stricter=True):
            if a is None or b is None:
                return b if a is None else a
            return min(a, b) if smaller_is_stricter else max(a, b)
        return Budget(**{f.name: pick(getattr(self, f.name), getattr(other, f.name), f.name not in _FLOORS)
                         for f in fields(self)})

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Budget":
        """The inverse of to_dict, reading only the fields this version knows (a record written before a field
        existed leaves it None)."""
        return cls(**{f.name: d.get(f.name) for f in fields(cls)})

    def given(self, names: dict) -> list[str]:
        """The budget keys of `names` ({key: field}, e.g. LM_ONLY) that this budget sets, as `key=value`."""
        return [f"{k}={getattr(self, f):g}" for k, f in names.items() if getattr(self, f) is not None]

    @classmethod
    def parse(cls, text: str) -> "Budget":
        values = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, raw = part.partition("=")
            key = key.strip().lower()
            if not eq or key not in KEYS:
                raise ConfigError(f"Cannot parse budget item {part!r}: expected key=value with key one of "
                                  f"{', '.join(KEYS)} (e.g. flash=64KiB,latency=5ms).")
            field, units = KEYS[key]
            if field in values:
                raise ConfigError(f"Budget item {key!r} is given twice in {text!r}; give each limit once.")
            if re.fullmatch(r"\s*-\s*[0-9.].*", raw):
                raise ConfigError(f"Budget value {raw.strip()!r} for {key} is negative; a limit is a number >= 0 "
                                  f"(e.g. {key}={_EXAMPLE.get(key, '2M')}).")
            m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[+-]?\d+)?)\s*([a-zA-Z%]*)\s*", raw)
            if not m:
                raise ConfigError(f"Budget value {raw!r} for {key} is not a number with an optional unit.")
            unit = m.group(2).lower()
            if not unit and "" not in units:
                raise ConfigError(f"Budget value {raw.strip()!r} for {key} has no unit; write it with one of "
                                  f"{_spelled(units)} (e.g. {key}={_EXAMPLE[key]}).")
            if unit not in units:
                raise ConfigError(f"Unknown unit {m.group(2)!r} for {key}; use one of: {_spelled(units)}.")
            values[field] = float(m.group(1)) * units[unit]
            if not math.isfinite(values[field]):
                raise ConfigError(f"Budget value {raw.strip()!r} for {key} is not a finite number.")
            if key in _LEAST and values[field] < _LEAST[key][0]:
                raise ConfigError(f"Budget value {raw.strip()!r} for {key} is below {_LEAST[key][0]:g}: "
                                  f"{_LEAST[key][1]}, so no run could pass (e.g. {key}={_EXAMPLE[key]}).")
            if key in _PERCENT_POINTS and values[field] > 100:
                raise ConfigError(f"Budget value {raw.strip()!r} for {key} is above 100: {key} is in percent points "
                                  f"(e.g. {key}={_EXAMPLE[key]}).")
            if key in _PERCENT_FLOORS and not unit and 0 < values[field] <= 1:
                raise ConfigError(f"Budget value {raw.strip()!r} for {key} looks like a fraction; {key} is in "
                                  f"percent: write {key}={values[field] * 100:g}% (or {key}={raw.strip()}% if you "
                                  "really mean that low a limit).")
        return cls(**values)
