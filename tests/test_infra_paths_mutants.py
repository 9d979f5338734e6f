"""infra.paths boundaries (issue #15 item 5: mutation testing). Oracle: the rules in the module
docstrings, checked on names and folders built by hand."""

from __future__ import annotations

import os

import pytest

from infra.paths import MAX_NAME, UnsafePathError, inside, plain_name


@pytest.mark.parametrize("name", ["a", "A.b_c-9", "0", "x" * MAX_NAME, "v1.2.png"])
def test_plain_names_pass_unchanged(name):
    assert plain_name(name) == name


@pytest.mark.parametrize("name", ["", ".hidden", "a..b", "..", "a/b", "a\\b", "-a", "_a", "a b", "x" * (MAX_NAME + 1),
                                  None, 3, b"abc", "é"])
def test_other_names_are_refused(name):
    with pytest.raises(UnsafePathError):
        plain_name(name)


def test_refusal_names_the_source_and_what():
    with pytest.raises(UnsafePathError) as e:
        plain_name("../x", "image name", "labels.json")
    assert str(e.value).startswith("labels.json: image name '../x' is not a plain name")
    with pytest.raises(UnsafePathError) as e:
        plain_name("../x")
    assert str(e.value).startswith("name '../x' is not a plain name")
    assert issubclass(UnsafePathError, ValueError)


def test_inside_allows_the_root_and_its_descendants(tmp_path):
    (tmp_path / "sub").mkdir()
    assert inside(tmp_path) == tmp_path
    assert inside(tmp_path, "sub", "f.txt") == tmp_path / "sub" / "f.txt"
    assert inside(str(tmp_path), "sub") == tmp_path / "sub"


def test_inside_refuses_paths_that_leave_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "rootling").mkdir()  # a sibling whose name starts with the root's: not inside
    os.symlink(tmp_path, root / "up")
    for parts in (("..",), ("..", "rootling"), ("up",), ("up", "x"), ("sub", "..", "..", "x")):
        with pytest.raises(UnsafePathError) as e:
            inside(root, *parts, source="meta.json")
        assert str(e.value).startswith("meta.json: path ") and f"leaves {root}" in str(e.value)
    with pytest.raises(UnsafePathError) as e:
        inside(root, "..")
    assert str(e.value).startswith("path ")
