"""The method interface: turn a split's images into an image index, and say what that cost."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from detailclip.ragged import owners

from ..context import BenchContext, FeatureKey
from ..index import ImageIndex


@dataclass(frozen=True)
class Encoded:
    """A method's image index and its cost per image."""

    index: ImageIndex
    forward_passes_per_image: float  # CLIP image forward passes
    gflops_per_image: float
    encode_images_per_s: float  # from the measured forward-pass rate (plus any fusion time)
    image_size: int | None = None  # input size of the backbone used, when not the run's own (its text tower scores)
    cover_k: dict | None = None  # an auto cover's rule and the k each image got (BenchContext.cover_record)


class Method(ABC):
    """A retrieval method; subclasses set `name` and `summary` and are built without arguments."""

    name: str = ""
    summary: str = ""

    def settings(self, ctx: BenchContext) -> dict:
        """Everything besides backbone, data and protocol that determines the vectors (for the run id)."""
        return {}

    def features_read(self, ctx: BenchContext) -> FeatureKey | None:
        """The patch features `encode` reads through `ctx.features`, for the call's plan (`BenchContext.plan`);
        None where it does not say."""
        return None

    @abstractmethod
    def encode(self, ctx: BenchContext) -> Encoded:
        """Index every image of `ctx.source`, in order."""


def stack_features(features: list) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All patch vectors of a split, stacked: fp16 [M, D], counts [N] and patch levels [M]."""
    counts = torch.tensor([f.num_patches for f in features], dtype=torch.long)
    vectors = torch.from_numpy(np.concatenate([np.asarray(f.data) for f in features]))
    levels = torch.from_numpy(np.concatenate([np.asarray(f.level_ids, dtype=np.int64) for f in features]))
    return vectors, counts, levels


def mean_vectors(vectors: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """The renormalised mean of each image's vectors: [N, D] float32."""
    owner = owners(counts)
    sums = torch.zeros(len(counts), vectors.shape[1]).index_add_(0, owner, vectors.float())
    return F.normalize(sums, dim=-1)
