"""Readers of files that come from outside: bounded in size (`read_bounded`) and, for JSON, in depth
(`read_json`), confined to a root.

`read_json` refuses, each with one line naming the file: a missing or unreadable file, one larger
than `max_bytes` (read no further than that), text that is not UTF-8 JSON (NaN and Infinity
included), nesting deeper than `max_depth`, and a path that resolves (symlinks followed) outside
`root`. What it returns is plain JSON data whose depth is checked, so a reader's own walks over it
cannot exhaust the stack.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .errors import ToolkitError
from .paths import UnsafePathError, confine

MiB = 1024 * 1024
MAX_BYTES = 64 * MiB  # scene, meta and run files are kilobytes to a few megabytes
MAX_DEPTH = 64  # scene JSONs nest 6 deep, COCO files 5


class JSONFileError(ToolkitError, ValueError):
    """A JSON file that cannot be read, is too large or too deep, is not JSON, or lies outside its root."""


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def depth_exceeds(value, max_depth: int) -> bool:
    """True when `value` nests lists and objects more than `max_depth` deep (iterative, stops early)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def read_bounded(path: str | os.PathLike, what: str, max_bytes: int = MAX_BYTES, root: str | os.PathLike | None = None,
                 error: type[Exception] = JSONFileError) -> bytes:  # fmt: skip
    """The bytes of the untrusted file `path`, reading no more than `max_bytes` (+1 to tell a larger
    one); `error` (one line naming `path`) for a path leaving `root` (when given, symlinks followed),
    a missing or unreadable file (a folder in its place, no permission) or one over the limit."""
    path = Path(path)
    if root is not None:
        try:
            confine(root, path)
        except UnsafePathError as e:
            raise error(str(e)) from None
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except FileNotFoundError:
        raise error(f"missing {what} {path}") from None
    except OSError as e:
        raise error(f"cannot read {what} {path}: {(e.strerror or str(e)).lower()}") from None
    if len(data) > max_bytes:
        raise error(f"{path}: {what} larger than the limit of {max_bytes // MiB} MiB")
    return data


def read_json(path: str | os.PathLike, what: str = "JSON file", max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
              root: str | os.PathLike | None = None, error: type[Exception] = JSONFileError):  # fmt: skip
    """The JSON value in `path` (read by `read_bounded`), or `error` (one line naming `path` and the reason)."""
    data = read_bounded(path, what, max_bytes, root, error)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise error(f"{path}: {what} is not UTF-8 text (byte {e.start})") from None
    return parse_json(text, path, what, max_depth, error)


def parse_json(text: str, source: str | os.PathLike, what: str = "JSON", max_depth: int = MAX_DEPTH,
               error: type[Exception] = JSONFileError):  # fmt: skip
    """The JSON value of `text` (read from `source`), depth-checked; `error` naming `source` otherwise."""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise error(f"{source}: {what} nested deeper than {max_depth} levels") from None
    except ValueError as e:  # JSONDecodeError, NaN/Infinity
        raise error(f"{source}: corrupt {what}: {e}") from None
    if depth_exceeds(value, max_depth):
        raise error(f"{source}: {what} nested deeper than {max_depth} levels")
    return value
