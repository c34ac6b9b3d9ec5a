"""Two "nodes" on 127.0.0.1: two separate torchrun launches (--nnodes 2 --nproc_per_node 1, c10d rendezvous) of a
tiny distill on a memory-mapped folder of .npy files, against one --nproc_per_node 2 launch; then an elastic restart
(--max-restarts 1) after rank 1 dies mid-epoch, which resumes from rank 0's last checkpoint."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ENTRY = str(Path(__file__).with_name("elastic_entry.py"))
EPOCHS, PER_EPOCH = 6, 20  # 1,258 transfer samples of digits at batch 64 (auto)


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _args(data: Path, out: Path) -> list[str]:
    return ["distill", "--data", str(data), "--teacher", "builtin:digits", "--epochs", str(EPOCHS), "-T", "4",
            "--alpha", "0.9", "--threads", "1", "--augment", "none", "--no-baseline", "--workers", "1", "-q",
            "--student", "cnn:width=8,depth=2", "--out", str(out)]


def _env(cache: Path, **extra) -> dict:
    return {**os.environ, "EDGEDISTILL_CACHE": str(cache), "PYTHONUNBUFFERED": "1", **extra}


def _one_launch(args, cache: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--rdzv-backend=c10d",
           f"--rdzv-endpoint=127.0.0.1:{_port()}", ENTRY, *args]
    return subprocess.run(cmd, env=_env(cache), capture_output=True, text=True, timeout=600)


def _two_nodes(args, cache: Path, restarts: int = 0, **env) -> list[subprocess.CompletedProcess]:
    """Node 0 hosts the rendezvous store (is_host, as the machine named by --rdzv-endpoint would); node 1 joins."""
    port = _port()
    procs = []
    for node in (0, 1):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
               "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}", "--rdzv-id=two-nodes",
               f"--rdzv-conf=is_host={int(node == 0)}", f"--node-rank={node}", f"--max-restarts={restarts}",
               "--monitor-interval=0.5", ENTRY, *args]
        procs.append(subprocess.Popen(cmd, env=_env(cache, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, start_new_session=True))
    done = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=300)
            done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    finally:  # a hung launch must not outlive the test
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)  # the launcher and the training processes it started
    return done


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def npy_folder(tmp_path_factory):
    from edgedistill.data import read_dataset

    folder = tmp_path_factory.mktemp("digits-npy")
    d = read_dataset("builtin:digits")
    np.save(folder / "x.npy", d.train.x)
    np.save(folder / "y.npy", d.train.y)
    return folder


@pytest.fixture(scope="module")
def one_launch(npy_folder, tmp_path_factory):
    root = tmp_path_factory.mktemp("one")
    r = _one_launch(_args(npy_folder, root / "out"), root / "cache")
    assert r.returncode == 0, r.stderr[-3000:]
    return root / "out"


@pytest.mark.slow  # real multi-process runs: tens of seconds each
def test_two_launches_as_two_nodes_equal_one_two_process_launch(npy_folder, one_launch, tmp_path):
    nodes = _two_nodes(_args(npy_folder, tmp_path / "out"), tmp_path / "cache")
    assert [n.returncode for n in nodes] == [0, 0], [n.stderr[-2000:] for n in nodes]
    m2, m1 = (json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "out", one_launch))
    d = m2["distributed"]
    assert d["world_size"] == 2 and d["replicas_identical"] and d["restart_count_per_rank"] == [0, 0]
    # each rank read only its shard: half of every global batch, together every sample the steps trained on once
    steps, transfer = m2["student"]["steps"], m2["data"]["sizes"]["transfer"]
    assert sum(d["samples_read_per_rank"]) == EPOCHS * transfer and steps == EPOCHS * PER_EPOCH
    assert all(abs(r - EPOCHS * transfer / 2) <= steps for r in d["samples_read_per_rank"])
    # the same algorithm on the same two ranks: gloo's sum of two gradients is a + b either way, so bit for bit
    assert m2["student"]["test_acc"] == m1["student"]["test_acc"]
    assert [h["val_acc"] for h in m2["student"]["history"]] == [h["val_acc"] for h in m1["student"]["history"]]
    assert _digest(tmp_path / "out" / "student.safetensors") == _digest(one_launch / "student.safetensors")


@pytest.mark.slow
def test_a_rank_killed_once_is_restarted_and_the_run_resumes_from_the_last_checkpoint(npy_folder, one_launch,
                                                                                        tmp_path):
    exit_at = 2 * PER_EPOCH + 7  # mid-epoch 3: checkpoints after epochs 1 and 2 are on disk
    # torch's shared rendezvous store breaks restarts on several nodes (pytorch#135712): the documented launch
    nodes = _two_nodes(_args(npy_folder, tmp_path / "out"), tmp_path / "cache", restarts=1,
                       EDGEDISTILL_TEST_EXIT_AT_STEP=str(exit_at), TORCH_DISABLE_SHARE_RDZV_TCP_STORE="1")
    assert [n.returncode for n in nodes] == [0, 0], [n.stderr[-3000:] for n in nodes]
    assert "exitcode: 3" in "".join(n.stderr for n in nodes)  # rank 1 did die once
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    # the failed node counts the restart; the other restarted for the membership change and keeps 0
    assert sorted(m["distributed"]["restart_count_per_rank"]) == [0, 1]
    assert m["student"]["resumed_from_step"] == 2 * PER_EPOCH  # from the last checkpoint, not from scratch
    assert m["student"]["steps"] == EPOCHS * PER_EPOCH
    # resuming is exact, so the restarted run ends where the uninterrupted two-process run did
    ref = json.loads((one_launch / "metrics.json").read_text())
    assert m["student"]["test_acc"] == ref["student"]["test_acc"]
    assert _digest(tmp_path / "out" / "student.safetensors") == _digest(one_launch / "student.safetensors")


def test_a_restartable_launch_with_the_shared_store_is_warned_about():
    from edgedistill.distributed import restart_store_warning

    shared = {"TORCHELASTIC_MAX_RESTARTS": "1", "TORCHELASTIC_USE_AGENT_STORE": "True"}
    assert "TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1" in restart_store_warning(shared)
    assert restart_store_warning({**shared, "TORCHELASTIC_USE_AGENT_STORE": "False"}) is None  # the fix applied
    assert restart_store_warning({**shared, "TORCHELASTIC_MAX_RESTARTS": "0"}) is None  # no restart to break
    assert restart_store_warning({}) is None  # not under torchrun
