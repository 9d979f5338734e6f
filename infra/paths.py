"""Names read from files are untrusted: plain names only, and every path built from them stays in its root."""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ToolkitError

_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_NAME = 200


class UnsafePathError(ToolkitError, ValueError):
    """A name from a file or flag that is not a plain name, or a path that leaves its root."""


def plain_name(name: object, what: str = "name", source: str | os.PathLike | None = None) -> str:
    """`name` if it is a plain file or split name (letters, digits, '.', '_', '-'; no separators, no '..',
    not starting with a dot), else UnsafePathError naming `source` (the file it came from)."""
    where = f"{source}: " if source is not None else ""
    if not isinstance(name, str) or len(name) > MAX_NAME or not _PLAIN.fullmatch(name) or ".." in name:
        raise UnsafePathError(f"{where}{what} {name!r} is not a plain name (letters, digits, '.', '_', '-')")
    return name


def inside(root: str | os.PathLike, *parts: str, source: str | os.PathLike | None = None) -> Path:
    """root/part/... after checking that it resolves (symlinks followed) inside root."""
    return confine(root, Path(root).joinpath(*parts), source)


def confine(root: str | os.PathLike, path: str | os.PathLike, source: str | os.PathLike | None = None) -> Path:
    """`path` after checking that it resolves (symlinks followed, relative paths from the working folder)
    inside `root`; UnsafePathError naming `source` (the file the path came from) otherwise."""
    path = Path(path)
    base = Path(root).resolve()
    resolved = path.resolve()
    if resolved != base and base not in resolved.parents:
        where = f"{source}: " if source is not None else ""
        raise UnsafePathError(f"{where}path {path} leaves {root}")
    return path
