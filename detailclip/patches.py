"""Cutting and resizing all patches of a batch of images in one batched operation (roi_align).

Two resampling modes:
- antialias=False: bilinear sampling (one tap per output pixel), equal to slicing the box and
  `F.interpolate(mode="bilinear", align_corners=False)` when downscaling.
- antialias=True (default): the same bilinear sampling from a mip-map level (2x2 average pooling
  per level) chosen per box so that each output pixel spans 1-2 source pixels, which removes the
  aliasing of a 10x bilinear downscale at the cost of a few pooling passes. For box sides that
  are exactly size * 2^n this equals `F.interpolate(mode="area")` of the slice.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torchvision.ops import roi_align


def extract_patches(
    images: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    antialias: bool = True,
) -> torch.Tensor:
    """Crop boxes[i] (x0, y0, x1, y1 pixels) out of images[i] ([B, 3, H, W] floats in [0, 1], or
    uint8 in [0, 255]) and resize each to size x size; returns CLIP-normalised float32 patches
    [sum_i P_i, 3, size, size] on the images' device."""
    groups = patch_groups(images, boxes, size, mean, std, antialias)
    if len(groups) == 1:
        return groups[0][1]
    order = torch.cat([ids for ids, _ in groups])
    patches = torch.cat([group for _, group in groups])
    return patches if bool((order[1:] > order[:-1]).all()) else patches[torch.argsort(order)]


def patch_groups(
    images: torch.Tensor,
    boxes: Sequence[torch.Tensor],
    size: int,
    mean: Sequence[float],
    std: Sequence[float],
    antialias: bool = True,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """extract_patches without the final concatenation: [(patch indices, patches)] with one entry
    per mip level used, in increasing first index (consumers that batch anyway skip a copy)."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be [B, 3, H, W], got {tuple(images.shape)}")
    if len(boxes) != images.shape[0]:
        raise ValueError(f"{len(boxes)} box sets for {images.shape[0]} images")
    level_image = _normalised(images, mean, std)  # sampling is linear: normalising first is equal and cheaper
    rois = _rois(boxes, level_image)
    if not antialias or len(rois) == 0:
        everything = torch.arange(len(rois), device=rois.device)
        return [(everything, roi_align(level_image, rois, (size, size), 1.0, 1, True))]
    mip = _mip_levels(rois, size)
    groups = []
    for level in range(int(mip.max()) + 1):
        if level:
            level_image = F.avg_pool2d(level_image, 2, ceil_mode=True)
        selected = torch.nonzero(mip == level).flatten()
        if len(selected):
            groups.append((selected, roi_align(level_image, rois[selected], (size, size), 0.5**level, 1, True)))
    return sorted(groups, key=lambda group: int(group[0][0]))


def _normalised(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(images / range - mean) / std as float32, in one new tensor."""
    value_range = 255.0 if images.dtype == torch.uint8 else 1.0
    scale = torch.tensor([1.0 / (value_range * s) for s in std], device=images.device).view(1, 3, 1, 1)
    shift = torch.tensor([m / s for m, s in zip(mean, std)], device=images.device).view(1, 3, 1, 1)
    out = images.to(torch.float32, copy=True)
    return out.mul_(scale).sub_(shift)


def _rois(boxes: Sequence[torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    parts = []
    for i, b in enumerate(boxes):
        b = torch.as_tensor(b, dtype=images.dtype, device=images.device).reshape(-1, 4)
        parts.append(torch.cat([b.new_full((b.shape[0], 1), float(i)), b], dim=1))
    return torch.cat(parts) if parts else images.new_zeros((0, 5))


def _mip_levels(rois: torch.Tensor, size: int) -> torch.Tensor:
    """Mip-map level per box: the largest n with min(box side) / size >= 2^n."""
    side = torch.minimum(rois[:, 3] - rois[:, 1], rois[:, 4] - rois[:, 2]).clamp(min=1e-6)
    return torch.floor(torch.log2(side / size) + 1e-6).clamp(min=0).to(torch.long)

