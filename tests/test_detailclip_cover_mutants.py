"""detailclip.cover details (issue #15 item 5: mutation testing). Oracle: the Complete Cover rule of
the method notes and hand-computed crops and grids."""

from __future__ import annotations

import pytest
import torch

from detailclip.cover import SCHEMES, axis_starts, grid_boxes, object_boxes, rounded_size, scheme_boxes, windows_per_axis


def test_windows_per_axis_on_large_images():
    assert [windows_per_axis(10, c) for c in (10, 9, 5, 4, 3, 2, 1)] == [1, 2, 3, 3, 4, 6, 10]
    assert windows_per_axis(1, 1) == 1


def test_axis_starts_step_and_the_even_fallback():
    assert axis_starts(100, 20, 10, 6) == [0, 19, 38, 57, 76, 80]  # step 20 - (20-10)//10 = 19, last clamped
    assert axis_starts(100, 100, 10, 1) == [0]
    assert axis_starts(12, 4, 1, 3) == [0, 4, 8]  # the step would give more windows: spread evenly instead
    assert axis_starts(5, 5, 1, 1) == [0]


def test_rounded_size_and_positive_checks():
    assert rounded_size(10, 21, 10) == (10, 30) and rounded_size(1, 1, 3) == (3, 3)
    for bad in ((0, 5, 2), (5, 5, 0), (5, 2.5, 1), (-3, 5, 1)):
        with pytest.raises(ValueError, match=r"must be a positive integer, got"):
            rounded_size(*bad)
    with pytest.raises(ValueError, match=r"^width must be a positive integer, got 2.5$"):
        rounded_size(5, 2.5, 1)
    assert rounded_size(5.0, 4, 2) == (6, 4)


def test_grid_rounds_edges_to_pixels():
    assert grid_boxes(10, 5, 2) == [(0, 0, 2, 5), (2, 0, 5, 5), (0, 5, 2, 10), (2, 5, 5, 10)]
    assert grid_boxes(3, 3, 1) == [(0, 0, 3, 3)]


def test_object_boxes_minimum_side_shift_and_clip():
    assert object_boxes([[50, 20, 10, 10]], 100, 100) == [(50, 20, 60, 30)]  # enlarge 1, already >= 8
    assert object_boxes([[50, 20, 2, 4]], 100, 100) == [(47, 18, 55, 26)]  # min_side 8 about the centre
    assert object_boxes([[95, 95, 10, 10]], 100, 100, enlarge=1.5) == [(85, 85, 100, 100)]  # shifted inside
    assert object_boxes([[0, 0, 10, 10]], 6, 100, enlarge=1.0) == [(0, 0, 10, 6)]  # clipped to the height
    assert object_boxes([[10, 10, 4, 4]], 100, 100, enlarge=0.5, min_side=1) == [(11, 11, 13, 13)]
    for enlarge in (0, -1.0):
        with pytest.raises(ValueError, match=rf"^enlarge must be positive, got {enlarge}$"):
            object_boxes([[0, 0, 1, 1]], 10, 10, enlarge=enlarge)
    assert object_boxes([], 10, 10) == []


def test_scheme_boxes_frames_levels_and_names():
    assert SCHEMES == ("cc", "cc-fine", "grid", "objects", "whole")
    boxes, levels = scheme_boxes("cc", 9, 9, k=2)  # rounded to 10 x 10, scaled back by 0.9
    assert boxes.tolist()[:2] == [[0.0, 0.0, 9.0, 9.0], [0.0, 0.0, pytest.approx(4.5), pytest.approx(4.5)]]
    assert levels.tolist() == [0, 1, 1, 1, 1]
    boxes, levels = scheme_boxes("grid", 4, 6, k=2)
    assert boxes.tolist() == [[0, 0, 6, 4], [0, 0, 3, 2], [3, 0, 6, 2], [0, 2, 3, 4], [3, 2, 6, 4]]
    assert levels.tolist() == [0, 1, 1, 1, 1]
    boxes, levels = scheme_boxes("objects", 20, 30, object_bboxes=[], min_side=2)
    assert boxes.tolist() == [[0, 0, 30, 20]] and levels.tolist() == [0]
    boxes, levels = scheme_boxes("objects", 20, 30, object_bboxes=[[2, 2, 4, 4]], enlarge=2.0, min_side=2)
    assert boxes.tolist() == [[0, 0, 30, 20], [0, 0, 8, 8]] and levels.tolist() == [0, 1]
    boxes, levels = scheme_boxes("whole", 20, 30)
    assert boxes.tolist() == [[0, 0, 30, 20]] and levels.tolist() == [0]
    with pytest.raises(ValueError, match=r"^unknown patch scheme 'x' \(known: cc, cc-fine, grid, objects, whole\)$"):
        scheme_boxes("x", 20, 30)
    with pytest.raises(ValueError, match=r"^scheme 'objects' needs object_bboxes$"):
        scheme_boxes("objects", 20, 30)


def test_object_boxes_check_the_image_size_and_pass_min_side_through():
    for height, width, name in ((0, 10, "height"), (10, 0, "width")):
        with pytest.raises(ValueError, match=rf"^{name} must be a positive integer, got 0$"):
            object_boxes([[0, 0, 1, 1]], height, width)
    boxes, _ = scheme_boxes("objects", 20, 30, object_bboxes=[[2, 2, 4, 4]], min_side=2)
    assert boxes.tolist()[1] == [2, 2, 6, 6]  # min_side 2 keeps the 4 px box; the default 8 would grow it


def test_grid_checks_its_arguments_and_scheme_defaults():
    for args, name in (((0, 5, 2), "height"), ((5, 0, 2), "width"), ((5, 5, 0), "n")):
        with pytest.raises(ValueError, match=rf"^{name} must be a positive integer, got 0$"):
            grid_boxes(*args)
    boxes, levels = scheme_boxes("grid", 20, 20)  # default k = 10: whole image + 10 x 10 tiles
    assert boxes.shape == (101, 4) and levels.dtype == torch.long
    boxes, _ = scheme_boxes("objects", 20, 30, object_bboxes=[[2, 2, 4, 4]])  # default min_side = 8
    assert boxes.tolist()[1] == [0, 0, 8, 8]
