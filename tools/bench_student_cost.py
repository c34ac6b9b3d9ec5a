"""The search's cost model against real int8 exports: every family at about its reference size.

    python tools/bench_student_cost.py [FAMILY ...]   # every family, or only those named

For each student: deployed parameters, MACs (predicted = counted in the .tflite file, asserted), the live-tensor
lower bound and the predicted arena (students/cost.py) against TFLite Micro's recording allocator, and the file-size
upper bound (students/filesize.py) against the int8 file. Prints a Markdown table (docs/students.md quotes it).
Untrained students with randomised BatchNorm statistics and LayerNorm constants (so no two constants share a
buffer); the costs do not depend on the weights' values. Text students read L token ids of a 4,000-id vocabulary.
About three minutes on one core.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

from edgedistill.data import Normalizer
from edgedistill.export.tflite_export import export_tflite_int8
from edgedistill.profile.cost import tflite_cost
from edgedistill.profile.tflm_arena import tflm_arena
from edgedistill.quantize import calibrate, to_quant_student
from edgedistill.students import StudentArch, build_student
from edgedistill.students.cost import graph_cost
from edgedistill.students.filesize import tflite_size_bound

STUDENTS = [  # (family, input shape, width, depth): MLPerf Tiny reference sizes where one exists
    ("resnet8", (3, 32, 32), 16, 3),
    ("mobilenetv1", (3, 96, 96), 8, 5),
    ("mbv3", (3, 32, 32), 16, 3),
    ("dscnn", (1, 49, 10), 64, 4),
    ("cnn", (1, 28, 28), 32, 3),
    ("resnet8_1d", (1, 128), 16, 3),
    ("mbv3_1d", (3, 128), 16, 3),
    ("conv1d", (3, 128), 16, 3),
    ("textcnn", (128,), 32, 3),      # token ids: L = 128
    ("transformer", (64,), 64, 2),   # two heads
    ("transformer", (128,), 128, 2),  # four heads: the N×H×L×L scores dominate the arena
]
TEXT = ("textcnn", "transformer")
VOCAB = 4000


def _student(family: str, shape: tuple[int, ...], width: int, depth: int) -> torch.nn.Module:
    torch.manual_seed(0)
    arch = StudentArch(family, width, depth)
    model = (build_student(arch, shape, 10, None, vocab_size=VOCAB) if family in TEXT else
             build_student(arch, shape, 10, Normalizer([0.5] * shape[0], [0.25] * shape[0], "channel"))).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-1, 1)
                m.bias.uniform_(-1, 1)
            if isinstance(m, torch.nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-1, 1)
    return model


def _calibration(family: str, shape: tuple[int, ...]) -> torch.Tensor:
    if family in TEXT:
        return torch.randint(1, VOCAB, (64, *shape), dtype=torch.int32)
    return torch.rand(64, *shape)


def main(only: list[str]) -> None:
    print("| student | input | params | MACs | live lower bound B | predicted arena B | TFLite Micro B "
          "| size bound B | int8 file B |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for family, shape, width, depth in STUDENTS:
            if only and family not in only:
                continue
            model = _student(family, shape, width, depth)
            g = graph_cost(model, shape)
            path = Path(tmp) / f"{family}.tflite"
            export_tflite_int8(calibrate(to_quant_student(model), _calibration(family, shape)), shape, path)
            real = tflite_cost(path)
            assert real.macs == g.macs, (family, real.macs, g.macs)
            arena = tflm_arena(path).activation_bytes
            print(f"| {family}(width={width}, depth={depth}) | {'×'.join(map(str, shape))} | {g.params:,} | "
                  f"{g.macs:,} | {g.arena_lower_bound:,} | {g.arena_bytes:,} | {arena:,} | "
                  f"{tflite_size_bound(g):,} | {path.stat().st_size:,} |", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
