"""Which OSErrors the CLI answers as a user's mistake (one paragraph) and which stay a traceback."""

import errno

import click
import pytest
from click.testing import CliRunner

from edgedistill.cli_errors import user_errors


def _command(exc: Exception):
    @click.command()
    @user_errors
    def cmd():
        raise exc

    return cmd


@pytest.mark.parametrize("exc", [PermissionError(errno.EACCES, "Permission denied", "/ro/out"),
                                 FileNotFoundError(errno.ENOENT, "No such file or directory", "/missing/x.xml"),
                                 OSError(errno.ENOSPC, "No space left on device", "/full/disk.bin")])
def test_a_file_system_refusal_is_one_paragraph(exc):
    r = CliRunner().invoke(_command(exc))
    assert r.exit_code == 2 and r.output.startswith(f"error: cannot write or read {exc.filename}")


def test_other_os_errors_with_a_file_name_stay_tracebacks():
    """An I/O error of a device or a library's own file is not the user's path to fix: it must not be dressed as one."""
    r = CliRunner().invoke(_command(OSError(errno.EIO, "Input/output error", "/dev/sda")))
    assert r.exit_code == 1 and isinstance(r.exception, OSError) and "cannot write or read" not in r.output


def test_a_full_disk_seen_at_write_time_has_no_file_name_and_is_still_one_paragraph():
    r = CliRunner().invoke(_command(OSError(errno.ENOSPC, "No space left on device")))
    assert r.exit_code == 2 and r.output.startswith("error: the file system refused a write: No space left")
