"""Zero-shot "<colour> <shape>" classification of single objects: a backbone's quality figure.

Every visible object whose square crop (`factor` times its box, `clevr_ds.captions.object_crop`)
shows it alone and cuts nothing is one item (`clevr_ds.captions.single_object_crops`); the crop is
classified against the vocabulary's template-averaged class prompts. A larger factor shows the
object smaller in the backbone's input, so accuracy against factor is the detail loss in one
number per factor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from clevr_ds.captions import VisibilityRule, single_object_crops
from clevr_ds.dataset import DatasetError
from clevr_ds.vocab import Vocabulary

from .backbones import Backbone
from .data import SplitImages
from .patches import extract_patches
from .text import TemplateSpec


@dataclass
class ZeroShotItems:
    """Single-object crops of a split, ready for a backbone."""

    patches: torch.Tensor  # CLIP-normalised [N, 3, S, S]
    objects: list[dict]  # the object each crop shows
    object_pixels: torch.Tensor  # longest side of its box at the backbone's input size [N]


def single_object_items(data: SplitImages, rule: VisibilityRule, factor: float, image_size: int,
                        mean: tuple[float, float, float], std: tuple[float, float, float]) -> ZeroShotItems:
    """All single-object crops of `data` cut in one `extract_patches` call; DatasetError if none."""
    items = single_object_crops(data.scenes, rule, factor)
    if not items:
        raise DatasetError(f"no single-object crops at factor {factor} to classify")
    boxes = [torch.tensor([box for pos, box, _ in items if pos == i], dtype=torch.float32).reshape(-1, 4)
             for i in range(len(data.scenes))]
    patches = extract_patches(data.images, boxes, image_size, mean, std)  # items are in image order
    pixels = torch.tensor([max(obj["bbox"][2:]) / (box[2] - box[0]) * image_size for _, box, obj in items])
    return ZeroShotItems(patches, [obj for _, _, obj in items], pixels)


def predict_classes(backbone: Backbone, patches: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    """Index of the best-matching class embedding ([C, D], e.g. `Backbone.class_embeddings`) per
    patch [N] (on the CPU)."""
    return (backbone.encode_images(patches) @ classes.T).argmax(dim=1).cpu()


def class_accuracy(predicted: torch.Tensor, objects: list[dict], vocabulary: Vocabulary) -> dict:
    """Exact, colour and shape accuracy of predicted class indices (`vocabulary.classes` order); colour
    accuracy is None where classes do not name a colour (the aerial family)."""
    attributes = vocabulary.class_attributes
    guesses = [attributes[i] for i in predicted.tolist()]
    count = len(objects)
    colour = sum(g[0] == o["color"] for g, o in zip(guesses, objects)) / count if vocabulary.by_color else None
    return {"items": count,
            "accuracy": sum(vocabulary.class_of(*g) == vocabulary.class_of(o["color"], o["shape"])
                            for g, o in zip(guesses, objects)) / count,
            "colour_accuracy": colour,
            "shape_accuracy": sum(g[1] == o["shape"] for g, o in zip(guesses, objects)) / count}


def evaluate_zero_shot(backbone: Backbone, data: SplitImages, vocabulary: Vocabulary,
                       factors: Sequence[float] = (3.0,), min_pixels: float = 4.0,
                       templates: TemplateSpec = "openai80") -> list[dict]:
    """Accuracy figures of `backbone` on the single-object crops of `data`, one report per crop
    factor, with the median object size (px at the backbone's input) and the per-item predictions."""
    classes = vocabulary.classes
    embeddings = backbone.class_embeddings(classes, templates)
    rule = VisibilityRule(backbone.image_size, min_pixels)
    reports = []
    for factor in factors:
        items = single_object_items(data, rule, factor, backbone.image_size, backbone.mean, backbone.std)
        predicted = predict_classes(backbone, items.patches, embeddings)
        reports.append({"factor": factor, "object_pixels": float(items.object_pixels.median()),
                        **class_accuracy(predicted, items.objects, vocabulary),
                        "predictions": [{"truth": obj["class"], "predicted": classes[i]}
                                        for obj, i in zip(items.objects, predicted.tolist())]})
    return reports
