"""The Hugging Face export of a split (`export --format hf`): an image folder that
`datasets.load_dataset("imagefolder", data_dir=DIR)` loads.

    DIR/<split>/NAME.png          a copy of the split's image
    DIR/<split>/metadata.jsonl    a row per image in image_index order: file_name, image_index, split, width, height,
                                  seed, scale_range, content_hash (the split's, `dataset.split_hash`) and objects, per
                                  object OBJECT_KEYS: class, shape, color, material, bbox [x, y, w, h] px, mask
                                  (COCO RLE), rel_scale, visible, visible_pixels

`datasets` names a split after its folder: train, validation (from val, valid or dev) or test; a split of another
name loads with data_files={NAME: "NAME/**"}. The files are a function of the split (identical bytes for identical
splits), written as one set, all or nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra.atomic import Writer, copy_writer, text_writer
from infra.paths import inside, plain_name

from .dataset import image_path, split_hash
from .export import write_folder

METADATA = "metadata.jsonl"
OBJECT_KEYS = ("class", "shape", "color", "material", "bbox", "mask", "rel_scale", "visible", "visible_pixels")


def split_dir(root: Path | str, split: str, out: Path | str | None = None) -> Path:
    """OUT/<split>; without OUT, ROOT/hf/<split>, refused (UnsafePathError) where it resolves outside ROOT."""
    split = plain_name(split, "split")
    return Path(out) / split if out is not None else inside(root, "hf", split)


def metadata_row(scene: dict, content_hash: str) -> dict:
    """The metadata.jsonl row of a scene."""
    return {"file_name": scene["image_filename"], **{k: scene[k] for k in ("image_index", "split", "width", "height", "seed", "scale_range")},
            "content_hash": content_hash, "objects": [{k: o[k] for k in OBJECT_KEYS} for o in scene["objects"]]}  # fmt: skip


def write_hf(root: Path | str, split: str, scenes: list[dict], out: Path | str | None = None) -> Path:
    """Write the scenes of `split` into OUT/<split> (OUT default: ROOT/hf) holding its lock; return that folder.
    DatasetError (nothing written) for a folder holding other files."""
    folder = split_dir(root, split, out)
    content = split_hash(root, split, scenes)
    writers: dict[Path, Writer] = {folder / s["image_filename"]: copy_writer(image_path(root, s)) for s in scenes}
    writers[folder / METADATA] = text_writer("".join(json.dumps(metadata_row(s, content)) + "\n" for s in scenes))
    write_folder(folder, writers, split)
    return folder
