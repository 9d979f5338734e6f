"""The scene JSON and split meta of CLEVR-DS as data, and a checker that names the first violation.

A spec is a type (`int`, `str`, `bool`, `dict`, `list`), NUMBER (int or float), `ListOf(spec, n)`
(a list, of exactly n items when n is given), `DictOf(spec)` (an object whose every value matches
spec) or a dict literal (an object that has at least these keys, each matching its spec; other keys
are allowed; a key whose spec is `Optional(spec)` may be missing or null). Booleans are never numbers.

Readers check only what they use: SCENE_BASE and META_BASE (every reader: layout, boxes,
vocabulary), META_COUNT (readers of all scenes add the image count), SCENE_BENCH and META_BENCH
(the benchmark adds scales, pixel counts and the image count); `validate` checks the full SCENE
and META, and the fields of the COCO export that it reads (COCO).
"""

from __future__ import annotations

from dataclasses import dataclass

NUMBER = (int, float)


@dataclass(frozen=True)
class ListOf:
    item: object
    length: int | None = None


@dataclass(frozen=True)
class DictOf:
    item: object


@dataclass(frozen=True)
class Optional:
    """A key of a dict literal that may be missing or null; when set, its value matches `item`."""

    item: object


VEC3 = ListOf(NUMBER, 3)
BOX = ListOf(NUMBER, 4)
RLE = {"size": ListOf(int, 2), "counts": str}
CORNERS = ListOf(ListOf(NUMBER, 2), 4)  # an oriented box: 4 corners [x, y] (clevr_ds.obb)
VOCABULARY = {"shapes": DictOf(dict), "colors": DictOf(ListOf(int, 3)), "materials": DictOf(dict)}
RENDER = {"engine": str, "device": str, "samples": int, "denoise": bool, "threads": int}
GENERATOR = {"name": str, "version": str}

OBJECT_BASE = {"class": str, "bbox": BOX, "visible": bool}
OBJECT_BENCH = {**OBJECT_BASE, "rel_scale": NUMBER, "visible_pixels": int}
OBJECT = {
    **OBJECT_BENCH, "shape": str, "color": str, "material": str, "size": NUMBER, "rotation": NUMBER,
    "3d_coords": VEC3, "pixel_coords": VEC3, "target_scale": NUMBER, "projected_bbox": BOX, "area_frac": NUMBER,
    "mask": RLE, "obb": Optional(CORNERS), "heading_obb": Optional(CORNERS),
}  # fmt: skip


def scene_spec(obj: dict) -> dict:
    """The keys every scene JSON has, with objects of spec `obj`."""
    return {"image_index": int, "image_filename": str, "split": str, "width": int, "height": int, "objects": ListOf(obj)}


SCENE_BASE = scene_spec(OBJECT_BASE)
SCENE_BENCH = scene_spec(OBJECT_BENCH)
SCENE = {
    **scene_spec(OBJECT), "seed": int, "global_seed": int, "scale_range": ListOf(NUMBER, 2), "generator": GENERATOR,
    "camera": {"K": ListOf(VEC3, 3), "world_to_camera": ListOf(ListOf(NUMBER, 4), 4), "location": VEC3, "focal_mm": NUMBER},
    "gsd": Optional(NUMBER),
    "lights": ListOf({"direction": VEC3, "strength": NUMBER}),
    "directions": {k: VEC3 for k in ("behind", "front", "left", "right", "above", "below")},
    "relationships": {k: ListOf(ListOf(int)) for k in ("left", "right", "front", "behind")},
    "render": {**RENDER, "bpy_version": str, "min_visible_pixels": int, "render_s": NUMBER, "annotate_s": NUMBER},
}  # fmt: skip

META_BASE = {"vocabulary": VOCABULARY}
META_COUNT = {**META_BASE, "num_images": int}
META_BENCH = {**META_BASE, "split": str, "scales": str, "num_images": int}
META = {
    **META_BENCH, "dataset": str, "generator": GENERATOR, "width": int, "height": int, "objects": ListOf(int, 2),
    "seed": int, "gap_px": NUMBER, "min_visible_pixels": int, "render": RENDER,
}  # fmt: skip

COCO = {
    "images": ListOf({"id": int, "width": int, "height": int}),
    "annotations": ListOf({"id": int, "image_id": int, "category_id": int, "bbox": BOX, "area": NUMBER, "segmentation": RLE}),
    "categories": ListOf({"id": int, "name": str}),
}  # fmt: skip

_NAMES = {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


def shortened(value) -> str:
    """repr(value), cut to 40 characters: a value quoted in a one-line error."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _got(value) -> str:
    return f"{_NAMES.get(type(value), type(value).__name__)} {shortened(value)}"


def problem(value, spec, where: str = "") -> str | None:
    """The first way `value` breaks `spec` as one line ('objects[2].bbox: expected ...'), or None."""
    at = f"{where}: " if where else ""
    if isinstance(spec, dict):
        if not isinstance(value, dict):
            return f"{at}expected an object, got {_got(value)}"
        missing = [k for k, sub in spec.items() if k not in value and not isinstance(sub, Optional)]
        if missing:
            return f"{at}missing keys {', '.join(missing)}"
        found = (problem(value[k], sub, f"{where}.{k}" if where else k) for k, sub in spec.items() if k in value)
        return next((p for p in found if p), None)
    if isinstance(spec, Optional):
        return None if value is None else problem(value, spec.item, where)
    if isinstance(spec, DictOf):
        if not isinstance(value, dict):
            return f"{at}expected an object, got {_got(value)}"
        found = (problem(item, spec.item, f"{where}.{k}" if where else k) for k, item in value.items())
        return next((p for p in found if p), None)
    if isinstance(spec, ListOf):
        if not isinstance(value, list) or spec.length not in (None, len(value)):
            size = "" if spec.length is None else f" of {spec.length}"
            return f"{at}expected a list{size}, got {_got(value)}"
        found = (problem(item, spec.item, f"{where}[{i}]") for i, item in enumerate(value))
        return next((p for p in found if p), None)
    types = spec if isinstance(spec, tuple) else (spec,)
    if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
        return f"{at}expected {' or '.join(_NAMES.get(t, t.__name__) for t in types)}, got {_got(value)}"
    return None
