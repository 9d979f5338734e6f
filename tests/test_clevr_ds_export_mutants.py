"""clevr_ds.export in-process on a hand-made scene (issue #15 item 5: mutation testing).

tests/test_clevr_ds_export.py checks the CLEVR export through a `python cli.py` subprocess, which mutmut
cannot attribute to clevr_ds/export.py; these tests call the export functions directly and compare
with values written out by hand from the documented formats (CLEVR's scene file, COCO, the manifest).
"""

from __future__ import annotations

import json
import math

import pandas as pd

from clevr_ds import GENERATOR_DATE, GENERATOR_NAME, GENERATOR_VERSION, RENDER_LICENSE
from clevr_ds.export import clevr_size, coco_categories, manifest, to_clevr, to_coco, write_clevr_scenes, write_exports
from clevr_ds.vocab import Vocabulary


def _object(color, shape, rel_scale, visible, pixel_coords, coords, bbox, pixels):
    return {"class": f"{color} {shape}", "color": color, "shape": shape, "material": "metal", "size": 0.7,
            "rotation": 12.5, "3d_coords": coords, "pixel_coords": pixel_coords, "rel_scale": rel_scale,
            "target_scale": rel_scale, "visible_pixels": pixels, "area_frac": pixels / 4800.0, "bbox": bbox,
            "visible": visible, "mask": {"size": [60, 80], "counts": "abc"}}  # fmt: skip


def scene() -> dict:
    """Three objects, the middle one hidden; scale range 0.04-0.16 (log-midpoint 0.08)."""
    objects = [
        _object("red", "cube", 0.08, True, [10.4, 20.6, 5.5], [1.0, 2.0, 0.35], [5, 6, 7, 8], 40),  # exactly the midpoint
        _object("blue", "sphere", 0.30, False, [30.0, 30.0, 6.0], [0.0, 0.0, 0.35], [1, 1, 2, 2], 3),
        _object("green", "cylinder", 0.05, True, [50.5, 40.49, 7.25], [-1.0, 1.0, 0.35], [40, 30, 4, 3], 12),
    ]
    return {"image_index": 7, "image_filename": "CLEVR_DS_val_000007.png", "split": "val", "width": 80, "height": 60,
            "seed": 1234, "scale_range": [0.04, 0.16], "objects": objects,
            # object i relates to these objects (CLEVR: relationships[name][i] = indices)
            "relationships": {"left": [[1, 2], [2], []], "right": [[], [0], [0, 1]],
                              "front": [[2], [0, 2], []], "behind": [[], [], [0, 1]]},
            "directions": {"left": [-1, 0, 0]},
            "render": {"engine": "CYCLES", "samples": 16, "render_s": 1.5, "annotate_s": 0.25}}  # fmt: skip


def test_clevr_size_is_large_from_the_log_midpoint_up():
    assert clevr_size({"rel_scale": 0.08}, [0.04, 0.16]) == "large"  # sqrt(0.04 * 0.16) = 0.08
    assert clevr_size({"rel_scale": 0.0799}, [0.04, 0.16]) == "small"
    assert clevr_size({"rel_scale": 0.05}, [0.01, 1.0]) == "small"  # arithmetic midpoint would differ too
    assert clevr_size({"rel_scale": 0.2}, [0.01, 1.0]) == "large"


def test_clevr_scene_keeps_visible_objects_and_reindexes_relationships():
    out = to_clevr([scene()], "val")
    assert out["info"] == {"date": GENERATOR_DATE, "version": GENERATOR_VERSION, "split": "val",
                           "license": RENDER_LICENSE["name"], "generator": f"{GENERATOR_NAME} {GENERATOR_VERSION}"}
    (s,) = out["scenes"]
    assert (s["image_index"], s["image_filename"], s["split"]) == (7, "CLEVR_DS_val_000007.png", "val")
    assert s["directions"] == {"left": [-1, 0, 0]}
    assert [o["color"] for o in s["objects"]] == ["red", "green"]
    red, green = s["objects"]
    assert red == {"shape": "cube", "color": "red", "material": "metal", "size": "large", "size_world": 0.7,
                   "rotation": 12.5, "3d_coords": [1.0, 2.0, 0.35], "pixel_coords": [10, 21, 5.5],
                   "rel_scale": 0.08, "bbox": [5, 6, 7, 8]}  # fmt: skip
    assert green["size"] == "small" and green["pixel_coords"] == [50, 40, 7.25]
    assert all(type(v) is int for v in red["pixel_coords"][:2] + green["pixel_coords"][:2])
    # old 0 -> new 0, old 2 -> new 1; old 1 is gone
    assert s["relationships"] == {"left": [[1], []], "right": [[], [0]], "front": [[1], []], "behind": [[], [0]]}


