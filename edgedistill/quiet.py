"""Keep third-party noise out of the user's terminal: it goes to `third_party.log` in the output directory.

A normal `distill --qat` or `build` otherwise prints, between the progress bars, lines edgedistill did not write and
the user cannot act on: torchao's "Failed to load … .so" (Python logging), absl / oneDNN / TFLite log lines and
the converter's "Estimated count of arithmetic ops" (C++ writing to file descriptor 2), torch's glog-style
warnings and copyreg's `FutureWarning: isinstance(treespec, LeafSpec)` (Python warnings).

Two layers catch them, both by content (`is_noise`), never by hiding a stream wholesale:

* Python: `sys.stderr` becomes a stream that sends each write that is third-party noise to the log and passes
  everything else (progress bars, edgedistill's errors and warnings) straight to the terminal.
* C / C++: file descriptor 2 becomes a pipe read line by line on a thread; noise lines go to the log, the
  rest to the terminal. Python streams opened before the capture (a logging handler holding the old sys.stderr)
  land here too.

A warning raised from edgedistill's own code is never noise. `--verbose` turns the capture off.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path

from edgedistill.util import published_mode

LOG_NAME = "third_party.log"
_PACKAGE_DIR = str(Path(__file__).resolve().parent)

NOISE_PATTERNS = tuple(re.compile(p) for p in (
    r"^[IWEF]\d{4} \d\d:\d\d:\d\d[.\d]*\s+\d+ \S+:\d+\]",  # absl / glog-format lines (C++ absl, torch's logging)
    r"^WARNING: All log messages before absl::InitializeLog",
    r"^INFO: (Created TensorFlow Lite|Initialized TensorFlow Lite)",
    r"^Failed to load \S+\.so",  # torchao's optional kernels
    r"oneDNN custom operations are on",
    r"Estimated count of arithmetic ops",
    r"^\s*return cls\.__new__\(cls, \*args\)$",  # the source line under copyreg's warning
))
_WARNING_LINE = re.compile(r"^(?P<file>[^\n]+?\.py):\d+: (?P<cat>\w+Warning): ")


def is_noise(text: str) -> bool:
    """Whether a line (or one write) of stderr output is third-party noise. A Python warning is noise unless it
    comes from a file inside the edgedistill package."""
    s = text.strip("\r\n")
    if not s.strip():
        return False
    m = _WARNING_LINE.match(s)
    if m:
        return not os.path.abspath(m.group("file")).startswith(_PACKAGE_DIR)
    return any(p.search(s) for p in NOISE_PATTERNS)


class _FilteringStream(io.TextIOBase):
    """sys.stderr during a capture: noise to the log, everything else to the terminal, write by write."""

    def __init__(self, terminal, log):
        self._terminal, self._log = terminal, log

    def write(self, text: str) -> int:
        (self._log if is_noise(text) else self._terminal).write(text)
        return len(text)

    def flush(self) -> None:
        self._terminal.flush()
        self._log.flush()

    def isatty(self) -> bool:
        return self._terminal.isatty()

    def fileno(self) -> int:
        return self._terminal.fileno()

    @property
    def encoding(self):
        return getattr(self._terminal, "encoding", "utf-8")


class Capture:
    """An active capture: the temporary log, and where the log is kept at the end (`keep_in`)."""

    def __init__(self):
        self.destination: Path | None = None
        self._tmp = tempfile.NamedTemporaryFile("w", prefix="edgedistill-", suffix=".log", delete=False,
                                                encoding="utf-8", errors="replace")
        self._lock = threading.Lock()

    def _write_log(self, text: str) -> None:
        with self._lock:
            self._tmp.write(text)
            self._tmp.flush()

    def start(self) -> "Capture":
        self.failed = False
        sys.stderr.flush()
        self._old_stderr = sys.stderr
        self._saved_fd = os.dup(2)
        try:
            on_fd2 = self._old_stderr.fileno() == 2
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            on_fd2 = False
        # Python writes skip the pipe: to the real terminal, or to whatever stream replaced sys.stderr (a test runner)
        terminal = io.TextIOWrapper(io.FileIO(os.dup(self._saved_fd), "w"), encoding="utf-8", errors="replace",
                                    line_buffering=True, write_through=True) if on_fd2 else self._old_stderr
        self._terminal = terminal if on_fd2 else None
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._thread = threading.Thread(target=self._pump, args=(read_fd,), daemon=True)
        self._thread.start()
        log = _LockedLog(self)
        sys.stderr = _FilteringStream(terminal, log)
        return self

    def _pump(self, read_fd: int) -> None:
        with io.FileIO(read_fd, "r") as pipe:
            pending = b""
            while chunk := pipe.read(65536):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self._route(raw.decode("utf-8", "replace") + "\n")
            if pending:
                self._route(pending.decode("utf-8", "replace"))

    def _route(self, line: str) -> None:
        if is_noise(line):
            self._write_log(line)
        else:
            os.write(self._saved_fd, line.encode("utf-8", "replace"))

    def stop(self) -> None:
        try:
            sys.stderr.flush()
            self._old_stderr.flush()
        except (OSError, ValueError):
            pass
        _flush_c_stdio()
        os.dup2(self._saved_fd, 2)  # closes the pipe's last write end: the pump sees EOF
        self._thread.join(timeout=5)
        sys.stderr = self._old_stderr
        if self._terminal is not None:
            self._terminal.close()
        os.close(self._saved_fd)
        self._tmp.close()
        self._keep()

    def _keep(self) -> None:
        """Into OUT.partial when the run left one (failed or interrupted), into OUT only when the command
        succeeded; a refused or failed run leaves the user's existing OUT exactly as it was. A run that published
        nothing new (a build's re-check) appends its lines to OUT's log rather than replacing the training's."""
        tmp = Path(self._tmp.name)
        dest = self.destination
        if dest is not None and dest.name not in ("", ".", ".."):
            partial = dest.with_name(dest.name + ".partial")
            if partial.is_dir():
                shutil.move(str(tmp), str(partial / LOG_NAME))
                published_mode(partial / LOG_NAME)
                return
            if dest.is_dir() and not self.failed:
                kept = dest / LOG_NAME
                if kept.is_file():  # a re-check of a published OUT (a new run replaces OUT whole): add, never replace
                    with open(kept, "ab") as log:
                        log.write(tmp.read_bytes())
                    tmp.unlink(missing_ok=True)
                    return
                shutil.move(str(tmp), str(kept))
                published_mode(kept)  # a NamedTemporaryFile is 0600
                return
        tmp.unlink(missing_ok=True)


class _LockedLog:
    def __init__(self, capture: Capture):
        self._capture = capture

    def write(self, text: str) -> None:
        self._capture._write_log(text)

    def flush(self) -> None:
        pass


def _flush_c_stdio() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError):
        pass


_active: Capture | None = None


def keep_log_in(out_dir: str | Path | None) -> None:
    """Name the output directory the active capture's log is moved into at the end (no-op without a capture)."""
    if _active is not None and out_dir:
        _active.destination = Path(out_dir)


def third_party_to_log(fn):
    """Decorator for a CLI command with a `verbose` flag: without it, third-party noise goes to the log (see the
    module docstring) for the whole command; `verbose` is consumed here and not passed on."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        global _active
        verbose = kwargs.pop("verbose", False) or os.environ.get("EDGEDISTILL_VERBOSE") == "1"
        if verbose or _active is not None:
            return fn(*args, **kwargs)
        _active = Capture().start()
        try:
            return fn(*args, **kwargs)
        except SystemExit:
            raise  # the command finished and chose its exit code (build: the gate's verdict)
        except BaseException:
            _active.failed = True
            raise
        finally:
            cap, _active = _active, None
            cap.stop()

    return wrapper
