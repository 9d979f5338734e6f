"""Encoding images with a fusion model: one vector per image in the backbone's CLIP space."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from infra.cluster import RayCluster

from .backbones import Backbone, autocast, load_backbone
from .checkpoint import encoding_config, load_checkpoint
from .cover import auto_k_record
from .features import PatchFeatures, extract_features
from .images import declared_size

ATTENTION_BUDGET = 2**27  # items x patches^2 fused at once: the attention work of one batch


def collate(items: Sequence[PatchFeatures], device: torch.device | str = "cpu", dtype=torch.float32):
    """Stack patch features, padded to the longest: (features [B, P, D], padding mask [B, P] or
    None when all have the same count, levels [B, P], -1 on padding)."""
    longest = max(item.num_patches for item in items)
    dim = items[0].data.shape[1]
    features = torch.zeros(len(items), longest, dim, dtype=dtype)
    levels = torch.full((len(items), longest), -1, dtype=torch.long)
    mask = torch.ones(len(items), longest, dtype=torch.bool)
    for i, item in enumerate(items):
        features[i, :item.num_patches] = torch.from_numpy(np.array(item.data)).to(dtype)
        levels[i, :item.num_patches] = item.levels
        mask[i, :item.num_patches] = False
    padding = mask.to(device) if mask.any() else None
    return features.to(device), padding, levels.to(device)


@torch.no_grad()
def fuse(model: nn.Module, items: Sequence[PatchFeatures], batch_size: int = 256,
         device: str | torch.device | None = None, progress: bool = False) -> torch.Tensor:
    """One L2-normalised float32 vector per item (on the CPU), [N, D]; at most batch_size items and
    ATTENTION_BUDGET (items x longest cover^2) at a time."""
    device = torch.device(device) if device is not None else next(iter(model.parameters()), torch.empty(0)).device
    model.eval()
    out = []
    with tqdm(total=len(items), desc="fuse", disable=not progress) as bar:
        for batch in fusion_batches(items, batch_size):
            features, padding, levels = collate(batch, device)
            with autocast(device):
                out.append(model(features, padding, levels).float().cpu())
            bar.update(len(batch))
    return torch.cat(out) if out else torch.zeros(0, 0)


def fusion_batches(items: Sequence[PatchFeatures], batch_size: int) -> Iterator[Sequence[PatchFeatures]]:
    """Consecutive runs of items, each at most batch_size long and within ATTENTION_BUDGET (one item at least)."""
    start = 0
    while start < len(items):
        stop, longest = start + 1, items[start].num_patches
        while stop < min(start + batch_size, len(items)):
            longest = max(longest, items[stop].num_patches)
            if (stop + 1 - start) * longest**2 > ATTENTION_BUDGET:
                break
            stop += 1
        yield items[start:stop]
        start = stop


def backbone_for(config: dict, device: str | torch.device | None = None, batch_size: int = 256) -> Backbone:
    """The backbone a checkpoint was trained on."""
    return load_backbone(config["backbone"], config["pretrained"], device=device, seed=config.get("backbone_seed", 0),
                         image_size=config.get("image_size"), batch_size=batch_size)


def encode_images_with_checkpoint(
    checkpoint: str | Path,
    image_paths: Sequence[str | Path],
    cache_dir: str | Path | None = None,
    batch_size: int = 4,
    device: str | torch.device | None = None,
    progress: bool = True,
    backbone: Backbone | None = None,
    cluster: RayCluster | None = None,
    k: int | str | None = None,
) -> tuple[torch.Tensor, dict]:
    """(vectors [N, D], encoding config) for any list of image files (features extracted on `cluster` if
    given): the checkpoint's config with the cover's `k` (default: the checkpoint's; the checkpoint's own
    as checkpoint_k) and, for an auto cover, the k each image got (cover_k)."""
    model, config = load_checkpoint(checkpoint, device)
    encoding_config(config, checkpoint)
    backbone = backbone or backbone_for(config, device)
    k = config["k"] if k is None else k
    items = extract_features(backbone, image_paths, scheme=config["scheme"], k=k, cache_dir=cache_dir,
                             batch_size=batch_size, progress=progress, antialias=config.get("antialias", True),
                             cluster=cluster)
    used = dict(config) if k == config["k"] else {**config, "k": k, "checkpoint_k": config["k"]}
    record = auto_k_record(k, [declared_size(path) for path in image_paths], backbone.image_size)
    if record:
        used["cover_k"] = record
    return fuse(model, items, device=backbone.device, progress=progress), used
