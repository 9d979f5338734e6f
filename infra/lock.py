"""One writer per output folder: `with folder_lock(out, purpose="render"):` holds FOLDER/.lock.

The lock is an exclusive, non-blocking `fcntl.flock` on the lock file, held until the block ends.
The kernel drops it when its holder exits, even by SIGKILL, so a killed writer never blocks the
next one. The holder writes who it is (pid, host, purpose, start time UTC) into the file so that a
refused writer can name it. The file is written in place, not atomically: the lock belongs to the
file's inode, which a rename would replace. It is left in place after the run (deleting it would
let a writer that opened the old inode and one that creates a new file both hold "the" lock).
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator

from .atomic import FILE_MODE
from .errors import ToolkitError
from .paths import UnsafePathError

LOCK_NAME = ".lock"


class FolderLockedError(ToolkitError, RuntimeError):
    """Another process holds the folder's lock."""


@contextmanager
def folder_lock(folder: str | os.PathLike, purpose: str = "write") -> Iterator[Path]:
    """Create `folder` if needed and hold its lock for the block; FolderLockedError names the holder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise UnsafePathError(f"{path} is a symbolic link; a lock file must be a plain file") from None
        raise
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = " ".join(os.pread(fd, 1024, 0).decode(errors="replace").split()) or "a process that is starting"
            raise FolderLockedError(f"{folder} is in use by another writer ({holder}); wait for it to end or choose another folder") from None
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, {purpose} since {started}\n".encode(), 0)
        except OSError as e:  # a full disk: name the lock file
            raise OSError(e.errno, e.strerror, str(path)) from None
        yield path
    finally:
        os.close(fd)
