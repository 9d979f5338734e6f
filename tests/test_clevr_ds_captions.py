"""Crops and captions for backbone training (clevr_ds.captions): visibility, keys, wording, sampling."""

from __future__ import annotations

import numpy as np

from clevr_ds.captions import (
    EMPTY_CAPTIONS,
    VisibilityRule,
    caption,
    crop_contents,
    inside_fraction,
    object_crop,
    object_key,
    plural,
    sample_crops,
    single_object_crops,
    swap_attribute,
)
from clevr_ds.vocab import Vocabulary

RULE = VisibilityRule(input_size=100, min_pixels=4, min_inside=0.7, max_outside_cut=0.1)


def obj(color: str, shape: str, bbox, material: str = "rubber", visible: bool = True) -> dict:
    return {"color": color, "shape": shape, "class": f"{color} {shape}", "material": material, "bbox": list(bbox),
            "visible": visible}


def scene(objects, size: int = 400) -> dict:
    return {"width": size, "height": size, "objects": objects}


def test_inside_fraction():
    assert inside_fraction([0, 0, 100, 100], [10, 10, 20, 20]) == 1.0
    assert inside_fraction([0, 0, 100, 100], [90, 10, 20, 20]) == 0.5
    assert inside_fraction([0, 0, 100, 100], [200, 10, 20, 20]) == 0.0


def test_crop_contents_rule():
    inside = obj("red", "cube", [10, 10, 20, 20])
    mostly = obj("blue", "sphere", [50, 50, 20, 20 / 0.8])  # 80% inside a [0, 0, 70, 70] crop
    crop = [0, 0, 70, 70]
    assert crop_contents(crop, [inside, mostly], RULE) == ([inside, mostly], True)
    cut = obj("green", "cylinder", [60, 10, 20, 20])  # half inside: neither present nor absent
    assert crop_contents(crop, [inside, cut], RULE) == ([inside], False)
    grazing = obj("green", "cylinder", [68, 10, 20, 20])  # 10% inside: counts as outside
    assert crop_contents(crop, [inside, grazing], RULE) == ([inside], True)
    tiny = obj("gray", "cube", [30, 30, 2, 2])  # 2 px in a 70 px crop -> 2.9 px at input 100: too small
    assert crop_contents(crop, [inside, tiny], RULE) == ([inside], True)
    hidden = obj("cyan", "cube", [40, 40, 20, 20], visible=False)
    assert crop_contents(crop, [hidden], RULE) == ([], True)
    tiny_cut = obj("gray", "cube", [69, 30, 2, 2])  # too small to count even though cut
    assert crop_contents(crop, [tiny_cut], RULE) == ([], True)


def test_object_key_is_an_order_free_multiset():
    a, b, c = obj("red", "cube", [0, 0, 5, 5]), obj("blue", "sphere", [9, 9, 5, 5]), obj("red", "cube", [20, 0, 5, 5])
    assert object_key([a, b]) == object_key([b, a]) == "blue sphere|red cube"
    assert object_key([a, b, c]) == "blue sphere|red cube|red cube"
    assert object_key([]) == ""


def mentioned(text: str, colors, shapes) -> tuple[set, set]:
    words = set(text.replace(",", " ").replace(".", " ").split())
    return {c for c in colors if c in words}, {s for s in shapes if s in words or plural(s) in words}


def test_captions_name_exactly_the_objects_with_varied_wording():
    objects = [obj("red", "cube", [0, 0, 30, 30], "metal"), obj("blue", "sphere", [50, 50, 30, 30]),
               obj("yellow", "cylinder", [100, 0, 30, 30])]
    crop = [0, 0, 200, 200]
    colors, shapes = ("red", "blue", "yellow", "green", "gray"), ("cube", "sphere", "cylinder")
    texts = [caption(objects, crop, np.random.default_rng(seed), ["a photo of a {}.", "{} in a render"])
             for seed in range(60)]
    for text in texts:
        assert mentioned(text, colors, shapes) == ({"red", "blue", "yellow"}, {"cube", "sphere", "cylinder"})
        assert " a a " not in f" {text} "
    assert len(set(texts)) > 30
    firsts = {min(("red", "blue", "yellow"), key=lambda c: t.index(c)) for t in texts}
    assert firsts == {"red", "blue", "yellow"}  # the order of objects varies
    assert any(w in " ".join(texts).split() for w in ("metal", "metallic", "shiny"))
    assert caption(objects, crop, np.random.default_rng(3)) == caption(objects, crop, np.random.default_rng(3))


def test_caption_groups_a_class_and_describes_empty_crops():
    two = [obj("red", "cube", [0, 0, 30, 30]), obj("red", "cube", [50, 50, 30, 30])]
    texts = {caption(two, [0, 0, 200, 200], np.random.default_rng(s)) for s in range(20)}
    assert all("two" in t and "cubes" in t for t in texts)
    assert all(caption([], [0, 0, 9, 9], np.random.default_rng(s), ["a photo of a {}."]) in EMPTY_CAPTIONS[None]
               for s in range(20))


