"""`edgedistill gate OUT/metrics.json` for a causal-LM run: recognise the file, refuse one the gate cannot read, and
recover the budget the run was gated under.

A causal-LM run (`distill --task causal-lm`, `build --task causal-lm`) writes metrics.json with `"task":
"causal-lm"` and no report.json; its gate rows are edgedistill.gate_lm's. The budget is the one its own gate used:
the target's flash and RAM limits as `speed.target.fit` records them, tightened by the budget a build searched
under (`search.budget`, which holds every limit of `build --budget`), or, for a `distill --qat` run, by the target's
default share of the flash for the model (`speed.target.model_flash_bytes`), as pipeline/lm_distill.py gates it.
`gate --budget` tightens that further (edgedistill.budget.Budget.tighten), so `gate metrics.json` with no options
judges a run as the run's own gate did.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from edgedistill.budget import Budget
from edgedistill.errors import ConfigError

TASK = "causal-lm"
MODELS = ("teacher", "twin", "float", "int8", "twin_int8")


def run_file(path: Path) -> Path:
    """The file `edgedistill gate PATH` reads: PATH itself when it is not a directory, else inside the run directory
    its metrics.json when that is a causal-LM run's, otherwise its report.json (a classifier run; a causal-LM run
    writes no report.json). Raises ConfigError (one paragraph) for a directory holding neither, for one holding both
    (which run is meant is not clear), and for an unfinished run's working directory (OUT.partial, or a file in it):
    a run that stopped or failed its parity check keeps its work there, and its figures are not a deployable run's."""
    path = Path(path)
    unfinished = next((p for p in (path, *path.parents) if p.name.endswith(".partial") and p.is_dir()), None)
    if unfinished is not None:
        finished = unfinished.with_name(unfinished.name[:-len(".partial")])
        raise ConfigError(f"{unfinished} is an unfinished run's working directory: the run was interrupted or failed "
                          "(a parity failure keeps its files there for inspection), so its figures are not a finished "
                          "run's and the gate does not judge them. Re-run an interrupted run (it resumes); a run that failed parity "
                          "fails again as it is, and its report.md there says which file and runtime. Gate "
                          f"{finished} once a run has completed.")
    if not path.is_dir():
        return path
    lm, report = is_lm_run(path / "metrics.json"), (path / "report.json").exists()
    if lm and report:
        raise ConfigError(f"{path} holds both a causal-LM run's metrics.json and a classifier run's report.json, so "
                          "which run to gate is not clear (one output directory per run); name the file to gate.")
    if lm:
        return path / "metrics.json"
    if report:
        return path / "report.json"
    partial = path.with_name(path.name + ".partial")
    hint = f" ({partial} exists: the run did not finish)" if partial.is_dir() else ""
    raise ConfigError(f"{path} is a directory without a report.json (a classifier run's, written by `build` or "
                      f"`distill --qat`) or a causal-LM run's metrics.json{hint}; name the run's output directory or "
                      "one of those files.")


def is_lm_run(path: Path) -> bool:
    """True when `path` is a JSON object with `"task": "causal-lm"` (a causal-LM run's metrics.json). Anything
    unreadable is False: the classifier loader (edgedistill.gate.load_report) then says what is wrong with it."""
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("task") == TASK


def _number(v, low: float = -math.inf, high: float = math.inf) -> bool:
    return v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                         and low <= v <= high)


def _refuse(path: Path, where: str, value, need: str) -> ConfigError:
    return ConfigError(f"Causal-LM run {path}: {where} is {value!r}; the gate needs {need}. Re-run the build rather "
                       "than editing metrics.json by hand.")


def _object(path: Path, doc: dict, key: str, where: str, required: bool = False) -> dict:
    v = doc.get(key)
    if v is None and not required:
        return {}
    if not isinstance(v, dict):
        raise _refuse(path, where, v, "an object")
    return v


def _check_test(path: Path, test: dict) -> None:
    if "float" not in test:
        raise _refuse(path, "test.float", None, "the float student's test figures")
    for model in MODELS:
        m = _object(path, test, model, f"test.{model}")
        ppl = _object(path, m, "perplexity", f"test.{model}.perplexity") if m else {}
        for key, low, high in (("value", 1.0, math.inf), ("low", 1.0, math.inf), ("high", 1.0, math.inf)):
            if not _number(ppl.get(key), low, high):
                raise _refuse(path, f"test.{model}.perplexity.{key}", ppl.get(key), "a perplexity >= 1 or null")
        for key in ("top1", "top3"):
            if not _number(m.get(key), 0.0, 100.0):
                raise _refuse(path, f"test.{model}.{key}", m.get(key), "a percentage in [0, 100] or null")


