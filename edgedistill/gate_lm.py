"""The gate of a causal-LM run: perplexity rows in the classifier gate's form (edgedistill.gate.Check).

Every limit comes from an edgedistill.budget.Budget (`build --budget`, `gate metrics.json --budget`, or the
target's limits); a row whose limit is not set shows its figure, is not judged and never fails.

* int8 perplexity within `int8_rise=` (default 2 %, issue #29's target) of the float student's, on the same test
  positions (judged whenever the run made an int8 model);
* the distilled student against its no-teacher twin, both as deployed (the int8 QAT student against the twin's
  int8 in a --qat run, the float ones in a float-only run; the row says which): fails only when the student's
  perplexity is higher beyond the test split's noise (the paired document bootstrap of edgedistill.lm_metrics); a
  gain within noise passes and says so (`within_noise`); a --qat run without `gain_vs_twin.int8` fails it as
  missing rather than being judged on the float gain; a run that declined the twin (`--no-baseline`: metrics.json's
  `training.twin` is null) shows the row as not judged, as a classifier run's report does;
* the deployed model's (the int8 QAT model's, or the float student's in a float-only run) test perplexity against
  `perplexity=` (a ceiling) and its next-token top-1 / top-3 accuracy against `top1=` / `top3=` (floors, in
  percent), each on its point value over every test position (metrics.json keeps no per-document counts to
  judge them within noise; the perplexity's document interval is shown beside it);
* with a budget: tokens per second (a floor, `tokens_per_s=`) and the latency per token (`latency=`), both of the
  figure metrics.json's `speed.target` names (measured here for the int8 TFLite file on a host target, else the
  target's estimate), flash (the int8 TFLite file's bytes plus the tokenizer's device tables) and RAM (the target
  runtime's figure), each judged where the budget sets it and shown otherwise, and so are the MACs of one decoder
  step, i.e. per generated token (`macs=`, a ceiling, the limit `build --task causal-lm` also searches under: the
  exact count of the int8 TFLite file, metrics.json's `speed.target.macs`). Where the run exported a KV-cache step
  (--kv-cache) every one of these judges that step's file, the one the app ships (pipeline/lm_speed.kv_judged,
  kv_fit; its RAM adds the key / value caches the app keeps between steps); the student / teacher tokens/s ratio per
  runtime is shown, never judged;
* a classifier's limit (`accuracy=`, `drop=`) fails as missing: a causal LM has no class accuracy (top1= is its
  next-token accuracy).
A value that is missing (a twin's figures lost, an int8 run without its figure) fails its judged row rather than passing as zero;
a float-only run (no --qat: no `int8` section and no `test.int8`) leaves the int8 rise not judged. A run that made an
int8 model (its `int8` section is set) but lacks `test.int8` fails the int8 rise and every judged quality row as
missing: it is never judged on its float student's figures instead.
"""

from __future__ import annotations

import math

