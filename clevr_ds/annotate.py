"""Turn an instance-id map into per-object annotations (mask RLE, visible box, rel_scale, and, given the
meshes, oriented boxes)."""

from __future__ import annotations

from typing import Mapping

import numpy as np
from pycocotools import mask as mask_utils

from .obb import object_obbs

DEFAULT_MIN_VISIBLE_PIXELS = 16


def encode_mask(mask: np.ndarray) -> dict:
    """COCO RLE of a boolean (H, W) mask, with `counts` as a str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_mask(rle: dict) -> np.ndarray:
    return mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode("ascii")}).astype(bool)


def scene_mask(rle: dict, scene: dict) -> np.ndarray:
    """The mask of an RLE of `scene`'s image; ValueError saying why not (its size is checked before
    decoding: the size is the decoder's allocation)."""
    w, h = scene["width"], scene["height"]
    if rle["size"] != [h, w]:
        raise ValueError(f"is {rle['size'][1]}x{rle['size'][0]}, its image {w}x{h}")
    try:
        return decode_mask(rle)
    except Exception as e:  # noqa: BLE001 - pycocotools raises assorted errors on bad RLE
        raise ValueError(f"does not decode ({e})") from None


def mask_bbox(mask: np.ndarray) -> list[int]:
    """[x, y, w, h] of the pixels set in `mask`; [0, 0, 0, 0] when empty."""
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    return [int(cols[0]), int(rows[0]), int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)]


def rel_scale(bbox: list[int], width: int, height: int) -> float:
    return max(bbox[2], bbox[3]) / max(width, height)


def annotate_objects(scene: dict, ids: np.ndarray, min_visible_pixels: int = DEFAULT_MIN_VISIBLE_PIXELS,
                     meshes: Mapping[str, np.ndarray] | None = None) -> None:  # fmt: skip
    """Add mask, bbox, visible_pixels, area_frac, rel_scale and visible to each object of `scene`, and
    with `meshes` (shape name -> unit mesh vertices) its oriented boxes `obb` (null when no pixel is
    visible) and `heading_obb` (`clevr_ds.obb.object_obbs`, rounded to 1e-3 px).

    `ids` holds i + 1 where object i is seen and 0 elsewhere. Objects with fewer than
    `min_visible_pixels` pixels are kept but flagged `visible: false`.
    """
    h, w = ids.shape
    if (h, w) != (scene["height"], scene["width"]):
        raise ValueError(f"id map is {w}x{h}, scene is {scene['width']}x{scene['height']}")
    counts = np.bincount(ids.ravel(), minlength=len(scene["objects"]) + 1)
    for i, obj in enumerate(scene["objects"]):
        mask = ids == i + 1
        box = mask_bbox(mask)
        obj["visible_pixels"] = int(counts[i + 1])
        obj["area_frac"] = obj["visible_pixels"] / (w * h)
        obj["bbox"] = box
        obj["rel_scale"] = rel_scale(box, w, h)
        obj["visible"] = obj["visible_pixels"] >= min_visible_pixels
        obj["mask"] = encode_mask(mask)
    if meshes is not None:
        masks = (ids == i + 1 for i in range(len(scene["objects"])))  # one at a time: a mask is as large as the image
        for obj, boxes in zip(scene["objects"], object_obbs(scene, masks, meshes)):
            obj.update(boxes)
