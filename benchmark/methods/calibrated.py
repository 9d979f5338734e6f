"""A calibrated teacher: Complete Cover windows scored against the data's class vocabulary (`detailclip.teacher`)."""

from __future__ import annotations

from infra.errors import ToolkitError

from ..context import BenchContext
from ..index import ImageIndex
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

    def index(self, ctx: BenchContext, vectors, counts, levels) -> ImageIndex:
        from detailclip.teacher import window_offsets

        if not ctx.source.classes:
            raise VocabularyError(f"{self.name} scores windows against the data's classes, and {ctx.source.dataset} "
                                  f"{ctx.source.split} names none")  # fmt: skip
        offsets = window_offsets(vectors, counts, levels, ctx.vocabulary(), self.temperature, self.level_penalty)
        return ImageIndex(vectors.float(), counts, offsets, self.temperature)


@register
class CCFineCalibrated(CCCalibrated):
    name = "cc-fine-cal"
    summary = ("cc-cal over the Complete Cover cc@k and, in its finest level, the finest windows of cc@ceil(1.5k) "
               "(multi-vector; magnified windows for the smallest objects)")  # fmt: skip
    scheme = "cc-fine"
