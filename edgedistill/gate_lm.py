"""The gate of a causal-LM run: perplexity rows in the classifier gate's form (edgedistill.gate.Check).

* int8 perplexity within `int8_rise` (default 2 %, issue #29's target) of the float student's, on the same test
  positions (judged);
* the distilled student against its no-teacher twin: fails only when the student's perplexity is higher beyond
  the test split's noise (the paired document bootstrap of edgedistill.lm_metrics); a gain within noise passes
  and says so (`within_noise`);
* the int8 perplexity itself, judged against `max_perplexity` when one is set, else shown;
* with a budget (edgedistill.budget.Budget; `build --budget`, or the target's limits): tokens per second (a floor,
  `tokens_per_s=`) and the latency per token (`latency=`), both of the figure metrics.json's `speed.target` names
  (measured here for the int8 TFLite file on a host target, else the target's estimate), flash (the int8 TFLite
  file's bytes) and RAM (the target runtime's figure), each judged where the budget sets it and shown otherwise;
  the student / teacher tokens/s ratio per runtime is shown, never judged.
A value that is missing (no twin, an int8 run without its figure) fails its judged row rather than passing as zero;
a float-only run (no --qat, so no `test.int8`) leaves the int8 rows not judged.
"""

from __future__ import annotations

import math

from edgedistill.budget import Budget
from edgedistill.gate import Check, Verdict

INT8_RISE = 0.02


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def _row(name: str, value, limit, floor: bool, how: str, unit: str) -> Check:
    """Judged against `limit` (a ceiling, or a floor when `floor`) where one is set, else shown; a missing value
    fails a judged row."""
    if limit is None:
        return Check(name, value, None, True, how if value is not None else "missing", judged=False, unit=unit)
    ok = _finite(value) and (value >= limit if floor else value <= limit)
    return Check(name, value, limit, ok, how if value is not None else "missing", unit=unit)


def speed_rows(metrics: dict, budget: Budget) -> list[Check]:
    """Tokens/s, latency per token, flash, RAM and the tokens/s ratio to the teacher (module doc). A run without
    an int8 file (no `speed` section) shows the rows as missing, or fails those its budget limits."""
    speed = metrics.get("speed") or {}
    t = speed.get("target") or {}
    tps, how = t.get("tokens_per_s"), t.get("tokens_per_s_how") or "no int8 file was timed (float-only run)"
    fit = {f["check"]: f for f in t.get("fit", [])}
    flash, ram = (fit.get("flash") or {}).get("value"), (fit.get("ram") or {}).get("value")
    rows = [_row("tokens/s", tps, budget.min_tokens_per_s, True, how, "/s"),
            _row("latency per token", 1000.0 / tps if _finite(tps) and tps > 0 else None, budget.latency_ms, False,
                 how, "ms"),
            _row("flash", flash, budget.flash_bytes, False, "int8 TFLite file bytes", "B"),
            _row("ram", ram, budget.ram_bytes, False, t.get("ram_figure") or "the target runtime's figure", "B")]
    for runtime, r in (speed.get("ratio") or {}).items():
        rows.append(_row(f"tokens/s vs teacher ({runtime})", r["ratio"], None, True,
                         f"student int8 {r['student_tokens_per_s']:.4g} / teacher float32 "
                         f"{r['teacher_tokens_per_s']:.4g} tokens/s, both on {runtime} here", "x"))
    return rows


def lm_gate(metrics: dict, max_perplexity: float | None = None, int8_rise: float = INT8_RISE,
            budget: Budget | None = None) -> Verdict:
    """A Verdict over metrics.json of a causal-LM run (module doc). `budget`: the limits of the speed and size
    rows (None: those rows are left out)."""
    test = metrics.get("test", {})
    ppl = {k: (test.get(k) or {}).get("perplexity", {}).get("value") for k in ("float", "int8", "twin")}
    checks = []
    rise = (ppl["int8"] / ppl["float"] - 1.0) * 100.0 if _finite(ppl["int8"]) and _finite(ppl["float"]) else None
    if "int8" in test:
        checks.append(Check("int8 perplexity rise vs float", rise, int8_rise * 100.0,
                            rise is not None and rise <= int8_rise * 100.0,
                            "same test positions, exp(mean NLL) of the QAT model vs the float student", unit="%"))
    else:  # a float-only run (no --qat): nothing int8 to judge
        checks.append(Check("int8 perplexity rise vs float", None, int8_rise * 100.0, True,
                            "no int8 model: the run was float only (no --qat)", unit="%", judged=False))
    gain = (metrics.get("gain_vs_twin") or {}).get("float")
    if gain is None:
        checks.append(Check("perplexity gain over the no-teacher twin", None, 0.0, False,
                            "no twin was trained (--no-baseline)"))
    else:
        worse = gain["gain"] < 0 and gain["beyond_noise"]
        checks.append(Check("perplexity gain over the no-teacher twin", gain["gain"], 0.0, not worse,
                            f"twin − student, paired bootstrap over {gain['documents']} documents, 95 % interval "
                            f"[{gain['low']:.3g}, {gain['high']:.3g}]", within_noise=not gain["beyond_noise"]))
    judged = max_perplexity is not None
    checks.append(Check("int8 test perplexity", ppl["int8"], max_perplexity,
                        not judged or (_finite(ppl["int8"]) and ppl["int8"] <= max_perplexity),
                        "exp(mean next-token NLL) over the test windows", judged=judged))
    if budget is not None:
        checks += speed_rows(metrics, budget)
    return Verdict(checks)
