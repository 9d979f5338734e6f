"""Cutting images into patches and encoding them in batches (on this machine, or in a Ray actor:
detailclip.distributed calls the same `encode_batch`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from .backbones import Backbone
from .cover import COVER_SCHEMES, image_k, scheme_boxes
from .patches import window_batches


@dataclass(frozen=True)
class CutOptions:
    """How patches are chosen and cut (everything besides the backbone that changes features)."""

    scheme: str = "cc"
    k: int | str = 10  # or AUTO_K: per image, from its size (detailclip.cover.auto_k)
    enlarge: float = 1.0
    min_side: int = 8
    antialias: bool = True

    def key(self) -> dict:
        key = {"scheme": self.scheme, "antialias": self.antialias}
        if self.scheme in COVER_SCHEMES:
            key["k"] = self.k
        if self.scheme == "objects":
            key.update(enlarge=self.enlarge, min_side=self.min_side)
        return key

    def k_for(self, height: int, width: int, input_size: int) -> int:
        """The k an image of this size gets on a backbone of this input size."""
        return image_k(self.k, height, width, input_size)


class Pending(NamedTuple):
    """An image to encode: its index and path, cache entry name, decoded image (or its bytes, for Ray) and object boxes."""

    index: int
    path: str
    entry: str
    image: torch.Tensor | bytes
    bboxes: Sequence[Sequence[float]] | None


Encoded = list[tuple[np.ndarray, np.ndarray]]  # (fp16 features [P, D], int16 levels [P]) per image of a batch


def encode_here(backbone: Backbone, cut: CutOptions, batches: Iterable[list[Pending]]) -> Iterator[tuple[list[Pending], Encoded]]:
    """(batch, its encoded features) of each batch, encoded by this process."""
    for batch in batches:
        yield batch, encode_batch(backbone, cut, [item.image for item in batch], [item.bboxes for item in batch])


def encode_batch(backbone: Backbone, cut: CutOptions, images: Sequence[torch.Tensor],
                 bboxes: Sequence[Sequence[Sequence[float]] | None]) -> Encoded:
    """Cut and encode images together (see encode_patches); `bboxes[i]`: image i's object boxes (scheme
    "objects") or None."""
    boxes, levels = [], []
    for image, image_bboxes in zip(images, bboxes):
        height, width = image.shape[-2:]
        k = cut.k_for(height, width, backbone.image_size)
        image_boxes, image_levels = scheme_boxes(cut.scheme, height, width, k, image_bboxes, cut.enlarge, cut.min_side)
        boxes.append(image_boxes)
        levels.append(image_levels.numpy().astype(np.int16))
    features = encode_patches(backbone, images, boxes, cut.antialias, torch.float16).cpu().numpy()
    ends = np.cumsum([len(image_levels) for image_levels in levels])
    return [(features[end - len(image_levels):end], image_levels) for end, image_levels in zip(ends, levels)]


def encode_patches(backbone: Backbone, images: torch.Tensor | Sequence[torch.Tensor], boxes: Sequence[torch.Tensor],
                   antialias: bool = True, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Cut boxes[i] out of images[i] and encode them, streamed: backbone.batch_size patches at a time, in
    box order (so equal to backbone.encode_images of extract_patches' output), each image moved to the
    backbone's device when its turn comes. L2-normalised features [sum_i P_i, D] in `dtype` on the device."""
    features = torch.empty(sum(len(b) for b in boxes), backbone.embed_dim, dtype=dtype, device=backbone.device)
    start = 0
    for pixels in window_batches(images, boxes, backbone.image_size, backbone.mean, backbone.std, antialias,
                                 backbone.batch_size, backbone.device):
        features[start:start + len(pixels)] = backbone.encode_images(pixels)
        start += len(pixels)
    return features