from edgedistill.budget import CLASSIFIER_ONLY, Budget, flash_parts
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
    """Tokens/s, latency per token, flash, RAM, MACs per token and the tokens/s ratio to the teacher (module doc). A
    run without an int8 file (no `speed` section) shows the rows as missing, or fails those its budget limits."""
    speed = metrics.get("speed") or {}
    t = speed.get("target") or {}
    if not speed and (metrics.get("int8") or {}).get("parity_passed") is False:
        # nothing was timed or sized because the files failed parity: that row fails the gate; these say why they
        # are empty instead of failing as three more missing figures
        why = "not measured: the int8 files failed parity (the parity row)"
        return [Check(name, None, None, True, why, judged=False, unit=unit) for name, unit in
                (("tokens/s", "/s"), ("latency per token", "ms"), ("flash", "B"), ("ram", "B"),
                 ("macs per token", ""))]
    tps, how = t.get("tokens_per_s"), t.get("tokens_per_s_how") or "no int8 file was timed (float-only run)"
    fit = {f["check"]: f for f in t.get("fit", [])}
    flash, ram = (fit.get("flash") or {}).get("value"), (fit.get("ram") or {}).get("value")
    rows = [_row("tokens/s", tps, budget.min_tokens_per_s, True, how, "/s"),
            _row("latency per token", 1000.0 / tps if _finite(tps) and tps > 0 else None, budget.latency_ms, False,
                 how, "ms"),
            _row("flash", flash, budget.flash_bytes, False, flash_parts(t.get("file_bytes"), t.get("tokenizer_bytes")),
                 "B"),
            _row("ram", ram, budget.ram_bytes, False, t.get("ram_figure") or "the target runtime's figure", "B"),
            _row("macs per token", t.get("macs"), budget.macs, False, t.get("macs_how") or "exact count of the int8 "
                 "TFLite file's decoder step (one step a generated token)", "")]
    for runtime, r in (speed.get("ratio") or {}).items():
        rows.append(_row(f"tokens/s vs teacher ({runtime})", r["ratio"], None, True,
                         f"student int8 {r['student_tokens_per_s']:.4g} / teacher float32 "
                         f"{r['teacher_tokens_per_s']:.4g} tokens/s, both on {runtime} here", "x"))
    return rows


def parity_row(metrics: dict) -> Check:
    """Every exported file reproduces the QAT model on its runtimes and is causal (metrics.json's
    int8.parity_passed, and each checked parity row and causality row): a run refuses to publish files that fail,
    so this row fails only on a metrics.json edited or written elsewhere, as the classifier gate's parity row does."""
    int8 = metrics.get("int8") if isinstance(metrics.get("int8"), dict) else {}
    rows = [r for key in ("parity", "causality") for r in (int8.get(key) or []) if isinstance(r, dict)]
    kv = int8.get("kv_cache") if isinstance(int8.get("kv_cache"), dict) else {}
    rows += [r for r in (kv.get("parity") or []) if isinstance(r, dict)]
    passed = int8.get("parity_passed")
    if passed is None and not rows:
        return Check("parity", None, True, False, "missing: the run made an int8 model but metrics.json has no parity")
    ok = passed is not False and all(r.get("passed") is True for r in rows if r.get("checked", True))
    causal = ", and is causal on each (probed)" if int8.get("causality") else " (no causality probe on record: a run " \
        "older than the probe)"
    return Check("parity", ok, True, ok, f"every exported file reproduces the QAT model on its runtimes{causal}")


def made_int8(metrics: dict) -> bool:
    """True when the run made an int8 model (a --qat run: metrics.json's `int8` section, or a `test.int8` figure)."""
    return isinstance(metrics.get("int8"), dict) or "int8" in (metrics.get("test") or {})


def _deployed(metrics: dict) -> tuple[str, dict]:
    """Which model a run deploys and its test figures: the int8 QAT model whenever the run made one (its figures
    may then be missing, never replaced by the float student's), else the float student."""
    test = metrics.get("test") or {}
    if made_int8(metrics):
        return ("int8 QAT model" if "int8" in test else "int8 QAT model (test.int8 missing from metrics.json)"), \
            test.get("int8") or {}
    return "float student (no --qat)", test.get("float") or {}


def quality_rows(metrics: dict, budget: Budget) -> list[Check]:
    """The deployed model's test perplexity (ceiling) and next-token top-1 / top-3 accuracy (floors); module doc."""
    who, m = _deployed(metrics)
    p = m.get("perplexity") or {}
    interval = f", 95 % interval [{p['low']:.4g}, {p['high']:.4g}] over {p['documents']} documents" \
        if _finite(p.get("low")) and _finite(p.get("high")) and p.get("documents") else ""
    unit = m.get("unit", "token")
    return [_row("test perplexity", p.get("value"), budget.max_perplexity, False,
                 f"{who}: exp(mean next-token NLL) over the test windows{interval}", ""),
            _row("next-word top-1" if unit == "word" else "next-token top-1", m.get("top1"), budget.min_top1, True,
                 f"{who}: share of test positions whose next {unit} is its first choice", "%"),
            _row("next-word top-3" if unit == "word" else "next-token top-3", m.get("top3"), budget.min_top3, True,
                 f"{who}: share of test positions whose next {unit} is among its three first choices", "%")]


