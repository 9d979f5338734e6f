"""Exports that other tools read: CLEVR's scene file (question generator layout) and complete COCO."""

from __future__ import annotations

import json
import math
import shutil

from clevr_ds.dataset import images_dir, scene_path
from tests.conftest import run_cli

# CLEVR's metadata.json "types" (question_generation/metadata.json): the values its generator accepts
CLEVR_TYPES = {
    "size": {"small", "large"},
    "color": {"gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow"},
    "shape": {"cube", "sphere", "cylinder"},
    "material": {"rubber", "metal"},
}
CLEVR_RELATIONS = {"left", "right", "front", "behind"}


def test_clevr_export_has_clevrs_layout_and_field_types(tiny_dataset, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(tiny_dataset, root)
    # hide object 0 of scene 0, so the export must drop it and re-index the relationships
    path = scene_path(root, "val", 0)
    scene = json.loads(path.read_text())
    scene["objects"][0]["visible"] = False
    path.write_text(json.dumps(scene))
    originals = [json.loads(scene_path(root, "val", i).read_text()) for i in range(4)]

    run_cli("export", str(root), "--format", "clevr", "--split", "val")
    exported = json.loads((root / "CLEVR_val_scenes.json").read_text())

    assert set(exported) == {"info", "scenes"}
    assert exported["info"]["split"] == "val" and isinstance(exported["info"]["version"], str)
    assert [s["image_index"] for s in exported["scenes"]] == [0, 1, 2, 3]
    for original, out in zip(originals, exported["scenes"]):
        assert out["image_filename"] == original["image_filename"]
        assert (images_dir(root, "val") / out["image_filename"]).is_file()
        kept = [o for o in original["objects"] if o["visible"]]
        assert len(out["objects"]) == len(kept)
        lo, hi = original["scale_range"]
        for o, src in zip(out["objects"], kept):
            for key, values in CLEVR_TYPES.items():
                assert o[key] in values, (key, o[key])
            assert o["size"] == ("large" if src["rel_scale"] >= math.sqrt(lo * hi) else "small")
            assert o["size_world"] == src["size"]
            x, y, depth = o["pixel_coords"]
            assert type(x) is int and type(y) is int and isinstance(depth, float)
            assert abs(x - src["pixel_coords"][0]) <= 0.5 and abs(y - src["pixel_coords"][1]) <= 0.5
            assert len(o["3d_coords"]) == 3 and isinstance(o["rotation"], float)
        assert set(out["relationships"]) == CLEVR_RELATIONS
        # relationships between kept objects are exactly the original ones, found by identity (3d coords)
        ids = [tuple(o["3d_coords"]) for o in original["objects"]]
        for name, related in out["relationships"].items():
            assert len(related) == len(out["objects"])
            for i, js in enumerate(related):
                src_i = ids.index(tuple(out["objects"][i]["3d_coords"]))
                expected = {tuple(original["objects"][j]["3d_coords"]) for j in original["relationships"][name][src_i]
                            if original["objects"][j]["visible"]}
                assert {tuple(out["objects"][j]["3d_coords"]) for j in js} == expected
    assert len(exported["scenes"][0]["objects"]) == len(originals[0]["objects"]) - 1
    assert any(any(js for js in s["relationships"]["left"]) for s in exported["scenes"])


def test_coco_export_is_complete_and_torchvision_reads_it(tiny_dataset):
    from torchvision.datasets import CocoDetection

    coco = json.loads((tiny_dataset / "annotations" / "instances_val.json").read_text())
    info = coco["info"]
    assert {"year", "version", "date_created", "description"} <= set(info)
    assert isinstance(info["year"], int) and info["date_created"].startswith(str(info["year"]))
    license_ids = {lic["id"] for lic in coco["licenses"]}
    assert license_ids and all(lic["name"] and lic["url"] for lic in coco["licenses"])
    assert all(image["license"] in license_ids for image in coco["images"])

    dataset = CocoDetection(str(images_dir(tiny_dataset, "val")), str(tiny_dataset / "annotations" / "instances_val.json"))
    assert len(dataset) == 4
    for i in range(4):
        image, targets = dataset[i]
        scene = json.loads(scene_path(tiny_dataset, "val", dataset.ids[i]).read_text())
        assert image.size == (scene["width"], scene["height"])
        assert sorted(t["bbox"] for t in targets) == sorted(o["bbox"] for o in scene["objects"] if o["visible"])
