"""S2-style multi-scale CLIP (Shi et al., 2024) reduced to one CLIP-space vector per image."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from detailclip.ragged import owners

from ..context import BenchContext
from ..index import ImageIndex
from .base import Encoded, Method, mean_vectors, stack_features
from .registry import register


@register
class S2(Method):
    """Scale s splits the image into s x s tiles at CLIP's input size; each scale's tile features are
    averaged, and the image vector is the renormalised mean of the (normalised) scale vectors."""

    name, summary = "s2", "multi-scale mean: whole image, 2x2 and 3x3 tiles, averaged per scale then across scales"
    scales = (1, 2, 3)

    def settings(self, ctx: BenchContext) -> dict:
        return {"scales": list(self.scales), "pool": "mean"}

    def scale_vectors(self, ctx: BenchContext, s: int) -> torch.Tensor:
        """[N, D]: the mean tile vector of each image at scale s (scale 1: the whole image)."""
        vectors, counts, levels = stack_features(ctx.features("whole") if s == 1 else ctx.features("grid", s))
        tiles = levels == (0 if s == 1 else 1)
        owner = owners(counts)
        return mean_vectors(vectors[tiles], torch.bincount(owner[tiles], minlength=len(counts)))

    def encode(self, ctx: BenchContext) -> Encoded:
        vectors = F.normalize(torch.stack([self.scale_vectors(ctx, s) for s in self.scales]).mean(0), dim=-1)
        passes = float(sum(s * s for s in self.scales))
        return Encoded(ImageIndex.single(vectors), passes, passes * ctx.gflops_per_pass(), ctx.passes_per_second() / passes)
