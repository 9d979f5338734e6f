"""One writer per output folder: `with folder_lock(out, purpose="render"):` holds FOLDER/.lock (and per
output file: `output_lock(path)` holds `.NAME.lock` beside it).

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
    with _hold(folder / LOCK_NAME, str(folder), purpose) as path:
        yield path


@contextmanager
def output_lock(output: str | os.PathLike, purpose: str = "write") -> Iterator[Path]:
    """Hold the lock of one output file (and the files named after it: a training's state and log),
    `.NAME.lock` beside it, creating its folder if needed; FolderLockedError names the holder."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    with _hold(output.parent / f".{output.name}{LOCK_NAME}", str(output), purpose) as path:
        yield path


@contextmanager
def _hold(path: Path, what: str, purpose: str) -> Iterator[Path]:
    """Hold the flock of lock file `path` (which guards `what`) and write who holds it into it."""
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
            raise FolderLockedError(f"{what} is in use by another writer ({holder}); wait for it to end or choose another output") from None
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}, {purpose} since {started}\n".encode(), 0)
        except OSError as e:  # a full disk: name the lock file and what it guards
            raise OSError(e.errno, e.strerror, f"{path} (the lock of {what})") from None
        yield path
    finally:
        os.close(fd)
