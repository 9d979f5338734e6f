"""Tiny hand-made CLEVR-DS folders for the benchmark tests (no Blender): meta, scenes and PNG images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from clevr_ds.dataset import DATASET_NAME, image_path, meta_path, scene_path
from clevr_ds.sampling import image_name
from clevr_ds.vocab import Vocabulary
from infra.atomic import write_json


def obj(cls: str, rel_scale: float, visible_pixels: int = 100, visible: bool = True, bbox=None, side: int = 64) -> dict:
    """An annotated object; its box is a square of `rel_scale * side` px at the top-left unless given."""
    color, shape = cls.split(" ")
    w = max(1, round(rel_scale * side))
    return {
        "class": cls,
        "color": color,
        "shape": shape,
        "material": "rubber",
        "rel_scale": rel_scale,
        "bbox": list(bbox) if bbox is not None else [2, 2, w, w],
        "visible_pixels": visible_pixels,
        "visible": visible,
    }


def make_dataset(root: Path, scenes_objects: list[list[dict]], split: str = "test", scales: str = "0.01-0.1", side: int = 64) -> Path:
    """Write a split whose image i holds `scenes_objects[i]`; objects are drawn as filled boxes."""
    vocab = Vocabulary.load()
    write_json(meta_path(root, split), {"dataset": DATASET_NAME, "split": split, "scales": scales,
                                        "num_images": len(scenes_objects), "vocabulary": vocab.to_dict()})
    rng = np.random.default_rng(0)
    for i, objects in enumerate(scenes_objects):
        scene = {
            "image_index": i,
            "image_filename": f"{image_name(split, i)}.png",
            "split": split,
            "width": side,
            "height": side,
            "seed": i,
            "objects": objects,
        }
        pixels = rng.integers(90, 110, (side, side, 3), dtype=np.uint8)
        for o in objects:
            x, y, w, h = (int(v) for v in o["bbox"])
            pixels[y : y + h, x : x + w] = vocab.colors[o["color"]]
        path = image_path(root, scene)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
        write_json(scene_path(root, split, i), scene)
    return Path(root)


TINY_BACKBONE = "tiny-clip-vit-p8-32"  # registered by detailclip (model_configs/), random weights


def random_scenes(n: int, seed: int = 0, lo: float = 0.05, hi: float = 0.3, side: int = 64) -> list[list[dict]]:
    """n images of 2-4 objects with log-uniform scales in [lo, hi], boxes inside the image."""
    rng = np.random.default_rng(seed)
    classes = Vocabulary.load().classes
    scenes = []
    for _ in range(n):
        objects = []
        for _ in range(int(rng.integers(2, 5))):
            scale = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
            w = max(2, round(scale * side))
            x, y = (int(v) for v in rng.integers(0, side - w, 2))
            objects.append(obj(classes[int(rng.integers(len(classes)))], scale, bbox=[x, y, w, w], side=side))
        scenes.append(objects)
    return scenes


def make_checkpoint(path: Path, size: str = "tiny", k: int = 3, seed: int = 0, scheme: str = "cc",
                    levels: torch.Tensor | None = None) -> Path:
    """An untrained fusion checkpoint in the format `python cli.py train` writes; `levels` [MAX_LEVELS, 32]:
    with level embeddings of these values."""
    import torch

    from detailclip.checkpoint import save_checkpoint
    from detailclip.fusion import build_fusion

    torch.manual_seed(seed)
    model = build_fusion(size, 32, level_embedding=levels is not None)
    if levels is not None:
        with torch.no_grad():
            model.levels.weight.copy_(levels)
    config = {"backbone": TINY_BACKBONE, "pretrained": "none", "backbone_seed": seed, "image_size": None,
              "scheme": scheme, "k": k, "antialias": True}  # fmt: skip
    save_checkpoint(path, model, config)
    return Path(path)