def _check_gain(path: Path, metrics: dict) -> None:
    gains = _object(path, metrics, "gain_vs_twin", "gain_vs_twin")
    for model in ("float", "int8"):  # the gate judges the int8 gain of a --qat run, the float one otherwise
        g = _object(path, gains, model, f"gain_vs_twin.{model}")
        if not g:
            continue
        for key in ("gain", "low", "high", "documents"):
            if g.get(key) is None or not _number(g[key]):
                raise _refuse(path, f"gain_vs_twin.{model}.{key}", g.get(key), "a finite number")
        if not isinstance(g.get("beyond_noise"), bool):
            raise _refuse(path, f"gain_vs_twin.{model}.beyond_noise", g.get("beyond_noise"), "true or false")


def _check_speed(path: Path, metrics: dict) -> None:
    speed = _object(path, metrics, "speed", "speed")
    t = _object(path, speed, "target", "speed.target")
    if not _number(t.get("tokens_per_s"), 0.0):
        raise _refuse(path, "speed.target.tokens_per_s", t.get("tokens_per_s"), "a number >= 0 or null")
    fit = t.get("fit", [])
    if not isinstance(fit, list) or not all(isinstance(f, dict) and isinstance(f.get("check"), str) for f in fit):
        raise _refuse(path, "speed.target.fit", fit, "a list of checks, each an object with a `check` name")
    for f in fit:
        for key in ("value", "limit"):
            if f["check"] in ("flash", "ram") and not _number(f.get(key), 0.0):
                raise _refuse(path, f"the {f['check']} check's {key}", f.get(key), "a number of bytes >= 0 or null")
    if not _number(t.get("macs"), 0.0):
        raise _refuse(path, "speed.target.macs", t.get("macs"), "a number >= 0 or null")
    if not _number(t.get("model_flash_bytes"), 0.0):
        raise _refuse(path, "speed.target.model_flash_bytes", t.get("model_flash_bytes"), "bytes >= 0 or null")
    for runtime, r in _object(path, speed, "ratio", "speed.ratio").items():
        if not isinstance(r, dict) or not all(_number(r.get(k), 0.0) and r.get(k) is not None for k in
                                              ("ratio", "student_tokens_per_s", "teacher_tokens_per_s")):
            raise _refuse(path, f"speed.ratio.{runtime}", r, "an object of three numbers >= 0")


def _rows(path: Path, doc: dict, key: str, where: str) -> None:
    """A list of row objects, each with a boolean `passed` (parity, causality), or absent / null."""
    rows = doc.get(key)
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(r, dict) and isinstance(r.get("passed"), bool)
                                             for r in rows):
        raise _refuse(path, where, rows, "a list of rows, each an object with `passed` true or false")


def _check_parity(path: Path, metrics: dict) -> None:
    """The int8 section's parity record (gate_lm.parity_row reads it): parity_passed true / false / null, and the
    parity, causality and KV-cache parity rows as lists of row objects."""
    int8 = _object(path, metrics, "int8", "int8")  # a --qat run's int8 section (the gate then judges test.int8)
    if int8.get("parity_passed") is not None and not isinstance(int8["parity_passed"], bool):
        raise _refuse(path, "int8.parity_passed", int8["parity_passed"], "true, false or null")
    _rows(path, int8, "parity", "int8.parity")
    _rows(path, int8, "causality", "int8.causality")
    _rows(path, _object(path, int8, "kv_cache", "int8.kv_cache"), "parity", "int8.kv_cache.parity")


def load_lm_metrics(path: Path) -> dict:
    """metrics.json of a causal-LM run, its gated fields checked (JSON types, perplexity >= 1, percentages in
    [0, 100], sizes >= 0). Raises ConfigError (one paragraph) for a missing file, invalid JSON, another task, or a
    field of the wrong type or an impossible value."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"Run metrics {path} do not exist.") from None
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ConfigError(f"Run metrics {path} are not valid JSON: {exc}.") from None
    if not isinstance(doc, dict) or doc.get("task") != TASK:
        raise ConfigError(f"{path} is not a causal-LM run's metrics.json (its `task` is not {TASK!r}); a classifier "
                          "run is gated on its report.json.")
    _check_test(path, _object(path, doc, "test", "test", required=True))
    _check_parity(path, doc)
    _check_gain(path, doc)
    _check_speed(path, doc)
    search = doc.get("search")
    if search is not None and not (isinstance(search, dict) and isinstance(search.get("budget"), dict)):
        raise _refuse(path, "search", search, "an object with the `budget` the build searched under")
    if search is not None:
        for key, v in search["budget"].items():
            if not _number(v, 0.0):
                raise _refuse(path, f"search.budget.{key}", v, "a number >= 0 or null")
    return doc


def lm_run_budget(metrics: dict) -> Budget:
    """The budget a causal-LM run was gated under (module doc); load_lm_metrics has checked its fields."""
    target = (metrics.get("speed") or {}).get("target") or {}
    fit = {f["check"]: f for f in target.get("fit", [])}
    device = Budget(flash_bytes=(fit.get("flash") or {}).get("limit"), ram_bytes=(fit.get("ram") or {}).get("limit"))
    search = metrics.get("search")
    if search is not None:
        return device.tighten(Budget.from_dict(search["budget"]))
    return device.tighten(Budget(flash_bytes=target.get("model_flash_bytes")))
