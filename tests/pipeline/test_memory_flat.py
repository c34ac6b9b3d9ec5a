"""Peak resident memory of `distill` on a memory-mapped x.npy folder grows far less than the samples do: the
same run on 20 times the samples (~190 MB of float32 signals against ~10 MB) peaks less than 160 MiB above the
small one. Before the splits were memory-mapped (edgedistill.data.mapped) the large run held its train / val / test
copies (~190 MB), np.std's float64 temporaries and every page of the file: measured 421 -> 910 MiB then, 406 -> 485
MiB now (the same test run against the code before)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _folder(path: Path, n: int) -> Path:
    path.mkdir()
    x = np.lib.format.open_memmap(path / "x.npy", "w+", np.float32, (n, 1, 48))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, n)
    for i in range(0, n, 100_000):
        j = min(n, i + 100_000)
        x[i:j] = rng.normal(0, 1, (j - i, 1, 48)).astype(np.float32) + y[i:j, None, None]
    x.flush()
    del x
    np.save(path / "y.npy", y)
    return path


def _peak_rss(data: Path, teacher: Path, out: Path) -> int:
    cmd = [sys.executable, "-m", "edgedistill", "distill", "--data", str(data), "--teacher", str(teacher),
           "--steps", "30", "--threads", "1", "-T", "4", "--alpha", "0.9", "--no-baseline", "--augment", "none",
           "--student", "conv1d:width=8,depth=2", "-q", "--out", str(out), "--cache-dir", str(out.parent / "cache")]
    env = {**os.environ, "EDGEDISTILL_SPILL": str(out.parent / "spill"), "PYTHONPATH": str(ROOT / "tests")}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, proc.stderr.read().decode()[-3000:]
    assert not any((out.parent / "spill").iterdir())  # the split files were unlinked
    return usage.ru_maxrss * 1024


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise / ru_maxrss semantics are Linux's")
def test_peak_memory_is_flat_in_the_number_of_samples(tmp_path):
    import torch

    teacher = tmp_path / "teacher.pt"
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv1d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool1d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 4))
    torch.jit.script(net).save(str(teacher))
    small = _peak_rss(_folder(tmp_path / "small", 50_000), teacher, tmp_path / "a" / "out")
    large = _peak_rss(_folder(tmp_path / "large", 1_000_000), teacher, tmp_path / "b" / "out")
    # what still grows is per-sample bookkeeping (labels, permutations, the cached logits: ~80 bytes a sample, 76 MB
    # over the 950,000 more samples); measured 79 MiB when written and 109 MiB in a CI run (2026-12-07), against
    # 489 MiB before the splits were memory-mapped: 160 MiB keeps that regression far outside the bound
    assert large - small < 160 * 2**20, (small / 2**20, large / 2**20)
