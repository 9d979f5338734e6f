"""The retrieval protocol: which images are relevant to which class query, overall and per scale bucket.

Labels come from a data source's images (`benchmark.sources`). An object counts as present when it
is not ignored (invisible, crowd, difficult) and has at least `min_visible_pixels` visible pixels
(or area). For class c and image i:
  overall:  positive if c is present in i; negative if i holds no object of c at all; otherwise
            (only ignored or sub-threshold instances of c) i is left out of c's ranking.
  bucket b: positive if the largest present instance of c (by rel_scale) falls in b; negative if i
            holds no object of c; otherwise left out of b's ranking for c.
Buckets and how scales fall into them: `benchmark.buckets`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from clevr_ds.dataset import DatasetError

from .buckets import Bucket, assign_buckets
from .metrics import IGNORE, NEGATIVE, POSITIVE

if TYPE_CHECKING:
    from .sources import SourceImage, SourceObject


@dataclass(frozen=True)
class Relevance:
    """Labels (1 / 0 / -1 = left out) of every (class, image) pair, overall and per bucket."""

    classes: list[str]
    buckets: list[Bucket]
    overall: np.ndarray  # [Q, N] int8
    per_bucket: np.ndarray  # [B, Q, N] int8
    largest_scale: np.ndarray  # [Q, N] float, NaN where the class is not present


@dataclass(frozen=True)
class Protocol:
    classes: tuple[str, ...]
    buckets: tuple[Bucket, ...]
    min_visible_pixels: int = 0

    def settings(self) -> dict:
        return {
            "classes": list(self.classes),
            "buckets": [[b.lo, b.hi] for b in self.buckets],
            "bucket_names": [b.name for b in self.buckets],
            "min_visible_pixels": self.min_visible_pixels,
        }

    def is_present(self, obj: SourceObject) -> bool:
        return not obj.ignore and obj.area >= self.min_visible_pixels

    def relevance(self, images: Sequence[SourceImage]) -> Relevance:
        index = {c: q for q, c in enumerate(self.classes)}
        shape = (len(self.classes), len(images))
        has_instance = np.zeros(shape, dtype=bool)
        largest = np.full(shape, np.nan)
        for i, image in enumerate(images):
            for obj in image.objects:
                q = index.get(obj.cls)
                if q is None:
                    raise DatasetError(f"{image.name}: class {obj.cls!r} is not in the vocabulary")
                has_instance[q, i] = True
                if self.is_present(obj):
                    largest[q, i] = np.fmax(largest[q, i], float(obj.rel_scale))
        present = ~np.isnan(largest)
        absent = np.where(has_instance, IGNORE, NEGATIVE).astype(np.int8)
        overall = np.where(present, POSITIVE, absent).astype(np.int8)
        bucket_of = assign_buckets(largest, list(self.buckets))
        per_bucket = np.stack(
            [np.where(present & (bucket_of == b), POSITIVE, absent).astype(np.int8) for b in range(len(self.buckets))]
        )
        return Relevance(list(self.classes), list(self.buckets), overall, per_bucket, largest)
