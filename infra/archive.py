"""Tar archives (WebDataset shards): written with the same bytes for the same members (`tar_writer`), read member
by member without extracting anything (`tar_members`), their member names untrusted.

A written archive is POSIX ustar: the members in the order given, each a regular file of mode 0644 dated `mtime`,
owned by 0:0 with empty user and group names. A read archive must be an uncompressed tar whose members are regular
files with plain names (`infra.paths.plain_name`: no folder, no '..', no leading dot), each once: nothing in it can
name a path, and `TarMember.read_bytes()` reads a member's bytes from the archive itself.
"""

from __future__ import annotations

import errno
import io
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

from .atomic import Writer
from .errors import ToolkitError
from .paths import UnsafePathError, plain_name


@dataclass(frozen=True)
class TarMember:
    """A member of a tar archive: its bytes are `size` bytes at `offset` of the archive file."""

    archive: Path
    name: str
    offset: int
    size: int

    def read_bytes(self) -> bytes:
        """The member's bytes; OSError when the archive no longer holds them."""
        with open(self.archive, "rb") as f:
            f.seek(self.offset)
            data = f.read(self.size)
        if len(data) != self.size:
            raise OSError(errno.EIO, f"the archive ends inside member {self.name}", str(self.archive))
        return data

    def __str__(self) -> str:
        return f"{self.archive}::{self.name}"


def tar_writer(members: Mapping[str, bytes | Path], mtime: int) -> Writer:
    """A writer of a ustar archive of `members` (plain name -> bytes, or a file whose bytes are read when it writes)."""

    def write(path: Path) -> None:
        with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as archive:
            for name, data in members.items():
                data = data.read_bytes() if isinstance(data, Path) else data
                info = tarfile.TarInfo(plain_name(name, "archive member name"))
                info.size, info.mtime, info.mode = len(data), mtime, 0o644
                archive.addfile(info, io.BytesIO(data))

    return write


def tar_members(path: str | os.PathLike, max_members: int, error: type[Exception] = ToolkitError) -> list[TarMember]:
    """The members of the uncompressed tar archive `path`, in archive order; `error` (one line naming the archive)
    for a file that is not one or is cut short, more than `max_members` members, or a member that is not a regular
    file with a plain name of its own."""
    path = Path(path)
    members: dict[str, TarMember] = {}
    try:
        end = path.stat().st_size
        with tarfile.open(path, "r:") as archive:
            for info in archive:
                where = f"{path}: member {info.name!r}"
                if len(members) == max_members:
                    raise error(f"{path}: more than {max_members} members")
                if not info.isreg():
                    raise error(f"{where} is not a regular file")
                plain_name(info.name, "member name", path)
                if info.name in members:
                    raise error(f"{where} appears twice")
                if info.offset_data + info.size > end:
                    raise error(f"{where} is cut short: the archive ends inside it")
                members[info.name] = TarMember(path, info.name, info.offset_data, info.size)
    except UnsafePathError as e:
        raise error(str(e)) from None
    except (tarfile.TarError, OSError) as e:
        raise error(f"cannot read archive {path}: {e.strerror if isinstance(e, OSError) and e.strerror else e}") from None
    return list(members.values())
