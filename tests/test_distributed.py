"""`edgedistill distill` under torchrun with the gloo backend: two real processes on this machine, loopback
rendezvous, small real data (digits)."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ARGS = ["distill", "--data", "builtin:digits", "--epochs", "6", "-q", "-T", "4", "--alpha", "0.9", "--threads", "1",
        "--student", "cnn:width=8,depth=2"]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(cache: Path) -> dict:
    return {**os.environ, "EDGEDISTILL_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


def _torchrun(args, cache: Path, nproc: int = 2, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--rdzv-backend=c10d",
           f"--rdzv-endpoint=127.0.0.1:{_port()}", "-m", "edgedistill", *args]
    return subprocess.Popen(cmd, env=_env(cache), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _files(d: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.glob("*.npy"))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    two = _torchrun([*ARGS, "--out", str(root / "two")], root / "cache2")
    out2, err2 = two.communicate(timeout=600)
    assert two.returncode == 0, err2[-3000:]
    one = subprocess.run([sys.executable, "-m", "edgedistill", *ARGS, "--out", str(root / "one")],
                         env=_env(root / "cache1"), capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr[-3000:]
    return root, out2


def test_two_processes_train_identical_replicas_and_match_one_process(runs):
    root, output = runs
    m2 = json.loads((root / "two" / "metrics.json").read_text())
    m1 = json.loads((root / "one" / "metrics.json").read_text())
    d = m2["distributed"]
    assert d["world_size"] == 2 and len(d["replica_weight_sha256"]) == 2 and d["replicas_identical"]
    assert d["global_batch"] == 128 and d["per_rank_batch"] == 64
    # same global batches and learning rate; BatchNorm statistics are per rank, so results agree within noise
    for k in ("student", "baseline"):
        assert abs(m2[k]["test_acc"] - m1[k]["test_acc"]) <= 3.0, (k, m2[k]["test_acc"], m1[k]["test_acc"])
    assert output.count("edgedistill distill →") == 1  # rank 0 alone reports


def test_sharded_teacher_pass_writes_the_same_cache_as_one_process(runs):
    root, _ = runs
    two, one = _files(root / "cache2"), _files(root / "cache1")
    assert two and two == one  # same entries, byte-identical logits


def test_killing_a_rank_ends_the_job_clearly_and_the_run_resumes(tmp_path):
    out = tmp_path / "killed"
    args = ["distill", "--data", "builtin:digits", "--epochs", "40", "-q", "-T", "4", "--alpha", "0.9",
            "--threads", "1", "--student", "cnn:width=8,depth=2", "--out", str(out)]
    proc = _torchrun(args, tmp_path / "cache", start_new_session=True)
    ckpt = out.with_name("killed.partial") / "checkpoints" / "student.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert ckpt.exists(), "no checkpoint appeared"
    time.sleep(1.0)
    workers = subprocess.run(["pgrep", "-f", "-P", str(proc.pid), "edgedistill"], capture_output=True,
                             text=True).stdout.split()
    assert len(workers) == 2, workers
    os.kill(int(sorted(workers, key=int)[-1]), signal.SIGKILL)  # one rank dies mid-training
    _, err = proc.communicate(timeout=180)
    assert proc.returncode != 0
    assert "rank" in err and ("Signal 9" in err or "SIGKILL" in err or "exitcode" in err), err[-2000:]
    # the job is resumable: the same command (here on one process) continues from rank 0's last checkpoint
    import torch

    done_epochs = torch.load(ckpt, weights_only=True)["epoch"]
    assert done_epochs >= 1
    resumed = subprocess.run([sys.executable, "-m", "edgedistill", *args], env=_env(tmp_path / "cache"),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["student"]["resumed_from_epoch"] >= done_epochs
