"""infra: the bounded JSON reader, path confinement of writers, one-line OS errors, the CLI boundary."""

from __future__ import annotations

import errno
import json
import os

import pytest

from infra.atomic import TMP_MARK, write_json, write_text
from infra.errors import ToolkitError, describe_os_error, disk_of
from infra.jsonio import JSONFileError, depth_exceeds, read_json
from infra.paths import UnsafePathError
from tests.hostile_fs import full_disk, read_only_disk


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def test_read_json_returns_plain_data(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(json.dumps({"a": [1, 2.5, None, True, "x"]}))
    assert read_json(path) == {"a": [1, 2.5, None, True, "x"]}


@pytest.mark.parametrize("depth, ok", [(64, True), (65, False), (200_000, False)])
def test_read_json_refuses_nesting_past_the_limit_in_one_line(tmp_path, depth, ok):
    path = tmp_path / "deep.json"
    path.write_text(nested(depth))
    if ok:
        assert not depth_exceeds(read_json(path), 64)
        return
    with pytest.raises(JSONFileError, match=r"deep.json: JSON file nested deeper than 64 levels$"):
        read_json(path)


def test_read_json_stops_reading_at_the_size_limit(tmp_path):
    path = tmp_path / "big.json"
    path.write_text('"' + " " * 2000 + '"')
    assert read_json(path, max_bytes=4096) == " " * 2000
    with pytest.raises(JSONFileError, match="larger than the limit"):
        read_json(path, max_bytes=1000)


@pytest.mark.parametrize("text, reason", [("{", "corrupt"), ("[NaN]", "NaN is not JSON"), ("[Infinity]", "Infinity is not JSON"),
                                          (b"\xff\xfe", "not UTF-8")])  # fmt: skip
def test_read_json_refuses_what_is_not_json(tmp_path, text, reason):
    path = tmp_path / "bad.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(JSONFileError, match=reason) as info:
        read_json(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_read_json_names_a_missing_file_and_a_folder_in_its_place(tmp_path):
    with pytest.raises(JSONFileError, match="missing JSON file .*nope.json"):
        read_json(tmp_path / "nope.json")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(JSONFileError, match="cannot read JSON file .*dir.json: is a directory"):
        read_json(tmp_path / "dir.json")


def test_read_json_confines_to_its_root_through_symlinks(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "a.json").write_text("{}")
    (root / "sub").symlink_to(outside, target_is_directory=True)
    with pytest.raises(JSONFileError, match="leaves"):
        read_json(root / "sub" / "a.json", root=root)
    (root / "a.json").write_text("{}")
    assert read_json(root / "a.json", root=root) == {}


def test_domain_errors_share_one_base():
    from benchmark.results import NotARun
    from benchmark.runner import BenchError
    from clevr_ds.dataset import DatasetError
    from detailclip.checkpoint import CheckpointError
    from infra.lock import FolderLockedError
    from renderer.settings import RenderError

    for error in (NotARun, BenchError, DatasetError, CheckpointError, FolderLockedError, RenderError, UnsafePathError, JSONFileError):
        assert issubclass(error, ToolkitError)


def test_writers_refuse_a_symlinked_folder_that_leaves_the_root(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "annotations").symlink_to(outside, target_is_directory=True)
    with pytest.raises(UnsafePathError, match="leaves"):
        write_json(root / "annotations" / "x.json", {}, root=root)
    assert list(outside.iterdir()) == []
    write_json(root / "inside" / "x.json", {"a": 1}, root=root)
    assert json.loads((root / "inside" / "x.json").read_text()) == {"a": 1}


def test_a_full_disk_names_the_file_and_the_disk_and_leaves_no_temporary(tmp_path):
    with full_disk(tmp_path / "disk", size_mib=1) as disk:
        with pytest.raises(OSError) as info:
            write_text(disk / "out.txt", "x" * 100_000)
        line = describe_os_error(info.value)
        assert line.startswith(f"{disk / 'out.txt'}: no space left on device on the disk mounted at {disk}")
        assert not [p for p in disk.iterdir() if TMP_MARK in p.name]


def test_a_read_only_disk_names_the_file_and_the_disk(tmp_path):
    with read_only_disk(tmp_path / "disk") as disk:
        with pytest.raises(OSError) as info:
            write_text(disk / "out.txt", "x")
        assert info.value.errno == errno.EROFS
        assert describe_os_error(info.value).startswith(f"{disk}")
        assert "read-only file system on the disk mounted at" in describe_os_error(info.value)


def test_os_errors_without_a_file_still_read_as_one_line():
    assert describe_os_error(OSError(errno.ENOSPC, "No space left on device")) == "no space left on device (a disk is full)"
    assert describe_os_error(OSError(errno.ENOENT, "No such file or directory", "a", None, "b")) == "a -> b: no such file or directory"
    assert disk_of(os.getcwd()).startswith("the disk mounted at ")


def test_the_cli_turns_domain_and_os_errors_into_one_line(capsys, tmp_path):
    from cli import main

    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "test.json").write_text(nested(100_000))
    assert main(["validate", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err and all("Traceback" not in line for line in err) and err[-1].startswith("error: ")


def test_a_lock_file_that_is_a_symlink_is_refused_and_its_target_untouched(tmp_path):
    from infra.lock import LOCK_NAME, folder_lock

    target = tmp_path / "precious.txt"
    target.write_text("keep me\n")
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / LOCK_NAME).symlink_to(target)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        with folder_lock(tmp_path / "ds"):
            pass
    assert target.read_text() == "keep me\n"


def test_a_lock_on_a_full_disk_names_the_lock_file(tmp_path):
    from infra.lock import LOCK_NAME, folder_lock

    with full_disk(tmp_path / "disk", size_mib=1) as disk:
        with pytest.raises(OSError) as info:
            with folder_lock(disk):
                pass
        assert info.value.filename == f"{disk / LOCK_NAME} (the lock of {disk})"
