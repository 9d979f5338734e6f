"""`export --format croissant`: ROOT/croissant.json (Croissant 1.0 JSON-LD) and the dataset card ROOT/README.md
(`clevr_ds.card`), describing the chosen splits of the folder where they lie: nothing is copied.

Per split S the distribution lists meta/S.json, annotations/instances_S.json and annotations/manifest_S.csv (file
objects with their SHA-256) and the file sets images/S/*.png and scenes/S/*.json. Record set `scenes-S` holds a
record per scene JSON (SCENE_FIELDS; `objects` with OBJECT_FIELDS), as Python's json reads it, floats exactly;
record set `images-S` a record per image (image_filename, image). A scene's record and its image's share
image_filename: mlcroissant joins two sources only on a value both hold as read, and a scene file is not named as
its image, so the key is declared in the fields' descriptions, not as a `references` join.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Mapping

from infra.atomic import text_writer, write_together
from infra.paths import inside

from . import GENERATOR_DATE, GENERATOR_NAME, GENERATOR_VERSION, RENDER_LICENSE
from .card import MARK, Described, card_text
from .dataset import DATASET_NAME, DatasetError, load_meta, load_vocabulary, split_hash
from .schema import META

CROISSANT, CARD = "croissant.json", "README.md"
CONTEXT = {
    "@language": "en", "@vocab": "https://schema.org/", "citeAs": "cr:citeAs", "column": "cr:column",
    "conformsTo": "dct:conformsTo", "cr": "http://mlcommons.org/croissant/", "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"}, "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/", "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"}, "extract": "cr:extract", "field": "cr:field",
    "fileProperty": "cr:fileProperty", "fileObject": "cr:fileObject", "fileSet": "cr:fileSet", "format": "cr:format",
    "includes": "cr:includes", "isLiveDataset": "cr:isLiveDataset", "jsonPath": "cr:jsonPath", "key": "cr:key",
    "md5": "cr:md5", "parentField": "cr:parentField", "path": "cr:path", "recordSet": "cr:recordSet",
    "references": "cr:references", "regex": "cr:regex", "repeated": "cr:repeated", "replace": "cr:replace",
    "samplingRate": "cr:samplingRate", "sc": "https://schema.org/", "separator": "cr:separator", "source": "cr:source",
    "subField": "cr:subField", "transform": "cr:transform",
}  # fmt: skip
# (name, JSON path in the scene, data type, a list?, description)
SCENE_FIELDS = (
    ("image_index", "image_index", "sc:Integer", False, "index of the image in its split (the key)"),
    ("image_filename", "image_filename", "sc:Text", False,
     "the image: images/<split>/<image_filename>, the record of images-<split> with this image_filename"),
    ("split", "split", "sc:Text", False, "the split"),
    ("width", "width", "sc:Integer", False, "image width, px"),
    ("height", "height", "sc:Integer", False, "image height, px"),
    ("seed", "seed", "sc:Integer", False, "the scene's seed"),
    ("scale_range", "scale_range", "sc:Float", True, "the rel_scale range the image's objects were drawn from"),
    ("classes", "objects[*].class", "sc:Text", True, "each object's class, in object order"),
)  # fmt: skip
OBJECT_FIELDS = (
    ("class", "class", "sc:Text", False, "retrieval class"),
    ("shape", "shape", "sc:Text", False, "shape"),
    ("color", "color", "sc:Text", False, "colour"),
    ("material", "material", "sc:Text", False, "material"),
    ("bbox", "bbox", "sc:Float", True, "visible box [x, y, w, h], px"),
    ("mask", "mask.counts", "sc:Text", False, "COCO RLE counts of the visible mask, of size [height, width]"),
    ("rel_scale", "rel_scale", "sc:Float", False, "longest visible box side / longer image side"),
    ("visible", "visible", "sc:Boolean", False, "has at least the split's min_visible_pixels visible pixels"),
    ("visible_pixels", "visible_pixels", "sc:Integer", False, "visible pixel count"),
)  # fmt: skip


def _sha256(root: Path | str, *parts: str) -> str:
    path = inside(root, *parts)
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e} (render writes it; export --format coco rewrites the "
                           "COCO export and manifest)") from None  # fmt: skip
    return h.hexdigest()


def _distribution(root: Path | str, split: str) -> list[dict]:
    files = [(f"meta-{split}", ("meta", f"{split}.json"), "application/json"),
             (f"coco-{split}", ("annotations", f"instances_{split}.json"), "application/json"),
             (f"manifest-{split}", ("annotations", f"manifest_{split}.csv"), "text/csv")]  # fmt: skip
    objects = [{"@type": "cr:FileObject", "@id": uid, "name": uid, "contentUrl": "/".join(parts), "encodingFormat": fmt,
                "sha256": _sha256(root, *parts)} for uid, parts, fmt in files]  # fmt: skip
    sets = [{"@type": "cr:FileSet", "@id": f"{kind}-files-{split}", "name": f"{kind}-files-{split}",
             "includes": f"{kind}s/{split}/*.{ext}", "encodingFormat": fmt}
            for kind, ext, fmt in (("image", "png", "image/png"), ("scene", "json", "application/json"))]  # fmt: skip
    return objects + sets


def _field(uid: str, name: str, path: str, data_type: str, repeated: bool, description: str, split: str) -> dict:
    """A field read from the scene JSON's content at `path` (JSONPath steps; objects[*].x: each object's x)."""
    steps = [{"jsonPath": "objects"}, {"jsonPath": path.removeprefix("objects[*].")}] if path.startswith("objects[*].") \
        else [{"jsonPath": path}]  # fmt: skip
    field = {"@type": "cr:Field", "@id": uid, "name": name, "description": description, "dataType": data_type,
             "source": {"fileSet": {"@id": f"scene-files-{split}"}, "extract": {"fileProperty": "content"}, "transform": steps}}
    return {**field, "repeated": True} if repeated else field


def _record_sets(split: str, n_images: int, content: str) -> list[dict]:
    scenes = f"scenes-{split}"
    fields = [_field(f"{scenes}/{name}", name, *rest, split) for name, *rest in SCENE_FIELDS]
    objects = [_field(f"{scenes}/objects/{name}", name, f"objects[*].{path}", kind, repeated, text, split)
               for name, path, kind, repeated, text in OBJECT_FIELDS]  # fmt: skip
    fields.append({"@type": "cr:Field", "@id": f"{scenes}/objects", "name": "objects", "description": "the scene's objects",
                   "dataType": "sc:Thing", "repeated": True, "subField": objects})
    images = f"images-{split}"
    image_source = {"fileSet": {"@id": f"image-files-{split}"}}
    return [
        {"@type": "cr:RecordSet", "@id": scenes, "name": scenes, "key": {"@id": f"{scenes}/image_index"}, "field": fields,
         "description": f"A record per scene of split {split} ({n_images} images; content hash sha256 {content})."},
        {"@type": "cr:RecordSet", "@id": images, "name": images, "key": {"@id": f"{images}/image_filename"},
         "description": f"A record per image of split {split}.", "field": [
             {"@type": "cr:Field", "@id": f"{images}/image_filename", "name": "image_filename", "dataType": "sc:Text",
              "description": "the image's file name", "source": {**image_source, "extract": {"fileProperty": "filename"}}},
             {"@type": "cr:Field", "@id": f"{images}/image", "name": "image", "dataType": "sc:ImageObject",
              "description": "the image", "source": {**image_source, "extract": {"fileProperty": "content"}}}]},
    ]  # fmt: skip


def croissant(root: Path | str, splits: Mapping[str, Described]) -> dict:
    """The Croissant description of the `splits` of the folder `root`."""
    return {
        "@context": CONTEXT, "@type": "sc:Dataset", "name": DATASET_NAME, "conformsTo": "http://mlcommons.org/croissant/1.0",
        "description": "Synthetic renders whose object scale is controlled, with a mask, box and measured scale for every "
                       "object: a benchmark of text-to-image retrieval per object scale.",
        "license": RENDER_LICENSE["url"], "version": GENERATOR_VERSION, "datePublished": GENERATOR_DATE,
        "creator": {"@type": "sc:Organization", "name": GENERATOR_NAME},
        "citeAs": f"{DATASET_NAME}, rendered by {GENERATOR_NAME} {GENERATOR_VERSION} ({GENERATOR_DATE})",
        "keywords": ["synthetic", "small objects", "image retrieval", "CLIP"],
        "distribution": [entry for split in splits for entry in _distribution(root, split)],
        "recordSet": [entry for split, d in splits.items() for entry in _record_sets(split, len(d.scenes), d.content_hash)],
    }  # fmt: skip


def _head(path: Path) -> bytes:
    """The first 4 KiB of a file, where a card has its MARK."""
    try:
        with open(path, "rb") as f:
            return f.read(4096)
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from None


def write_croissant(root: Path | str, scenes: Mapping[str, list[dict]], presets: Mapping[str, dict]) -> list[Path]:
    """Write ROOT/croissant.json and the card ROOT/README.md of the splits in `scenes` (split -> its scenes) together;
    `presets` are render's (name -> settings). DatasetError (nothing written) for a README.md that is not a card."""
    card = inside(root, CARD)
    if card.exists() and MARK.encode() not in _head(card):
        raise DatasetError(f"{card} is not a card this export wrote; move it away to write the dataset card there")
    splits = {split: Described(load_meta(root, split, META), chosen, split_hash(root, split, chosen), load_vocabulary(root, split).classes)
              for split, chosen in scenes.items()}  # fmt: skip
    text = json.dumps(croissant(root, splits), indent=2) + "\n"
    return write_together({inside(root, CROISSANT): text_writer(text), card: text_writer(card_text(root, splits, presets))}, root=root)
