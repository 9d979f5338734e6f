"""What a crop of a CLEVR-DS scene shows, and captions for it (training text for a CLIP backbone).

Visibility rule, for a square crop box resized to an `input_size` model input: an object (with
`"visible": true`) is *in* the crop when at least `min_inside` of its visible box lies inside the
crop and its longest box side, after resizing, is at least `min_pixels`. An object is *cut* when it
would be in the crop by size but only a fraction in (`max_outside_cut`, `min_inside`) of its box is
inside: neither clearly present nor clearly absent. Training drops crops that cut an object
(`crop_is_clean`); captions mention exactly the objects in the crop.

Captions name each object by colour and shape, with an optional material word (synonyms: metal,
metallic, shiny; rubber, matte; painted, glossy) and size word relative to the crop, in random order,
with varied joiners and optional prompt templates; objects of one class are grouped ("two red cubes").
A crop with no object gets an empty-ground caption of its scene family (`EMPTY_CAPTIONS`).
`object_key` is the order-free multiset of what the captions name (colour and shape), the same for
every wording: crops with equal keys are positives of each other in contrastive training.
`swap_attribute` makes hard negatives: the same objects with one object's shape or colour changed,
so that a caption of them differs from a true one in a single word.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .vocab import Vocabulary

MATERIAL_WORDS = {"metal": ("metal", "metallic", "shiny"), "rubber": ("rubber", "matte"), "paint": ("painted", "glossy")}
SMALL_WORDS, LARGE_WORDS = ("small", "tiny", "little"), ("large", "big")
EMPTY_CAPTIONS = {  # keyed by a vocabulary's prompt set (its scene family); None: CLEVR's gray floor
    None: ("an empty gray floor", "a plain gray floor", "an empty scene", "a gray floor with nothing on it",
           "nothing but a gray floor", "an empty gray surface"),
    "aerial": ("empty ground", "an aerial view of empty land", "fields and roads with no vehicles", "bare ground",
               "an empty scene", "nothing but land and water"),
}
COUNT_WORDS = ("", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
PREFIXES = ("", "", "", "a photo of ", "a render of ", "an image of ", "there is ", "a scene with ")
EMPTY_KEY = ""


@dataclass(frozen=True)
class VisibilityRule:
    input_size: int = 112  # side of the model input the crop is resized to
    min_pixels: float = 4.0  # longest box side in the resized crop for an object to count
    min_inside: float = 0.7  # share of the box inside the crop for an object to count
    max_outside_cut: float = 0.1  # share inside at or below which an object counts as outside


def inside_fraction(crop: Sequence[float], bbox: Sequence[float]) -> float:
    """Share of bbox [x, y, w, h] inside crop [x0, y0, x1, y1]."""
    x, y, w, h = bbox
    if w <= 0 or h <= 0:
        return 0.0
    iw = max(0.0, min(crop[2], x + w) - max(crop[0], x))
    ih = max(0.0, min(crop[3], y + h) - max(crop[1], y))
    return iw * ih / (w * h)


def resized_side(crop: Sequence[float], bbox: Sequence[float], input_size: int) -> float:
    """Longest side of bbox in pixels of the crop resized to input_size (by the crop's longer side)."""
    return max(bbox[2], bbox[3]) * input_size / max(crop[2] - crop[0], crop[3] - crop[1])


def crop_contents(crop: Sequence[float], objects: Sequence[dict], rule: VisibilityRule) -> tuple[list[dict], bool]:
    """(objects in the crop, whether the crop is clean: no object cut by its border)."""
    inside, clean = [], True
    for obj in objects:
        if not obj.get("visible", True) or resized_side(crop, obj["bbox"], rule.input_size) < rule.min_pixels:
            continue
        share = inside_fraction(crop, obj["bbox"])
        if share >= rule.min_inside:
            inside.append(obj)
        elif share > rule.max_outside_cut:
            clean = False
    return inside, clean


def object_key(objects: Sequence[dict]) -> str:
    """Order-free key of the colours and shapes shown ("" for none): equal keys are contrastive positives."""
    return "|".join(sorted(f"{obj['color']} {obj['shape']}" for obj in objects))


def plural(shape: str) -> str:
    return shape + ("es" if shape.endswith(("s", "x", "ch", "sh")) else "s")


def _phrase(group: list[dict], crop: Sequence[float], rng: np.random.Generator, p_material: float,
            p_size: float) -> str:
    color, shape = group[0]["color"], group[0]["shape"]
    materials = {obj["material"] for obj in group}
    words = [color]
    if len(materials) == 1 and rng.random() < p_material:
        words.append(str(rng.choice(MATERIAL_WORDS.get(next(iter(materials)), tuple(materials)))))
    if len(group) > 1:
        return " ".join([COUNT_WORDS[len(group)] if len(group) < len(COUNT_WORDS) else "many", *words, plural(shape)])
    side = max(group[0]["bbox"][2:]) / max(crop[2] - crop[0], crop[3] - crop[1])
    if rng.random() < p_size and (side < 0.08 or side > 0.4):
        words.insert(0, str(rng.choice(SMALL_WORDS if side < 0.08 else LARGE_WORDS)))
    return " ".join(["a", *words, shape])


def _join(phrases: list[str], rng: np.random.Generator) -> str:
    if len(phrases) == 1:
        return phrases[0]
    if rng.random() < 0.5:
        return ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return str(rng.choice((", ", " and ", " with "))).join(phrases)


def caption(objects: Sequence[dict], crop: Sequence[float], rng: np.random.Generator,
            templates: Sequence[str] = (), p_template: float = 0.3, p_material: float = 0.5,
            p_size: float = 0.3, empty: Sequence[str] = EMPTY_CAPTIONS[None]) -> str:
    """A random caption of `objects` (those in `crop`); with probability p_template it is put into
    one of `templates` (strings with one "{}", e.g. CLIP's prompt templates), else a plain prefix;
    a crop without objects gets one of the `empty` captions."""
    if not objects:
        return str(rng.choice(empty))
    groups: dict[str, list[dict]] = {}
    for obj in objects:
        groups.setdefault(obj["class"], []).append(obj)
    order = rng.permutation(len(groups))
    values = list(groups.values())
    text = _join([_phrase(values[i], crop, rng, p_material, p_size) for i in order], rng)
    if templates and rng.random() < p_template:
        template = str(templates[int(rng.integers(len(templates)))])
        if text.startswith("a ") and any(f"{article} {{}}" in template for article in ("a", "an", "the")):
            text = text[2:]
        return template.format(text)
    return str(rng.choice(PREFIXES)) + text


def swap_attribute(objects: Sequence[dict], rng: np.random.Generator, vocabulary: Vocabulary,
                   p_shape: float = 0.5) -> list[dict]:
    """A copy of `objects` (not empty) in which one random object has another shape (with
    probability p_shape) or another colour of the vocabulary, its class renamed to match."""
    swapped = [dict(obj) for obj in objects]
    obj = swapped[int(rng.integers(len(swapped)))]
    attribute, values = ("shape", vocabulary.shapes) if rng.random() < p_shape else ("color", vocabulary.colors)
    others = [v for v in values if v != obj[attribute]]
    obj[attribute] = str(others[int(rng.integers(len(others)))])
    obj["class"] = vocabulary.class_of(obj["color"], obj["shape"])
    return swapped


def object_crop(bbox: Sequence[float], width: int, height: int, factor: float) -> list[float]:
    """Square box [x0, y0, x1, y1] of side factor * longest box side (at most the image's shorter
    side), centred on bbox and shifted to lie inside the image."""
    x, y, w, h = bbox
    side = min(factor * max(w, h), width, height)
    x0 = min(max(x + w / 2 - side / 2, 0.0), width - side)
    y0 = min(max(y + h / 2 - side / 2, 0.0), height - side)
    return [x0, y0, x0 + side, y0 + side]


def single_object_crops(scenes: Sequence[dict], rule: VisibilityRule, factor: float = 3.0) -> list[tuple[int, list[float], dict]]:
    """(scene position, crop box, object) for every visible object whose object_crop shows it alone
    and cuts nothing: held-out zero-shot classification items."""
    items = []
    for position, scene in enumerate(scenes):
        for obj in scene["objects"]:
            if not obj.get("visible", True):
                continue
            crop = object_crop(obj["bbox"], scene["width"], scene["height"], factor)
            inside, clean = crop_contents(crop, scene["objects"], rule)
            if clean and len(inside) == 1 and inside[0] is obj:
                items.append((position, crop, obj))
    return items



def sample_crops(rng: np.random.Generator, objects: Sequence[dict], width: int, height: int, count: int,
                 rule: VisibilityRule, min_frac: float = 0.08, whole_share: float = 0.1, keep_empty: float = 0.2,
                 object_share: float = 0.0, max_zoom: float = 8.0, tries: int = 16) -> list[tuple[list[float], list[dict]]]:
    """`count` clean square crops (box, objects in it). A share `whole_share` are whole images; the
    rest are windows drawn until one is clean: with probability `object_share` a window around a
    random visible object (side 1.5 to `max_zoom` times its box, log-uniform, object inside), else a
    window with side log-uniform in [min_frac, 1] of the shorter image side (the Complete Cover
    range) at a uniform position, kept when empty only with probability `keep_empty` (most small
    windows are empty). A crop still unaccepted after `tries` draws is the whole image."""
    whole = [0.0, 0.0, float(width), float(height)]
    visible = [obj for obj in objects if obj.get("visible", True)]
    crops = []
    for _ in range(count):
        box = whole
        if rng.random() >= whole_share:
            for _ in range(tries):
                if object_share and visible and rng.random() < object_share:
                    candidate = _object_window(rng, visible, width, height, max_zoom)
                else:
                    candidate = _random_window(rng, width, height, min_frac)
                inside, clean = crop_contents(candidate, objects, rule)
                if clean and (inside or rng.random() < keep_empty):
                    box = candidate
                    break
        crops.append((box, crop_contents(box, objects, rule)[0]))
    return crops


def _random_window(rng: np.random.Generator, width: int, height: int, min_frac: float) -> list[float]:
    side = min(width, height) * float(np.exp(rng.uniform(np.log(min_frac), 0.0)))
    x0, y0 = rng.uniform(0.0, width - side), rng.uniform(0.0, height - side)
    return [x0, y0, x0 + side, y0 + side]


def _object_window(rng: np.random.Generator, visible: Sequence[dict], width: int, height: int,
                   max_zoom: float) -> list[float]:
    x, y, w, h = visible[int(rng.integers(len(visible)))]["bbox"]
    side = min(width, height, max(w, h) * float(np.exp(rng.uniform(np.log(1.5), np.log(max_zoom)))))
    x0 = rng.uniform(max(0.0, x + w - side), max(0.0, min(x, width - side)))
    y0 = rng.uniform(max(0.0, y + h - side), max(0.0, min(y, height - side)))
    return [x0, y0, x0 + side, y0 + side]
