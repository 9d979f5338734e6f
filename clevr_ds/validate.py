"""Check a CLEVR-DS folder: schemas, seeds, names and paths, completeness, and that images, scenes, masks,
boxes, vocabulary and the exports (COCO, manifest, CLEVR scenes file) agree. One line per problem.

Reads only (a read-only copy validates), every file through a bounded reader confined to the root.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import pandas as pd
from PIL import Image
from pycocotools.coco import COCO

from .annotate import mask_bbox, rel_scale, scene_mask
from .dataset import (DatasetError, clevr_scenes_path, coco_path, image_path, images_dir, incomplete_message,
                      list_splits, load_coco, load_meta, manifest_path, meta_path, missing_files, read_bytes,
                      read_json, read_scene, scenes_dir)  # fmt: skip
from .export import to_clevr
from .obb import UnitMeshes, agrees, contains, mask_obb, object_heading_obb, scene_camera
from .sampling import scene_seed
from .schema import META, SCENE, shortened
from .vocab import Vocabulary


def _check_image(root: Path, scene: dict) -> list[str]:
    path = image_path(root, scene)
    try:
        with Image.open(path) as img:
            img.load()
            size = img.size
    except FileNotFoundError:
        return [f"{scene['image_filename']}: image missing"]
    except Exception as e:  # noqa: BLE001 - any decoder error means a corrupt image
        return [f"{scene['image_filename']}: image does not decode ({e})"]
    if size != (scene["width"], scene["height"]):
        return [f"{scene['image_filename']}: image is {size[0]}x{size[1]}, scene says {scene['width']}x{scene['height']}"]
    return []


def _check_seed(name: str, scene: dict, meta: dict) -> list[str]:
    """The scene's seeds must be those derived from meta's global seed, the split and the image index."""
    expected = scene_seed(meta["seed"], meta["split"], scene["image_index"])
    if (scene["seed"], scene["global_seed"]) == (expected, meta["seed"]):
        return []
    return [f"{name}: seed {scene['seed']} and global_seed {scene['global_seed']}, but meta's seed {meta['seed']} "
            f"gives seed {expected} for index {scene['image_index']} of split {meta['split']!r}"]  # fmt: skip


def _check_obbs(name: str, obj: dict, mask, scene: dict, meshes: UnitMeshes) -> list[str]:
    """The oriented boxes a scene may store (clevr_ds.obb) against the mask and the geometry they come from."""
    problems = []
    if "obb" in obj:
        expected = mask_obb(mask)
        if obj["obb"] is not None and not contains(obj["obb"], mask):
            problems.append(f"{name}: obb {shortened(obj['obb'])} does not contain its mask")
        elif not agrees(obj["obb"], expected):
            problems.append(f"{name}: obb {shortened(obj['obb'])} disagrees with its mask's minimum-area rectangle {expected}")
    if obj.get("heading_obb") is not None and obj["shape"] in meshes.vocab.shapes:
        try:
            expected = object_heading_obb(obj, scene_camera(scene), meshes)
        except (ValueError, TypeError) as e:  # a shape whose mesh cannot be built from its parameters
            return problems + [f"{name}: heading_obb cannot be checked: {e}"]
        if not agrees(obj["heading_obb"], expected):
            problems.append(f"{name}: heading_obb {shortened(obj['heading_obb'])} disagrees with its projected model {expected}")
    return problems


def _check_object(name: str, obj: dict, scene: dict, meshes: UnitMeshes, min_visible: int) -> list[str]:
    vocab = meshes.vocab
    problems = []
    shape = obj["shape"]
    if (shape not in vocab.shapes or obj["color"] not in vocab.colors or obj["color"] not in vocab.colors_of(shape)
            or obj["material"] not in vocab.materials or obj["material"] not in vocab.materials_of(shape)):
        problems.append(f"{name}: {obj['color']}/{shape}/{obj['material']} not in the vocabulary")
    if shape not in vocab.shapes or obj["class"] != vocab.class_of(obj["color"], shape) or obj["class"] not in vocab.classes:
        problems.append(f"{name}: class {obj['class']!r} is not a vocabulary class for its colour and shape")
    w, h = scene["width"], scene["height"]
    try:
        mask = scene_mask(obj["mask"], scene)
    except ValueError as e:
        return problems + [f"{name}: mask {e}"]
    x, y, bw, bh = obj["bbox"]
    if x < 0 or y < 0 or x + bw > w or y + bh > h:
        problems.append(f"{name}: bbox {obj['bbox']} leaves the {w}x{h} image")
    if list(obj["bbox"]) != mask_bbox(mask):
        problems.append(f"{name}: bbox {obj['bbox']} disagrees with its mask {mask_bbox(mask)}")
    if obj["visible_pixels"] != int(mask.sum()):
        problems.append(f"{name}: visible_pixels {obj['visible_pixels']} but mask has {int(mask.sum())}")
    if not math.isclose(obj["rel_scale"], rel_scale(obj["bbox"], w, h), abs_tol=1e-9):
        problems.append(f"{name}: rel_scale {obj['rel_scale']} disagrees with its bbox")
    if obj["visible"] != (obj["visible_pixels"] >= min_visible):
        problems.append(f"{name}: visible flag disagrees with min_visible_pixels={min_visible}")
    return problems + _check_obbs(name, obj, mask, scene, meshes)


def read_coco(root: Path, split: str) -> COCO:
    """The split's COCO export indexed by pycocotools, after load_coco checked the fields it uses; DatasetError otherwise."""
    coco = COCO()
    coco.dataset = load_coco(root, split)
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def _check_mask(path: Path, ann: dict, scene: dict) -> list[str]:
    try:
        pixels = int(scene_mask(ann["segmentation"], scene).sum())
    except ValueError as e:
        return [f"{path}: mask of annotation {ann['id']} {e}"]
    return [] if pixels == ann["area"] else [f"{path}: mask of annotation {ann['id']} disagrees with its area"]


