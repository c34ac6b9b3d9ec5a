"""The gate of a causal-LM run: perplexity rows in the classifier gate's form (edgedistill.gate.Check).

* int8 perplexity within `int8_rise` (default 2 %, issue #29's target) of the float student's, on the same test
  positions (judged);
* the distilled student against its no-teacher twin: fails only when the student's perplexity is higher beyond
  the test split's noise (the paired document bootstrap of edgedistill.lm_metrics); a gain within noise passes
  and says so (`within_noise`);
* the int8 perplexity itself, judged against `max_perplexity` when one is set, else shown.
A value that is missing (no twin, an int8 run without its figure) fails its judged row rather than passing as zero;
a float-only run (no --qat, so no `test.int8`) leaves the int8 rows not judged.
"""

from __future__ import annotations

import math

from edgedistill.gate import Check, Verdict

INT8_RISE = 0.02


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def lm_gate(metrics: dict, max_perplexity: float | None = None, int8_rise: float = INT8_RISE) -> Verdict:
    """A Verdict over metrics.json of a causal-LM run (module doc)."""
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
    return Verdict(checks)
