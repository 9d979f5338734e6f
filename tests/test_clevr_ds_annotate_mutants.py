"""clevr_ds.annotate on hand-made id maps (issue #15 item 5: mutation testing). Oracle: boxes and
pixel counts read off the hand-drawn maps, pycocotools' own decoder for the RLE."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from clevr_ds.annotate import DEFAULT_MIN_VISIBLE_PIXELS, annotate_objects, decode_mask, encode_mask, mask_bbox, rel_scale


def test_boxes_counts_and_visibility_on_a_non_square_map():
    ids = np.zeros((4, 6), dtype=np.int64)
    ids[1:3, 2:5] = 1  # 2 rows x 3 cols = 6 px at x=2, y=1
    ids[3, 0] = 2  # 1 px
    scene = {"width": 6, "height": 4, "objects": [{}, {}, {}]}
    annotate_objects(scene, ids, min_visible_pixels=6)
    a, b, c = scene["objects"]
    assert (a["bbox"], a["visible_pixels"], a["visible"], a["area_frac"]) == ([2, 1, 3, 2], 6, True, 6 / 24)
    assert a["rel_scale"] == 3 / 6
    assert (b["bbox"], b["visible_pixels"], b["visible"], b["rel_scale"]) == ([0, 3, 1, 1], 1, False, 1 / 6)
    assert (c["bbox"], c["visible_pixels"], c["visible"], c["rel_scale"], c["area_frac"]) == ([0, 0, 0, 0], 0, False, 0.0, 0.0)
    assert np.array_equal(decode_mask(a["mask"]), ids == 1) and decode_mask(a["mask"]).dtype == bool  # usable as an index
    assert a["mask"]["size"] == [4, 6] and isinstance(a["mask"]["counts"], str)
    assert type(a["visible_pixels"]) is int and all(type(v) is int for v in a["bbox"])


def test_default_threshold_is_sixteen_pixels():
    assert DEFAULT_MIN_VISIBLE_PIXELS == 16
    ids = np.zeros((8, 8), dtype=np.int64)
    ids[:4, :4] = 1  # 16 px
    ids[4:, 4:7] = 2  # 12 px
    scene = {"width": 8, "height": 8, "objects": [{}, {}]}
    annotate_objects(scene, ids)
    assert [o["visible"] for o in scene["objects"]] == [True, False]


def test_a_map_of_the_wrong_size_is_refused():
    with pytest.raises(ValueError, match=r"^id map is 6x4, scene is 4x6$"):
        annotate_objects({"width": 4, "height": 6, "objects": []}, np.zeros((4, 6), dtype=np.int64))


def test_rel_scale_uses_the_longer_sides():
    assert rel_scale([0, 0, 3, 5], 10, 20) == 5 / 20
    assert rel_scale([0, 0, 7, 2], 40, 10) == 7 / 40


def test_rle_round_trip_and_bbox_of_a_tall_mask():
    mask = np.zeros((5, 3), dtype=bool)
    mask[0:5, 1] = True
    rle = encode_mask(mask)
    assert np.array_equal(mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool), mask)
    assert mask_bbox(mask) == [1, 0, 1, 5] and mask_bbox(np.zeros((2, 2), bool)) == [0, 0, 0, 0]
