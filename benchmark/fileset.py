"""Several files written as one set: all of them appear, or none (a run's scores and record, a leaderboard).

Each file is written by its writer to a temporary beside it (infra.atomic's naming, which readers
skip); only when every writer succeeded are the temporaries renamed onto their targets, in the given
order. On any failure the temporaries are removed, and so are the targets already renamed into place.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Mapping

from infra.atomic import FILE_MODE, TMP_MARK
from infra.paths import confine

Writer = Callable[[Path], None]  # writes one whole file at the path it is given


def text_writer(text: str) -> Writer:
    """A writer of `text` as UTF-8."""
    return lambda path: path.write_text(text, encoding="utf-8")


def npz_writer(arrays: dict, compressed: bool = False) -> Writer:
    """A writer of numpy arrays as an .npz archive (what np.savez writes), closing the archive on any
    failure: numpy 1.26 leaves it open, and its collection then prints a second error (a traceback)."""
    import numpy as np

    def write(path: Path) -> None:
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED) as archive:
            for name, value in arrays.items():
                with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)

    return write


def _temporary(path: Path, root: str | os.PathLike | None) -> Path:
    """A new empty temporary beside `path` (inside `root` when given), its folder created."""
    if root is not None:
        confine(root, path.parent)
    path.parent.mkdir(parents=True, exist_ok=True)
    if root is not None:
        confine(root, path)
    fd, tmp = tempfile.mkstemp(prefix=f"{path.stem}{TMP_MARK}", suffix=path.suffix, dir=path.parent)
    os.close(fd)
    return Path(tmp)


def _naming(e: OSError, path: Path) -> OSError:
    """`e`, naming `path` when it names no file or only a temporary (a full or read-only disk)."""
    if e.filename is not None and TMP_MARK not in os.fsdecode(e.filename):
        return e
    return OSError(e.errno, e.strerror, str(path))


def write_together(writers: Mapping[str | os.PathLike, Writer], root: str | os.PathLike | None = None) -> list[Path]:
    """Write every file of `writers` (target -> writer) as one set (see the module docstring); return
    the targets. With `root`, each target must resolve inside it. An OSError names the target."""
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
