"""Check a CLEVR-DS folder: schemas, seeds, names and paths, completeness, and that images, scenes, masks,
boxes, vocabulary and the COCO export agree. One line per problem."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from pycocotools.coco import COCO

from .annotate import decode_mask, mask_bbox, rel_scale
from .dataset import (DatasetError, coco_path, image_path, images_dir, incomplete_message, list_splits, load_meta,
                      manifest_path, missing_files, read_scene, scenes_dir)  # fmt: skip
from .sampling import scene_seed
from .schema import META, SCENE
from .vocab import Vocabulary, class_name


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


def _check_object(name: str, obj: dict, scene: dict, vocab: Vocabulary, min_visible: int) -> list[str]:
    problems = []
    if obj["shape"] not in vocab.shapes or obj["color"] not in vocab.colors or obj["material"] not in vocab.materials:
        problems.append(f"{name}: {obj['color']}/{obj['shape']}/{obj['material']} not in the vocabulary")
    if obj["class"] != class_name(obj["color"], obj["shape"]) or obj["class"] not in vocab.classes:
        problems.append(f"{name}: class {obj['class']!r} is not a vocabulary class for its colour and shape")
    w, h = scene["width"], scene["height"]
    try:
        mask = decode_mask(obj["mask"])
    except Exception as e:  # noqa: BLE001 - pycocotools raises assorted errors on bad RLE
        return problems + [f"{name}: mask does not decode ({e})"]
    if mask.shape != (h, w):
        return problems + [f"{name}: mask is {mask.shape[1]}x{mask.shape[0]}, image is {w}x{h}"]
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
    return problems


def _check_coco(root: Path, split: str, scenes: list[dict], vocab: Vocabulary) -> list[str]:
    path = coco_path(root, split)
    if not path.exists():
        return [f"{path}: COCO export missing (re-run render to write it)"]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(path))
    except Exception as e:  # noqa: BLE001
        return [f"{path}: pycocotools cannot load it ({e})"]
    problems = []
    if sorted(coco.getImgIds()) != sorted(s["image_index"] for s in scenes):
        problems.append(f"{path}: images differ from the scenes")
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    if sorted(names.values()) != sorted(vocab.classes):
        problems.append(f"{path}: categories differ from the vocabulary classes")
    for scene in scenes:
        expected = [(o["class"], list(o["bbox"]), o["visible_pixels"]) for o in scene["objects"] if o["visible"]]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[scene["image_index"]])) if scene["image_index"] in coco.imgs else []
        got = [(names.get(a["category_id"]), list(a["bbox"]), a["area"]) for a in anns]
        if sorted(got) != sorted(expected):
            problems.append(f"{path}: annotations of {scene['image_filename']} differ from its scene")
            continue
        for a in anns:
            if coco.annToMask(a).sum() != a["area"]:
                problems.append(f"{path}: mask of annotation {a['id']} disagrees with its area")
    return problems


def validate_split(root: Path | str, split: str) -> list[str]:
    root = Path(root)
    try:
        meta = load_meta(root, split, META)
        vocab = Vocabulary.from_dict(meta["vocabulary"])
    except ValueError as e:  # DatasetError, UnsafePathError, a bad vocabulary
        return [f"{split}: unreadable meta ({e})"]
    problems, scenes = [], []
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
            problems += _check_object(f"{path.stem} object {i}", obj, scene, vocab, meta["min_visible_pixels"])
    named = {p.stem for p in scene_files}
    problems += [f"{p.name}: image without a scene (unfinished; re-run render)" for p in sorted(images_dir(root, split).glob("*.png")) if p.stem not in named]
    missing = missing_files(root, split, meta["num_images"])
    if missing:
        problems.append(incomplete_message(root, split, missing))
    if not scene_files:
        problems.append(f"{split}: no scenes")
    if not scenes or len(scenes) < len(scene_files):  # the exports can only be compared with every scene read
        return problems
    problems += _check_coco(root, split, scenes, vocab)
    try:
        rows = len(pd.read_csv(manifest_path(root, split)))
        if rows != len(scenes):
            problems.append(f"{manifest_path(root, split)}: {rows} rows for {len(scenes)} scenes")
    except (FileNotFoundError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        problems.append(f"{manifest_path(root, split)}: unreadable ({e})")
    return problems


def validate(root: Path | str, splits: list[str] | None = None) -> list[str]:
    """All problems found in the given splits (default: every split in `root`)."""
    splits = splits or list_splits(root)
    if not splits:
        return [f"{root}: no CLEVR-DS split found (no meta/<split>.json)"]
    return [p for split in splits for p in validate_split(root, split)]
