"""Split-level exports built from the scene JSONs: COCO instances and a manifest table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import GENERATOR_NAME, GENERATOR_VERSION
from .atomic import atomic_path, write_json
from .dataset import DATASET_NAME, coco_path, manifest_path
from .vocab import Vocabulary

OBJECT_EXTRAS = ("shape", "color", "material", "rel_scale", "target_scale", "visible_pixels", "area_frac", "size")


def coco_categories(vocab: Vocabulary) -> list[dict]:
    return [
        {"id": i + 1, "name": name, "supercategory": name.split(" ", 1)[1]}
        for i, name in enumerate(vocab.classes)
    ]


def to_coco(scenes: list[dict], vocab: Vocabulary, split: str) -> dict:
    """COCO instances of the visible objects (objects flagged `visible: false` are left out)."""
    cat_ids = {c["name"]: c["id"] for c in coco_categories(vocab)}
    images, annotations = [], []
    for scene in scenes:
        image_id = scene["image_index"]
        images.append({"id": image_id, "file_name": scene["image_filename"], "width": scene["width"], "height": scene["height"], "seed": scene["seed"]})
        for i, obj in enumerate(scene["objects"]):
            if not obj["visible"]:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[obj["class"]],
                    "segmentation": obj["mask"],
                    "area": obj["visible_pixels"],
                    "bbox": obj["bbox"],
                    "iscrowd": 0,
                    "object_index": i,
                    **{k: obj[k] for k in OBJECT_EXTRAS},
                }
            )
    return {
        "info": {"description": f"{DATASET_NAME} {split}", "version": GENERATOR_VERSION, "generator": GENERATOR_NAME},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": coco_categories(vocab),
    }


def manifest(scenes: list[dict]) -> pd.DataFrame:
    """One row per image: file, size, seed, scale range, object counts, classes, render cost."""
    rows = []
    for s in scenes:
        visible = [o for o in s["objects"] if o["visible"]]
        scales = [o["rel_scale"] for o in visible]
        rows.append(
            {
                "image_index": s["image_index"],
                "image_filename": s["image_filename"],
                "split": s["split"],
                "width": s["width"],
                "height": s["height"],
                "seed": s["seed"],
                "scale_lo": s["scale_range"][0],
                "scale_hi": s["scale_range"][1],
                "num_objects": len(s["objects"]),
                "num_visible": len(visible),
                "min_rel_scale": min(scales, default=float("nan")),
                "max_rel_scale": max(scales, default=float("nan")),
                "classes": ";".join(sorted({o["class"] for o in visible})),
                "engine": s["render"]["engine"],
                "samples": s["render"]["samples"],
                "render_s": s["render"]["render_s"],
                "annotate_s": s["render"]["annotate_s"],
            }
        )
    return pd.DataFrame(rows)


def write_exports(root: Path | str, split: str, scenes: list[dict], vocab: Vocabulary) -> None:
    write_json(coco_path(root, split), to_coco(scenes, vocab, split))
    with atomic_path(manifest_path(root, split)) as tmp:
        manifest(scenes).to_csv(tmp, index=False)
