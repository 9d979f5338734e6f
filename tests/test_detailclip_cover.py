"""Complete Cover, grid and object boxes."""

import numpy as np
import pytest
import torch

from detailclip.cover import (AUTO_K, COVER_SCHEMES, LEADING_SCHEME, SCHEMES, auto_k, auto_k_record, begins_with,
                              complete_cover_boxes, grid_boxes, image_k, magnified_k, object_boxes, parse_cover_k,
                              rounded_size, scheme_boxes, window_count)

COUNT_TABLE = {  # method.md: windows per kept level
    1: [1], 2: [1, 4], 3: [1, 4, 9], 4: [1, 4, 9, 16], 5: [1, 4, 9, 25], 6: [1, 4, 9, 16, 36],
    7: [1, 4, 9, 16, 49], 8: [1, 4, 9, 25, 64], 9: [1, 4, 9, 16, 25, 81], 10: [1, 4, 9, 16, 36, 100],
    11: [1, 4, 9, 16, 36, 121], 12: [1, 4, 9, 16, 25, 49, 144], 13: [1, 4, 9, 16, 25, 49, 169],
    14: [1, 4, 9, 16, 25, 64, 196], 15: [1, 4, 9, 16, 36, 64, 225],
}
SIZES = [(2240, 2240), (96, 128), (131, 97), (10, 15), (1, 1), (333, 4001)]


@pytest.mark.parametrize("k", sorted(COUNT_TABLE))
@pytest.mark.parametrize("height,width", SIZES)
def test_counts_match_the_table_at_any_size(k, height, width):
    assert [len(level) for level in complete_cover_boxes(height, width, k)] == COUNT_TABLE[k]


def test_window_sides_2240_k10():
    levels = complete_cover_boxes(2240, 2240, 10)
    assert [level[0][2] - level[0][0] for level in levels] == [2240, 1344, 896, 672, 448, 224]
    assert levels[0] == [(0, 0, 2240, 2240)]
    # windows nearly tile: step = side - (cells - 1), the last one clamped to the border
    assert [b[0] for b in levels[4][:6]] == [0, 447, 894, 1341, 1788, 1792]


def _coverage(boxes, height, width):
    covered = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        covered[y0:y1, x0:x1] = True
    return covered


@pytest.mark.parametrize("height,width", [(97, 131), (101, 99), (7, 33), (2240, 1000)])
@pytest.mark.parametrize("k", [3, 7, 10, 13])
def test_every_level_covers_the_rounded_image_in_bounds(height, width, k):
    rounded_h, rounded_w = rounded_size(height, width, k)
    assert rounded_h % k == 0 and rounded_w % k == 0 and rounded_h >= height and rounded_w >= width
    for level in complete_cover_boxes(height, width, k):
        assert _coverage(level, rounded_h, rounded_w).all()


@pytest.mark.parametrize("height,width,n", [(97, 131, 3), (100, 100, 10), (5, 7, 4)])
def test_grid_tiles_without_overlap(height, width, n):
    boxes = grid_boxes(height, width, n)
    assert len(boxes) == n * n
    assert sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in boxes) == height * width
    assert _coverage(boxes, height, width).all()


def test_object_boxes_enlarge_and_stay_inside():
    boxes = object_boxes([[10, 10, 20, 10], [0, 0, 4, 4], [90, 55, 10, 5]], height=60, width=100, enlarge=2.0,
                         min_side=16)
    assert boxes[0] == (0, 5, 40, 25)  # 40 x 20 about the centre (20, 15)
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 100 and 0 <= y0 < y1 <= 60
        assert x1 - x0 >= 16 and y1 - y0 >= 16


@pytest.mark.parametrize("scheme,count", [("cc", 166), ("cc-fine", 166 + 225), ("grid", 101), ("whole", 1)])
def test_scheme_boxes_in_the_original_frame(scheme, count):
    boxes, levels = scheme_boxes(scheme, 97, 131, k=10)
    assert boxes.shape == (count, 4) and boxes.dtype == torch.float32 and levels.shape == (count,)
    assert boxes[0].tolist() == [0, 0, 131, 97] and levels[0] == 0
    assert boxes[:, 2].max() <= 131 and boxes[:, 3].max() <= 97 and boxes.min() >= 0
    assert (levels[1:] >= levels[:-1]).all()


def test_cc_fine_joins_magnified_windows_to_the_finest_level():
    cc, cc_levels = scheme_boxes("cc", 2240, 2240, k=20)
    fine, fine_levels = scheme_boxes("cc-fine", 2240, 2240, k=20)
    assert magnified_k(20) == 30 and magnified_k(7) == 11
    assert fine.shape == (661 + 900, 4) and torch.equal(fine[:661], cc) and torch.equal(fine_levels[:661], cc_levels)
    assert (fine_levels[661:] == cc_levels.max()).all()  # the magnified windows share the finest level
    sides = fine[661:, 2] - fine[661:, 0]
    assert torch.allclose(sides, torch.full_like(sides, 2240 / 30), atol=1)  # 75 px: 112 px / 1.5
    covered = torch.zeros(2240, 2240, dtype=torch.bool)
    for x0, y0, x1, y1 in fine[661:].round().long().tolist():
        covered[y0:y1, x0:x1] = True
    assert covered.all()  # the magnified windows alone still cover every pixel


