"""Cutting images into patches and encoding them in batches (on this machine, or in a Ray actor:
detailclip.distributed calls the same `encode_batch`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple, Sequence

import numpy as np
import torch

from .backbones import Backbone
from .cover import scheme_boxes
from .patches import patch_groups


@dataclass(frozen=True)
class CutOptions:
    """How patches are chosen and cut (everything besides the backbone that changes features)."""

    scheme: str = "cc"
    k: int = 10
    enlarge: float = 1.0
    min_side: int = 8
    antialias: bool = True

    def key(self) -> dict:
        key = {"scheme": self.scheme, "antialias": self.antialias}
        if self.scheme in ("cc", "grid"):
            key["k"] = self.k
        if self.scheme == "objects":
            key.update(enlarge=self.enlarge, min_side=self.min_side)
        return key


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
    """Cut and encode images together (grouped by size, one roi_align pass per group); `bboxes[i]`:
    image i's object boxes (scheme "objects") or None."""
    boxes, levels = [], []
    by_size: dict[tuple[int, int], list[int]] = {}
    for slot, image in enumerate(images):
        height, width = image.shape[-2:]
        image_boxes, image_levels = scheme_boxes(cut.scheme, height, width, cut.k, bboxes[slot], cut.enlarge, cut.min_side)
        boxes.append(image_boxes)
        levels.append(image_levels.numpy().astype(np.int16))
        by_size.setdefault((height, width), []).append(slot)
    groups, offset = [], 0
    for slots in by_size.values():
        stacked = torch.stack([images[s] for s in slots]).to(backbone.device, non_blocking=True)
        size_groups = patch_groups(stacked, [boxes[s] for s in slots], backbone.image_size, backbone.mean,
                                   backbone.std, cut.antialias)
        groups += [(ids + offset, patches) for ids, patches in size_groups]
        offset += sum(len(ids) for ids, _ in size_groups)
    features = encode_groups(backbone, groups).to(torch.float16).cpu().numpy()
    encoded: Encoded = [None] * len(images)
    start = 0
    for slot in (slot for slots in by_size.values() for slot in slots):
        count = len(levels[slot])
        encoded[slot] = features[start:start + count], levels[slot]
        start += count
    return encoded


def encode_patches(backbone: Backbone, images: torch.Tensor, boxes: Sequence[torch.Tensor],
                   antialias: bool = True) -> torch.Tensor:
    """Cut boxes[i] out of images[i] and encode them: L2-normalised features [sum_i P_i, D] in box order."""
    return encode_groups(backbone, patch_groups(images, boxes, backbone.image_size, backbone.mean, backbone.std,
                                                antialias))


def encode_groups(backbone: Backbone, groups: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Encode (patch indices, patches) groups in full batches; features [N, D] in index order."""
    features = torch.empty(sum(len(ids) for ids, _ in groups), backbone.embed_dim, device=backbone.device)
    for ids, pixels in _full_batches(groups, backbone.batch_size):
        features[ids.to(backbone.device)] = backbone.encode_images(pixels)
    return features


def _full_batches(groups: list[tuple[torch.Tensor, torch.Tensor]], size: int) -> Iterator:
    """Re-slice (ids, patches) groups into batches of `size` (the last one shorter), copying only
    the pieces that straddle a group boundary."""
    pieces, count = [], 0
    for ids, patches in groups:
        start = 0
        while start < len(ids):
            take = min(size - count, len(ids) - start)
            pieces.append((ids[start:start + take], patches[start:start + take]))
            count += take
            start += take
            if count == size:
                yield _join(pieces)
                pieces, count = [], 0
    if pieces:
        yield _join(pieces)


def _join(pieces: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    if len(pieces) == 1:
        return pieces[0]
    return torch.cat([ids for ids, _ in pieces]), torch.cat([patches for _, patches in pieces])
