"""Hostile file systems for the safety tests (issue #25): a full disk, a read-only disk, a file in the
way of a folder, a symlinked folder that leaves its root, and a command's one-line error.

The disks are real tmpfs mounts (root only; CI runs as root). Where mounting is impossible the test
is skipped with the reason; `.ci/run` runs as root, so CI never skips them.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

FILLER = ".filler"


def _mount(target: Path, size_kib: int) -> None:
    target.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k,mode=0755", "tmpfs", str(target)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")


def _umount(target: Path) -> None:
    subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(target: Path) -> None:
    """Fill the file system of `target` until writes fail with ENOSPC (unbuffered, so nothing is left
    to flush when the file closes)."""
    for name, chunk in ((FILLER, b"\0" * 65536), (f"{FILLER}2", b"\0" * 512)):  # the second takes the last bytes
        with open(target / name, "wb", buffering=0) as f:
            try:
                while f.write(chunk):
                    pass
            except OSError as e:
                assert e.errno == errno.ENOSPC, e


@contextmanager
def _tmpfs_with(where: Path, contents: Path | None, size_mib: int) -> Iterator[Path]:
    """A tmpfs of `size_mib` at `where` holding a copy of `contents` (if given) as `where/<name>`;
    yields the copy's path (or `where`) and unmounts at the end."""
    _mount(where, size_mib * 1024)
    try:
        copy = where
        if contents is not None:
            copy = where / contents.name
            shutil.copytree(contents, copy, symlinks=True)
        yield copy
    finally:
        _umount(where)


@contextmanager
def full_disk(where: Path, contents: Path | None = None, size_mib: int = 64) -> Iterator[Path]:
    """`_tmpfs_with`, then filled so that any further write fails with ENOSPC."""
    with _tmpfs_with(where, contents, size_mib) as copy:
        _fill(where)
        yield copy


@contextmanager
def read_only_disk(where: Path, contents: Path | None = None, size_mib: int = 64) -> Iterator[Path]:
    """`_tmpfs_with`, remounted read-only: even root cannot write there."""
    with _tmpfs_with(where, contents, size_mib) as copy:
        proc = subprocess.run(["mount", "-o", "remount,ro", str(where)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot remount the tmpfs read-only: {proc.stderr.strip()}")
        yield copy


def file_in_the_way(tmp_path: Path) -> Path:
    """A path whose parent is a regular file: creating it fails with ENOTDIR."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    return blocker / "out"


def symlink_out(root: Path, folder: str, outside: Path) -> Path:
    """Replace `root/folder` by a symlink to `outside` (which gets the folder's files); returns `outside`."""
    link = root / folder
    outside.mkdir(parents=True, exist_ok=True)
    if link.is_dir() and not link.is_symlink():
        for item in link.iterdir():
            shutil.move(str(item), outside / item.name)
        link.rmdir()
    os.symlink(outside, link, target_is_directory=True)
    return outside


def tree(root: Path) -> dict[str, bytes]:
    """Every file under root (hidden ones included, symlinks not followed) with its bytes."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file() and not p.is_symlink()}


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (asserts: non-zero exit, one line, no traceback)."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0 and len(lines) == 1 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr)
    return lines[0]
