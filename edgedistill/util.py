"""Small helpers used across stages."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(obj):
    """JSON has no NaN/inf: write them as null so every reader can parse the file."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, obj) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a file. A symlink is followed (its target
    is replaced, the link kept); a path that exists and is not a regular file (a FIFO, /dev/stdout) is written in
    place, never replaced by a file."""
    text = json.dumps(_clean(obj), indent=2, default=str) + "\n"
    path = Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        with open(path, "w") as fh:
            fh.write(text)
        return
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:  # name the user's path, not the temporary file's
        tmp.unlink(missing_ok=True)
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None


def _umask() -> int:
    """The process's umask: Linux reports it in /proc/self/status; elsewhere it is read by setting it (os.umask has
    no getter), which other threads could see for a moment."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def published_mode(path: Path) -> None:
    """Give a file the mode of any file the user writes (0o666 minus the umask: 0644 under the usual 022). Writers
    that go through a private temporary file leave 0600 behind (safetensors' save_file does; so does a
    tempfile.NamedTemporaryFile moved into place), and a published artifact is then unreadable to the group or a
    web server that serves it."""
    os.chmod(path, 0o666 & ~_umask())


def peak_rss_bytes() -> int | None:
    """This process's peak resident memory in bytes (Linux: VmHWM of /proc/self/status; elsewhere getrusage's
    ru_maxrss, bytes on macOS, KiB on other Unixes); None where neither exists. (device/bench.py keeps its own copy:
    it runs on devices without edgedistill.)"""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
        import sys

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(rss if sys.platform == "darwin" else rss * 1024)
    except (ImportError, OSError):
        return None
