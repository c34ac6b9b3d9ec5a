"""The transformer student's QAT step against its float step, on the trainer path the pipeline runs.

The student is the one `edgedistill build --family transformer` picks for the data and target (the search under
the target's budget); the batch is the sized schedule's. A float step is `distill.trainer.fit` on the float
student, a QAT step `quantize.qat.qat_distill` (calibrate, then fit the int8-simulating graph with tracked ranges)
computing the target runtime's integer arithmetic. Each step is timed between the trainer's per-step progress
calls (wall clock and process CPU time, one torch thread); the first steps of every run are warm-up. Float and QAT
runs alternate, so a busy machine slows both alike.

Where the QAT step's time goes: torch.profiler's top ops, and the forward time of each int8 op kind (quantize/ops.py,
attention_ops.py) with the share spent computing the runtime's exact integers (`_int_output`).
"""

from __future__ import annotations

import copy
import statistics
import time
from collections import defaultdict
from dataclasses import replace

import torch

from edgedistill.budget import Budget
from edgedistill.config import load_config
from edgedistill.distill.schedule import resolve_config
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit
from edgedistill.pipeline.int8 import qat_rounding
from edgedistill.pipeline.search import choose_student
from edgedistill.pipeline.text_inputs import teacher_input_tag, teacher_view
from edgedistill.quantize.calibrate import calibrate, calibration_indices
from edgedistill.quantize.graph import to_quant_student
from edgedistill.quantize.ops import GraphOp
from edgedistill.quantize.qat import qat_distill
from edgedistill.students import build_student
from edgedistill.targets import load_target
from edgedistill.teachers import LogitCache

REFERENCE = Objective(teacher=True, loss="kd", temperature=1.0, alpha=1.0)  # the recipe a build keeps by default


def build_setup(inputs, data: str, target_name: str, steps: int) -> dict:
    """The student `build --family transformer` chooses, its sized schedule, and a transfer subset of `steps`
    batches with the teacher's logits (computed here, not cached)."""
    config = load_config(None, {"data": {"source": data}, "student": {"family": "transformer"},
                                "train": {"epochs": 4}, "quant": {"qat": True, "qat_epochs": 1,
                                                                  "qat_max_samples": 20000},
                                "target": target_name, "out": "runs/unused"})
    target = load_target(target_name)
    found = choose_student(config, Budget.for_target(target, Budget.parse("")), inputs, target)
    s = inputs.splits
    config, schedule = resolve_config(config, len(s.transfer))
    config = config.model_copy(update={"augment": config.augment.resolved(len(s.transfer), text=True)})
    settings = TrainSettings.of(config.train, config.augment.recipe())
    n = steps * settings.batch_size
    x = torch.from_numpy(s.transfer.x[:n])
    teacher = inputs.teachers[0]
    members = LogitCache(enabled=False).get(teacher, s.transfer.x[:n], teacher_input_tag("raw", s), teacher_view(s))
    return {"arch": found.chosen.arch, "params": found.chosen.params, "schedule": schedule.to_dict(),
            "settings": replace(settings, epochs=1), "quant": config.quant, "rounding": qat_rounding(
                config.quant.rounding, target),
            "data": TrainSet(x, torch.from_numpy(s.transfer.y[:n]), members[None]),
            "val": (torch.from_numpy(s.val.x[:256]), torch.from_numpy(s.val.y[:256])),
            "student": lambda: _student(found.chosen.arch, s)}


def _student(arch, s) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_student(arch, s.input_shape, s.num_classes, s.normalizer, s.vocab_size)


class _Clock:
    """The trainer's progress callback: a (wall, CPU) stamp after every optimizer step."""

    def __init__(self):
        self.stamps: list[tuple[float, float]] = []

    def __call__(self, samples: int, loss: float, val) -> None:
        if samples:
            self.stamps.append((time.perf_counter(), time.process_time()))

    def steps(self, warmup: int) -> list[tuple[float, float]]:
        s = self.stamps
        return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(s, s[1:])][warmup:]


def _qat(setup: dict, model: torch.nn.Module, rounding: str, progress, exact_share: float = 1.0) -> None:
    q, data = setup["quant"], setup["data"]
    idx = torch.from_numpy(calibration_indices(len(data), q.calibration_size, 0))
    qat_distill(model, data, data.x[idx], *setup["val"], REFERENCE, setup["settings"], method=q.calibration,
                lr_scale=q.qat_lr_scale, rounding=rounding, input_head=q.input_head, ranges=q.ranges,
                progress=progress, exact_share=exact_share)


def step_times(setup: dict, roundings: tuple[str, ...], warmup: int, rounds: int) -> dict:
    """Per-step wall and CPU medians (ms) of the float step and of the QAT step in each rounding, runs alternating
    `rounds` times; the QAT runs start from the float student trained by the run before them. A rounding that
    computes a runtime's integers is timed twice: every step computing them ("qat_R", quant.exact_share = 1) and
    none ("qat_R_fake", exact_share = 0: torch's fake quantization on the same graph); "qat_R_scheduled" is a QAT
    run's mean step at the configured exact_share, (1 − share) · fake + share · exact."""
    got = defaultdict(list)
    model = setup["student"]()
    for _ in range(rounds):
        clock = _Clock()
        fit(model, setup["data"], *setup["val"], REFERENCE, setup["settings"], progress=clock)
        got["float"] += clock.steps(warmup)
        for r in roundings:
            for share, label in ((1.0, f"qat_{r}"), (0.0, f"qat_{r}_fake")):
                if share == 0.0 and r == "float":
                    continue
                clock = _Clock()
                _qat(setup, model, r, clock, share)
                got[label] += clock.steps(warmup)
    out = {k: {"wall_ms": statistics.median(w for w, _ in v) * 1e3, "cpu_ms": statistics.median(c for _, c in v) * 1e3,
               "steps": len(v)} for k, v in got.items()}
    share = setup["quant"].exact_share
    for r in roundings:
        if f"qat_{r}_fake" in out:
            exact, fake = out[f"qat_{r}"], out[f"qat_{r}_fake"]
            out[f"qat_{r}_scheduled"] = {k: (1 - share) * fake[k] + share * exact[k] for k in ("wall_ms", "cpu_ms")}
            out[f"qat_{r}_scheduled"].update(steps=0, exact_share=share)
    for k in out:
        out[k]["ratio_wall"] = out[k]["wall_ms"] / out["float"]["wall_ms"]
        out[k]["ratio_cpu"] = out[k]["cpu_ms"] / out["float"]["cpu_ms"]
    return out


