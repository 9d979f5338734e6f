"""The DOTA v1.5 export of a split (`export --format dota`), and the DOTA names its reader shares.

    DIR/images/NAME.png          a copy of the split's image
    DIR/labelTxt/NAME.txt        `imagesource:CLEVR-DS`, `gsd:<metres per pixel, or null>`, then per object
                                 `x1 y1 x2 y2 x3 y3 x4 y4 category difficult` with its oriented box
    DIR/labelTxt-hbb/NAME.txt    the same lines with its horizontal box: DOTA's HBB labels
    DIR/classes.txt              the vocabulary's classes in order (`bench --dota DIR --classes DIR/classes.txt`)

The oriented box is the visible mask's minimum-area rectangle (stored in the scene, else computed
from the mask; `clevr_ds.obb`), or the projected heading box of an object with no visible pixel;
the horizontal box is the mask's box, from which CLEVR-DS measures rel_scale. category: the class
with '-' for spaces; difficult: 1 for an object flagged `visible: false`. The files are a function
of the scenes and images (identical bytes for identical splits), written as one set, all or nothing.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from infra.atomic import Writer, copy_writer, text_writer
from infra.paths import inside, plain_name

from .annotate import scene_mask
from .dataset import DATASET_NAME, DatasetError, image_path
from .export import vocabulary_entry, write_folder
from .obb import DECIMALS, UnitMeshes, mask_obb, object_heading_obb, scene_camera
from .vocab import Vocabulary

IMAGES, LABELS, HBB_LABELS, CLASSES = "images", "labelTxt", "labelTxt-hbb", "classes.txt"


def category(name: str) -> str:
    """A class as a DOTA category: its words joined by '-'."""
    return "-".join(name.split())


def category_key(name: str) -> str:
    """What a DOTA reader compares of a category or class name: runs of '-', '_' and spaces read as one space."""
    return " ".join(re.split(r"[\s_-]+", name.strip()))


def default_dir(root: Path | str, split: str) -> Path:
    """ROOT/dota/<split>, refused (UnsafePathError) where it resolves outside ROOT."""
    return inside(root, "dota", plain_name(split, "split"))


def _number(value: float) -> str:
    return repr(round(float(value), DECIMALS) + 0.0)


def _header(scene: dict) -> list[str]:
    gsd = scene.get("gsd")
    if gsd is not None and not 0 < gsd < math.inf:
        raise DatasetError(f"scene of {scene['image_filename']}: gsd {gsd!r} is not a positive number of metres per pixel")
    return [f"imagesource:{DATASET_NAME}", f"gsd:{'null' if gsd is None else repr(gsd)}"]


def _oriented(i: int, obj: dict, scene: dict, meshes: UnitMeshes) -> list[list[float]]:
    """Object i's mask OBB (stored, else from its mask), or its heading box when no pixel is visible."""
    where = f"scene of {scene['image_filename']}: object {i}"
    try:
        corners = obj["obb"] if "obb" in obj else mask_obb(scene_mask(obj["mask"], scene))
    except ValueError as e:
        raise DatasetError(f"{where}: mask {e}") from None
    if corners is None:
        try:
            corners = obj.get("heading_obb") or object_heading_obb(obj, scene_camera(scene), meshes)
        except (KeyError, ValueError, TypeError) as e:  # a shape not in the vocabulary, or whose mesh cannot be built
            raise DatasetError(f"{where}: no visible pixel and no heading box ({e!r})") from None
    return corners


def _line(corners, tail: str) -> str:
    return " ".join(_number(v) for corner in corners for v in corner) + tail


def label_texts(scene: dict, categories: dict[str, str], meshes: UnitMeshes) -> tuple[str, str]:
    """The scene's oriented and horizontal label files (`categories`: class -> DOTA category)."""
    header = _header(scene)
    oriented, horizontal = list(header), list(header)
    for i, obj in enumerate(scene["objects"]):
        tail = f" {vocabulary_entry(categories, obj, scene)} {int(not obj['visible'])}"
        x, y, w, h = obj["bbox"]
        oriented.append(_line(_oriented(i, obj, scene, meshes), tail))
        horizontal.append(_line([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], tail))
    return "\n".join(oriented) + "\n", "\n".join(horizontal) + "\n"


def write_dota(root: Path | str, split: str, scenes: list[dict], vocab: Vocabulary, out: Path | str | None = None) -> Path:
    """Write the scenes of `split` as a DOTA folder at `out` (default: ROOT/dota/<split>) holding its lock;
    return the folder. DatasetError (before anything is written) for a scene that cannot be exported or a
    folder holding other images or labels."""
    out = Path(out) if out is not None else default_dir(root, split)
    keys = [category_key(c) for c in vocab.classes]
    if len(set(keys)) < len(keys):
        raise DatasetError(f"split {split!r}: two classes read as the same DOTA category ({', '.join(vocab.classes)})")
    categories, meshes = {c: category(c) for c in vocab.classes}, UnitMeshes(vocab)
    writers: dict[Path, Writer] = {}
    for scene in scenes:
        stem = Path(scene["image_filename"]).stem
        oriented, horizontal = label_texts(scene, categories, meshes)
        writers[out / IMAGES / scene["image_filename"]] = copy_writer(image_path(root, scene))
        writers[out / LABELS / f"{stem}.txt"] = text_writer(oriented)
        writers[out / HBB_LABELS / f"{stem}.txt"] = text_writer(horizontal)
    writers[out / CLASSES] = text_writer("".join(f"{c}\n" for c in vocab.classes))
    write_folder(out, writers, split, (IMAGES, LABELS, HBB_LABELS))
    return out
