"""The errors a user can act on, and how the command line words them: one line, naming the file.

Every domain error of the project derives from ToolkitError; the CLI prints its message as one line
on stderr and exits 1. OSError (a missing or unreadable file, a read-only or full disk, a file in
the way of a folder) is worded by `describe_os_error`.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path


class ToolkitError(Exception):
    """A bad input or state the user can fix; its message is one line that names the file."""


def first_line(error: Exception) -> str:
    """The first line of an exception's message, or its type's name when it has none."""
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _mount_point(path: Path) -> Path:
    """The mount point of the file system that holds `path` (or would hold it: its nearest existing parent)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def disk_of(path: str | os.PathLike) -> str:
    """'the disk mounted at M (F free of T)' for the file system that holds `path`."""
    mount = _mount_point(Path(path))
    try:
        usage = shutil.disk_usage(mount)
    except OSError:
        return f"the disk mounted at {mount}"
    return f"the disk mounted at {mount} ({_size(usage.free)} free of {_size(usage.total)})"


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def describe_os_error(e: OSError) -> str:
    """One line for an OSError: 'FILE: reason', with the disk named when it is full or read-only."""
    reason = (e.strerror or str(e) or type(e).__name__).rstrip(".")
    reason = reason[0].lower() + reason[1:] if reason else reason
    where = os.fsdecode(e.filename) if e.filename is not None else None
    if e.filename2 is not None:
        where = f"{where} -> {os.fsdecode(e.filename2)}"
    if e.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS) and e.filename is not None:
        reason += f" on {disk_of(os.fsdecode(e.filename))}"
    elif e.errno in (errno.ENOSPC, errno.EDQUOT):
        reason += " (a disk is full)"
    return f"{where}: {reason}" if where else reason
