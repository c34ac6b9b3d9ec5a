"""`edgedistill distill --workers 2` on a memory-mapped folder of .npy files, SIGKILLed after its first checkpoint
while its DataLoader workers are running, then run again: the resumed run's artifacts are byte-identical to an
uninterrupted run's (with augmentation, so the workers draw random views, and the teacher labels them)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # three real distill runs in child processes


def _args(data, out):
    return ["distill", "--data", str(data), "--teacher", "builtin:digits", "--workers", "2", "--epochs", "8",
            "-T", "4", "--alpha", "0.9", "--threads", "1", "--augment", "shift=1", "--no-baseline", "-q",
            "--student", "cnn:width=8,depth=2", "--out", str(out)]


def _run(args, cache, **kw):
    env = {**os.environ, "EDGEDISTILL_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "edgedistill", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, **kw)


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def npy_folder(tmp_path_factory):
    from edgedistill.data import read_dataset

    folder = tmp_path_factory.mktemp("digits-npy")
    d = read_dataset("builtin:digits")
    np.save(folder / "x.npy", d.train.x)  # 1×8×8 images: read memory-mapped
    np.save(folder / "y.npy", d.train.y)
    return folder


def test_a_run_with_workers_killed_after_its_first_checkpoint_resumes_to_identical_artifacts(tmp_path, npy_folder):
    reference = _run(_args(npy_folder, tmp_path / "ref"), tmp_path / "cache-ref")
    assert reference.wait(timeout=600) == 0, reference.stdout.read().decode()[-3000:]

    out = tmp_path / "killed"
    proc = _run(_args(npy_folder, out), tmp_path / "cache", start_new_session=True)
    ckpt = tmp_path / "killed.partial" / "checkpoints" / "student.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), "no checkpoint appeared"
    time.sleep(0.3)  # into the next epoch: the workers have prefetched batches past the checkpoint
    workers = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert proc.poll() is None and len(workers) >= 2, (proc.poll(), workers)  # the DataLoader's two workers
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    import torch

    done = torch.load(ckpt, weights_only=True)["step"]
    assert not (out / "metrics.json").exists()

    resumed = _run(_args(npy_folder, out), tmp_path / "cache")
    assert resumed.wait(timeout=600) == 0, resumed.stdout.read().decode()[-3000:]
    m, ref = (json.loads((d / "metrics.json").read_text()) for d in (out, tmp_path / "ref"))
    assert m["student"]["resumed_from_step"] == done > 0 and m["student"]["workers"] == 2
    assert m["student"]["steps"] == ref["student"]["steps"] > done
    for name in ("student.safetensors", "student.json"):
        assert _digest(out / name) == _digest(tmp_path / "ref" / name), name
    assert m["student"]["history"][-1]["val_acc"] == ref["student"]["history"][-1]["val_acc"]
