"""Target profiles: data files in targets/ (TOML), validated by a versioned schema. Every figure names its source.

Profiles are looked up in $EDGEDISTILL_TARGETS (a directory), in the source tree's targets/ directory, and where a
wheel installs them (<prefix>/share/edgedistill/targets).
"""

from __future__ import annotations

import os
import sys
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgedistill.errors import ConfigError

SCHEMA_VERSION = 1
NUMERIC_FIELDS = ("clock_hz", "peak_int8_macs_per_s", "peak_fp32_macs_per_s", "memory_bandwidth_bytes_per_s",
                  "ram_bytes", "flash_bytes", "model_flash_bytes", "threads", "efficiency", "op_overhead_s",
                  "invoke_overhead_s")


class TargetProfile(BaseModel):
    """A device class: how models run there (runtime, formats, precisions, threads) and what it can do."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1]
    name: str
    description: str
    kind: Literal["host", "mobile", "linux-board", "mcu"]
    runtime: Literal["onnxruntime", "litert", "tflm"]
    formats: list[Literal["onnx", "tflite"]] = Field(min_length=1)
    precisions: list[Literal["float32", "int8"]] = Field(min_length=1)
    threads: int = Field(ge=1)
    clock_hz: float = Field(gt=0)
    peak_int8_macs_per_s: float = Field(gt=0)
    peak_fp32_macs_per_s: float | None = Field(None, gt=0, description="None: no float kernels on this target")
    memory_bandwidth_bytes_per_s: float = Field(gt=0)
    ram_bytes: int | None = Field(None, gt=0, description="memory available to the model; None: unconstrained")
    flash_bytes: int | None = Field(None, gt=0, description="storage for the model file; None: unconstrained")
    model_flash_bytes: int | None = Field(None, gt=0, description="the student search's default limit for the "
                                          "model file where it shares flash_bytes with the firmware (a user's "
                                          "--budget flash=... may raise it up to flash_bytes); None: flash_bytes")
    ops: list[str] | None = Field(None, min_length=1, description="restricts the operators to these (TFLite "
                                  "builtin names); None: every operator the runtime registers (targets/ops/)")
    efficiency: dict[Literal["conv", "depthwise", "fc", "matmul", "pool", "other"], float]
    op_overhead_s: float = Field(ge=0, description="fixed cost per operator (dispatch, requantization setup)")
    invoke_overhead_s: float | None = Field(None, ge=0, description="fixed cost per model run (one invoke: the "
                                            "runtime's entry, input and output copies); None: 0, folded into "
                                            "op_overhead_s")
    sources: dict[str, str]

    @model_validator(mode="after")
    def _every_number_has_a_source(self):
        missing = [f for f in NUMERIC_FIELDS if getattr(self, f) is not None and not self.sources.get(f)]
        if missing:
            raise ValueError(f"no source given for {', '.join(missing)} (add them under [sources])")
        if self.model_flash_bytes is not None and self.flash_bytes is not None \
                and self.model_flash_bytes > self.flash_bytes:
            raise ValueError(f"model_flash_bytes ({self.model_flash_bytes}) exceeds flash_bytes ({self.flash_bytes})")
        if "int8" not in self.precisions and self.peak_fp32_macs_per_s is None:
            raise ValueError("a float-only target needs peak_fp32_macs_per_s")
        for k, v in self.efficiency.items():
            if not 0 < v <= 1:
                raise ValueError(f"efficiency.{k} must be in (0, 1], got {v}")
        return self


def search_dirs() -> list[Path]:
    dirs = []
    if os.environ.get("EDGEDISTILL_TARGETS"):
        dirs.append(Path(os.environ["EDGEDISTILL_TARGETS"]))
    dirs.append(Path(__file__).resolve().parents[1] / "targets")
    dirs.append(Path(sys.prefix) / "share" / "edgedistill" / "targets")
    return [d for d in dirs if d.is_dir()]


def profile_files() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for d in search_dirs():
        for p in sorted(d.glob("*.toml")):
            found.setdefault(p.stem, p)
    return found


def load_profile_file(path: Path) -> TargetProfile:
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Target profile {path} cannot be read: {exc}.") from None
    if raw.get("schema_version") != SCHEMA_VERSION:
        raise ConfigError(f"Target profile {path} has schema_version {raw.get('schema_version')!r}; this edgedistill "
                          f"reads version {SCHEMA_VERSION}.")
    try:
        profile = TargetProfile.model_validate(raw)
    except ValidationError as exc:
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '(profile)'}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"Target profile {path} fails the schema: {fields}.") from None
    if profile.name != path.stem:
        raise ConfigError(f"Target profile {path} is named {profile.name!r}; the name must match the file name.")
    return profile


def load_target(name: str) -> TargetProfile:
    files = profile_files()
    if name not in files:
        known = ", ".join(sorted(files)) or "(none found)"
        raise ConfigError(f"Unknown target {name!r}. Known targets: {known}.")
    return load_profile_file(files[name])


# units of a field, by the end of its name (longest match first); `targets show` prints them after the number
_UNITS = (("_bytes_per_s", "B/s"), ("_macs_per_s", "MACs/s"), ("_bytes", "B"), ("_hz", "Hz"), ("_s", "s"))


def _number(x: float) -> str:
    """2.8e9 -> '2,800,000,000'; 0.3 -> '0.3'; 2e-06 -> '2e-06' (integral values exactly, with separators)."""
    return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1 else f"{x:g}"


def field_text(profile: TargetProfile, field: str) -> str:
    """One field of a profile as plain text for `targets show`: numbers with their unit, lists and tables as
    comma-separated words, and an unset field as what it means (from the schema's description), never a Python
    repr such as ['tflite'], None or {'conv': 0.3}."""
    value = getattr(profile, field)
    if value is None:
        desc = TargetProfile.model_fields[field].description or ""
        meaning = desc.partition("None: ")[2]
        return f"not set: {meaning}" if meaning else "not set"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k} {_number(v) if isinstance(v, (int, float)) else v}" for k, v in value.items())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        unit = next((u for suffix, u in _UNITS if field.endswith(suffix)), "")
        return f"{_number(value)} {unit}".rstrip()
    return str(value)
