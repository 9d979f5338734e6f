"""A calibrated teacher: Complete Cover windows scored against the data's class vocabulary (`detailclip.teacher`)."""

from __future__ import annotations

from infra.errors import ToolkitError

from ..context import BenchContext
from ..index import ImageIndex
from .base import Encoded, stack_features
from .pooling import PatchPooling
from .registry import register


class VocabularyError(ToolkitError, ValueError):
    """A method that calibrates against the data's classes was given data without classes."""


@register
class CCCalibrated(PatchPooling):
    name = "cc-cal"
    summary = ("max over the Complete Cover cc@k patches of the query's log-probability among the data's classes, "
               "coarser levels lowered (multi-vector; a calibrated teacher)")  # fmt: skip
    scheme, pool = "cc", "max"
    temperature: float = 2.0  # chosen on a validation split (docs/experiments.md, "A calibrated teacher")
    level_penalty: float = 0.025

    def settings(self, ctx: BenchContext) -> dict:
        return {**super().settings(ctx), "temperature": self.temperature, "level_penalty": self.level_penalty}

    def encode(self, ctx: BenchContext) -> Encoded:
        from detailclip.teacher import window_offsets

        if not ctx.source.classes:
            raise VocabularyError(f"{self.name} scores windows against the data's classes, and {ctx.source.dataset} "
                                  f"{ctx.source.split} names none")  # fmt: skip
        plain = super().encode(ctx)
        vectors, counts, levels = stack_features(ctx.features(self.scheme, self.k(ctx)))
        offsets = window_offsets(vectors, counts, levels, ctx.vocabulary(), self.temperature, self.level_penalty)
        index = ImageIndex(plain.index.vectors, plain.index.counts, offsets, self.temperature)
        return Encoded(index, plain.forward_passes_per_image, plain.gflops_per_image, plain.encode_images_per_s,
                       plain.image_size, plain.cover_k)  # fmt: skip