def _check_coco(root: Path, split: str, scenes: list[dict], vocab: Vocabulary) -> list[str]:
    path = coco_path(root, split)
    if not path.exists():
        return [f"{path}: COCO export missing (re-run render to write it)"]
    try:
        coco = read_coco(root, split)
    except DatasetError as e:
        return [str(e)]
    problems = []
    if sorted(coco.getImgIds()) != sorted(s["image_index"] for s in scenes):
        problems.append(f"{path}: images differ from the scenes")
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    if sorted(names.values()) != sorted(vocab.classes):
        problems.append(f"{path}: categories differ from the vocabulary classes")
    for scene in scenes:
        expected = [(o["class"], list(o["bbox"]), o["visible_pixels"]) for o in scene["objects"] if o["visible"]]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[scene["image_index"]])) if scene["image_index"] in coco.imgs else []
        got = [(names.get(a["category_id"], ""), list(a["bbox"]), a["area"]) for a in anns]
        if sorted(got) != sorted(expected):
            problems.append(f"{path}: annotations of {scene['image_filename']} differ from its scene")
            continue
        for a in anns:
            problems += _check_mask(path, a, scene)
    return problems


def _check_manifest(root: Path, split: str, scenes: list[dict]) -> list[str]:
    """The manifest lists the split's images, one row each, in image_index order."""
    path = manifest_path(root, split)
    try:
        listed = pd.read_csv(io.BytesIO(read_bytes(path, root, "manifest")), dtype=str)["image_filename"].tolist()
    except DatasetError as e:
        return [str(e)]
    except (ValueError, KeyError) as e:  # pandas' parser and empty-data errors are ValueErrors
        return [f"{path}: unreadable ({' '.join(str(e).split())})"]
    if len(listed) != len(scenes):
        return [f"{path}: {len(listed)} rows for {len(scenes)} scenes (re-run export --format coco)"]
    if listed != [s["image_filename"] for s in scenes]:
        return [f"{path}: images differ from the scenes (re-run export --format coco)"]
    return []


def _check_clevr(root: Path, split: str, scenes: list[dict]) -> list[str]:
    """The CLEVR scenes file, where there is one, holds the scenes as `export --format clevr` writes them now."""
    path = clevr_scenes_path(root, split)
    if not path.exists():
        return []
    try:
        exported = read_json(path, root)
        expected = json.loads(json.dumps(to_clevr(scenes, split)))["scenes"]
    except DatasetError as e:
        return [str(e)]
    got = exported.get("scenes") if isinstance(exported, dict) else None
    if isinstance(got, list) and len(got) != len(scenes):
        return [f"{path}: {len(got)} scenes for the split's {len(scenes)} (re-run export --format clevr)"]
    if got != expected:
        return [f"{path}: scenes differ from the scene JSONs (re-run export --format clevr)"]
    return []


def validate_split(root: Path | str, split: str) -> list[str]:
    root = Path(root)
    try:
        meta = load_meta(root, split, META)
        vocab = Vocabulary.from_dict(meta["vocabulary"])
    except ValueError as e:  # DatasetError, UnsafePathError, a bad vocabulary
        return [f"{split}: unreadable meta ({e})"]
    if meta["seed"] < 0:
        return [f"{meta_path(root, split)}: seed {meta['seed']} is negative"]
    problems, scenes, meshes = [], [], UnitMeshes(vocab)
    scene_files = sorted(scenes_dir(root, split).glob("*.json"))
    for path in scene_files:
        try:
            scene = read_scene(root, split, path.name, SCENE, meta["num_images"])
        except DatasetError as e:
            problems.append(str(e))
            continue
        scenes.append(scene)
        problems += _check_seed(path.name, scene, meta)
        problems += _check_image(root, scene)
        for i, obj in enumerate(scene["objects"]):
            problems += _check_object(f"{path.stem} object {i}", obj, scene, meshes, meta["min_visible_pixels"])
    named = {p.stem for p in scene_files}
    problems += [f"{p.name}: image without a scene (unfinished; re-run render)" for p in sorted(images_dir(root, split).glob("*.png")) if p.stem not in named]
    missing = missing_files(root, split, meta["num_images"])
    if missing:
        problems.append(incomplete_message(root, split, missing))
    if not scene_files:
        problems.append(f"{split}: no scenes")
    if not scenes or len(scenes) < len(scene_files):  # the exports can only be compared with every scene read
        return problems
    return problems + _check_coco(root, split, scenes, vocab) + _check_manifest(root, split, scenes) + _check_clevr(root, split, scenes)


def validate(root: Path | str, splits: list[str] | None = None) -> list[str]:
    """All problems found in the given splits (default: every split in `root`), each on one line
    (a name read from a file may hold a line break)."""
    splits = splits or list_splits(root)
    if not splits:
        return [f"{root}: no CLEVR-DS split found (no meta/<split>.json)"]
    return [" ".join(p.split()) for split in splits for p in validate_split(root, split)]
