"""Encoding images with a fusion model: one vector per image in the backbone's CLIP space."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from infra.cluster import RayCluster

from .backbones import Backbone, autocast, load_backbone
from .checkpoint import encoding_config, load_checkpoint
from .features import PatchFeatures, extract_features


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
    """One L2-normalised float32 vector per item (on the CPU), [N, D]."""
    device = torch.device(device) if device is not None else next(iter(model.parameters()), torch.empty(0)).device
    model.eval()
    out = []
    for start in tqdm(range(0, len(items), batch_size), desc="fuse", disable=not progress):
        features, padding, levels = collate(items[start:start + batch_size], device)
        with autocast(device):
            out.append(model(features, padding, levels).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 0)


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
) -> tuple[torch.Tensor, dict]:
    """(vectors [N, D], checkpoint config) for any list of image files (features extracted on `cluster` if given)."""
    model, config = load_checkpoint(checkpoint, device)
    encoding_config(config, checkpoint)
    backbone = backbone or backbone_for(config, device)
    items = extract_features(backbone, image_paths, scheme=config["scheme"], k=config["k"], cache_dir=cache_dir,
                             batch_size=batch_size, progress=progress, antialias=config.get("antialias", True),
                             cluster=cluster)
    return fuse(model, items, device=backbone.device, progress=progress), config
