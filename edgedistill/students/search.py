"""Student search under a budget: enumerate architectures, cost each exactly enough to decide, keep those that
fit every hard limit, pick by a documented rule.

Cost per candidate (no training, no export): students/cost.py on the int8 graph the exporters write: parameters and
MACs per op, weight bytes (int8 weights + int32 biases), the tensor arena TFLite Micro's greedy planner gives the
graph's tensors and their lifetimes (a residual input stays alive across its branch), and an upper bound of the int8
.tflite file size (students/filesize.py), in the 16×8 form `quant.int16` asks for (students/cost_int16.py). The RAM
figure a `ram=` limit judges is the one the gate reads for the target's runtime (profile/ram.py): on TFLite Micro
the planned arena plus a bound of the runtime's own memory (students/tflm_tail.py), elsewhere the planned arena.
Tests check the chosen student against its exported .tflite file and TFLite Micro's recording allocator.

Latency (when the budget limits it): the target's roofline estimate (profile/estimate.py) on the per-op cost the
graph predicts for the int8 file (`GraphCost.model_cost`, equal op by op to the exported file's), so a latency
budget no candidate can meet fails here too. It is the same estimate the report gives an MCU or phone target; on a
host target the gate later checks the *measured* latency, which the estimate only approximates.

Candidates (`search_families`): the data kind's own families (images: cnn and dscnn; signals: conv1d; feature
vectors: mlp; token ids: textcnn and transformer) and, for images, the field's reference families (resnet8,
mobilenetv1, mbv3: MLPerf Tiny's image classification and visual wake words references, MobileNetV3-style), each
over its width x depth grid. Text candidates are costed like the others, on the int8 graph of their embedding,
convolutions or attention (students/cost_text.py), for the tokenizer's vocabulary size. `--family`
narrows the search to the families named.

Flash: what the target's flash must hold for a candidate is its file plus the tables the student's tokenizer reads
on the device (`tokenizer_bytes`: StudentTokenizer.device_bytes(), 0 for bytes and non-text data;
edgedistill.budget.flash_use), so a teacher's vocabulary that takes most of the model's share of the flash leaves a
smaller student.

Rule: among candidates that fit (every budget limit, and at most half the teacher's parameters in a build), the one
with the most parameters (capacity), ties broken by fewer MACs. It is cheap, monotone in the budget, and needs no
proxy training; its weakness (capacity is not accuracy) is stated in the report.

Costing is one batch-1 pass per candidate (no training); it runs on one torch thread, which for ops this small is
several times faster than two (thread hand-offs dominate), and restores the caller's thread count.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import torch

from edgedistill.budget import Budget, flash_use, limit_figure
from edgedistill.data.splits import Normalizer
from edgedistill.errors import ConfigError, EdgeDistillError
from edgedistill.profile.estimate import estimate_latency
from edgedistill.quantize.capture import UnsupportedOpError
from edgedistill.students import DEFAULT_FAMILY, STUDENT_FAMILIES, StudentArch, build_student, count_params
from edgedistill.students.cost import graph_cost
from edgedistill.students.cost_kv import kv_graph_cost
from edgedistill.students.filesize import tflite_size_bound
from edgedistill.students.tflm_tail import tflm_tail_bound
from edgedistill.students.reference import REFERENCE_FAMILIES, SEARCH_GRID
from edgedistill.students.decoder_family import DECODER_SEARCH_GRID
from edgedistill.students.text_families import TEXT_SEARCH_GRID

WIDTHS = (4, 6, 8, 12, 16, 24, 32, 48, 64)
DEPTHS = (2, 3, 4)


class InfeasibleBudgetError(EdgeDistillError):
    """No candidate fits the budget; raised before any training."""


@dataclass(frozen=True)
class Candidate:
    arch: StudentArch
    params: int
    macs: int
    weight_bytes: int
    file_bytes: int
    arena_bytes: int  # the planned activation tensors (TFLite Micro's head), exact
    latency_ms: float | None = None  # estimated int8 latency on the search's target (None: no target / no figures)
    violations: tuple[str, ...] = ()
    runtime_bytes: int = 0  # a bound of TFLite Micro's runtime memory (its tail) on a `tflm` target, else 0
    tokenizer_bytes: int = 0  # the device tokenizer's tables, in flash beside the file (0: none, e.g. bytes)
    cache_bytes: int = 0  # the KV-cache step's int8 caches, kept in RAM between steps (0: a window step)
    step: str = "window"  # the file costed: "window" (the full-window step) or "kv-cache" (students/cost_kv.py)

    @property
    def flash_bytes(self) -> int:
        """What the flash limit judges: the file's size bound plus the tokenizer's tables (budget.flash_use)."""
        return flash_use(self.file_bytes, self.tokenizer_bytes)

    @property
    def ram_bytes(self) -> int:
        """The RAM figure the gate judges for the search's target (profile/ram.py): the planned arena, plus TFLite
        Micro's runtime memory (bounded: students/tflm_tail.py) where the target runs TFLite Micro, plus the
        KV-cache step's caches (pipeline/lm_speed.kv_fit)."""
        return self.arena_bytes + self.runtime_bytes + self.cache_bytes

    @property
    def fits(self) -> bool:
        return not self.violations

    def to_dict(self) -> dict:
        d = asdict(self)
        d["arch"] = self.arch.describe()
        d["fits"] = self.fits
        d["ram_bytes"] = self.ram_bytes
        d["flash_bytes"] = self.flash_bytes
        return d


