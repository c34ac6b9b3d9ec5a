"""The CI gate: report + budget (+ an optional baseline report) -> a verdict, JUnit XML and a Markdown summary.

Every check carries its value, its limit and how the value was obtained; a value that is missing never passes
silently as zero: a check whose value is unknown fails (and says so).

Every gate also shows the trade a build made even where no limit asks about it: the accuracy drop vs the teacher
(with its 95 % interval), the latency (the figure a limit would judge, and the other of measured-on-this-host /
estimated-on-the-target), flash (the model file plus the tables its tokenizer reads on the device), RAM and MACs.
A row without a limit says "no limit set", is not judged (`Check.judged` is False) and never fails the gate, so the
accuracy-vs-latency trade is visible in every CI run."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from edgedistill.budget import LM_ONLY, Budget, flash_parts, flash_use
from edgedistill.errors import ConfigError
from edgedistill.gate_accuracy import drop_check, min_accuracy_check, regression_check
from edgedistill.profile.ram import ram_figure
from edgedistill.report.schema import REPORT_SCHEMA_VERSION


@dataclass(frozen=True)
class Check:
    """One row of the verdict. `judged` False: no limit was set, the row only shows the figure and always passes.
    `unit`: how value and limit are counted ("B", "ms", "%", "points", "" for a count or a flag)."""

    name: str
    value: float | bool | None
    limit: float | bool | None
    passed: bool
    how: str = ""
    within_noise: bool = False  # passed only because the test split cannot tell (edgedistill.gate_accuracy)
    judged: bool = True
    unit: str = ""


@dataclass
class Verdict:
    checks: list[Check] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_dict(self) -> dict:
        return {"passed": self.passed, "checks": [asdict(c) for c in self.checks], "warnings": list(self.warnings)}


@dataclass(frozen=True)
class Tolerance:
    """Allowed regression against a baseline report."""

    accuracy_points: float = 0.5
    latency_rel: float = 0.10
    size_rel: float = 0.05

    @classmethod
    def parse(cls, text: str | None) -> "Tolerance":
        if not text:
            return cls()
        vals = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            k, _, v = part.partition("=")
            names = {"accuracy": "accuracy_points", "latency": "latency_rel", "size": "size_rel"}
            if k not in names:
                raise ConfigError(f"Unknown tolerance {k!r}; use accuracy=POINTS, latency=PERCENT%, size=PERCENT%.")
            if names[k] in vals:
                raise ConfigError(f"Tolerance {k!r} is given twice in {text!r}; give each once.")
            if k != "accuracy" and not v.strip().endswith("%"):
                raise ConfigError(f"Tolerance {k}={v} needs a percent sign ({k}={v.strip() or 10}%): a bare number "
                                  "is ambiguous between a fraction and a percentage.")
            try:
                x = float(v.strip().rstrip("%")) / (100 if k != "accuracy" else 1)
            except ValueError:
                raise ConfigError(f"Tolerance value {v!r} for {k} is not a number.") from None
            if not math.isfinite(x) or x < 0:
                raise ConfigError(f"Tolerance value {v!r} for {k} must be a finite number >= 0 (an allowed "
                                  "regression).")
            vals[names[k]] = x
        return cls(**vals)


def load_report(path: Path) -> dict:
    try:
        rep = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"Report {path} does not exist.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Report {path} is not valid JSON: {exc}.") from None
    except RecursionError:
        raise ConfigError(f"Report {path} is nested too deeply to be a report.") from None
    refusal = _not_a_report(rep, Path(path))
    if refusal:
        raise ConfigError(refusal)
    version = rep.get("schema_version")
    if version != REPORT_SCHEMA_VERSION:
        raise ConfigError(f"Report {path} has schema version {version!r}; this edgedistill reads version "
                          f"{REPORT_SCHEMA_VERSION}. Re-run the build to write a current report.")
    if "usage" not in rep:
        raise ConfigError(f"Report {path} has no `usage` section (was it written by `distill --qat`?).")
    _check_types(rep, path)
    return rep


def _not_a_report(rep, path: Path) -> str | None:
    """The one-line refusal of a JSON file that is no report: not an object (a list, a number), or a classifier
    run's metrics.json (its training figures: no `usage`, and its name, a `task` or a student and a teacher say
    so), pointed at the report.json beside it. None for anything else, which load_report checks as a report."""
    if not isinstance(rep, dict):
        return (f"{path} holds {_JSON_TYPE.get(type(rep), type(rep).__name__)}, not a report (a JSON object); gate a "
                "classifier run's report.json, a causal-LM run's metrics.json, or the run's output directory.")
    task = rep.get("task")
    if "usage" in rep or not (path.name == "metrics.json" or isinstance(task, str) or
                              ("student" in rep and "teacher" in rep)):
        return None
    what = "a classifier run's" if task in (None, "classification") else f"a run's (task {task!r})"
    report = path.with_name("report.json")
    if report.is_file():
        return (f"{path} is {what} metrics.json (its training figures), not the report the gate reads: gate "
                f"{report} or the run directory {path.parent}.")
    return (f"{path} is {what} metrics.json (its training figures), not the report the gate reads: a classifier "
            "run's gate reads its report.json, which `build` and `distill --qat` write, and this run has none.")


# what the gate reads from a report, and the JSON type each must have (None is always allowed: "missing")
_NUMBERS = ("flash_bytes", "file_bytes", "tokenizer_bytes", "ram_bytes", "latency_ms",  # flash = file + tables
            "latency_host_ms", "latency_estimate_ms", "macs", "accuracy",
            "accuracy_n", "teacher_accuracy", "teacher_accuracy_n", "accuracy_drop")
_PERCENTS = ("accuracy", "teacher_accuracy")
_COUNTS = ("accuracy_n", "teacher_accuracy_n")
_BYTES = ("flash_bytes", "file_bytes", "tokenizer_bytes", "ram_bytes")
_FLAGS = ("parity_passed", "ops_supported")
_JSON_TYPE = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
              int: "a number", float: "a number"}


def _finite(v) -> bool:
    if not isinstance(v, (int, float)) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:  # a JSON integer beyond float range
        return False


def _check_types(rep: dict, path) -> None:
    """Refuse a report whose gated fields have the wrong JSON type or an impossible value (a hand edit, another
    tool's file): the gate would otherwise compare a string with a limit and crash, or pass a negative size, an
    accuracy above 100 % or a drop that contradicts the accuracies it is computed from."""
    u = rep["usage"]
    if not isinstance(u, dict):
        raise ConfigError(f"Report {path}: `usage` is {_JSON_TYPE.get(type(u), type(u).__name__)}, not an object; "
                          "re-run the build to write a current report.")
    bad = lambda key, v, need: ConfigError(  # noqa: E731
        f"Report {path}: usage.{key} is {v!r}; the gate needs {need} or null. Re-run the build rather than editing "
        "the report by hand.")
    for key in _NUMBERS:
        v = u.get(key)
        if v is None:
            continue
        if not _finite(v):
            raise bad(key, v, "a finite number")
        if key in _PERCENTS and not 0 <= v <= 100:
            raise bad(key, v, "a percentage in [0, 100]")
        if key in _COUNTS and (v < 1 or float(v) != int(v)):
            raise bad(key, v, "a whole number of test samples >= 1")
        if key in _BYTES and float(v) != int(v):
            raise bad(key, v, "a whole number of bytes")
        if key not in _PERCENTS + ("accuracy_drop",) and v < 0:
            raise bad(key, v, "a number >= 0")
    acc, teacher, drop = u.get("accuracy"), u.get("teacher_accuracy"), u.get("accuracy_drop")
    if None not in (acc, teacher, drop) and abs(drop - (teacher - acc)) > 1e-6:
        raise ConfigError(f"Report {path}: usage.accuracy_drop is {drop!r} but teacher_accuracy - accuracy is "
                          f"{teacher - acc!r}; the report contradicts itself. Re-run the build.")
    flash, file, tables = u.get("flash_bytes"), u.get("file_bytes"), u.get("tokenizer_bytes")
    if None not in (flash, file) and flash != flash_use(file, tables):
        raise ConfigError(f"Report {path}: usage.flash_bytes is {flash!r} but the model file ({file!r} B) plus the "
                          f"tokenizer tables ({tables or 0!r} B) make {flash_use(file, tables)!r}; the report "
                          "contradicts itself. Re-run the build.")
    for key in _FLAGS:
        if u.get(key) is not None and not isinstance(u.get(key), bool):
            raise ConfigError(f"Report {path}: usage.{key} is {u.get(key)!r}; the gate needs true, false or null.")
    target = rep.get("target")
    if target is not None and not isinstance(target, dict):
        raise ConfigError(f"Report {path}: `target` is {_JSON_TYPE.get(type(target), type(target).__name__)}, not an "
                          "object; re-run the build to write a current report.")
    fit = (target or {}).get("fit", [])
    if not isinstance(fit, list) or not all(isinstance(f, dict) and isinstance(f.get("check"), str) for f in fit):
        raise ConfigError(f"Report {path}: `target.fit` must be a list of checks, each an object with a `check` "
                          "name; re-run the build to write a current report.")
    for f in fit:
        lim = f.get("limit")
        if f["check"] in ("flash", "ram") and lim is not None and not (_finite(lim) and lim >= 0):
            raise ConfigError(f"Report {path}: the target's {f['check']} limit is {lim!r}; it must be a number of "
                              "bytes >= 0 or null.")
    limits = {"target.model_flash_bytes": (target or {}).get("model_flash_bytes")}
    search = rep.get("search")
    if search is not None:  # a build's search: the budget it searched under is what its gate judges
        budget = search.get("budget") if isinstance(search, dict) else None
        if not isinstance(budget, dict):
            raise ConfigError(f"Report {path}: `search.budget` is missing or not an object; a build's report records "
                              "the budget it searched under. Re-run the build rather than editing the report.")
        limits.update({f"search.budget.{k}": budget.get(k) for k in ("flash_bytes", "ram_bytes")})
    for key, lim in limits.items():
        if lim is not None and not (_finite(lim) and lim >= 0):
            raise ConfigError(f"Report {path}: {key} is {lim!r}; it must be a number of bytes >= 0 or null. Re-run "
                              "the build rather than editing the report by hand.")


def report_budget(report: dict) -> Budget:
    """The target's limits as recorded in the report, tightened by the flash and RAM limits a build searched under
    (`search.budget`), so `gate report.json` judges a build as the build's own gate did; a report with no search
    (`distill --target`) gets the target's default share of flash for the model (`target.model_flash_bytes`), as a
    build would have. load_report has checked these fields' types."""
    target = report.get("target") or {}
    fit = {f["check"]: f for f in target.get("fit", [])}
    device = Budget(flash_bytes=(fit.get("flash") or {}).get("limit"), ram_bytes=(fit.get("ram") or {}).get("limit"))
    search = report.get("search")
    if isinstance(search, dict) and isinstance(search.get("budget"), dict):
        searched = search["budget"]
        return device.tighten(Budget(flash_bytes=searched.get("flash_bytes"), ram_bytes=searched.get("ram_bytes")))
    return device.tighten(Budget(flash_bytes=target.get("model_flash_bytes")))


def _le(name, value, limit, how, unit="") -> Check:
    return Check(name, value, limit, value is not None and value <= limit, how if value is not None else "missing",
                 unit=unit)


def _shown(name, value, how, unit) -> Check:
    """A row with no limit: the figure (or "missing"), not judged, never failing."""
    return Check(name, value, None, True, how if value is not None else "missing", judged=False, unit=unit)


# the latency figures a report keeps: usage key, its description's key, and the latency_how that names it as judged
_LATENCIES = (("latency:host", "latency_host_ms", "latency_host_how", "measured-host"),
              ("latency:estimate", "latency_estimate_ms", "latency_estimate_how", "estimated"))


def _latency_rows(u: dict, limit: float | None) -> list[Check]:
    """The judged latency (`latency_ms`: measured on a host target or a device, else the target's estimate) and the
    other figures the report keeps, shown beside it and never judged."""
    judged_how = u.get("latency_how", "")
    detail = next((u.get(desc) for _, _, desc, kind in _LATENCIES if kind == judged_how), None)
    how = detail or judged_how
    rows = [_le("latency", u.get("latency_ms"), limit, how, "ms") if limit is not None
            else _shown("latency", u.get("latency_ms"), how, "ms")]
    for name, key, desc, kind in _LATENCIES:
        if key in u and kind != judged_how:  # reports written before these fields show only the judged figure
            other = u.get(desc) or kind
            rows.append(_shown(name, u.get(key), other if limit is None else
                               f"{other}; the latency limit judges the {judged_how} figure", "ms"))
    return rows


def _usage_rows(report: dict, budget: Budget) -> list[Check]:
    """Flash, RAM, latency and MACs: judged against their limit where one is set, shown as "no limit set" where
    not. The RAM row names the figure of the target's runtime (edgedistill.profile.ram); the flash row judges the
    model file plus the tokenizer's device tables (usage.flash_bytes) and names both parts."""
    u = report["usage"]
    ram_how = u.get("ram_how") or ram_figure((report.get("target") or {}).get("runtime"))
    flash_how = flash_parts(u.get("file_bytes"), u.get("tokenizer_bytes"))
    rows = [("flash", u.get("flash_bytes"), budget.flash_bytes, flash_how, "B"),
            ("ram", u.get("ram_bytes"), budget.ram_bytes, ram_how, "B")]
    checks = [_le(name, value, limit, how, unit) if limit is not None else _shown(name, value, how, unit)
              for name, value, limit, how, unit in rows]
    checks += _latency_rows(u, budget.latency_ms)
    macs, how = u.get("macs"), "exact count from the file"
    checks.append(_le("macs", macs, budget.macs, how) if budget.macs is not None else _shown("macs", macs, how, ""))
    return checks


def gate(report: dict, budget: Budget, baseline: dict | None = None, tol: Tolerance = Tolerance()) -> Verdict:
    """The verdict on `report` (a loaded report.json) under `budget`, and regressions against `baseline`."""
    u = report["usage"]
    v = Verdict()
    parity = u.get("parity_passed")
    v.checks.append(Check("parity", parity, True, parity is True,
                          "every exported file reproduces the trained model on its runtime" if parity is not None
                          else "missing"))
    ops = u.get("ops_supported")
    v.checks.append(Check("ops", ops, True, ops is True, "target operator support" if ops is not None else "missing"))
    v.checks.extend(_usage_rows(report, budget))
    for key, name in LM_ONLY.items():  # a causal LM's limits (edgedistill.gate_lm): never passed as unknown
        if getattr(budget, name) is not None:
            v.checks.append(Check("tokens/s" if key == "tokens_per_s" else key, None, getattr(budget, name), False,
                                  f"missing: a classifier report has no {key.replace('_', ' ')} ({key}= limits "
                                  "causal-LM runs)", unit="/s" if key == "tokens_per_s" else ""))
    if budget.flash_bytes is None and budget.ram_bytes is None:
        v.warnings.append("No flash or RAM limit was judged: the report records no target limits and --budget gave "
                          "none, so only parity, operator support and any accuracy / latency / MACs limits were "
                          "checked.")
    # accuracy checks: judged against the noise of the test split (edgedistill.gate_accuracy)
    summary = report.get("summary")
    runtime = summary.get("accuracy_deployed_runtime") if isinstance(summary, dict) else None
    runtime = runtime if isinstance(runtime, str) else None  # named in the accuracy rows (a hand edit: not named)
    noisy = [drop_check(u, budget.max_accuracy_drop, runtime)]  # shown as "no limit set" without one
    if budget.min_accuracy is not None:
        noisy.append(min_accuracy_check(u, budget.min_accuracy, runtime))
    if baseline is not None and baseline["usage"].get("accuracy") is not None:
        noisy.append(regression_check(u, baseline["usage"], tol.accuracy_points))
    for check, warnings in noisy:
        v.checks.append(check)
        v.warnings.extend(warnings)
    if baseline is not None:
        b = baseline["usage"]
        # a baseline figure that is missing leaves nothing to compare against: that check fails too
        if b.get("accuracy") is None:
            v.checks.append(Check("regression:accuracy", u.get("accuracy"), None, False, "missing in the baseline",
                                  unit="%"))
        for name, key, rel in (("latency", "latency_ms", tol.latency_rel), ("flash", "flash_bytes", tol.size_rel)):
            if b.get(key) is None:
                v.checks.append(Check(f"regression:{name}", u.get(key), None, False, "missing in the baseline",
                                      unit="B" if key == "flash_bytes" else "ms"))
            else:
                unit = "B" if key == "flash_bytes" else "ms"
                base = f"{b[key]:,.0f} B" if key == "flash_bytes" else f"{b[key]:.4g} ms"
                value, how = u.get(key), f"baseline {base} + {rel:.0%}"
                if key == "flash_bytes" and _file_only(b) and u.get("tokenizer_bytes"):
                    value = u.get("file_bytes")  # like with like: the old report counted the model file only
                    how += (" (model files compared: the baseline was written before flash counted the "
                            "tokenizer's tables)")
                v.checks.append(_le(f"regression:{name}", value, b[key] * (1 + rel), how, unit))
    return v


def _file_only(usage: dict) -> bool:
    """A report written before flash counted the tokenizer's device tables: its flash_bytes is the model file."""
    return "tokenizer_bytes" not in usage and "file_bytes" not in usage


def _fmt(x, unit: str = "") -> str:
    """A value or limit as the tables print it: '30,000 B', '2.5 ms', '87.5 %', 'missing', 'True'."""
    if x is None:
        return "missing"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    num = f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.4g}"
    if unit == "points" and num == "1":
        unit = "point"
    return f"{num} {unit}" if unit else num


