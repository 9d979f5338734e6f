"""Split-level exports built from the scene JSONs: COCO instances, a manifest table, CLEVR scenes.

Every export is a function of the scenes alone (no clock), so identical renders give identical files.
Writers refuse a path that resolves (symlinks followed) outside the dataset's root.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from infra.atomic import Writer, atomic_path, remove_stale_temporaries, write_json, write_together
from infra.lock import LOCK_NAME, folder_lock
from infra.paths import inside

from . import GENERATOR_DATE, GENERATOR_NAME, GENERATOR_VERSION, RENDER_LICENSE
from .dataset import DATASET_NAME, MAX_LISTED, DatasetError, clevr_scenes_path, coco_path, manifest_path
from .vocab import Vocabulary

CLEVR_RELATIONS = ("left", "right", "front", "behind")
OBJECT_EXTRAS = ("shape", "color", "material", "rel_scale", "target_scale", "visible_pixels", "area_frac", "size")


def coco_categories(vocab: Vocabulary) -> list[dict]:
    """One category per retrieval class; its supercategory is the shape (multi-word colours included)."""
    return [
        {"id": i + 1, "name": name, "supercategory": shape}
        for i, (name, (_, shape)) in enumerate(zip(vocab.classes, vocab.class_attributes))
    ]


def vocabulary_entry(table: dict, obj: dict, scene: dict):
    """table[the object's class] (its COCO category id, its DOTA category); DatasetError for a class that is not
    in the split's vocabulary."""
    if obj["class"] not in table:
        raise DatasetError(f"scene of {scene['image_filename']}: class {obj['class']!r} is not in the split's vocabulary")
    return table[obj["class"]]


def to_coco(scenes: list[dict], vocab: Vocabulary, split: str) -> dict:
    """COCO instances of the visible objects (objects flagged `visible: false` are left out); DatasetError
    for an object whose class is not in `vocab`."""
    cat_ids = {c["name"]: c["id"] for c in coco_categories(vocab)}
    images, annotations = [], []
    for scene in scenes:
        image_id = scene["image_index"]
        images.append({"id": image_id, "file_name": scene["image_filename"], "width": scene["width"], "height": scene["height"],
                       "seed": scene["seed"], "license": RENDER_LICENSE["id"], "date_captured": GENERATOR_DATE})
        for i, obj in enumerate(scene["objects"]):
            if not obj["visible"]:
                continue
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": vocabulary_entry(cat_ids, obj, scene),
                    "segmentation": obj["mask"],
                    "area": obj["visible_pixels"],
                    "bbox": obj["bbox"],
                    "iscrowd": 0,
                    "object_index": i,
                    **{k: obj[k] for k in OBJECT_EXTRAS},
                }
            )
    return {
        "info": {"description": f"{DATASET_NAME} {split}: synthetic renders with controlled object scale",
                 "version": GENERATOR_VERSION, "year": int(GENERATOR_DATE[:4]), "date_created": GENERATOR_DATE,
                 "contributor": GENERATOR_NAME, "url": "", "generator": GENERATOR_NAME},
        "licenses": [RENDER_LICENSE],
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


def clevr_size(obj: dict, scale_range: list[float]) -> str:
    """CLEVR's categorical size: "large" when the object's measured rel_scale is at least the
    log-midpoint of its image's scale range (so each range splits about evenly), else "small"."""
    lo, hi = scale_range
    return "large" if obj["rel_scale"] >= math.sqrt(lo * hi) else "small"


def _check_clevr_fields(scene: dict) -> None:
    """DatasetError unless each CLEVR relation lists one entry per object and the scale range is positive."""
    n = len(scene["objects"])
    lo, hi = scene["scale_range"]
    if any(len(scene["relationships"][name]) != n for name in CLEVR_RELATIONS) or not 0 < lo <= hi:
        raise DatasetError(f"scene of {scene['image_filename']}: relationships must list one entry per object "
                           f"({n}) and scale_range must be positive")  # fmt: skip


def to_clevr_scene(scene: dict) -> dict:
    """A scene in CLEVR's own layout and field types: visible objects only (relationships
    re-indexed), categorical `size` (see clevr_size; the world size stays as `size_world`),
    integer pixel x and y. DatasetError for a scene whose fields do not fit (see _check_clevr_fields)."""
    _check_clevr_fields(scene)
    kept = [i for i, o in enumerate(scene["objects"]) if o["visible"]]
    new_index = {old: new for new, old in enumerate(kept)}
    objects = []
    for i in kept:
        o = scene["objects"][i]
        x, y, depth = o["pixel_coords"]
        objects.append({"shape": o["shape"], "color": o["color"], "material": o["material"],
                        "size": clevr_size(o, scene["scale_range"]), "size_world": o["size"],
                        "rotation": o["rotation"], "3d_coords": o["3d_coords"],
                        "pixel_coords": [int(round(x)), int(round(y)), depth], "rel_scale": o["rel_scale"],
                        "bbox": o["bbox"]})  # fmt: skip
    relationships = {name: [[new_index[j] for j in scene["relationships"][name][i] if j in new_index] for i in kept]
                     for name in CLEVR_RELATIONS}  # fmt: skip
    return {"image_index": scene["image_index"], "image_filename": scene["image_filename"], "split": scene["split"],
            "objects": objects, "relationships": relationships, "directions": scene["directions"]}  # fmt: skip


def to_clevr(scenes: list[dict], split: str) -> dict:
    """The `{"info", "scenes"}` file that CLEVR's collect_scenes.py writes and its question generator reads."""
    info = {"date": GENERATOR_DATE, "version": GENERATOR_VERSION, "split": split, "license": RENDER_LICENSE["name"],
            "generator": f"{GENERATOR_NAME} {GENERATOR_VERSION}"}  # fmt: skip
    return {"info": info, "scenes": [to_clevr_scene(s) for s in scenes]}


def write_clevr_scenes(root: Path | str, split: str, scenes: list[dict]) -> Path:
    path = clevr_scenes_path(root, split)
    write_json(path, to_clevr(scenes, split), root=root)
    return path


def write_exports(root: Path | str, split: str, scenes: list[dict], vocab: Vocabulary) -> None:
    """The COCO export and the manifest."""
    write_json(coco_path(root, split), to_coco(scenes, vocab, split), root=root)
    with atomic_path(manifest_path(root, split), root=root) as tmp:
        manifest(scenes).to_csv(tmp, index=False)


def rewrite_exports(root: Path | str, split: str, scenes: list[dict], vocab: Vocabulary) -> None:
    """Every export of the split from `scenes`: COCO, manifest, and the CLEVR scenes file if there is one."""
    write_exports(root, split, scenes, vocab)
    if clevr_scenes_path(root, split).exists():
        write_clevr_scenes(root, split, scenes)


def write_folder(out: Path, writers: dict[Path, Writer], split: str, folders: tuple[str, ...] = (".",)) -> None:
    """Write an export folder's files (target -> writer) as one set, all or none, holding the folder's lock, after
    refusing (DatasetError, nothing written) files in its `folders` that the set would not write (not the lock, and
    temporaries of a killed export, which are removed): the folder of another split or another export."""
    with folder_lock(out, purpose="export"):
        found = []
        for folder in folders:
            path = inside(out, folder)
            remove_stale_temporaries(path)
            found += sorted(p for p in path.iterdir() if p not in writers and p.name != LOCK_NAME) if path.is_dir() else []
        if found:
            names = [str(p.relative_to(out)) for p in found]
            more = f" and {len(names) - MAX_LISTED} more" if len(names) > MAX_LISTED else ""
            raise DatasetError(f"{out} holds files that are not of split {split!r} ({', '.join(names[:MAX_LISTED])}{more}); "
                               "export into an empty folder")  # fmt: skip
        write_together(writers, root=out)
