"""The ssh runner against a real OpenSSH server started on 127.0.0.1 by the test (throwaway host and client keys,
a free port), running the real device-side benchmark with a separate Python environment that holds only numpy and
ai-edge-litert (and their own dependencies): no torch, no edgedistill, as on a board."""

import os
import shutil
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from edgedistill.device import DeviceRequest, open_runner
from edgedistill.errors import DeviceError

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dist_closure(names):
    seen, todo = {}, list(names)
    while todo:
        name = todo.pop()
        if name.lower() in seen:
            continue
        dist = metadata.distribution(name)
        seen[name.lower()] = dist
        for req in dist.requires or []:
            r = Requirement(req)
            if r.marker is None or r.marker.evaluate({"extra": ""}):
                todo.append(r.name)
    return seen.values()


def _board_python(root: Path) -> Path:
    """A venv without site packages whose only third-party packages are numpy and ai-edge-litert (+ their deps),
    linked from this environment (no network needed)."""
    env = root / "board-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env)], check=True)
    pkgs = root / "board-pkgs"
    pkgs.mkdir()
    for dist in _dist_closure(["numpy", "ai-edge-litert"]):
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops:
            src = Path(dist.locate_file(top))
            if src.exists() and not (pkgs / top).exists() and not top.endswith(".dist-info"):
                (pkgs / top).symlink_to(src)
            elif top.endswith(".dist-info") and not (pkgs / top).exists():
                (pkgs / top).symlink_to(src)
    site = next((env / "lib").glob("python3*/site-packages"))
    (site / "board.pth").write_text(str(pkgs) + "\n")
    return env / "bin" / "python"


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    if not Path(SSHD).exists():
        if os.environ.get("CI"):
            pytest.fail("openssh-server is not installed; .ci/run installs it")
        pytest.skip("openssh-server is not installed (apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host", "client"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True)
    (d / "authorized_keys").write_text((d / "client.pub").read_text())
    port = _free_port()
    (d / "sshd_config").write_text(f"""Port {port}
ListenAddress 127.0.0.1
HostKey {d / 'host'}
AuthorizedKeysFile {d / 'authorized_keys'}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
PidFile {d / 'sshd.pid'}
Subsystem sftp internal-sftp
""")
    Path("/run/sshd").mkdir(exist_ok=True) if os.geteuid() == 0 else None  # privilege-separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(d / "sshd_config")], stderr=subprocess.PIPE, text=True)
    for _ in range(100):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        if proc.poll() is not None:
            pytest.fail(f"sshd did not start: {proc.stderr.read()}")
        time.sleep(0.05)
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    board_python = _board_python(d)
    base = f"ssh://{user}@127.0.0.1:{port}?key={d / 'client'}&known_hosts={d / 'known_hosts'}"
    yield {"base": base, "python": board_python, "dir": d, "port": port}
    proc.terminate()
    proc.wait(timeout=10)


def test_board_environment_has_no_torch_and_no_edgedistill(sshd):
    code = "import numpy, ai_edge_litert.interpreter\nfor m in ('torch', 'edgedistill'):\n" \
           "    try:\n        __import__(m)\n    except ImportError:\n        pass\n" \
           "    else:\n        raise SystemExit(m + ' importable')\nprint('clean')"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # a board has no checkout on its path either
    out = subprocess.run([str(sshd["python"]), "-c", code], capture_output=True, text=True, cwd="/", env=env)
    assert out.stdout.strip() == "clean", out.stderr


def test_ssh_runner_measures_on_the_board_and_checks_parity(sshd, tflite_pair):
    doc = open_runner(f"{sshd['base']}&python={sshd['python']}").benchmark(
        DeviceRequest(tflite_pair["int8"], tflite_pair["x"], tflite_pair["ref"], runs=10, threads=1))
    assert doc["ok"] and doc["runner"]["kind"] == "ssh"
    assert doc["parity"]["passed"] and doc["parity"]["samples"] == 12
    assert doc["latency_ms"]["runs"] == 10 and doc["latency_ms"]["p50"] > 0
    assert doc["device"]["machine"] and doc["device"]["system"] == "Linux"
    left = list(Path("/tmp").glob("edgedistill.*"))
    assert not [p for p in left if p.stat().st_mtime > time.time() - 60], "the working directory was not removed"


def test_ssh_runner_reports_a_missing_interpreter(sshd, tflite_pair):
    with pytest.raises(DeviceError, match="no '/nonexistent/python3' on the device"):
        open_runner(f"{sshd['base']}&python=/nonexistent/python3").benchmark(
            DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))


def test_ssh_runner_board_without_a_tflite_interpreter(sshd, tflite_pair):
    """A board Python that has numpy but no TFLite interpreter: the benchmark says so, the runner names the step."""
    bare = sshd["dir"] / "bare-env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    site = next((bare / "lib").glob("python3*/site-packages"))
    (site / "numpy").symlink_to(Path(metadata.distribution("numpy").locate_file("numpy")))
    with pytest.raises(DeviceError, match="at step 'import'.*ai-edge-litert"):
        open_runner(f"{sshd['base']}&python={bare / 'bin' / 'python'}").benchmark(
            DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))


def test_ssh_runner_unreachable_host_and_timeout(sshd, tflite_pair):
    d = sshd["dir"]
    closed = _free_port()
    with pytest.raises(DeviceError, match="cannot reach the device over ssh"):
        open_runner(f"ssh://nobody@127.0.0.1:{closed}?key={d / 'client'}&known_hosts={d / 'known_hosts'}").benchmark(
            DeviceRequest(tflite_pair["int8"], tflite_pair["x"]))
    with pytest.raises(DeviceError, match="running the benchmark timed out"):
        open_runner(f"{sshd['base']}&python={sshd['python']}").benchmark(
            DeviceRequest(tflite_pair["int8"], tflite_pair["x"], runs=10_000_000, timeout_s=3))