@dataclass
class SearchResult:
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    rule: str = "most parameters among the candidates that fit every limit (ties: fewer MACs)"
    max_params: int | None = None


GIVEN_RULE = "the student you gave: costed and checked against the budget, not searched"

# families searched beside a kind's default one
# text: the tokenizer's family (pipeline.search.choose_student: textcnn for bytes, bow for the teacher's vocabulary);
# the transformer is searched when named (--family transformer): on builtin:langid at
# cortex-m4's budget the search's largest transformer, (96, 4), reached 80.2 % int8 where textcnn(32, 2) reached
# 82.1 % (teacher 84.7 %; docs/text.md)
_ALSO = {"image": ["dscnn"]}
_GRIDS = {**SEARCH_GRID, **TEXT_SEARCH_GRID, **DECODER_SEARCH_GRID}


def search_families(kind: str) -> list[str]:
    """The families the default search costs for a data kind ("image", "signal", "features", "text"): the kind's
    default family, dscnn for images, and the kind's reference families
    (students.reference.REFERENCE_FAMILIES)."""
    own = [DEFAULT_FAMILY[kind]] + _ALSO.get(kind, [])
    return own + [f for f in REFERENCE_FAMILIES.get(kind, ()) if f not in own]


def grid(family: str) -> list[StudentArch]:
    """The architectures `search` enumerates for a family (its own widths / depths, or WIDTHS x DEPTHS)."""
    widths, depths = _GRIDS.get(family, (WIDTHS, DEPTHS))
    return [StudentArch(family, w, d) for d in depths for w in widths]


@torch.no_grad()
def candidate_cost(arch: StudentArch, input_shape: tuple[int, ...], num_classes: int, target=None,
                   vocab_size: int | None = None, int16: tuple[str, ...] = (), kv_cache: bool = False) -> Candidate:
    """Cost one architecture for the data (raises ConfigError when the family does not fit the data's shape).
    `target` (a TargetProfile with int8 throughput figures): also estimate its int8 latency there, in ms; a target
    whose runtime is TFLite Micro ("tflm") also adds a bound of that runtime's own memory to the RAM figure.
    `vocab_size`: the tokenizer's vocabulary size when the samples are token ids (text; the embedding table's rows).
    `int16`: op kinds in TFLite's 16×8 form (quant.int16), costed as the exporter writes them (2 bytes per int16
    value; raises UnsupportedOpError where that form cannot be written, ConfigError where the student lacks it).
    `kv_cache`: cost the decoder's KV-cache step (students/cost_kv.py: one token a step, its caches in RAM) instead
    of the full-window step; raises UnsupportedOpError for a model without one."""
    c = input_shape[0]
    normalizer = None if vocab_size is not None else Normalizer([0.0] * c, [1.0] * c, "channel")
    model = build_student(arch, input_shape, num_classes, normalizer, vocab_size).eval()
    g = kv_graph_cost(model, input_shape[0]) if kv_cache else graph_cost(model, input_shape, int16)
    latency = None
    if target is not None and target.peak_int8_macs_per_s:
        latency = estimate_latency(g.model_cost(), target, "int8").total_ms
    runtime = tflm_tail_bound(g) if target is not None and target.runtime == "tflm" else 0
    # parameters as the report counts them: the float model's torch parameters (BatchNorm included, not folded)
    return Candidate(arch, count_params(model), g.macs, g.weight_bytes, tflite_size_bound(g), g.arena_bytes, latency,
                     runtime_bytes=runtime, cache_bytes=g.state_bytes, step="kv-cache" if kv_cache else "window")


