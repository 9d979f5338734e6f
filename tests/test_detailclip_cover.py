"""Complete Cover, grid and object boxes."""

import numpy as np
import pytest
import torch

from detailclip.cover import complete_cover_boxes, grid_boxes, object_boxes, rounded_size, scheme_boxes

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


@pytest.mark.parametrize("scheme,count", [("cc", 166), ("grid", 101), ("whole", 1)])
def test_scheme_boxes_in_the_original_frame(scheme, count):
    boxes, levels = scheme_boxes(scheme, 97, 131, k=10)
    assert boxes.shape == (count, 4) and boxes.dtype == torch.float32 and levels.shape == (count,)
    assert boxes[0].tolist() == [0, 0, 131, 97] and levels[0] == 0
    assert boxes[:, 2].max() <= 131 and boxes[:, 3].max() <= 97 and boxes.min() >= 0
    assert (levels[1:] >= levels[:-1]).all()


def test_scheme_objects_and_errors():
    boxes, levels = scheme_boxes("objects", 60, 100, object_bboxes=[[10, 10, 20, 10]], min_side=4)
    assert boxes.tolist() == [[0, 0, 100, 60], [10, 10, 30, 20]] and levels.tolist() == [0, 1]
    with pytest.raises(ValueError, match="object_bboxes"):
        scheme_boxes("objects", 60, 100)
    with pytest.raises(ValueError, match="unknown patch scheme"):
        scheme_boxes("hexagons", 60, 100)
    with pytest.raises(ValueError, match="positive"):
        complete_cover_boxes(0, 10, 3)