@pytest.mark.parametrize("k", [1, 2, 5, 10, 20])
@pytest.mark.parametrize("height,width", SIZES)
def test_leading_schemes_begin_with_their_windows_and_counts_match(k, height, width):
    """A scheme's windows begin with its leading scheme's (same boxes, levels and order), so a student reads
    the first window_count(leading) features of the teacher's; window_count is the boxes' count."""
    for scheme in COVER_SCHEMES:
        assert window_count(scheme, height, width, k) == len(scheme_boxes(scheme, height, width, k)[1])
    for scheme, leading in LEADING_SCHEME.items():
        boxes, levels = scheme_boxes(scheme, height, width, k)
        lead_boxes, lead_levels = scheme_boxes(leading, height, width, k)
        count = window_count(leading, height, width, k)
        assert torch.equal(boxes[:count], lead_boxes) and torch.equal(levels[:count], lead_levels)
        assert begins_with(scheme, leading) and begins_with(scheme, scheme) and not begins_with(leading, scheme)
    assert [s for s in SCHEMES if begins_with(s, "grid")] == ["grid"]


def test_scheme_objects_and_errors():
    boxes, levels = scheme_boxes("objects", 60, 100, object_bboxes=[[10, 10, 20, 10]], min_side=4)
    assert boxes.tolist() == [[0, 0, 100, 60], [10, 10, 30, 20]] and levels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="object_bboxes"):
        scheme_boxes("objects", 60, 100)
    with pytest.raises(ValueError, match="unknown patch scheme"):
        scheme_boxes("hexagons", 60, 100)
    with pytest.raises(ValueError, match="positive"):
        complete_cover_boxes(0, 10, 3)
    with pytest.raises(ValueError, match="not a cover scheme"):
        window_count("objects", 60, 100, 3)


@pytest.mark.parametrize("input_size", [32, 112, 224])
@pytest.mark.parametrize("height,width", [(2240, 2240), (4480, 2240), (1000, 8960), (225, 300), (224, 224)])
def test_auto_k_keeps_the_finest_windows_at_the_input_size(height, width, input_size):
    k = auto_k(height, width, input_size)
    cell = max(rounded_size(height, width, k)) // k  # the finest windows' longer side
    assert input_size / 2 < cell <= input_size or (k == 1 and max(height, width) <= input_size)


def test_auto_k_rule_and_window_growth():
    assert [auto_k(2240, 2240, 224), auto_k(2240, 2240, 112), auto_k(8960, 4480, 112), auto_k(50, 60, 224)] == [10, 20, 80, 1]
    for side in (1120, 2240, 4480, 8960):  # windows grow as (side / input size)^2: about 1.6 k^2
        k = auto_k(side, side, 112)
        assert 1.5 * k * k <= sum(map(len, complete_cover_boxes(side, side, k))) <= 1.7 * k * k


def test_parse_cover_k_and_the_record():
    assert [parse_cover_k(v) for v in ("auto", " AUTO ", "10", 7, "1")] == [AUTO_K, AUTO_K, 10, 7, 1]
    assert parse_cover_k("30", 30) == 30 and AUTO_K == "auto"
    for bad, limit in (("0", None), ("-3", None), ("2.5", None), ("ten", None), ("31", 30)):
        with pytest.raises(ValueError, match="k must be a positive integer"):
            parse_cover_k(bad, limit)
    with pytest.raises(ValueError) as refused:
        parse_cover_k("31", 30)
    assert str(refused.value) == "k must be a positive integer up to 30 or auto, got '31'"
    with pytest.raises(ValueError) as refused:
        parse_cover_k("0")
    assert str(refused.value) == "k must be a positive integer or auto, got '0'"
    assert [image_k(AUTO_K, 2240, 1000, 112), image_k(7, 2240, 1000, 112), image_k("7", 10, 10, 112)] == [20, 7, 7]
    assert isinstance(image_k("7", 10, 10, 112), int)
    for sizes, name in (((0, 10, 32), "height"), ((10, 0, 32), "width"), ((10, 10, 0), "input_size")):
        with pytest.raises(ValueError, match=f"{name} must be a positive integer"):
            auto_k(*sizes)
    assert auto_k_record(10, [(2240, 2240)], 112) is None
    assert auto_k_record(AUTO_K, [(2240, 2240), (4480, 100)], 112) == {
        "rule": "k = ceil(longest image side / backbone input size)", "input_size": 112, "per_image": [20, 40]}