def _violations(c: Candidate, b: Budget, max_params: int | None = None) -> tuple[str, ...]:
    v = []
    if max_params is not None and c.params > max_params:
        v.append("params")
    if b.flash_bytes is not None and c.flash_bytes > b.flash_bytes:
        v.append("flash")
    if b.ram_bytes is not None and c.ram_bytes > b.ram_bytes:
        v.append("ram")
    if b.macs is not None and c.macs > b.macs:
        v.append("macs")
    if b.latency_ms is not None and c.latency_ms is not None and c.latency_ms > b.latency_ms:
        v.append("latency")
    return tuple(v)


def search(kind: str, input_shape: tuple[int, ...], num_classes: int, budget: Budget,
           families: list[str] | None = None, max_params: int | None = None,
           arch: StudentArch | None = None, target=None, vocab_size: int | None = None,
           knobs: dict | None = None, int16: tuple[str, ...] = (), tokenizer_bytes: int = 0,
           flash_hint: str = "", kv_cache: bool = False) -> SearchResult:
    """Cost every candidate of the data kind's families and choose one; infeasible budgets fail here.
    `max_params` caps the student's size (the build passes half the teacher's parameters: a student as large as
    its teacher is not compression, however loose the device budget). `arch` (e.g. the user's own factory,
    `StudentArch.custom(...)`) is the only candidate: it is costed and checked against the budget, not searched.
    `target` (TargetProfile): candidates get its estimated int8 latency, checked against `budget.latency_ms`.
    `vocab_size`: the tokenizer's vocabulary size, for text (kind "text": samples of L token ids). `knobs`: the
    named family's own knobs (students/knobs.py), set on every candidate of the grid (its width x depth).
    `int16`: op kinds in TFLite's 16×8 form (quant.int16): every candidate is costed in that form, and a grid point
    whose 16×8 form cannot be written (int16 attention on one head) is skipped (the first such error is raised when
    no candidate remains). `tokenizer_bytes`: the flash the tokenizer's device tables take (StudentTokenizer.
    device_bytes()), added to every candidate's file bytes where the flash limit judges them; `flash_hint`: words
    added to an infeasible flash limit's message where the tables count (another way out, e.g. another tokenizer).
    `kv_cache`: every candidate is costed as its KV-cache step (a decoder built with --kv-cache ships that file: its
    MACs, latency, arena plus caches and file size are what the gate judges), not its full-window step.
    Raises ConfigError for a latency limit without a target that has int8 throughput figures to estimate with, or
    for text without a vocabulary size."""
    if budget.latency_ms is not None and (target is None or not target.peak_int8_macs_per_s):
        raise ConfigError(f"A latency limit ({budget.latency_ms:g} ms) needs a target with int8 throughput figures to "
                          "estimate each candidate's latency" + (f"; {target.name} has none." if target else
                                                                 "; pass --target."))
    if kind == "text" and vocab_size is None:
        raise ConfigError("Searching text students needs the tokenizer's vocabulary size (the embedding table's "
                          "rows): pass vocab_size.")
    if arch is not None:
        archs = [arch]
    else:
        fams = families or search_families(kind)
        for fam in fams:
            STUDENT_FAMILIES.get(fam)  # an unknown name fails before any costing
        archs = [a.with_knobs(**knobs) if knobs else a for fam in fams for a in grid(fam)]
    cands = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 passes over small layers: one thread is several times faster than two
    unfit = None  # the first grid point the user's knobs (or the 16×8 form) do not fit (e.g. heads=3 at width 64)
    try:
        for a in archs:
            try:
                c = candidate_cost(a, input_shape, num_classes, target, vocab_size if kind == "text" else None,
                                   tuple(int16), kv_cache)
            except UnsupportedOpError as exc:
                if arch is not None or not int16:
                    raise
                unfit = unfit or exc
                continue
            except ConfigError as exc:
                if arch is not None or not knobs:
                    raise
                unfit = unfit or exc
                continue
            c = replace(c, tokenizer_bytes=int(tokenizer_bytes))
            cands.append(replace(c, violations=_violations(c, budget, max_params)))
    finally:
        torch.set_num_threads(threads)
    if not cands and unfit is not None:
        raise unfit
    fitting = [c for c in cands if c.fits]
    if not fitting:
        raise InfeasibleBudgetError(_infeasible(cands, budget, max_params, target, flash_hint))
    chosen = max(fitting, key=lambda c: (c.params, -c.macs))
    if arch is not None:
        return SearchResult(chosen, cands, GIVEN_RULE, max_params=max_params)
    return SearchResult(chosen, cands, max_params=max_params)


