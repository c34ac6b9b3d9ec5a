"""Stage 3 (build only), search: the student to train, chosen under the target's budget without training
(edgedistill.students.search has the candidates, their exact costs, the latency estimate and the rule). An
infeasible flash / RAM / MACs / latency budget fails here, before any training, naming the limit and the smallest
budget that would work. Accuracy limits (`accuracy=`, `drop=`) cannot be judged before training: the gate checks
them on the test split."""

from __future__ import annotations

from pathlib import Path

from edgedistill.budget import Budget, limit_figure
from edgedistill.config import DistillConfig
from edgedistill.data import kind_of
from edgedistill.pipeline.inputs import Inputs
from edgedistill.students import default_family
from edgedistill.students.search import GIVEN_RULE, SearchResult, search


def teacher_params(teachers) -> int:
    """Parameters of the (largest) teacher; for runtime formats, estimated from the file size (4 bytes each)."""
    return max(t.num_params() or sum(f.stat().st_size for f in t.files) // 4 for t in teachers)


def choose_student(config: DistillConfig, budget: Budget, inputs: Inputs, target=None) -> SearchResult:
    """The largest candidate that fits every limit, capped at half the teacher's parameters (a student as large as
    its teacher is not compression). Text searches the family of the student's tokenizer (textcnn for bytes, bow
    for the teacher's vocabulary). A user's own student (a factory) is costed and checked against the budget
    instead of searched. `target`: the profile whose int8 latency estimate a `latency=` limit is checked with (and,
    on TFLite Micro, whose runtime memory the RAM figure includes). Candidates are costed in the 16×8 form
    `quant.int16` asks for, as the build will export them. A text student's flash counts its tokenizer's device
    tables beside each file (StudentTokenizer.device_bytes(): 0 for bytes, the teacher's vocabulary for vocab)."""
    kind = kind_of(inputs.raw.train.x)
    own = config.student.arch(kind) if config.student.factory else None  # the user's student: costed, not searched
    s = inputs.splits
    families = None if own else [config.student.family] if config.student.family != "auto" else \
        [default_family(kind, s.text.tokenizer.name)] if s.text is not None else None
    return search(kind, s.input_shape, s.num_classes, budget, families,
                  max_params=teacher_params(inputs.teachers) // 2, arch=own, target=target, vocab_size=s.vocab_size,
                  knobs=dict(config.student.knobs), int16=tuple(config.quant.int16),
                  tokenizer_bytes=inputs.tokenizer_bytes or 0,
                  flash_hint=" (or --tokenizer bytes: the byte tokenizer needs no tables)")



def announce(found: SearchResult, out, show: bool, budget=None, target: str | None = None) -> None:
    """Before training starts (which can take most of an hour), say on stderr which student the search chose and
    why, the limits it fit as resolved (`budget`, an edgedistill.budget.Budget: flash=64kb is 64,000 B, 64KiB
    65,536), and its estimated latency on the `target` profile (a decoder's per generated token, with the tokens/s
    it means: the largest decoder that fits a microcontroller's flash may decode about one token a second), so a
    user need not wait for the summary to learn what is being trained. Silent with `show` False (-q)."""
    if not show:
        return
    import sys

    c = found.chosen
    why = found.rule if found.rule == GIVEN_RULE else f"of {len(found.candidates)} candidates costed, {found.rule}"
    print(f"training {c.arch.describe()}: {c.params:,} parameters ({why}) -> {out}", file=sys.stderr, flush=True)
    limits = _limits(budget) if budget is not None else ""
    if limits:
        print(f"  under {limits}", file=sys.stderr, flush=True)
    if c.latency_ms and target:
        print(f"  {_speed_line(c.latency_ms, c.arch.family == 'decoder', target, c.step == 'kv-cache')}",
              file=sys.stderr, flush=True)
    from edgedistill.pipeline.rundir import MANIFEST

    if (Path(out) / MANIFEST).is_file():  # a build not reused (other settings, or a file of it changed): it goes
        print(f"  replacing the earlier build in {out} (other settings, or a file of it changed; --out DIR keeps "
              "both)", file=sys.stderr, flush=True)


def _speed_line(ms: float, decoder: bool, target: str, kv: bool = False) -> str:
    """'estimated 2.5 ms per inference on cpu (the target profile's estimate; ...)', or for a decoder 'estimated 812
    ms per generated token on cortex-m4 (1.23 tokens/s, ...)' (`kv`: '... per generated token with the KV cache')."""
    figure = f"{ms:,.0f}" if ms >= 100 else f"{ms:.3g}"
    if not decoder:
        return f"estimated {figure} ms per inference on {target} (the target profile's estimate; --budget latency=MS " \
               "limits it)"
    cached = " with the KV cache" if kv else ""
    return (f"estimated {figure} ms per generated token{cached} on {target} ({1000.0 / ms:.3g} tokens/s, the target "
            "profile's estimate; --budget tokens_per_s=N asks for more)")


def _limits(budget) -> str:
    """'flash <= 262,144 B, RAM <= 262,144 B, latency <= 5 ms, MACs <= 2,000,000': the search's limits as resolved."""
    parts = [(name, getattr(budget, key), unit) for name, key, unit in (
        ("flash", "flash_bytes", " B"), ("RAM", "ram_bytes", " B"), ("latency", "latency_ms", " ms"),
        ("MACs", "macs", ""))]
    return ", ".join(f"{name} <= {limit_figure(value)}{unit}" for name, value, unit in parts if value is not None)
