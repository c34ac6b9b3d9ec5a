"""The run directory: `OUT.partial/` while a run works, renamed to `OUT` only when it succeeded.

One `RunDir` owns, for both `distill` and `build`:
* the rule on an existing output (refused unless `--overwrite`; the old directory is replaced only on success);
* `OUT.partial/checkpoints/`, where an interrupted run's finished epochs wait for the same command to resume them;
* a lock (`OUT.lock`, holding the pid and host of the run that owns the directory), so a second process started on
  the same `--out` while the first is alive is refused instead of "resuming" into the first one's live work. The lock
  is an `fcntl.flock` on that file: the kernel drops it when its process dies, so a killed run's lock is taken over
  and the run resumes;
* publishing (`OUT.partial` -> `OUT`) and the build manifest's artifact list and verification;
* a refusal leaves nothing: a user's error (edgedistill.errors.EdgeDistillError) raised after this run created
  `OUT.partial` removes it (and the lock), so a refused run leaves neither OUT nor OUT.partial, as one refused before
  anything was written does. Kept are an error that says it keeps its outputs for inspection (`keeps_outputs`, e.g.
  a failed parity check), an interruption or a crash (its checkpoints resume the same command), and a work directory
  this run did not create (an interrupted run's, being resumed).

Under torchrun only rank 0 locks, creates and publishes; the other ranks share its work directory.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import socket
from pathlib import Path

from edgedistill import distributed as ddp, interrupt
from edgedistill.errors import ConfigError, EdgeDistillError
from edgedistill.teachers.base import file_digest
from edgedistill.quiet import LOG_NAME


class RunDirBusy(ConfigError):
    """Another live process owns this output directory."""


RUN_FILES = ("config.json", "metrics.json")  # every published run directory holds both
RUN_INDEX = ".edgedistill-files"  # the entries a run published: anything else in OUT is the user's (check_out_dir)
# files later commands add to a published run: the gate's (a build's re-check writes them), the third-party log each
# command appends to; and `export`'s default output, RUN/export, when it is one (it holds export.json)
LATER = ("gate.md", "gate.xml", LOG_NAME)
EXPORT_DIR = "export"
# where a run has no usable index (published by an older version, or the index deleted or damaged): the names a run
# writes (fnmatch patterns); anything else there is taken for the user's
RUN_NAMES = ("config.json", "metrics.json", "manifest.json", "export.json", "tokenizer.json", "report.*", "student*",
             "baseline*", "*.onnx", "*.tflite", "*.safetensors")


def check_out_name(out: Path) -> None:
    """The output must be a directory of its own: the run publishes by renaming OUT.partial onto it (so not a
    symbolic link, which the publish would replace or fail to remove)."""
    if out.is_symlink():
        raise ConfigError(f"--out {str(out)!r} is a symbolic link (to {os.readlink(out)}); give the directory itself "
                          "or a new path: the run publishes its outputs by replacing --out, and a link would be "
                          "replaced, not the folder it names.")
    if out.name in ("", ".", "..") or out.resolve() == Path(out.resolve().anchor):
        raise ConfigError(f"--out {str(out)!r} must name a directory for this run's outputs (e.g. runs/mine), not "
                          "the current, parent or root directory: the run publishes its outputs by replacing it.")


def check_out_dir(out: Path, overwrite: bool, marks: tuple[str, ...] = RUN_FILES, replacing: bool = True) -> None:
    """Refuse an existing, non-empty output directory unless the user said `--overwrite`, and refuse even then
    unless it is an earlier run's output (it holds every file of `marks`: config.json and metrics.json for distill
    and build, export.json for export): replacing it replaces the whole directory, and nothing the user put there
    may be lost: `replacing` (a run that will replace it), an earlier run's directory that also holds entries the
    user put there is refused too (refuse_foreign). Writes nothing."""
    check_out_name(out)
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        return
    if not overwrite:
        raise ConfigError(f"Output directory {out} already exists and is not empty; choose another --out or pass "
                          "--overwrite (the old directory is replaced only after the new run succeeds).")
    if not out.is_dir() or not all((out / f).is_file() for f in marks):
        what = "is a file" if not out.is_dir() else f"is not an edgedistill output (no {' and '.join(marks)})"
        raise ConfigError(f"An existing --out is replaced only when it is an earlier run's output directory, and "
                          f"{out} {what}; nothing there was touched. Choose another --out.")
    if replacing:
        refuse_foreign(out)


def refuse_foreign(out: Path) -> None:
    """Raise ConfigError (one paragraph, naming them) where the run directory `out`, about to be replaced, holds
    entries its run did not write (foreign_entries); nothing is touched."""
    foreign = foreign_entries(out) if out.is_dir() else []
    if foreign:
        names = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise ConfigError(f"{out} is an earlier run's output, but it also holds {len(foreign)} "
                          f"entr{'y' if len(foreign) == 1 else 'ies'} that run did not write ({names}), which "
                          "replacing the directory would delete (a corpus or teacher kept there among them?). Move "
                          f"them out of {out} or choose another --out; nothing was touched.")


def foreign_entries(out: Path) -> list[str]:
    """The names in a published run directory `out` that its run did not write, sorted: the user's own entries. What
    the run wrote is its RUN_INDEX (written at publish) or, where that is missing or damaged, whatever RUN_NAMES
    match; what later commands add (LATER, and an `export/` holding export.json) is the tool's too."""
    from fnmatch import fnmatch

    try:
        ours = json.loads((out / RUN_INDEX).read_text())
        ours = {str(n) for n in ours} if isinstance(ours, list) else None
    except (OSError, ValueError):
        ours = None

    def tools(p: Path) -> bool:
        if p.name in (RUN_INDEX, *LATER):
            return True
        if p.name == EXPORT_DIR:
            return p.is_dir() and not p.is_symlink() and (p / "export.json").is_file() and not foreign_entries(p)
        if ours is not None:
            return p.name in ours
        return any(fnmatch(p.name, pattern) for pattern in RUN_NAMES)

    return sorted(p.name for p in out.iterdir() if not tools(p))


