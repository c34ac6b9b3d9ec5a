"""What the run itself cost: wall time per stage, training throughput, the data loader's share of step time and the
process's peak memory (report.json's `cost`, from metrics.json's `timings` and the student's training record).

Figures are this machine's: wall-clock seconds (time.perf_counter), samples per second of the float distillation
(training steps only, evaluation excluded), `data_share` the fraction of those training seconds spent assembling
batches (indexing the data, decoding stored uint8 / memory-mapped samples to float, augmentation; the teacher's
forward pass and the student's step are the rest; with DataLoader workers, `workers`, only the time a step waited
for its batch), and peak resident memory of the whole process in bytes (Linux
VmHWM), read when the run finished; the teacher cache's form (every logit, or the top k and the rest's mass) and
bytes on disk; the samples' form (in memory, or memory-mapped; an .npz converted once into a folder: pipeline/
data_form.py)."""

from __future__ import annotations

# (metrics.json section, key) -> the stage's name in the report, in pipeline order
STAGES = {("timings", "teacher_logits_s"): "teacher outputs", ("timings", "tune_s"): "auto T / α search",
          ("timings", "distill_s"): "float distillation", ("timings", "baseline_s"): "no-teacher twin",
          ("int8", "train_s"): "QAT (student and twin)", ("int8", "layers_s"): "per-layer int8 check",
          ("int8", "export_s"): "export", ("int8", "parity_s"): "parity", ("timings", "report_s"): "profile and report"}


def run_cost(metrics: dict) -> dict:
    """`cost` of report.json: {total_s, stages: {name: s}, rest_s, samples_per_s, data_share, workers, peak_rss_bytes,
    teacher_cache, data_form} (None where the run did not record a figure). `rest_s`: the wall time no stage accounts for (reading and splitting the
    data, the input checks, writing files), total_s minus the stages; None when they do not fit in the total."""
    t = metrics.get("timings") or {}
    student = metrics.get("student") or {}
    stages = {name: (metrics.get(sec) or {})[k] for (sec, k), name in STAGES.items()
              if isinstance((metrics.get(sec) or {}).get(k), (int, float))}
    total = t.get("total_s")
    rest = total - sum(stages.values()) if isinstance(total, (int, float)) else None
    return {"total_s": total, "stages": stages, "rest_s": rest if rest is not None and rest >= 0 else None,
            "samples_per_s": student.get("samples_per_s"), "data_share": student.get("data_share"),
            "workers": student.get("workers"),
            "peak_rss_bytes": t.get("peak_rss_bytes"), "teacher_cache": _cache(metrics.get("teacher_cache")),
            "data_form": (metrics.get("data") or {}).get("form")}


def _cache(record: dict | None) -> dict | None:
    """The teacher cache's form (teachers/cache_form.py) and its bytes on disk, from metrics.json's teacher_cache."""
    if not record or not record.get("form"):
        return None
    form = record["form"]
    return {"kind": form["kind"], "k": form.get("k"), "bytes": record.get("bytes"),
            "bytes_per_sample": form.get("bytes_per_sample"), "full_bytes_per_sample": form.get("full_bytes_per_sample"),
            "tail_mass": form.get("tail_mass"), "reason": form.get("reason")}


def cache_line(cache: dict | None) -> list[str]:
    """One Markdown line: the teacher cache's form, its size and, for top-k, the teacher's mass outside the k."""
    if not cache:
        return []
    size = f"{cache['bytes'] / 2**20:,.1f} MiB on disk" if cache.get("bytes") is not None else "size unknown"
    if cache["kind"] != "top-k":
        return [f"- teacher cache: every class's logit ({cache['bytes_per_sample']:,} bytes a sample, {size})"]
    tail = ", ".join(f"{v:.1%} at {t.replace('T=', 'T = ')}" for t, v in (cache.get("tail_mass") or {}).items())
    ratio = cache["full_bytes_per_sample"] / cache["bytes_per_sample"]
    return [f"- teacher cache: top {cache['k']} logits and the rest's mass ({cache['bytes_per_sample']:,} bytes a "
            f"sample, {ratio:.1f}× smaller than every logit; {size})"
            + (f"; the teacher's mass outside its top {cache['k']}: {tail}" if tail else "")]


def data_form_line(form: dict | None) -> list[str]:
    """One Markdown line: how the training samples were read, and an .npz's conversion (converted or reused)."""
    if not form:
        return []
    conv = form.get("npz_converted") or form.get("folder_converted")
    if not conv:
        return [f"- samples: {form['samples']}"]
    how = "an earlier run's folder reused" if conv["reused"] else "converted once"
    if "npz_converted" in form:
        return [f"- samples: {form['samples']}; the .npz's {conv['array_bytes'] / 2**20:,.1f} MiB of arrays as a "
                f".npy folder in the cache ({how}, {conv['seconds']:,.1f} s with hashing)"]
    return [f"- samples: {form['samples']}; the image folder's {conv['images']:,} images decoded to "
            f"{conv['array_bytes'] / 2**20:,.1f} MiB of float32 in a .npy folder in the cache ({how}, "
            f"{conv['seconds']:,.1f} s with listing)"]


def run_cost_lines(cost: dict | None) -> list[str]:
    """Markdown lines of the report's "Cost of this run" section (nothing for a report without `cost`)."""
    if not cost:
        return []
    out = []
    if cost.get("total_s") is not None:
        parts = ", ".join(f"{name} {s:,.0f} s" for name, s in cost["stages"].items())
        if parts and cost.get("rest_s") is not None:
            parts += f"; reading data, checks and writing files {cost['rest_s']:,.0f} s"
        out.append(f"- wall time: {cost['total_s']:,.0f} s" + (f" ({parts})" if parts else ""))
    if cost.get("samples_per_s"):
        by = f" ({cost['workers']} DataLoader workers: the time steps waited for them)" if cost.get("workers") else ""
        share = (f"; assembling batches took {cost['data_share']:.0%} of the training time{by}"
                 if cost.get("data_share") is not None else "")
        out.append(f"- float distillation: {cost['samples_per_s']:,.0f} samples/s{share}")
    if cost.get("peak_rss_bytes"):
        out.append(f"- peak memory: {cost['peak_rss_bytes'] / 2**20:,.0f} MiB resident (the whole process)")
    out += data_form_line(cost.get("data_form"))
    out += cache_line(cost.get("teacher_cache"))
    return ["", "## Cost of this run (this machine)", ""] + out if out else []
