"""Every student family through the graph-level int8 core on offline data: cost, int8 fidelity on each runtime,
accuracy, and the price of quantization-aware training.

    nice -n 10 python tools/bench_int8_families.py [--epochs 3] [--train 8000] [--families resnet8,mbv3]

Images: Fashion-MNIST (/usr/share/datasets/fashion-mnist, 1×28×28); signals: MNIST-1D (the `mnist1d` package's
generator, 1×40, no download). Each family at about its MLPerf Tiny reference width / depth (the input is the
data set's, not the reference's 32×32×3 / 96×96×3). Per family: float training (Adam, cross-entropy on labels, no
teacher: the benchmark is about int8, not distillation), then calibration and one epoch of QAT, then int8 TFLite
and int8 ONNX exports. Printed per family:

* params (deployed: BN folded, normaliser included), int8 .tflite bytes, predicted arena (students/cost.py) and
  TFLite Micro's recording allocator;
* top-1 agreement with the QAT model and the largest logit difference in output steps on onnxruntime, LiteRT
  (XNNPACK), LiteRT's reference kernels and TFLite Micro (the last two against the same QAT model with
  rounding="tflm", quantize/mcu.py; TFLite Micro on the first 300 test samples: it runs one sample per call);
* test accuracy of the float model and of the int8 file (LiteRT XNNPACK): after `--epochs` of float training, the
  last epoch at a tenth of the rate runs twice from the same weights, once in float and once as QAT;
* QAT step time / float step time over that epoch (forward + backward + Adam step, batch 128, one thread, medians;
  the two models step in turn on the same batches, so both see the same load).

Results are quoted in docs/students.md. A few minutes on one core with the defaults.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgedistill.data import Normalizer
from edgedistill.data.idx import read_idx
from edgedistill.distill.trainer import predict_logits
from edgedistill.export.onnx_export import export_onnx_int8
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.runtimes import LiteRTReferenceRunner, LiteRTRunner, OnnxRunner, TFLMRunner
from edgedistill.students import StudentArch, build_student
from edgedistill.students.cost import graph_cost

FASHION = Path("/usr/share/datasets/fashion-mnist")
FAMILIES = [  # (family, data set, width, depth): MLPerf Tiny reference knobs where one exists
    ("resnet8", "fashion", 16, 3), ("mobilenetv1", "fashion", 8, 5), ("mbv3", "fashion", 16, 3),
    ("dscnn", "fashion", 64, 4), ("cnn", "fashion", 32, 3), ("mlp", "mnist1d", 64, 3),
    ("resnet8_1d", "mnist1d", 16, 3), ("mbv3_1d", "mnist1d", 16, 3), ("conv1d", "mnist1d", 16, 3),
]
BATCH = 128
TFLM_SAMPLES = 300


def load(name: str, n_train: int, n_test: int = 1000):
    """(x_train, y_train, x_test, y_test) as float32 / int64 tensors."""
    if name == "fashion":
        x = read_idx(FASHION / "train-images-idx3-ubyte.gz")[: n_train].astype(np.float32)[:, None] / 255
        y = read_idx(FASHION / "train-labels-idx1-ubyte.gz")[: n_train].astype(np.int64)
        xt = read_idx(FASHION / "t10k-images-idx3-ubyte.gz")[: n_test].astype(np.float32)[:, None] / 255
        yt = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz")[: n_test].astype(np.int64)
    else:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = 10_000
        d = make_dataset(args)
        x, y = d["x"].astype(np.float32)[:, None], d["y"].astype(np.int64)  # N×1×40
        xt, yt = d["x_test"].astype(np.float32)[:n_test, None], d["y_test"].astype(np.int64)[:n_test]
        x, y = x[:n_train], y[:n_train]
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in (x, y, xt, yt)]


def train(models: list, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float) -> list[list[float]]:
    """Adam on cross-entropy for each model in lockstep (the same batches; one step of each in turn, so the
    models' step times see the same load on a shared machine); returns each model's step wall times (s)."""
    opts = [torch.optim.Adam(m.parameters(), lr=lr) for m in models]
    times: list[list[float]] = [[] for _ in models]
    g = torch.Generator().manual_seed(0)
    for m in models:
        m.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(BATCH):
            for m, opt, t in zip(models, opts, times):
                t0 = time.perf_counter()
                opt.zero_grad()
                F.cross_entropy(m(x[idx]), y[idx]).backward()
                opt.step()
                t.append(time.perf_counter() - t0)
    for m in models:
        m.eval()
    return times


def _agreement(ref: np.ndarray, out: np.ndarray, step: float) -> tuple[float, float]:
    return float((ref.argmax(1) == out.argmax(1)).mean()), float(np.abs(ref - out).max() / step)


def bench(family: str, data: str, width: int, depth: int, epochs: int, n_train: int, tmp: Path) -> dict:
    x, y, xt, yt = load(data, n_train)
    if family == "mlp":
        x, xt = x.flatten(1), xt.flatten(1)
    shape = tuple(x.shape[1:])
    mean = x.mean(0) if len(shape) == 1 else x.transpose(0, 1).flatten(1).mean(1)
    std = x.std(0) if len(shape) == 1 else x.transpose(0, 1).flatten(1).std(1)
    norm = Normalizer(mean.tolist(), (std + 1e-6).tolist(), "feature" if len(shape) == 1 else "channel")
    torch.manual_seed(0)
    model = build_student(StudentArch(family, width, depth), shape, 10, norm)
    train([model], x, y, epochs, 2e-3)
    # The last epoch at a tenth of the rate twice from the same weights: float (the reference accuracy) and QAT
    q = calibrate(to_quant_student(model.eval()), x[:512])
    float_steps, qat_steps = train([model, q], x, y, 1, 2e-4)
    float_acc = float((predict_logits(model, xt).argmax(1) == yt).float().mean())
    tfl = export_tflite_int8(q, shape, tmp / f"{family}.tflite").path
    onx = export_onnx_int8(q, shape, 10, tmp / f"{family}.onnx").path
    step = float(q.output_q.scale)
    ref = predict_logits(q, xt).numpy()
    q.set_rounding("tflm")
    ref_mcu = predict_logits(q, xt).numpy()
    q.set_rounding("float")
    xn = xt.numpy()
    litert = LiteRTRunner(tfl).predict_batched(xn, batch=100)
    runtimes = {
        "onnxruntime": _agreement(ref, OnnxRunner(onx).predict_batched(xn, batch=100), step),
        "litert": _agreement(ref, litert, step),
        "litert-ref": _agreement(ref_mcu, LiteRTReferenceRunner(tfl).predict_batched(xn, batch=100), step),
        "tflm": _agreement(ref_mcu[:TFLM_SAMPLES], TFLMRunner(tfl).predict(xn[:TFLM_SAMPLES]), step),
    }
    cost = graph_cost(model.eval(), shape)
    return dict(family=f"{family}({width},{depth})", input="×".join(map(str, shape)), params=cost.params,
                tflite_bytes=tfl.stat().st_size, arena_pred=cost.arena_bytes,
                arena_tflm=tflm_arena(tfl).activation_bytes, runtimes=runtimes, float_acc=float_acc,
                int8_acc=float((litert.argmax(1) == yt.numpy()).mean()),
                ratio=statistics.median(qat_steps) / statistics.median(float_steps),
                float_ms=1e3 * statistics.median(float_steps), qat_ms=1e3 * statistics.median(qat_steps))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train", type=int, default=8000)
    ap.add_argument("--families", default=",".join(f for f, *_ in FAMILIES))
    args = ap.parse_args()
    torch.set_num_threads(1)
    wanted = args.families.split(",")
    print("| student | input | params | int8 B | arena pred / TFLM B | agree (max steps): ORT · LiteRT · "
          "LiteRT ref · TFLM | float acc | int8 acc | QAT step ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as d:
        for family, data, width, depth in FAMILIES:
            if family not in wanted:
                continue
            r = bench(family, data, width, depth, args.epochs, args.train, Path(d))
            agree = " · ".join(f"{a:.1%} ({s:.0f})" for a, s in r["runtimes"].values())
            print(f"| {r['family']} | {r['input']} | {r['params']:,} | {r['tflite_bytes']:,} | "
                  f"{r['arena_pred']:,} / {r['arena_tflm']:,} | {agree} | {r['float_acc']:.1%} | "
                  f"{r['int8_acc']:.1%} | {r['ratio']:.2f}× ({r['qat_ms']:.1f} / {r['float_ms']:.1f} ms) |",
                  flush=True)


if __name__ == "__main__":
    main()
