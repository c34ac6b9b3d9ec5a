"""Trainer overhead and teacher-cache speed-up, measured side by side in one run.

    python tools/bench_trainer.py [--data builtin:digits|builtin:fashion-mnist] [--epochs 3] [--repeats 3]

1. Throughput (samples/s) of edgedistill's `fit` (KD objective, progress callback, per-epoch validation and
   checkpoint) against a plain hand-written PyTorch loop over the same student, data, batch size and optimizer.
   The two alternate `--repeats` times and the median of each is reported (the machine is shared and noisy).
2. The teacher pass over the transfer set: first run (cache miss, the teacher runs) vs second run (cache hit).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from edgedistill.data import make_splits, read_dataset
from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit
from edgedistill.students import StudentArch, build_student
from edgedistill.teachers import LogitCache, TeacherSpec, load_teacher


def plain_loop(model, x, y, t_logits, settings: TrainSettings, T: float, alpha: float) -> float:
    """The loop a user would write by hand: shuffle, forward, KD + CE, backward, step. Returns samples/s."""
    opt = torch.optim.AdamW(model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(settings.seed)
    t0 = time.perf_counter()
    for _ in range(settings.epochs):
        model.train()
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), settings.batch_size):
            idx = order[i : i + settings.batch_size]
            s = model(x[idx])
            kd = F.kl_div(F.log_softmax(s / T, 1), F.log_softmax(t_logits[idx] / T, 1), reduction="batchmean",
                          log_target=True) * T * T
            loss = alpha * kd + (1 - alpha) * F.cross_entropy(s, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return settings.epochs * len(x) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="builtin:digits")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--width", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(2)
    s = make_splits(read_dataset(args.data))
    teacher = load_teacher(TeacherSpec(args.data))

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        logits = LogitCache(Path(tmp)).get(teacher, s.transfer.x)
        miss = time.perf_counter() - t0
        t0 = time.perf_counter()
        LogitCache(Path(tmp)).get(teacher, s.transfer.x)
        hit = time.perf_counter() - t0

    x, y = torch.from_numpy(s.transfer.x), torch.from_numpy(s.transfer.y)
    vx, vy = torch.from_numpy(s.val.x), torch.from_numpy(s.val.y)
    settings = TrainSettings(epochs=args.epochs, batch_size=128, lr=3e-3, schedule="constant", seed=0)
    torch.manual_seed(0)
    init = build_student(StudentArch("cnn", args.width, 3), s.input_shape, s.num_classes, s.normalizer)
    data = TrainSet(x, y, logits[None])
    ours, steps, plain = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            res = fit(copy.deepcopy(init), data, vx, vy, Objective(True, "kd", 4.0, 0.9), settings,
                      checkpoint=Path(tmp) / f"c{r}.pt", progress=lambda k, loss, val: None)
            ours.append(len(data) * args.epochs / sum(h.seconds for h in res.history))  # incl. validation
            steps.append(res.samples_per_s)  # training steps only
            plain.append(plain_loop(copy.deepcopy(init), x, y, logits, settings, 4.0, 0.9))
    o, st, p = statistics.median(ours), statistics.median(steps), statistics.median(plain)
    print(f"data {args.data}: {len(x)} transfer samples, student cnn width {args.width}, {args.epochs} epochs, "
          f"batch 128, {args.repeats} alternating repeats")
    print(f"plain hand-written loop : {p:10.0f} samples/s (median of {', '.join(f'{v:.0f}' for v in plain)})")
    print(f"edgedistill fit, steps  : {st:10.0f} samples/s (median of {', '.join(f'{v:.0f}' for v in steps)})")
    print(f"edgedistill fit, total  : {o:10.0f} samples/s (median of {', '.join(f'{v:.0f}' for v in ours)}); "
          "adds per-epoch validation, best-weights copy and checkpoint")
    print(f"trainer overhead        : {100 * (p / st - 1):+.1f}% on training steps, {100 * (p / o - 1):+.1f}% end to end "
          "(goal <= 10%)")
    print(f"teacher pass            : {miss:.2f} s on a cache miss, {hit:.3f} s on a hit "
          f"-> {miss / max(hit, 1e-9):.0f}x faster second run")


if __name__ == "__main__":
    main()