def write_index(work: Path) -> None:
    """Record the entries of a finished work directory (RUN_INDEX), so a later --overwrite can tell the user's own
    files from the run's (check_out_dir)."""
    names = sorted(p.name for p in work.iterdir() if p.name != RUN_INDEX)
    (work / RUN_INDEX).write_text(json.dumps(names) + "\n", encoding="utf-8")


class RunDir:
    """Context manager: `with RunDir(out, overwrite) as run: ... run.work ... run.publish()`.

    Entering checks the output rule and takes the lock (rank 0); it creates nothing else until `create()`.
    Raises ConfigError when the output exists without --overwrite, RunDirBusy when another live process holds it.
    """

    def __init__(self, out: Path, overwrite: bool = False, replacing: bool = True):
        self.out = Path(out)
        check_out_name(self.out)
        self.overwrite = overwrite
        self.replacing = replacing  # False: the caller decides later (refuse_foreign) whether OUT is replaced
        self.work = self.out.with_name(self.out.name + ".partial")
        self.lock_path = self.out.with_name(self.out.name + ".lock")
        self._fd: int | None = None
        self._created = False  # whether create() made OUT.partial (a refusal then removes it)

    @property
    def checkpoints(self) -> Path:
        return self.work / "checkpoints"

    def __enter__(self) -> "RunDir":
        check_out_dir(self.out, self.overwrite, replacing=self.replacing)
        if ddp.is_main():
            self._probe()  # refuse a live owner now, before reading data and teachers; lock in create()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if self._created and isinstance(exc, EdgeDistillError) and not getattr(exc, "keeps_outputs", False):
                shutil.rmtree(self.work, ignore_errors=True)  # a refused run leaves nothing (module doc)
        finally:
            self._unlock()

    def create(self) -> Path:
        """Take the lock, then make `OUT.partial/checkpoints` (kept from an interrupted run: resuming reads it)."""
        if ddp.is_main():
            self.lock()
            self._created = self._created or not self.work.exists()
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        ddp.barrier()
        return self.work

    def publish(self) -> None:
        """Replace `OUT` with the finished work directory; checkpoints are dropped (the run is complete).

        Raises KeyboardInterrupt, publishing nothing, when a Ctrl-C arrived and something swallowed it."""
        interrupt.raise_if_interrupted()
        shutil.rmtree(self.checkpoints, ignore_errors=True)
        write_index(self.work)
        if self.out.exists():
            old = self.out.with_name(self.out.name + f".old{os.getpid()}")
            os.replace(self.out, old)
            os.replace(self.work, self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.work, self.out)

    def lock(self) -> None:
        """Own the directory until the run ends (idempotent). Raises RunDirBusy naming the live owner."""
        if self._fd is not None:
            return
        self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            self._try_flock(fd)
            if _same_file(fd, self.lock_path):  # not a file a finishing run unlinked between open and lock
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} on host {socket.gethostname()}\n".encode())
        self._fd = fd
        _HELD.add(fd)

    def _probe(self) -> None:
        try:
            fd = os.open(self.lock_path, os.O_RDWR)
        except FileNotFoundError:
            return
        self._try_flock(fd)
        os.close(fd)  # free: a killed run's lock, taken over in create()

    def _try_flock(self, fd: int) -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.read(fd, 512).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunDirBusy(
                f"Output directory {self.out} is in use by a run that is still alive ({owner}, lock file "
                f"{self.lock_path}). Wait for it to finish, stop it, or choose another --out; a run that was "
                "killed releases the directory, and the same command then resumes it.") from None

    def _unlock(self) -> None:
        if self._fd is None:
            return
        try:
            self.lock_path.unlink(missing_ok=True)
        finally:
            _HELD.discard(self._fd)
            os.close(self._fd)  # closing drops the flock
            self._fd = None