def _leaf_ops(qmodel) -> list[GraphOp]:
    return [m for m in qmodel.modules() if isinstance(m, GraphOp)
            and not any(isinstance(c, GraphOp) for c in m.children())]


def _op_timers(qmodel) -> dict:
    """This thread's CPU time in each leaf int8 op's forward, by kind, and the part of it in `_int_output`."""
    fwd, exact, starts = defaultdict(float), defaultdict(float), {}
    for op in _leaf_ops(qmodel):
        key = f"{type(op).__name__}:{getattr(op, 'kind', '')}"
        op.register_forward_pre_hook(lambda m, a: starts.__setitem__(id(m), time.thread_time()))
        op.register_forward_hook(lambda m, a, o, key=key: fwd.__setitem__(
            key, fwd[key] + time.thread_time() - starts[id(m)]))
        if hasattr(op, "_int_output"):
            inner = op._int_output

            def timed(*args, _inner=inner, _key=key):
                t0 = time.thread_time()
                out = _inner(*args)
                exact[_key] += time.thread_time() - t0
                return out
            op._int_output = timed
    return {"forward": fwd, "exact": exact}


def _prepared(setup: dict, model, label: str, rounding: str):
    """The float student, or its int8 graph calibrated and tracking its ranges as qat_distill prepares it; and the
    learning rate the pipeline trains it at."""
    q, data, settings = setup["quant"], setup["data"], setup["settings"]
    if label == "float":
        return model, settings
    idx = torch.from_numpy(calibration_indices(len(data), q.calibration_size, 0))
    net = calibrate(to_quant_student(copy.deepcopy(model).eval(), rounding, q.input_head), data.x[idx],
                    q.calibration)
    net.set_tracking(q.ranges == "ema")
    return net, replace(settings, lr=settings.lr * q.qat_lr_scale)


def profile_qat(setup: dict, rounding: str, steps: int, top: int = 12) -> dict:
    """torch.profiler's top ops by self CPU over `steps` float and QAT steps (ms per step, two warm-up steps
    included), and, in a second QAT run without the profiler, each int8 op kind's forward CPU time and its
    exact-integer part (ms per step, over the `steps` after two warm-up steps)."""
    from torch.profiler import ProfilerActivity, profile

    warm = 2
    n = (steps + warm) * setup["settings"].batch_size
    data = setup["data"]
    sub = TrainSet(data.x[:n], data.y[:n], data.teacher_members[:, :n])
    val = tuple(v[:8] for v in setup["val"])  # a token validation pass
    model = setup["student"]()
    out = {}
    for label in ("float", "qat"):
        net, settings = _prepared(setup, model, label, rounding)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            fit(net, sub, *val, REFERENCE, settings)
        rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:top]
        k = steps + warm
        out[label] = {"top_ops": [{"op": e.key, "self_cpu_ms_per_step": e.self_cpu_time_total / 1e3 / k,
                                   "calls_per_step": e.count / k} for e in rows]}
    net, settings = _prepared(setup, model, "qat", rounding)
    timers = _op_timers(net)
    clock = _Clock()

    def progress(samples, loss, v):  # the op timers count from the end of the warm-up steps
        clock(samples, loss, v)
        if samples and len(clock.stamps) == warm:
            timers["forward"].clear()
            timers["exact"].clear()
    fit(net, sub, *val, REFERENCE, settings, progress=progress)
    cpu = [c for _, c in clock.steps(warm - 1)]
    out["qat"]["cpu_ms_per_step"] = statistics.median(cpu) * 1e3
    out["qat"]["forward_by_op"] = {k: {"cpu_ms_per_step": v * 1e3 / steps,
                                       "exact_integers_cpu_ms_per_step": timers["exact"].get(k, 0.0) * 1e3 / steps}
                                   for k, v in sorted(timers["forward"].items(), key=lambda kv: -kv[1])}
    return out


def run(inputs, data: str, target: str, steps: int, warmup: int, rounds: int, profile_steps: int,
        extra_roundings: tuple[str, ...] = ()) -> dict:
    setup = build_setup(inputs, data, target, max(warmup + steps + 1, profile_steps + 2))
    roundings = (setup["rounding"], *[r for r in extra_roundings if r != setup["rounding"]])
    return {"student": setup["arch"].describe(), "params": setup["params"], "batch": setup["settings"].batch_size,
            "schedule": setup["schedule"], "deployed_rounding": setup["rounding"], "threads": torch.get_num_threads(),
            "steps": step_times(setup, roundings, warmup, rounds),
            "profile_steps": profile_steps, "profile": profile_qat(setup, setup["rounding"], profile_steps)}