def test_coco_has_the_visible_objects_with_their_fields():
    vocab = Vocabulary.load()
    coco = to_coco([scene()], vocab, "val")
    assert coco["info"]["year"] == int(GENERATOR_DATE[:4]) and coco["info"]["date_created"] == GENERATOR_DATE
    assert coco["info"]["version"] == GENERATOR_VERSION and "val" in coco["info"]["description"]
    assert coco["licenses"] == [RENDER_LICENSE]
    assert coco["images"] == [{"id": 7, "file_name": "CLEVR_DS_val_000007.png", "width": 80, "height": 60, "seed": 1234,
                               "license": RENDER_LICENSE["id"], "date_captured": GENERATOR_DATE}]  # fmt: skip
    names = {c["id"]: c["name"] for c in coco["categories"]}
    assert sorted(names) == list(range(1, len(vocab.classes) + 1))
    assert all(c["supercategory"] == c["name"].split(" ")[1] for c in coco["categories"])
    red, green = coco["annotations"]
    assert [a["id"] for a in coco["annotations"]] == [1, 2]
    assert (names[red["category_id"]], names[green["category_id"]]) == ("red cube", "green cylinder")
    assert red["object_index"] == 0 and green["object_index"] == 2
    assert red["image_id"] == 7 and red["iscrowd"] == 0 and red["area"] == 40 and red["bbox"] == [5, 6, 7, 8]
    assert red["segmentation"] == {"size": [60, 80], "counts": "abc"}
    for key in ("shape", "color", "material", "rel_scale", "target_scale", "visible_pixels", "area_frac", "size"):
        assert red[key] == scene()["objects"][0][key]


def test_manifest_row_counts_and_ranges():
    hidden = scene()
    for o in hidden["objects"]:
        o["visible"] = False
    hidden["image_index"] = 8
    table = manifest([scene(), hidden])
    row = table.iloc[0].to_dict()
    assert {k: row[k] for k in ("image_index", "image_filename", "split", "width", "height", "seed", "num_objects",
                                "num_visible", "classes", "engine", "samples")} == {
        "image_index": 7, "image_filename": "CLEVR_DS_val_000007.png", "split": "val", "width": 80, "height": 60,
        "seed": 1234, "num_objects": 3, "num_visible": 2, "classes": "green cylinder;red cube", "engine": "CYCLES",
        "samples": 16}  # fmt: skip
    assert (row["scale_lo"], row["scale_hi"]) == (0.04, 0.16)
    assert (row["min_rel_scale"], row["max_rel_scale"]) == (0.05, 0.08)
    assert (row["render_s"], row["annotate_s"]) == (1.5, 0.25)
    empty = table.iloc[1]
    assert empty["num_visible"] == 0 and math.isnan(empty["min_rel_scale"]) and math.isnan(empty["max_rel_scale"])


def test_written_exports_read_back(tmp_path):
    vocab = Vocabulary.load()
    path = write_clevr_scenes(tmp_path, "val", [scene()])
    assert path == tmp_path / "CLEVR_val_scenes.json"
    assert json.loads(path.read_text()) == json.loads(json.dumps(to_clevr([scene()], "val")))
    write_exports(tmp_path, "val", [scene()], vocab)
    coco_files = list(tmp_path.rglob("instances_val.json"))
    assert len(coco_files) == 1 and json.loads(coco_files[0].read_text())["annotations"][1]["object_index"] == 2
    (csv,) = [p for p in tmp_path.rglob("*.csv")]
    assert pd.read_csv(csv)["num_visible"].tolist() == [2]
    assert csv.read_text().splitlines()[0].startswith("image_index,image_filename,split,")  # no index column
    assert json.loads(coco_files[0].read_text())["info"]["description"].startswith("CLEVR-DS val:")


def test_coco_info_has_the_standard_fields():
    info = to_coco([scene()], Vocabulary.load(), "val")["info"]
    # COCO's info record: year, version, description, contributor, url, date_created
    assert {"year", "version", "description", "contributor", "url", "date_created"} <= set(info)
    assert info["contributor"] == GENERATOR_NAME and info["generator"] == GENERATOR_NAME and info["url"] == ""


def test_supercategory_is_the_shape_even_of_several_words():
    vocab = Vocabulary.from_dict({"shapes": {"torus knot": {}, "cube": {}}, "colors": {"red": [1, 2, 3], "light blue": [4, 5, 6]},
                                  "materials": {"rubber": {}}})  # fmt: skip
    cats = coco_categories(vocab)
    assert [(c["id"], c["name"], c["supercategory"]) for c in cats] == [
        (1, "red torus knot", "torus knot"), (2, "red cube", "cube"),
        (3, "light blue torus knot", "torus knot"), (4, "light blue cube", "cube")]


def test_manifest_of_images_without_visible_objects_has_nan_scales():
    hidden = scene()
    for o in hidden["objects"]:
        o["visible"] = False
    row = manifest([hidden]).iloc[0]
    assert math.isnan(row["min_rel_scale"]) and math.isnan(row["max_rel_scale"]) and row["classes"] == ""