# Lock descriptors this process holds. A forked child (a DataLoader worker) inherits them, and a flock lasts while
# any copy is open: a run killed with SIGKILL stayed "in use by a run that is still alive" until its orphaned workers
# noticed and exited, seconds later. Children close their copies at once; the lock is the parent's alone.
_HELD: set[int] = set()


def _drop_inherited_locks() -> None:
    for fd in _HELD:
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_drop_inherited_locks)


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


MANIFEST = "manifest.json"


def artifact_list(out: Path) -> list[dict]:
    """Every file of a published build with its sha256 (the gate's files excluded: a re-run re-derives them; and
    the third-party log, which each command adds to; the report is included, so an edited report.json is noticed
    and rebuilt rather than gated)."""
    files = sorted(p for p in out.iterdir() if p.is_file() and p.name not in (MANIFEST, LOG_NAME, RUN_INDEX))
    return [{"path": p.name, "sha256": file_digest(p), "bytes": p.stat().st_size} for p in files
            if not p.name.startswith("gate.")]


def read_manifest(out: Path) -> dict | None:
    """OUT's manifest.json, or None where there is none or it is not one (unreadable, not JSON, not an object): a
    build then treats OUT as holding no build of its own (the run directory's own checks refuse a folder edgedistill
    did not write; a damaged build is rebuilt)."""
    path = out / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):  # ValueError: bad JSON, bad UTF-8 (UnicodeDecodeError)
        return None
    return manifest if isinstance(manifest, dict) else None


def artifacts_verify(out: Path, manifest: dict) -> bool:
    """True when every artifact the manifest lists is present with its recorded sha256."""
    for a in manifest.get("artifacts", []):
        p = out / a["path"]
        if not p.is_file() or file_digest(p) != a["sha256"]:
            return False
    return bool(manifest.get("artifacts"))
