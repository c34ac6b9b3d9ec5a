"""A data set larger than the memory a process may allocate trains to the end (issue 31's test).

The limit is RLIMIT_DATA, set in the child process after it has imported edgedistill (torch, numpy, the CLI), at
that process's data segment plus HEADROOM. Since Linux 4.7 RLIMIT_DATA counts private writable mappings (heap,
anonymous maps: every array numpy or torch allocates) and not shared or read-only file mappings, so it limits exactly
what "loading the data" would cost while letting a memory-mapped `x.npy` (read-only, shared) and the spilled splits
(shared, file-backed: data/mapped.py) through. RLIMIT_AS would count those file mappings too and refuse a correct
memory-mapped run. The data: 200,000 uint8 images of 3×32×32 (614 MB on disk, 2.46 GB as float32), 1.6× and
6.4× HEADROOM; the same limit makes `np.load` of the array without a memory map fail, which shows that it bites.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.slow  # a real distill run over 614 MB: ~30 s on 2 busy cores

N, SHAPE = 200_000, (3, 32, 32)
HEADROOM = 384 << 20  # bytes the child may allocate beyond what its imports hold (256 MiB: the run fails)

CHILD = """
import resource, runpy, sys
import numpy as np
import edgedistill.cli  # torch and numpy loaded before the limit: it bounds what the run allocates on top
import edgedistill.pipeline.distill, scipy.stats  # and what the run imports late: a module's objects and its shared
# libraries' zero-fill pages are private writable memory, which RLIMIT_DATA counts (scipy.stats, imported at the end
# for the Wilson intervals, once failed to load at the limit: "cannot map zero-fill pages")

vm_data = int(next(l for l in open("/proc/self/status") if l.startswith("VmData")).split()[1]) << 10
limit = vm_data + int(sys.argv[1])
resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
if sys.argv[2] == "load-whole":
    x = np.load(sys.argv[3])  # no memory map: the array in the process's own memory
    print("loaded", x.nbytes)
else:
    sys.argv = ["edgedistill", *sys.argv[3:]]
    runpy.run_module("edgedistill", run_name="__main__")
"""


class Teacher(torch.nn.Module):
    """The class is written into each image's top-left 4×4 patch of channel 0 (label × 25)."""

    def forward(self, x):
        cls = (x[:, 0, :4, :4].mean((1, 2)) / 25).round().clamp(0, 9).long()
        return torch.nn.functional.one_hot(cls, 10).float() * 5


def _data(root: Path) -> Path:
    folder = root / "data"
    folder.mkdir()
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, N)
    x = np.lib.format.open_memmap(folder / "x.npy", mode="w+", dtype=np.uint8, shape=(N, *SHAPE))
    for i in range(0, N, 4096):
        piece = rng.integers(0, 256, (len(y[i : i + 4096]), *SHAPE), dtype=np.uint8)
        piece[:, 0, :4, :4] = (y[i : i + 4096] * 25)[:, None, None]
        x[i : i + 4096] = piece
    x.flush()
    del x
    np.save(folder / "y.npy", y)
    torch.jit.script(Teacher()).save(str(root / "teacher.pt"))
    return folder


def _child(*args, env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", CHILD, str(HEADROOM), *args], capture_output=True, text=True,
                          timeout=240, env=env, cwd=Path(__file__).resolve().parents[1])


def test_data_larger_than_the_memory_limit_trains_to_the_end(tmp_path):
    data = _data(tmp_path)
    assert (data / "x.npy").stat().st_size > 1.5 * HEADROOM
    env = {**os.environ, "EDGEDISTILL_CACHE": str(tmp_path / "cache"), "EDGEDISTILL_SPILL": str(tmp_path)}

    whole = _child("load-whole", str(data / "x.npy"), env=env)
    assert whole.returncode != 0 and "MemoryError" in whole.stderr, whole.stdout + whole.stderr[-2000:]

    run = _child("run", "distill", "--data", str(data), "--teacher", str(tmp_path / "teacher.pt"), "--steps", "20",
                 "--no-baseline", "--augment", "none", "--threads", "1", "-q", "--student", "dscnn:width=4,depth=1",
                 "-T", "4", "--alpha", "0.9", "--out", str(tmp_path / "out"), env=env)
    assert run.returncode == 0, run.stderr[-5000:]
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert metrics["data"]["sizes"]["transfer"] == 140_000 and metrics["data"]["form"]["samples"] == "memory-mapped"
    assert metrics["training"]["steps_run"]["student"] == 20
    assert metrics["teacher"]["test_acc"] == 100.0  # the teacher pass read every test image as stored
