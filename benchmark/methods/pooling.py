"""Training-free methods: CLIP features of a patch scheme, pooled by mean (one vector) or max (multi-vector)."""

from __future__ import annotations

from detailclip.cover import COVER_SCHEMES

from ..context import BenchContext, FeatureKey
from ..index import ImageIndex
from .base import Encoded, Method, mean_vectors, stack_features
from .registry import register


class PatchPooling(Method):
    """Encode the patches of `scheme` (patch 0 = whole image) and pool them."""

    scheme: str = "whole"
    pool: str = "mean"  # "mean": renormalised mean, one vector; "max": every patch, max similarity
    size_factor: int = 1  # CLIP input size = size_factor x the backbone's own

    def k(self, ctx: BenchContext) -> int:
        return ctx.cover_k if self.scheme in COVER_SCHEMES else 1

    def image_size(self, ctx: BenchContext) -> int | None:
        return None if self.size_factor == 1 else self.size_factor * ctx.backbone().image_size

    def settings(self, ctx: BenchContext) -> dict:
        return {"scheme": self.scheme, "k": self.k(ctx), "pool": self.pool, "image_size": self.image_size(ctx)}

    def features_read(self, ctx: BenchContext) -> FeatureKey:
        return FeatureKey(self.scheme, self.k(ctx), self.image_size(ctx))

    def index(self, ctx: BenchContext, vectors, counts, levels) -> ImageIndex:
        """The index of a split's stacked patch vectors [M, D], counts [N] and levels [M] (`stack_features`)."""
        return ImageIndex(vectors.float(), counts) if self.pool == "max" else ImageIndex.single(mean_vectors(vectors, counts))

    def encode(self, ctx: BenchContext) -> Encoded:
        size = self.image_size(ctx)
        vectors, counts, levels = stack_features(ctx.features(*self.features_read(ctx)))
        index = self.index(ctx, vectors, counts, levels)
        passes = counts.sum().item() / len(counts)
        return Encoded(index, passes, passes * ctx.gflops_per_pass(size), ctx.passes_per_second(size) / passes, size,
                       ctx.cover_record(self.k(ctx), size) if self.scheme in COVER_SCHEMES else None)


@register
class Clip(PatchPooling):
    name, summary = "clip", "CLIP on the whole image at the backbone's input size"


@register
class ClipHires(PatchPooling):
    name, summary = "clip-hires", "CLIP on the whole image at twice the input size (open_clip force_image_size)"
    size_factor = 2


@register
class GridMean(PatchPooling):
    name, summary = "grid-mean", "mean of the whole image and k x k grid tiles (k = --cover-k)"
    scheme, pool = "grid", "mean"


@register
class GridMax(PatchPooling):
    name, summary = "grid-max", "max over the whole image and k x k grid tiles (multi-vector)"
    scheme, pool = "grid", "max"


@register
class CCMean(PatchPooling):
    name, summary = "cc-mean", "mean of the Complete Cover cc@k patches"
    scheme, pool = "cc", "mean"


@register
class CCMax(PatchPooling):
    name, summary = "cc-max", "max over the Complete Cover cc@k patches (multi-vector; the DetailCLIP teacher)"
    scheme, pool = "cc", "max"


@register
class OracleCrop(PatchPooling):
    name, summary = "oracle-crop", "max over the whole image and the ground-truth object crops of the source"
    scheme, pool = "objects", "max"
