"""Atomic writes (infra.atomic): all or nothing, usual file permissions, stale temporaries."""

from __future__ import annotations

import os
import stat

import pytest

from infra.atomic import TMP_MARK, atomic_path, remove_stale_temporaries, write_json


def test_written_files_are_complete_with_the_usual_permissions(tmp_path):
    target = tmp_path / "sub" / "a.json"
    write_json(target, {"x": 1})
    assert target.read_text() == '{"x": 1}\n'
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".txt" and TMP_MARK in tmp.name
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_stale_temporaries_are_removed(tmp_path):
    (tmp_path / f"a{TMP_MARK}x1.png").write_bytes(b"")
    (tmp_path / "a.png").write_bytes(b"")
    assert remove_stale_temporaries(tmp_path) == 1 and [p.name for p in tmp_path.iterdir()] == ["a.png"]
    assert remove_stale_temporaries(tmp_path / "missing") == 0
