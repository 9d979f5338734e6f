"""Training image sets: a CLEVR-DS split (classes from its vocabulary) or a plain image folder
with a class-name file (one name per line); a CLEVR-DS split held in memory."""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from clevr_ds.dataset import (DatasetError, finished_scenes, image_path, list_splits, load_vocabulary, meta_path,
                              read_class_names, split_hash)  # fmt: skip

from .images import ImageError, decode_image, list_images, read_bytes

if TYPE_CHECKING:
    import torch


@dataclass
class ImageSet:
    paths: list[Path]
    classes: list[str]
    source: dict = field(default_factory=dict)  # what the images are (kind, root, split, hashes)
    object_bboxes: list[list[list[float]]] | None = None  # visible [x, y, w, h] per image (CLEVR-DS)


def is_clevr_ds(root: str | Path) -> bool:
    return (Path(root) / "meta").is_dir()


def clevr_split(root: str | Path, split: str, allow_incomplete: bool = False) -> ImageSet:
    """A CLEVR-DS split: its images in index order, its vocabulary's classes, its visible boxes
    (a split with missing scenes or images only with `allow_incomplete`)."""
    scenes = finished_scenes(root, split, allow_incomplete=allow_incomplete)
    bboxes = [[list(o["bbox"]) for o in s["objects"] if o.get("visible", True)] for s in scenes]
    return ImageSet(paths=[image_path(root, s) for s in scenes], classes=load_vocabulary(root, split).classes,
                    source={"kind": "clevr-ds", "root": str(Path(root).resolve()), "split": split,
                            "split_hash": split_hash(root, split, scenes)},
                    object_bboxes=bboxes)


def image_folder(folder: str | Path, classes_file: str | Path | None) -> ImageSet:
    if classes_file is None:
        raise ImageError(f"{folder} is not a CLEVR-DS folder: give --classes FILE (one class name per line)")
    paths = list_images(folder)
    if not paths:
        raise ImageError(f"no images in {folder}")
    return ImageSet(paths=paths, classes=read_class_names(classes_file),
                    source={"kind": "folder", "root": str(Path(folder).resolve())})


def hold_out(images: ImageSet, fraction: float, seed: int) -> tuple[ImageSet, ImageSet | None]:
    """Split off a seeded random `fraction` of the images for validation (at least one image)."""
    if fraction <= 0 or len(images.paths) < 2:
        return images, None
    order = list(range(len(images.paths)))
    random.Random(seed).shuffle(order)
    count = min(max(1, round(fraction * len(order))), len(order) - 1)
    val_ids, train_ids = sorted(order[:count]), sorted(order[count:])
    return _subset(images, train_ids, "train"), _subset(images, val_ids, "held-out")


def _subset(images: ImageSet, ids: list[int], part: str) -> ImageSet:
    boxes = [images.object_bboxes[i] for i in ids] if images.object_bboxes is not None else None
    return ImageSet([images.paths[i] for i in ids], images.classes,
                    {**images.source, "part": f"{part} {len(ids)}/{len(images.paths)}"}, boxes)


def load_training_data(data: str | Path, split: str = "train", val_split: str | None = "val",
                       classes_file: str | Path | None = None, val_fraction: float = 0.1,
                       seed: int = 0, allow_incomplete: bool = False) -> tuple[ImageSet, ImageSet | None]:
    """(train, validation or None). CLEVR-DS: `split` and `val_split` when that split exists, else a
    held-out fraction of `split` (incomplete splits only with `allow_incomplete`); an image folder: a
    held-out fraction."""
    if not Path(data).is_dir():
        raise ImageError(f"no data folder {data}")
    if not is_clevr_ds(data):
        return hold_out(image_folder(data, classes_file), val_fraction, seed)
    if not meta_path(data, split).exists():
        raise DatasetError(f"no split {split!r} in {data} (splits there: {', '.join(list_splits(data)) or 'none'})")
    train = clevr_split(data, split, allow_incomplete)
    if classes_file is not None:
        train.classes = read_class_names(classes_file)
    if val_split and val_split != split and meta_path(data, val_split).exists():
        val = clevr_split(data, val_split, allow_incomplete)
        val.classes = train.classes
        return train, val
    return hold_out(train, val_fraction, seed)


def data_hash(image_hashes: list[str], classes: list[str]) -> str:
    """SHA-256 over the images' content hashes (in order) and the class names."""
    h = hashlib.sha256()
    for value in (*image_hashes, "\0classes", *classes):
        h.update(value.encode() + b"\n")
    return h.hexdigest()


@dataclass
class SplitImages:
    """All images of a CLEVR-DS split in memory as one uint8 tensor [N, 3, H, W], with their scenes."""

    images: torch.Tensor
    scenes: list[dict]

    @classmethod
    def load(cls, root: str | Path, split: str, progress: bool = False, allow_incomplete: bool = False) -> "SplitImages":
        """Decode a split's finished images (one with missing scenes or images only with `allow_incomplete`)."""
        import torch
        from tqdm.auto import tqdm

        scenes = finished_scenes(root, split, allow_incomplete=allow_incomplete)
        sizes = {(s["width"], s["height"]) for s in scenes}
        if len(sizes) != 1:
            raise DatasetError(f"split {split!r} of {root} mixes image sizes {sorted(sizes)}")
        width, height = sizes.pop()
        images = torch.empty((len(scenes), 3, height, width), dtype=torch.uint8)
        for i, scene in enumerate(tqdm(scenes, desc=f"load {split}", disable=not progress, leave=False)):
            path = image_path(root, scene)
            image = decode_image(read_bytes(path), path)
            if tuple(image.shape[1:]) != (height, width):
                raise DatasetError(f"{path} is {image.shape[2]}x{image.shape[1]}, its scene says {width}x{height}")
            images[i] = image
        return cls(images, scenes)
