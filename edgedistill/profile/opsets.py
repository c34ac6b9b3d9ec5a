"""Operator sets that come from the runtimes themselves, not from hand-written lists.

Each runtime's kernels register under their TFLite builtin name: TFLite Micro's `tflite::micro::Register_<OP>()`
(its Python interpreter's PythonOpsResolver adds every one linked in), LiteRT's `tflite::ops::builtin::
Register_<OP>()` (its BuiltinOpResolver). `derive_ops` reads those symbols from the installed runtime's shared
library and keeps the names that are TFLite builtin operators (the schema's BuiltinOperator enum, as shipped with
the runtime); kernel variants (Register_CONV_2D_REF ...) and custom ops (tflm_signal) drop out by that filter.

Versions: TFLite Micro's op resolver matches a builtin by its code only and accepts every version of it, so each
TFLM operator records `"versions": "any"`. LiteRT checks versions, but its Python package does not expose the
accepted range; its operators record `null` (unknown) rather than a guess.

tools/derive_ops.py writes the result to targets/ops/<runtime>.json; tests compare that data with the installed
runtimes. A target profile may list `ops` only to restrict its runtime's set.
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path

from edgedistill.errors import ConfigError

# runtime -> (module whose package holds the library, library file name, mangled namespace prefix, schema module)
_SOURCES = {
    "tflm": ("tflite_micro", "python/tflite_micro/_runtime.so", rb"_ZN6tflite5micro",
             "tflite_micro.tensorflow.lite.micro.python.schema_py_generated"),
    "litert": ("ai_edge_litert", "libpywrap_litert_common.so", rb"_ZN6tflite3ops7builtin",
               "ai_edge_litert.schema_py_generated"),
}
ANY_VERSION = "any"


@dataclass(frozen=True)
class OpSet:
    runtime: str
    package: str
    package_version: str | None
    ops: dict[str, str | None]  # builtin name -> accepted versions ("any", or None when the runtime does not say)

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "package": self.package, "package_version": self.package_version,
                "derived_by": "tools/derive_ops.py (kernel registration symbols in the runtime's library, "
                              "filtered by the TFLite schema's BuiltinOperator names)",
                "ops": dict(sorted(self.ops.items()))}


def _builtin_names(schema_module: str) -> set[str]:
    import importlib

    enum = importlib.import_module(schema_module).BuiltinOperator
    return {k for k in vars(enum) if k.isupper()}


def derive_ops(runtime: str) -> OpSet:
    """The builtin operators the installed `runtime` ('tflm' or 'litert') registers. Raises ConfigError when the
    runtime is not installed or its library no longer exposes the symbols."""
    if runtime not in _SOURCES:
        raise ConfigError(f"No operator derivation for runtime {runtime!r}; known: {', '.join(_SOURCES)}.")
    package, lib, prefix, schema = _SOURCES[runtime]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(f"{package} is not installed; cannot derive the {runtime} operator set.")
    path = Path(list(spec.submodule_search_locations)[0]) / lib
    blob = path.read_bytes()
    names = set()
    for m in re.finditer(re.escape(prefix) + rb"(\d+)(Register_[A-Z0-9_]+)Ev", blob):
        if int(m.group(1)) == len(m.group(2)):
            names.add(m.group(2).decode()[len("Register_"):])
    builtin = names & _builtin_names(schema)
    if not builtin:
        raise ConfigError(f"{path} exposes no kernel registration symbols; the {runtime} operator set cannot be "
                          "derived from this build.")
    from importlib import metadata

    dist = {"tflite_micro": "tflite-micro", "ai_edge_litert": "ai-edge-litert"}[package]
    try:
        version = metadata.version(dist)
    except metadata.PackageNotFoundError:
        version = None
    versions = ANY_VERSION if runtime == "tflm" else None
    return OpSet(runtime, dist, version, {n: versions for n in builtin})


def ops_dir() -> Path | None:
    from edgedistill.targets import search_dirs

    for d in search_dirs():
        if (d / "ops").is_dir():
            return d / "ops"
    return None


def runtime_ops(runtime: str) -> frozenset[str] | None:
    """The stored operator set of `runtime` (targets/ops/<runtime>.json), or None when none is stored (a runtime
    such as onnxruntime that runs ONNX files, where TFLite operator names do not apply)."""
    d = ops_dir()
    f = d / f"{runtime}.json" if d else None
    if f is None or not f.is_file():
        return None
    try:
        return frozenset(json.loads(f.read_text())["ops"])
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"Operator set {f} cannot be read: {exc}.") from None


def target_ops(target) -> frozenset[str] | None:
    """What `target` runs: its runtime's derived set, narrowed by the profile's own `ops` list when it has one.
    A profile naming an operator its runtime lacks is refused (a profile restricts, it does not add)."""
    derived = runtime_ops(target.runtime)
    listed = frozenset(target.ops) if target.ops else None
    if derived is None:
        return listed
    if listed is None:
        return derived
    extra = sorted(listed - derived)
    if extra:
        raise ConfigError(f"Target profile {target.name} lists operators its runtime ({target.runtime}) does not "
                          f"register: {', '.join(extra)}. A profile may restrict the runtime's set, not extend it.")
    return listed
