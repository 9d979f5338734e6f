"""Atomic file writes: write to a temporary file in the same folder, then rename over the target."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .paths import confine

TMP_MARK = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file (mkstemp makes them private)


@contextmanager
def atomic_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    With `root`, `path` must resolve inside it (checked once its folder exists): a symlinked folder
    that leaves the root is refused with UnsafePathError before anything is written.

    The temporary name keeps the suffix of `path` so that writers that infer a format from the
    extension (PIL, Blender, pandas) still work. The result gets the usual permissions of a new
    file (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    if root is not None:
        confine(root, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    if root is not None:
        confine(root, path)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}{TMP_MARK}", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        if e.filename is None:  # a failed write (a full disk) names no file: name the target
            raise OSError(e.errno, e.strerror, str(path)) from e
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes(path: str | os.PathLike, data: bytes, root: str | os.PathLike | None = None) -> None:
    with atomic_path(path, root) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str, root: str | os.PathLike | None = None) -> None:
    write_bytes(path, text.encode("utf-8"), root)


def write_json(path: str | os.PathLike, obj, indent: int | None = None, root: str | os.PathLike | None = None) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n", root)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete temporaries left by a killed writer in `folder` (not recursive); return how many."""
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    stale = [p for p in folder.iterdir() if TMP_MARK in p.name and p.is_file()]
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
