"""Atomic file writes: write to a temporary file in the same folder, then rename over the target;
several files as one set (`write_together`)."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Mapping

from .paths import confine

TMP_MARK = ".tmp-"
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would give a new file (mkstemp makes them private)


def writable(out: str | os.PathLike) -> Path:
    """`out` if its nearest existing folder takes new files, so that a command fails before its work
    on a read-only disk or below a file (an OSError naming `out`); creates nothing."""
    out = Path(out)
    folder = out.absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        tempfile.TemporaryFile(dir=folder).close()  # an unnamed file: nothing to clean up
    except OSError as e:
        raise OSError(e.errno, e.strerror, str(out)) from None
    return out


def _temporary(path: Path, root: str | os.PathLike | None) -> Path:
    """A new empty temporary beside `path` (its folder created; inside `root` when given)."""
    if root is not None:
        confine(root, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    if root is not None:
        confine(root, path)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}{TMP_MARK}", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _naming(e: OSError, path: Path) -> OSError:
    """`e`, naming `path` when it names no file (a failed write) or only a temporary."""
    if e.filename is not None and TMP_MARK not in os.fsdecode(e.filename):
        return e
    return OSError(e.errno, e.strerror, str(path))


@contextmanager
def atomic_path(path: str | os.PathLike, root: str | os.PathLike | None = None) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path`, else removed.

    With `root`, `path` must resolve inside it (checked once its folder exists): a symlinked folder
    that leaves the root is refused with UnsafePathError before anything is written. An OSError
    names `path`, never the temporary.

    The temporary name keeps the suffix of `path` so that writers that infer a format from the
    extension (PIL, Blender, pandas) still work. The result gets the usual permissions of a new
    file (0666 less the umask), not mkstemp's private 0600.
    """
    path = Path(path)
    tmp = None
    try:
        tmp = _temporary(path, root)
        yield tmp
        os.chmod(tmp, FILE_MODE)
        os.replace(tmp, path)
    except OSError as e:
        raise _naming(e, path) from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


Writer = Callable[[Path], None]  # writes one whole file at the path it is given


def write_together(writers: Mapping[str | os.PathLike, Writer], root: str | os.PathLike | None = None) -> list[Path]:
    """Write several files as one set (target -> writer): all appear, or none. Each writer writes a
    temporary beside its target; only when all succeeded are they renamed onto their targets, in
    order. On any failure the temporaries are removed, and so are the targets already renamed.
    With `root`, each target must resolve inside it. An OSError names the target. Returns the targets."""
    temps: dict[Path, Path] = {}
    placed: list[Path] = []
    target = None
    try:
        for target, write in ((Path(p), w) for p, w in writers.items()):
            temps[target] = _temporary(target, root)
            write(temps[target])
        for target, tmp in temps.items():
            os.chmod(tmp, FILE_MODE)
            os.replace(tmp, target)
            placed.append(target)
    except OSError as e:
        _remove(placed)
        raise _naming(e, target) from None
    except BaseException:
        _remove(placed)
        raise
    finally:
        _remove(temps.values())
    return list(temps)


def _remove(paths) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def text_writer(text: str) -> Writer:
    """A writer of `text` as UTF-8."""
    return lambda path: path.write_text(text, encoding="utf-8")


def copy_writer(source: str | os.PathLike) -> Writer:
    """A writer of a copy of the file `source`."""
    return lambda path: shutil.copyfile(source, path)


ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def npz_writer(arrays: dict, compressed: bool = False) -> Writer:
    """A writer of numpy arrays as an .npz archive (what np.savez writes) with the same bytes for the
    same arrays (members dated 1980-01-01), closing the archive on any failure: numpy 1.26 leaves it
    open, and its collection then prints a second error (a traceback)."""
    import numpy as np

    def write(path: Path) -> None:
        method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
        with zipfile.ZipFile(path, "w", method) as archive:
            for name, value in arrays.items():
                member = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE)  # no clock: equal arrays, equal bytes
                member.compress_type = method
                with archive.open(member, "w", force_zip64=True) as stream:
                    np.lib.format.write_array(stream, np.asanyarray(value), allow_pickle=False)

    return write


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