def _infeasible(cands: list[Candidate], budget: Budget, max_params: int | None, target, flash_hint: str = "") -> str:
    """Why no candidate fits: each limit no candidate meets on its own, with the best figure any candidate reaches
    there (the smallest budget for that limit that would admit one), or the smallest candidate when only the
    combination of limits fails."""
    where = f" (estimated on {target.name})" if target else ""
    best = {"flash": (min(c.flash_bytes for c in cands), budget.flash_bytes, lambda v: f"{limit_figure(v)} B"),
            "ram": (min(c.ram_bytes for c in cands), budget.ram_bytes, lambda v: f"{limit_figure(v)} B"),
            "macs": (min(c.macs for c in cands), budget.macs, lambda v: f"{limit_figure(v)} MACs"),
            "latency": (min((c.latency_ms for c in cands if c.latency_ms is not None), default=None),
                        budget.latency_ms, lambda v: f"{v:.3g} ms{where}"),
            "params": (min(c.params for c in cands), max_params, lambda v: f"{v:,} parameters")}
    alone = [k for k, (low, limit, _) in best.items() if low is not None and limit is not None and low > limit]
    head = f"No student fits the budget: none of {len(cands)} candidates meets "
    if not alone:
        smallest = min(cands, key=lambda c: (c.flash_bytes, c.ram_bytes, c.macs))
        return (head + "all the limits at once. The smallest, " + smallest.arch.describe() + f", needs flash "
                f"{smallest.flash_bytes:,} B{_tables(smallest)}, RAM {smallest.ram_bytes:,} B{_caches(smallest)} and "
                f"{smallest.macs:,} "
                "MACs; loosen one "
                "of the limits.")
    parts = []
    for k in alone:
        low, limit, fmt = best[k]
        if k == "params":
            parts.append(f"the params limit (half the teacher's parameters, {limit:,.0f}): the smallest candidate has "
                         f"{low:,}; the teacher is too small to distill into any candidate of these families "
                         "(choose a smaller --student or --family)")
        else:
            tables = _tables(cands[0]) if k == "flash" else (_caches(cands[0]) if k == "ram" else "")
            hint = flash_hint if k == "flash" and tables else ""
            parts.append(f"the {k} limit ({fmt(limit)}): the best candidate needs {fmt(low)}{tables}, "
                         f"so a {k} budget of at least that would work{hint}")
    return head + "; ".join(parts) + "."


def _caches(c: Candidate) -> str:
    """A note on a RAM figure, ' (the KV-cache step, its caches included)', for a search that costed that step."""
    return " (the KV-cache step, its key / value caches included)" if c.step == "kv-cache" else ""


def _tables(c: Candidate) -> str:
    """A note on a flash figure, e.g. ' (model file + 25,245 B of tokenizer tables)', where tables count; else ''."""
    return f" (model file + {c.tokenizer_bytes:,} B of tokenizer tables)" if c.tokenizer_bytes else ""