def declined_twin(metrics: dict) -> bool:
    """True when the run was told to train no twin (--no-baseline): metrics.json's `training.twin` is null. A
    metrics.json that merely lacks the twin's figures is not read as a choice."""
    training = metrics.get("training")
    return isinstance(training, dict) and "twin" in training and training["twin"] is None \
        and not (metrics.get("gain_vs_twin") or {})


def twin_row(metrics: dict) -> Check:
    """The deployed model against its no-teacher twin (module doc): a --qat run's int8 student against the twin's
    int8 (`gain_vs_twin.int8`), a float-only run's float student against the float twin (`gain_vs_twin.float`)."""
    name = "perplexity gain over the no-teacher twin"
    gains = metrics.get("gain_vs_twin") or {}
    key, who = ("int8", "int8 QAT student vs the twin's int8") if made_int8(metrics) else \
        ("float", "float student vs the float twin (no --qat)")
    gain = gains.get(key)
    if not (isinstance(gain, dict) and all(_finite(gain.get(k)) for k in ("gain", "low", "high"))
            and isinstance(gain.get("beyond_noise"), bool)):
        gain = None  # an empty or partial record (a hand edit) is a missing one, never a pass
    if gain is None and declined_twin(metrics):
        return Check(name, None, None, True, "not judged: no twin was trained (--no-baseline)", judged=False)
    if gain is None:
        return Check(name, None, 0.0, False, f"missing: metrics.json has no gain_vs_twin.{key} ({who})")
    worse = gain["gain"] < 0 and gain["beyond_noise"]
    return Check(name, gain["gain"], 0.0, not worse,
                 f"{who}: twin − student perplexity, paired bootstrap over {gain.get('documents', '?')} documents, 95 % "
                 f"interval [{gain['low']:.3g}, {gain['high']:.3g}]", within_noise=not gain["beyond_noise"])


def lm_gate(metrics: dict, budget: Budget | None = None) -> Verdict:
    """A Verdict over metrics.json of a causal-LM run (module doc). `budget`: the limits (None: the default int8
    rise only; the speed and size rows are left out)."""
    limits = budget or Budget()
    test = metrics.get("test", {})
    ppl = {k: (test.get(k) or {}).get("perplexity", {}).get("value") for k in ("float", "int8", "twin")}
    rise_limit = INT8_RISE * 100.0 if limits.max_int8_rise is None else limits.max_int8_rise
    checks = []
    rise = (ppl["int8"] / ppl["float"] - 1.0) * 100.0 if _finite(ppl["int8"]) and _finite(ppl["float"]) else None
    if made_int8(metrics):
        checks.append(Check("int8 perplexity rise vs float", rise, rise_limit,
                            rise is not None and rise <= rise_limit,
                            "same test positions, exp(mean NLL) of the QAT model vs the float student"
                            if "int8" in test else "missing: the run made an int8 model but metrics.json has no "
                            "test.int8 figures", unit="%"))
    else:  # a float-only run (no --qat): nothing int8 to judge
        checks.append(Check("int8 perplexity rise vs float", None, rise_limit, True,
                            "no int8 model: the run was float only (no --qat)", unit="%", judged=False))
    if made_int8(metrics):
        checks.append(parity_row(metrics))
    checks.append(twin_row(metrics))
    checks += quality_rows(metrics, limits)
    if budget is not None:
        checks += speed_rows(metrics, budget)
    for key, name in CLASSIFIER_ONLY.items():
        if getattr(limits, name) is not None:
            checks.append(Check(key, None, getattr(limits, name), False, f"missing: a causal-LM run has no class "
                                "accuracy (top1= / top3= limit its next-token accuracy)", unit="%"))
    return Verdict(checks)
