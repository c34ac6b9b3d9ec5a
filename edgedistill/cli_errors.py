"""How the CLI answers a failure: a user's mistake is one paragraph on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import errno
import functools
import sys

import click

from edgedistill import interrupt
from edgedistill.errors import INPUT_REFUSED, RUN_FAILED, EdgeDistillError


# the file-system answers a user can act on (a path that is missing, read-only, a directory, or a full disk); any
# other OSError with a file name (a library's internal file, a device error) stays a traceback worth reporting
_USER_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EDQUOT, errno.ENAMETOOLONG}


def _file_system_refusal(exc: OSError) -> bool:
    return isinstance(exc, (PermissionError, FileNotFoundError, NotADirectoryError, IsADirectoryError,
                            FileExistsError)) or exc.errno in _USER_ERRNOS


# what an interrupted command says: the commands that train resume from their checkpoints; the others (export,
# profile, search, gate) publish nothing half-done and have nothing to resume
_TRAINING_COMMANDS = {"distill", "build_cmd"}
_RESUME = ("interrupted: training is checkpointed at every evaluation point, and a finished auto T/alpha search too "
           "(trials of an unfinished search are not); run the same command again to resume.")
_NOTHING_PUBLISHED = "interrupted: nothing was written or replaced; run the same command again to start over."


def user_errors(fn):
    """Turn user-caused errors into one paragraph on stderr and a non-zero exit, without a traceback. The same codes
    in every command (CI tells them apart): 2 (INPUT_REFUSED) for a refused input, option or path, as click's usage
    errors; 1 (RUN_FAILED) where the command ran and failed (errors.RunFailed: parity, QAT collapse, divergence; a
    failed rank under torchrun), as a failed gate; 130 when interrupted."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from edgedistill import distributed as ddp

        where = f"rank {ddp.rank()} of {ddp.world()}: " if ddp.requested() else ""
        try:
            with interrupt.watched():
                return fn(*args, **kwargs)
        except EdgeDistillError as exc:
            click.echo(f"error: {where}{exc}", err=True)
            sys.exit(exc.exit_code)
        except OSError as exc:
            if exc.filename is None and exc.errno in _USER_ERRNOS:  # a full disk shows at write / close, nameless
                click.echo(f"error: {where}the file system refused a write: {exc.strerror or exc}. Free some space "
                           "or choose another output path.", err=True)
                sys.exit(INPUT_REFUSED)
            if exc.filename is None or not _file_system_refusal(exc):
                raise
            # the file system refused: a read-only --out, a missing directory for --json / --junit, a full disk
            click.echo(f"error: {where}cannot write or read {exc.filename}: {exc.strerror or exc}. Check that the "
                       "path exists and is writable, or choose another one.", err=True)
            sys.exit(INPUT_REFUSED)
        except KeyboardInterrupt:
            click.echo(_RESUME if fn.__name__ in _TRAINING_COMMANDS else _NOTHING_PUBLISHED, err=True)
            sys.exit(130)
        except Exception as exc:
            if not ddp.requested():
                raise
            # under torchrun: one line naming the rank (torchrun then stops the other ranks and reports the failure)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            click.echo(f"error: rank {ddp.rank()} of {ddp.world()} failed: {type(exc).__name__}: {first[:400]}. "
                       "Finished epochs are checkpointed by rank 0; run the same command again to resume.", err=True)
            sys.exit(RUN_FAILED)
        finally:
            ddp.shutdown()

    return wrapper
