"""`edgedistill distill` under torchrun with the gloo backend: two real processes on this machine, loopback
rendezvous, small real data (digits)."""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real multi-process runs: tens of seconds each

# --augment none: the sharded teacher pass and its cache are under test; the small-data function-matching default
# would label every mixed batch on the fly per rank instead of reading the cache
ARGS = ["distill", "--data", "builtin:digits", "--epochs", "6", "--batch-size", "128", "-q", "-T", "4", "--alpha", "0.9",
        "--threads", "1", "--augment", "none",
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
            "--augment", "none",
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
    killed_pid = int(sorted(workers, key=int)[-1])
    env = dict(kv.split("=", 1) for kv in Path(f"/proc/{killed_pid}/environ").read_text().split("\0") if "=" in kv)
    killed_rank = int(env["RANK"])
    os.kill(killed_pid, signal.SIGKILL)  # one rank dies mid-training
    _, err = proc.communicate(timeout=180)
    assert proc.returncode != 0
    # torchrun names the failed rank and how it died; the first observed failure is the rank killed here
    root_cause = err[err.index("Root Cause"):]
    rank_line = re.search(r"rank\s*:\s*(\d+) \(local_rank: (\d+)\)", root_cause)
    assert rank_line and int(rank_line.group(1)) == killed_rank, root_cause[:1500]
    assert re.search(rf"exitcode\s*:\s*-9 \(pid: {killed_pid}\)", root_cause), root_cause[:1500]
    assert f"Signal 9 (SIGKILL) received by PID {killed_pid}" in root_cause, root_cause[:1500]
    # the job is resumable: the same command (here on one process) continues from rank 0's last checkpoint
    import torch

    done_epochs = torch.load(ckpt, weights_only=True)["epoch"]
    assert done_epochs >= 1
    resumed = subprocess.run([sys.executable, "-m", "edgedistill", *args], env=_env(tmp_path / "cache"),
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["student"]["resumed_from_epoch"] >= done_epochs


def _record_batches(rank: int, world: int, port: int, out: str) -> None:
    """One rank (or, with world 1, the single process) trains a model that records the sample ids of every
    training batch it is fed."""
    import torch
    import torch.distributed as dist

    from edgedistill.distill.trainer import Objective, TrainSet, TrainSettings, fit

    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.lin = torch.nn.Linear(2, 3)

        def forward(self, x):
            if self.training:
                seen.append(x[:, 0].round().long().tolist())
            return self.lin(x)

    n = 50  # not a multiple of the batch: the last global batch is short
    x = torch.stack([torch.arange(n, dtype=torch.float32), torch.linspace(-1, 1, n)], 1)
    y = torch.arange(n) % 3
    fit(Recorder(), TrainSet(x, y, None), x[:9], y[:9], Objective(teacher=False),
        TrainSettings(epochs=2, batch_size=16, seed=5))
    torch.save(seen, out)
    if world > 1:
        dist.destroy_process_group()


def test_ranks_slices_of_every_batch_together_are_the_single_process_batch(tmp_path):
    import torch
    import torch.multiprocessing as mp

    _record_batches(0, 1, 0, str(tmp_path / "single.pt"))
    port = _port()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_record_batches, args=(r, 2, port, str(tmp_path / f"rank{r}.pt"))) for r in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    single = torch.load(tmp_path / "single.pt")
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert len(single) == 2 * 4 and len(ranks[0]) == len(ranks[1]) == len(single)  # 2 epochs × ceil(50 / 16)
    for step, batch in enumerate(single):
        a, b = ranks[0][step], ranks[1][step]
        assert not set(a) & set(b)  # no sample trained twice in a step
        assert sorted(a + b) == sorted(batch)  # together: exactly the one-process batch
    assert sorted(i for batch in single[:4] for i in batch) == list(range(50))  # an epoch sees every sample once
