"""Cutting and resizing patches (boxes of images) in batched operations (roi_align), streamed.

`window_batches` cuts image by image, a fixed number of patches at a time: memory holds one image's
mip pyramid and one batch of patches, whatever the image size and the number of boxes, and the work
is linear in the number of boxes. `extract_patches` is the same cut, all patches at once.

Two resampling modes:
- antialias=False: bilinear sampling (one tap per output pixel), equal to slicing the box and
  `F.interpolate(mode="bilinear", align_corners=False)` when downscaling.
- antialias=True (default): the same bilinear sampling from a mip-map level (2x2 average pooling
  per level) chosen per box so that each output pixel spans 1-2 source pixels, which removes the
  aliasing of a 10x bilinear downscale at the cost of a few pooling passes. For box sides that
  are exactly size * 2^n this equals `F.interpolate(mode="area")` of the slice.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def extract_patches(
    images: torch.Tensor | Sequence[torch.Tensor],
    boxes: Sequence[torch.Tensor],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    antialias: bool = True,
) -> torch.Tensor:
    """Crop boxes[i] (x0, y0, x1, y1 pixels) out of images[i] ([B, 3, H, W] or a list of [3, H, W]; floats in
    [0, 1], or uint8 in [0, 255]) and resize each to size x size; returns CLIP-normalised float32 patches
    [sum_i P_i, 3, size, size] on the images' device."""
    total = sum(len(b) for b in boxes)
    batches = list(window_batches(images, boxes, size, mean, std, antialias, batch=max(total, 1)))
    return batches[0] if batches else torch.zeros(0, 3, size, size, device=_device(images))


def window_batches(
    images: torch.Tensor | Sequence[torch.Tensor],
    boxes: Sequence[torch.Tensor],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    antialias: bool = True,
    batch: int = 256,
    device: torch.device | str | None = None,
) -> Iterator[torch.Tensor]:
    """The patches of extract_patches, image by image and in box order, `batch` at a time (the last batch
    shorter); each image moves to `device` (default: where it is) and gets its mip pyramid when its
    first box is due, dropped after its last."""
    if isinstance(images, torch.Tensor) and (images.ndim != 4 or images.shape[1] != 3):
        raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
    if len(boxes) != len(images):
        raise ValueError(f"{len(boxes)} box sets for {len(images)} images")
    pending, count = [], 0
    for image, image_boxes in zip(images, boxes):
        image_boxes = torch.as_tensor(image_boxes, dtype=torch.float32).reshape(-1, 4)
        if not len(image_boxes):
            continue
        pyramid = _Pyramid(image.to(device) if device is not None else image, image_boxes, size, mean, std, antialias)
        done = 0
        while done < len(image_boxes):
            take = min(batch - count, len(image_boxes) - done)
            pending.append(pyramid.cut(done, done + take))
            count, done = count + take, done + take
            if count == batch:
                yield pending[0] if len(pending) == 1 else torch.cat(pending)
                pending, count = [], 0
        del pyramid  # before the next image's is built
    if pending:
        yield pending[0] if len(pending) == 1 else torch.cat(pending)


class _Pyramid:
    """One image, CLIP-normalised as float32, and its mip levels up to the deepest its boxes need."""

    def __init__(self, image: torch.Tensor, boxes: torch.Tensor, size: int, mean: Sequence[float],
                 std: Sequence[float], antialias: bool):
        if image.ndim != 3 or image.shape[0] != 3:
            raise ValueError(f"an image must be [3, H, W], got {tuple(image.shape)}")
        levels = [_normalised(image[None], mean, std)]  # sampling is linear: normalising first is equal and cheaper
        self.rois = torch.cat([boxes.new_zeros(len(boxes), 1), boxes], dim=1).to(levels[0].device)
        self.mip = _mip_levels(self.rois, size) if antialias else torch.zeros(len(boxes), dtype=torch.long)
        for _ in range(int(self.mip.max())):
            levels.append(F.avg_pool2d(levels[-1], 2, ceil_mode=True))
        self.levels, self.size = levels, size

    def cut(self, start: int, stop: int) -> torch.Tensor:
        """Patches [stop - start, 3, size, size] of boxes start..stop-1."""
        rois, mip = self.rois[start:stop], self.mip[start:stop]
        found = torch.unique(mip).tolist()
        if len(found) == 1:
            return self._align(found[0], rois)
        out = rois.new_empty(len(rois), 3, self.size, self.size)
        for level in found:
            selected = torch.nonzero(mip == level).flatten().to(rois.device)
            out[selected] = self._align(level, rois[selected])
        return out

    def _align(self, level: int, rois: torch.Tensor) -> torch.Tensor:
        return roi_align(self.levels[level], rois, (self.size, self.size), 0.5**level, 1, True)


def _device(images: torch.Tensor | Sequence[torch.Tensor]) -> torch.device:
    return images.device if isinstance(images, torch.Tensor) or not len(images) else images[0].device


def _normalised(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(images / range - mean) / std as contiguous float32, in one new tensor."""
    value_range = 255.0 if images.dtype == torch.uint8 else 1.0
    scale = torch.tensor([1.0 / (value_range * s) for s in std], device=images.device).view(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], device=images.device).view(1, 3, 1, 1)
    out = images.to(torch.float32, memory_format=torch.contiguous_format, copy=True)
    return out.mul_(scale).sub_(shift)


def _mip_levels(rois: torch.Tensor, size: int) -> torch.Tensor:
    """Mip-map level per box: the largest n with min(box side) / size >= 2^n (on the CPU)."""
    side = torch.minimum(rois[:, 3] - rois[:, 1], rois[:, 4] - rois[:, 2]).clamp(min=1e-6)
    return torch.floor(torch.log2(side / size) + 1e-6).clamp(min=0).to(torch.long).cpu()
