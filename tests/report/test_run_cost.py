"""The report's "Cost of this run": stages read from metrics.json in pipeline order, the data loader's share measured
by the trainer, peak memory read from the kernel."""

from __future__ import annotations

import resource

import numpy as np
import torch

from edgedistill.report.run_cost import run_cost, run_cost_lines
from edgedistill.util import peak_rss_bytes


def test_cost_reads_every_stage_and_leaves_out_what_was_not_run():
    metrics = {"timings": {"teacher_logits_s": 2.0, "distill_s": 30.0, "baseline_s": 20.0, "report_s": 4.0,
                           "total_s": 70.0, "peak_rss_bytes": 3 * 2**30, "teacher_cache_hits": 5},
               "int8": {"train_s": 9.0, "export_s": 1.5, "parity_s": 2.5},
               "student": {"samples_per_s": 1234.5, "data_share": 0.125}}
    c = run_cost(metrics)
    assert list(c["stages"]) == ["teacher outputs", "float distillation", "no-teacher twin", "QAT (student and twin)",
                                 "export", "parity", "profile and report"]  # no tuning ran: no row for it
    assert c["stages"]["QAT (student and twin)"] == 9.0 and c["total_s"] == 70.0
    text = "\n".join(run_cost_lines(c))
    assert "wall time: 70 s (teacher outputs 2 s, float distillation 30 s" in text
    assert c["rest_s"] == 1.0 and "profile and report 4 s; reading data, checks and writing files 1 s)" in text
    assert run_cost({"timings": {"total_s": 10.0, "distill_s": 30.0}})["rest_s"] is None  # stages overlapping: no rest
    assert "1,234 samples/s; assembling batches took 12% of the training time" in text
    assert "3,072 MiB resident" in text
    assert run_cost_lines(None) == [] and run_cost_lines(run_cost({})) == []  # an old report: no section


def test_peak_rss_agrees_with_getrusage():
    before = peak_rss_bytes()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # 64 MiB touched: the peak can only grow
    after = peak_rss_bytes()
    assert after >= before > 0
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux: an independent reading
    assert abs(after - ru) <= 8 * 2**20, (after, ru)
    del block


def test_fit_records_the_time_spent_assembling_batches():
    from edgedistill.data.augment import Augment
    from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit

    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(256, 1, 8, 8, generator=g), torch.randint(0, 3, (256,), generator=g)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    settings = TrainSettings(epochs=2, batch_size=32, lr=1e-2, augment=Augment())
    res = fit(model, TrainSet(x, y, None), x[:64], y[:64], Objective(teacher=False), settings)
    assert 0 < res.data_s < res.seconds
