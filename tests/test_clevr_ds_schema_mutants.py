"""clevr_ds.schema.problem on hand-made values (issue #15 item 5: mutation testing).

Oracle: the rules in the module docstring (dict literal = at least these keys, ListOf(spec, n),
NUMBER = int or float, booleans are never numbers) and the one-line messages written out by hand.
"""

from __future__ import annotations

import pytest

from clevr_ds.schema import BOX, META, NUMBER, SCENE_BASE, ListOf, problem

SPEC = {"a": int, "b": {"c": ListOf(NUMBER, 2), "d": ListOf(str)}, "e": bool}


def good() -> dict:
    return {"a": 1, "b": {"c": [1, 2.5], "d": ["x", "y"]}, "e": False, "extra": None}


@pytest.mark.parametrize(
    "value, expected",
    [
        (good(), None),
        ({**good(), "a": True}, "a: expected integer, got boolean True"),
        ({**good(), "a": 1.0}, "a: expected integer, got number 1.0"),
        ({**good(), "e": 0}, "e: expected boolean, got integer 0"),
        ({**good(), "b": {"c": [1, True], "d": []}}, "b.c[1]: expected integer or number, got boolean True"),
        ({**good(), "b": {"c": [1], "d": []}}, "b.c: expected a list of 2, got list [1]"),
        ({**good(), "b": {"c": [1, 2], "d": "xy"}}, "b.d: expected a list, got string 'xy'"),
        ({**good(), "b": {"c": [1, 2], "d": ["x", None]}}, "b.d[1]: expected string, got null None"),
        ({**good(), "b": []}, "b: expected an object, got list []"),
        ({"e": True}, "missing keys a, b"),
        ([], "expected an object, got list []"),
        ({**good(), "a": "1" * 50}, "a: expected integer, got string '" + "1" * 36 + "..."),
        ({**good(), "a": "1" * 38}, "a: expected integer, got string '" + "1" * 38 + "'"),
        ({**good(), "a": "1" * 39}, "a: expected integer, got string '" + "1" * 36 + "..."),  # repr of 41 chars: cut to 40
        ({**good(), "a": {1}}, "a: expected integer, got set {1}"),
    ],
)
def test_first_violation_is_named_in_one_line(value, expected):
    assert problem(value, SPEC) == expected


def test_where_prefixes_every_path():
    assert problem({"a": 1}, {"a": str}, "scene.json") == "scene.json.a: expected string, got integer 1"
    assert problem([1, "x"], ListOf(int), "objs") == "objs[1]: expected integer, got string 'x'"
    assert problem(3, str, "top") == "top: expected string, got integer 3"
    assert problem({}, {"k": int}, "top") == "top: missing keys k"


def test_first_of_several_violations_is_reported():
    assert problem({"a": "x", "e": "y", "b": {}}, SPEC) == "a: expected integer, got string 'x'"
    assert problem([1, "x", "y"], ListOf(int)) == "[1]: expected integer, got string 'x'"


def test_box_and_full_specs():
    assert problem([0, 1, 2.5, 3], BOX) is None
    assert problem([0, 1, 2, 3, 4], BOX) == "expected a list of 4, got list [0, 1, 2, 3, 4]"
    scene = {"image_index": 0, "image_filename": "a.png", "split": "val", "width": 2, "height": 2,
             "objects": [{"class": "red cube", "bbox": [0, 0, 1, 1], "visible": True}]}
    assert problem(scene, SCENE_BASE) is None
    assert problem(scene, META).startswith("missing keys vocabulary, scales, num_images, dataset")