def test_sample_crops_are_clean_square_and_in_range():
    objects = [obj("red", "cube", [40, 40, 60, 60]), obj("blue", "sphere", [250, 300, 30, 30]),
               obj("green", "cylinder", [300, 50, 8, 8])]
    rng = np.random.default_rng(0)
    crops = sample_crops(rng, objects, 400, 400, 200, RULE, min_frac=0.1, whole_share=0.2)
    assert len(crops) == 200
    boxes = np.array([box for box, _ in crops])
    sides = boxes[:, 2] - boxes[:, 0]
    assert np.allclose(sides, boxes[:, 3] - boxes[:, 1])
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2:] <= 400 + 1e-9).all()
    assert (sides >= 40 - 1e-9).all() and 0.1 < np.mean(sides == 400) < 0.5
    assert 0.4 < np.mean(sides < 200) < 0.9  # log-uniform: most windows are small
    for box, inside in crops:
        assert crop_contents(box, objects, RULE) == (inside, True)
    again = sample_crops(np.random.default_rng(0), objects, 400, 400, 200, RULE, min_frac=0.1, whole_share=0.2)
    assert [b for b, _ in again] == [b for b, _ in crops]


def test_single_object_crops_show_one_object_each():
    alone = obj("red", "cube", [40, 40, 20, 20])
    pair = [obj("blue", "sphere", [200, 200, 20, 20]), obj("green", "cube", [225, 200, 20, 20])]
    edge = obj("gray", "cylinder", [380, 0, 20, 20])
    items = single_object_crops([scene([alone, *pair, edge])], RULE, factor=3.0)
    assert [(pos, item["class"]) for pos, _, item in items] == [(0, "red cube"), (0, "gray cylinder")]
    assert items[0][1] == [20.0, 20.0, 80.0, 80.0]
    assert items[1][1] == object_crop(edge["bbox"], 400, 400, 3.0) == [340.0, 0.0, 400.0, 60.0]


def test_object_windows_frame_an_object():
    objects = [obj("red", "cube", [40, 40, 30, 30]), obj("blue", "sphere", [250, 300, 20, 20]),
               obj("cyan", "cube", [300, 50, 20, 20], visible=False)]
    crops = sample_crops(np.random.default_rng(1), objects, 400, 400, 100, RULE, whole_share=0.0, object_share=1.0)
    for box, inside in crops:
        side = box[2] - box[0]
        framed = [o for o in inside if 1.5 - 1e-9 <= side / max(o["bbox"][2:]) <= 8 + 1e-9]
        assert framed and all(o["visible"] for o in inside)
        assert 0 <= box[0] and 0 <= box[1] and box[2] <= 400 and box[3] <= 400
    assert {o["class"] for _, inside in crops for o in inside} == {"red cube", "blue sphere"}


def test_swap_attribute_changes_one_shape_or_colour():
    objects = [obj("red", "cube", [0, 0, 10, 10]), obj("blue", "sphere", [20, 0, 10, 10], material="metal")]
    shapes, colors = ["cube", "sphere", "cylinder"], ["red", "blue", "green"]
    vocabulary = Vocabulary("test", {s: {} for s in shapes}, {c: (0, 0, 0) for c in colors}, {"rubber": {}})
    kinds = set()
    for seed in range(40):
        swapped = swap_attribute(objects, np.random.default_rng(seed), vocabulary, p_shape=0.5)
        changed = [(a, b) for a, b in zip(objects, swapped) if a != b]
        assert len(changed) == 1 and len(swapped) == 2
        before, after = changed[0]
        diff = {k for k in before if before[k] != after[k]} - {"class"}
        assert len(diff) == 1 and diff <= {"shape", "color"}
        assert after["class"] == f"{after['color']} {after['shape']}" and after["class"] != before["class"]
        assert after["shape"] in shapes and after["color"] in colors
        assert object_key(swapped) != object_key(objects)
        kinds |= diff
    assert kinds == {"shape", "color"}
    assert objects[0]["class"] == "red cube" and objects[1]["class"] == "blue sphere"  # inputs untouched
    only_shapes = {swap_attribute(objects, np.random.default_rng(s), vocabulary, p_shape=1.0)[0]["color"]
                   for s in range(20)}
    assert only_shapes == {"red"}


def test_aerial_captions_keep_colour_in_the_key_and_shape_alone_in_the_class():
    aerial = Vocabulary.of_family("aerial")
    car = {"color": "white", "shape": "car", "class": "car", "material": "paint", "bbox": [0, 0, 10, 10], "visible": True}
    colour_swaps = [swap_attribute([car], np.random.default_rng(s), aerial, p_shape=0.0)[0] for s in range(10)]
    assert all(o["class"] == "car" and o["color"] != "white" and o["color"] in aerial.colors for o in colour_swaps)
    assert all(object_key([o]) != object_key([car]) for o in colour_swaps)  # a recoloured caption is a negative
    shape_swaps = [swap_attribute([car], np.random.default_rng(s), aerial, p_shape=1.0)[0] for s in range(10)]
    assert all(o["class"] == o["shape"] != "car" and o["shape"] in aerial.shapes for o in shape_swaps)
    texts = {caption([car], [0, 0, 100, 100], np.random.default_rng(s), p_material=1.0) for s in range(20)}
    assert all("white" in t and "car" in t for t in texts) and any("painted" in t or "glossy" in t for t in texts)
    empty = EMPTY_CAPTIONS[aerial.prompts]
    assert {caption([], [0, 0, 9, 9], np.random.default_rng(s), empty=empty) for s in range(30)} <= set(empty)
    assert not any("floor" in t for t in empty)
