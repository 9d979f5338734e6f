"""On-disk layout of a CLEVR-DS folder and the functions that read it.

    OUT/meta/<split>.json                   render configuration of the split (incl. vocabulary)
    OUT/images/<split>/<name>.png           rendered image
    OUT/scenes/<split>/<name>.json          scene annotation (CLEVR keys + CLEVR-DS additions)
    OUT/annotations/instances_<split>.json  COCO instances export
    OUT/annotations/manifest_<split>.csv    one row per image

A scene is finished when its scene JSON exists: it is written (atomically) after its image.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .vocab import Vocabulary

DATASET_NAME = "CLEVR-DS"
DEFAULT_ROOT = "output/clevr-ds"  # where `render` writes and `bench` and `train` read by default


class DatasetError(ValueError):
    """A missing or corrupt dataset file."""


def meta_path(root: Path | str, split: str) -> Path:
    return Path(root) / "meta" / f"{split}.json"


def images_dir(root: Path | str, split: str) -> Path:
    return Path(root) / "images" / split


def scenes_dir(root: Path | str, split: str) -> Path:
    return Path(root) / "scenes" / split


def coco_path(root: Path | str, split: str) -> Path:
    return Path(root) / "annotations" / f"instances_{split}.json"


def manifest_path(root: Path | str, split: str) -> Path:
    return Path(root) / "annotations" / f"manifest_{split}.csv"


def image_path(root: Path | str, scene: dict) -> Path:
    return images_dir(root, scene["split"]) / scene["image_filename"]


def image_name(split: str, index: int) -> str:
    return f"CLEVR-DS_{split}_{index:06d}"


def scene_path(root: Path | str, split: str, index: int) -> Path:
    return scenes_dir(root, split) / f"{image_name(split, index)}.json"


def image_file(root: Path | str, split: str, index: int) -> Path:
    return images_dir(root, split) / f"{image_name(split, index)}.png"


def list_splits(root: Path | str) -> list[str]:
    return sorted(p.stem for p in (Path(root) / "meta").glob("*.json"))


def read_json(path: Path | str) -> dict:
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"missing file {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"corrupt JSON {path}: {e}") from None


def load_meta(root: Path | str, split: str) -> dict:
    path = meta_path(root, split)
    if not path.exists():
        known = ", ".join(list_splits(root)) or "none"
        raise DatasetError(f"no split {split!r} in {root} (splits there: {known})")
    return read_json(path)


def load_vocabulary(root: Path | str, split: str) -> Vocabulary:
    return Vocabulary.from_dict(load_meta(root, split)["vocabulary"])


def load_scenes(root: Path | str, split: str) -> list[dict]:
    """All finished scenes of a split, sorted by image_index."""
    load_meta(root, split)
    scenes = [read_json(p) for p in sorted(scenes_dir(root, split).glob("*.json")) if ".tmp-" not in p.name]
    return sorted(scenes, key=lambda s: s["image_index"])


def split_hash(root: Path | str, split: str) -> str:
    """SHA-256 over the split's scene JSONs and image bytes, in image order."""
    h = hashlib.sha256()
    for scene in load_scenes(root, split):
        h.update(json.dumps(scene, sort_keys=True).encode())
        h.update(image_path(root, scene).read_bytes())
    return h.hexdigest()
