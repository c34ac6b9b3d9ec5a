"""Ctrl-C that is never lost: a run interrupted anywhere exits 130 and publishes nothing.

Python turns SIGINT into a KeyboardInterrupt at the next bytecode of the main thread. Two places defeat that:
* a KeyboardInterrupt raised inside a finalizer (`__del__`, a weakref callback) is printed ("Exception ignored in
  ...") and dropped;
* one raised inside a Python callback that a native library calls (the TFLite converter runs torch.export and MLIR
  passes with Python callbacks) can be swallowed by the library ("KeyboardInterrupt:" printed, conversion goes on)
  or leave its C++ state broken: a SIGINT during the conversion crashed the process with SIGSEGV.

So `watched()` remembers every SIGINT it sees, and `raise_if_interrupted()` (called before anything is published)
raises again if one was dropped; `deferred(what)` holds SIGINT back during a native call and raises once the call
has returned (a second Ctrl-C kills the process at once; OUT.partial and its checkpoints stay for the next run).
Outside the main thread (signal handlers can only be set there) both are plain pass-throughs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

__all__ = ["watched", "deferred", "raise_if_interrupted"]

_seen = False


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _remember(signum, frame):
    global _seen
    _seen = True
    raise KeyboardInterrupt


@contextlib.contextmanager
def watched():
    """SIGINT raises KeyboardInterrupt as usual, and is remembered for `raise_if_interrupted`."""
    global _seen
    if not _main_thread():
        yield
        return
    _seen = False
    previous = signal.signal(signal.SIGINT, _remember)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def raise_if_interrupted() -> None:
    """Raise KeyboardInterrupt if a SIGINT arrived under `watched()` and something swallowed its exception."""
    if _seen:
        raise KeyboardInterrupt


@contextlib.contextmanager
def deferred(what: str):
    """Hold SIGINT back while a native library runs (`what` names it in the one line printed); raise after it."""
    global _seen
    if not _main_thread():
        yield
        return
    pending, tell = [], sys.stderr  # the terminal's stderr, before the library's output is redirected

    def hold(signum, frame):
        global _seen
        _seen = True
        if pending:  # second Ctrl-C: stop now, without cleanup (the run directory's lock is released by the kernel)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        pending.append(signum)
        print(f"interrupt received: stopping when {what} returns (Ctrl-C again to kill it now)", file=tell, flush=True)

    previous = signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if pending:
        raise KeyboardInterrupt
