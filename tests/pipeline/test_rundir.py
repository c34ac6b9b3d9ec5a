"""The run directory against a second process: a live run's lock refuses a second run on the same --out (naming the
owner), a killed run's lock is taken over, and the run resumes. Real processes, real locks."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgedistill.errors import ConfigError
from edgedistill.pipeline.rundir import RunDir, RunDirBusy

HOLD = """
import sys, time
from pathlib import Path
from edgedistill.pipeline.rundir import RunDir
with RunDir(Path(sys.argv[1]), overwrite=False) as run:
    run.create()
    (run.checkpoints / "student.pt").write_bytes(b"unfinished")
    print("locked", flush=True)
    time.sleep(120)
"""


def _hold(out: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from edgedistill.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=600)


def test_a_live_owner_is_refused_naming_its_pid_and_a_killed_one_is_taken_over(tmp_path):
    out = tmp_path / "same"
    holder = _hold(out)
    try:
        with pytest.raises(RunDirBusy) as exc:
            with RunDir(out) as run:
                run.create()
        assert f"pid {holder.pid}" in str(exc.value)
        assert (out.with_name("same.partial") / "checkpoints" / "student.pt").read_bytes() == b"unfinished"
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with RunDir(out) as run:  # the kernel dropped the dead process's lock: taken over, checkpoints kept to resume
        run.create()
        assert (run.checkpoints / "student.pt").read_bytes() == b"unfinished"
        (run.work / "result.txt").write_text("done")
        run.publish()
    assert (out / "result.txt").read_text() == "done"
    assert not out.with_name("same.partial").exists() and not out.with_name("same.lock").exists()


@pytest.mark.slow
def test_a_second_distill_on_a_live_runs_directory_exits_2_and_leaves_it_alone(tmp_path):
    out = tmp_path / "runs" / "same"
    holder = _hold(out)
    try:
        r = _cli("distill", "--epochs", "1", "--no-baseline", "--out", str(out), "-q", cwd=tmp_path)
        assert r.returncode == 2, r.stderr
        assert f"pid {holder.pid}" in r.stderr and "Traceback" not in r.stderr
        assert (out.with_name("same.partial") / "checkpoints" / "student.pt").read_bytes() == b"unfinished"
        assert not out.exists()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    r = _cli("distill", "--epochs", "1", "--no-baseline", "--out", str(out), "-q", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (out / "metrics.json").is_file() and not out.with_name("same.partial").exists()


def test_an_existing_output_needs_overwrite_and_nothing_is_created_before_create(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="--overwrite"):
        with RunDir(out):
            pass
    fresh = tmp_path / "deeper" / "o"
    with RunDir(fresh):
        pass
    assert not (tmp_path / "deeper").exists()  # checks alone write nothing
    assert (out / "keep.txt").read_text() == "mine"


def test_the_lock_names_pid_and_host_while_held(tmp_path):
    out = tmp_path / "o"
    with RunDir(out) as run:
        run.create()
        text = out.with_name("o.lock").read_text()
        assert f"pid {os.getpid()} on host " in text
    assert not out.with_name("o.lock").exists()



def test_a_forked_child_does_not_keep_the_lock_of_a_killed_parent(tmp_path):
    """DataLoader workers are forked: they used to inherit the lock's descriptor, so after a SIGKILL of the run the
    directory stayed locked until the orphaned workers exited, and the resuming command was refused as 'still
    alive'. Here the run forks a child that outlives it; the directory is free as soon as the run is killed."""
    code = textwrap.dedent(f"""
        import os, sys, time
        from edgedistill.pipeline.rundir import RunDir
        run = RunDir({str(tmp_path / "run")!r}).__enter__()
        run.create()
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        print("ready", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        with RunDir(tmp_path / "run") as again:  # RunDirBusy while the orphan held an inherited copy
            again.create()
    finally:
        proc.kill()
        subprocess.run(["pkill", "-f", str(tmp_path / "run")], check=False)


def _published(tmp_path: Path, name: str = "run") -> Path:
    """A run directory published through RunDir (config.json, metrics.json, a student file; its index written)."""
    out = tmp_path / name
    with RunDir(out, overwrite=True) as run:
        work = run.create()
        for f in ("config.json", "metrics.json", "student.safetensors"):
            (work / f).write_text("{}")
        run.publish()
    return out


def test_what_the_user_put_in_a_run_directory_is_named_and_never_replaced(tmp_path):
    """A breaking session's cases: a user file beside the run's; an `export/` folder of the user's (not an export:
    no export.json) or an export holding a user file; the index deleted or damaged (then the names a run writes
    decide); a symbolic link as --out. The tool's own later files (gate.md, an export) do not block a replace."""
    from edgedistill.pipeline.rundir import RUN_INDEX, check_out_dir, foreign_entries

    out = _published(tmp_path)
    assert foreign_entries(out) == [] and (out / RUN_INDEX).is_file()
    (out / "gate.md").write_text("gate")
    (out / "export").mkdir()
    (out / "export" / "export.json").write_text("{}")
    check_out_dir(out, overwrite=True)  # the tool's own: replaceable
    (out / "export" / "mine.txt").write_text("mine")
    assert foreign_entries(out) == ["export"]
    (out / "export" / "mine.txt").unlink()
    (out / "notes.txt").write_text("mine")
    (out / "corpus").mkdir()
    with pytest.raises(ConfigError, match=r"holds 2 entries that run did not write \(corpus, notes.txt\)"):
        check_out_dir(out, overwrite=True)
    check_out_dir(out, overwrite=True, replacing=False)  # a build that will not replace it (unchanged) goes on
    for damage in (None, '{"broken', '"x"'):
        (out / RUN_INDEX).unlink(missing_ok=True)
        if damage is not None:
            (out / RUN_INDEX).write_text(damage)
        assert foreign_entries(out) == ["corpus", "notes.txt"]  # student.safetensors and the rest: a run's names
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "empty", target_is_directory=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="is a symbolic link"):
        RunDir(link, overwrite=True)
