"""The device benchmark's JSON document (bench.py prints it, every runner returns it), as a validated model.

A runner validates what came back before anything uses it: a device that answers garbage gives a DeviceError, never
numbers in the report.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgedistill.errors import DeviceError


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Latency(_Open):
    runs: int | None = Field(None, ge=1)
    warmup: int | None = Field(None, ge=0)
    mean: float = Field(gt=0)
    p50: float | None = Field(None, gt=0)
    p90: float | None = Field(None, gt=0)
    p99: float | None = Field(None, gt=0)
    min: float | None = Field(None, gt=0)
    max: float | None = Field(None, gt=0)


class Parity(_Open):
    checked: bool
    passed: bool | None = None
    max_abs_diff: float | None = Field(None, ge=0)
    top1_agreement: float | None = Field(None, ge=0, le=1)
    samples: int | None = Field(None, ge=1)


class Runtime(_Open):
    name: str
    version: str | None = None
    threads: int = Field(ge=1)


class ModelInfo(_Open):
    path: str
    bytes: int = Field(gt=0)
    sha256: str | None = None


class DeviceBench(_Open):
    schema_: str = Field(alias="schema", pattern=r"^edgedistill\.device-bench/1$")
    ok: bool
    device: dict
    runtime: Runtime
    model: ModelInfo
    load_ms: float = Field(ge=0)
    latency_ms: Latency
    peak_rss_bytes: int | None = Field(None, gt=0)
    parity: Parity


def validate_bench(doc: dict, where: str) -> dict:
    try:
        DeviceBench.model_validate(doc)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise DeviceError(f"{where}: the device's answer is not a valid benchmark document ({loc}: {first['msg']}).") \
            from None
    return doc
