"""Which form the classifier's teacher cache takes: every class's logit (teachers/logit_store.py), or the top k with
the rest's log mass (teachers/topk_store.py). Chosen automatically from the number of classes and recorded
(metrics.json's `teacher_cache.form`, one line of the report).

The rule (`choose_form`): the top-k form when

* the full float16-shifted row (4 + 2K bytes a sample) costs at least MIN_SAVING = 4 times the top-k record
  (4 + 4k + 4 · temperatures bytes: 148 for k = 32 and the search's four temperatures), i.e. K >= 294 classes at
  k = 32 (302 with a fifth, fixed temperature): the cache shrinks by 75 % or more (13× at K = 1,000, 130× at K = 10,000); below that the full row is a few hundred
  bytes a sample and keeps every class's soft target, so nothing is dropped for a small saving;
* the soft loss is Hinton's KD (`kd`, the default): the top-k loss normalises teacher and student over the same
  k + 1 outcomes (distill/lm_losses.top_k_kd); decoupled KD, standardised KD and logit MSE read every class's logit
  (the target class's non-target distribution, the row's mean and deviation, each logit), and `loss = auto` tries
  them, so those keep the full form;
* there is one teacher: an ensemble's soft target is a mean of the members' softmaxes at the run's temperature
  (teachers/ensemble.py), and the members' top-k supports differ.

k = TOPK_K = 32, from the store's error bound. Over its k + 1 outcomes the top-k store's soft targets are within
2^-11 (k + 2) / e of float32's (topk_store.topk_bound): 6.1e-3 at k = 32, whatever K is; the full float16 row's
stated bound grows with the classes, 2^-11 (K + 1) / e (logit_store.soft_target_bound): 6.1e-3 at K = 32, 0.18 at
K = 1,000. So k = 32 keeps the stated bound of a 32-class full cache at any K, and the cache's size fixed in K; what
the top k does not keep is how the teacher shares the rest's mass among the other classes, and that mass is
measured and recorded at every stored temperature (`TopKTable.tail_mass`) so a run shows what it gave up.

Temperatures: the rest's mass at T cannot be recovered from the top k at another T, so the store keeps it at every
temperature the run may train with: the automatic search's grid for `kd` (distill/tuning.LOSS_TEMPERATURES, read
from there so the two cannot drift apart) and a temperature the user fixed. Both are part of the cache key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edgedistill.teachers.topk_store import topk_bound, topk_bytes

TOPK_K = 32
MIN_SAVING = 4.0  # the full row must cost at least this many times the top-k record
TOPK_LOSSES = ("kd",)  # soft losses the top-k form can train (distill/losses.TOPK_SOFT_LOSSES)


def full_row_bytes(num_classes: int) -> int:
    """Bytes a sample costs in the full float16-shifted cache (teachers/logit_store.py)."""
    return 4 + 2 * num_classes


def stored_temperatures(temperature, grid: tuple[float, ...]) -> tuple[float, ...]:
    """The temperatures a top-k cache keeps the rest's mass at: the automatic search's `kd` grid (`grid`, which the
    caller reads from distill/tuning.LOSS_TEMPERATURES: one source for both), plus a fixed T."""
    out = {float(t) for t in grid}
    if temperature != "auto":
        out.add(float(temperature))
    return tuple(sorted(out))


@dataclass(frozen=True)
class CacheForm:
    """`kind`: "full" (every logit) or "top-k"; `k` and `temperatures` for top-k (else None / ()); `reason`: why,
    in one sentence; `bytes_per_sample` of the chosen form and of the full row."""

    kind: str
    reason: str
    bytes_per_sample: int
    full_bytes_per_sample: int
    k: int | None = None
    temperatures: tuple[float, ...] = ()
    bound: float | None = None  # the stated |Δp| bound of the top-k soft targets

    def to_dict(self) -> dict:
        return asdict(self)


def choose_form(num_classes: int, loss: str, temperature, teachers: int, grid: tuple[float, ...]) -> CacheForm:
    """The cache form for a run (module docstring). `loss`: the config's soft loss (a name or "auto");
    `temperature`: a float or "auto"; `teachers`: how many teachers are combined; `grid`: the automatic search's
    temperatures for `kd` (distill/tuning.LOSS_TEMPERATURES["kd"])."""
    full = full_row_bytes(num_classes)
    temps = stored_temperatures(temperature, grid)
    k = min(TOPK_K, num_classes)
    top = topk_bytes(num_classes, k, len(temps))
    if full < MIN_SAVING * top:
        return CacheForm("full", f"{num_classes} classes: the full row ({full} bytes a sample) is under "
                         f"{MIN_SAVING:g}× the top-{k} record ({top} bytes)", full, full)
    if loss not in TOPK_LOSSES:
        return CacheForm("full", f"the soft loss {loss!r} reads every class's logit; only "
                         f"{', '.join(TOPK_LOSSES)} trains from the top {k}", full, full)
    if teachers != 1:
        return CacheForm("full", f"{teachers} teachers are combined at the run's temperature; the top-k form keeps "
                         "one teacher's top k", full, full)
    return CacheForm("top-k", f"{num_classes} classes: the top-{k} record ({top} bytes a sample) is "
                     f"{full / top:.1f}× smaller than the full row ({full} bytes)", top, full, k, temps, topk_bound(k))