NO_LIMIT = "no limit set"


def _limit_text(c: Check) -> str:
    return _fmt(c.limit, c.unit) if c.judged else NO_LIMIT


def junit_xml(v: Verdict) -> str:
    """One testcase per row; a row without a limit is a passing testcase whose output says "no limit set"."""
    cases = []
    for c in v.checks:
        why = f"{c.name}: {_fmt(c.value, c.unit)} vs limit {_fmt(c.limit, c.unit)}" + (f" ({c.how})" if c.how else "")
        body = "" if c.passed else f"<failure message={quoteattr(why)}/>"
        out = f"{_fmt(c.value, c.unit)} (limit: {_limit_text(c)}): {c.how}"
        cases.append(f'  <testcase classname="edgedistill.gate" name={quoteattr(c.name)}>{body}'
                     f"<system-out>{escape(out)}</system-out></testcase>")
    failures = sum(not c.passed for c in v.checks)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="edgedistill-gate" tests="{len(v.checks)}" '
            f'failures="{failures}" errors="0">\n' + "\n".join(cases) + "\n</testsuite>\n")


def markdown(v: Verdict) -> str:
    """The verdict as a Markdown table (one row per check; "no limit set" / "not judged" where no limit applies)
    followed by the warnings."""
    lines = [f"### edgedistill gate: {'PASS' if v.passed else 'FAIL'}", "", "| check | value | limit | verdict | how |",
             "|---|---:|---:|---|---|"]
    for c in v.checks:
        if not c.judged:
            verdict = "not judged"
        else:
            verdict = ("pass (within noise)" if c.within_noise else "pass") if c.passed else "**FAIL**"
        lines.append(f"| {c.name} | {_fmt(c.value, c.unit)} | {_limit_text(c)} | {verdict} | {c.how} |")
    for w in v.warnings:
        lines += ["", f"> **Warning:** {w}"]
    return "\n".join(lines) + "\n"
