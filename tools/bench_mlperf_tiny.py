"""Estimator error on a microcontroller against published MLPerf Tiny latencies (ground truth we cannot measure here).

    python tools/bench_mlperf_tiny.py

Builds the MLPerf Tiny reference model *shapes* (latency does not depend on the weights): keyword spotting DS-CNN
(49x10x1 input, conv 64@10x4/2, 4 x depthwise-separable 64, avg-pool, FC 12) and visual wake words MobileNetV1-0.25
(96x96x3, 13 depthwise-separable blocks, FC 2); exports each as int8 TFLite with edgedistill's own exporter, and
estimates its latency on the `cortex-m4` profile. Published figures (MLPerf Tiny v1.0, closed division, OctoML,
microTVM + CMSIS-NN on NUCLEO-L4R5ZI, Cortex-M4 @ 120 MHz; mlcommons/tiny_results_v1.0,
closed/OctoML/results/microtvm_cmsis_nn/NUCLEO_L4R5ZI/*/performance/results.txt): KWS median 10.019 inf/s
(99.81 ms), VWW median 3.320 inf/s (301.2 ms).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch
from torch import nn

from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.estimate import estimate_latency
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students.layers import conv_bn_relu
from edgedistill.targets import load_target

PUBLISHED_MS = {"kws-ds-cnn": 1000 / 10.019, "vww-mobilenet-v1-0.25": 1000 / 3.320}


def ds_block(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [conv_bn_relu(cin, cin, stride=stride, groups=cin), conv_bn_relu(cin, cout, k=1)]


def kws_ds_cnn() -> tuple[nn.Module, tuple[int, ...]]:
    first = nn.Sequential(nn.Conv2d(1, 64, (10, 4), stride=2, padding=(5, 1), bias=False), nn.BatchNorm2d(64), nn.ReLU())
    layers = [first] + sum((ds_block(64, 64, 1) for _ in range(4)), [])
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 12)), (1, 49, 10)


def vww_mobilenet_v1_025() -> tuple[nn.Module, tuple[int, ...]]:
    cfg = [(8, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2)] + [(128, 128, 1)] * 5 + \
          [(128, 256, 2), (256, 256, 1)]
    layers = [conv_bn_relu(3, 8, stride=2)] + sum((ds_block(a, b, s) for a, b, s in cfg), [])
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, 2)), (3, 96, 96)


def main() -> None:
    target = load_target("cortex-m4")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, build in (("kws-ds-cnn", kws_ds_cnn), ("vww-mobilenet-v1-0.25", vww_mobilenet_v1_025)):
            torch.manual_seed(0)
            model, shape = build()
            q = calibrate(to_quant_student(model.eval()), torch.rand(16, *shape))
            path = Path(tmp) / f"{name}.tflite"
            export_tflite_int8(q, shape, path)
            cost = tflite_cost(path)
            est = estimate_latency(cost, target, "int8")
            rows.append((name, cost.macs, est.total_ms, PUBLISHED_MS[name]))
    print(f"{'model':<24}{'MACs':>12}{'estimate ms':>14}{'published ms':>14}{'error':>9}")
    for name, macs, est, pub in rows:
        print(f"{name:<24}{macs:>12,}{est:>14.1f}{pub:>14.1f}{est / pub - 1:>+9.0%}")


if __name__ == "__main__":
    main()
