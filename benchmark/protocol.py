"""The retrieval protocol: which images are relevant to which class query, overall and per scale bucket.

Labels come from a data source's images (`benchmark.sources`). An object counts as present when it
is not ignored (invisible, crowd, difficult) and has at least `min_visible_pixels` visible pixels
(or area). For class c and image i:
  overall:  positive if c is present in i; negative if i holds no object of c at all; otherwise
            (only ignored or sub-threshold instances of c) i is left out of c's ranking.
  bucket b: positive if the largest present instance of c (by rel_scale) falls in b; negative if i
            holds no object of c; otherwise left out of b's ranking for c.
Buckets are [lo, hi) intervals, the last one closed. Scales beyond the outermost edges (rendering
jitter around the nominal range) are clipped into the first or last bucket; a scale in a gap
between non-adjacent buckets is in no bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np

from clevr_ds.dataset import DatasetError
from clevr_ds.scales import parse_scales

from .metrics import IGNORE, NEGATIVE, POSITIVE

if TYPE_CHECKING:
    from .sources import SourceImage, SourceObject

DEFAULT_BUCKETS_PER_RANGE = 3


@dataclass(frozen=True)
class Bucket:
    lo: float
    hi: float

    @property
    def name(self) -> str:
        return f"{self.lo:.3g}-{self.hi:.3g}"


def buckets_from_edges(edges) -> list[Bucket]:
    edges = [float(e) for e in edges]
    if len(edges) < 2 or any(not 0 < e <= 1 for e in edges) or any(a >= b for a, b in zip(edges, edges[1:])):
        raise ValueError(f"bucket edges {edges} must be at least two increasing numbers in (0, 1]")
    return [Bucket(a, b) for a, b in zip(edges, edges[1:])]


def parse_buckets(spec: str) -> list[Bucket]:
    """Edges `0.01,0.02,0.05,0.1` or ranges `0.01-0.02,0.05-0.1`; ValueError with one line otherwise."""
    if "-" in spec:
        buckets = [Bucket(r.lo, r.hi) for r in parse_scales(spec)]
        if any(a.hi > b.lo for a, b in zip(buckets, buckets[1:])):
            raise ValueError(f"bucket ranges {spec!r} must be increasing and must not overlap")
        return buckets
    try:
        edges = [float(e) for e in spec.split(",")]
    except ValueError:
        raise ValueError(f"malformed buckets {spec!r}; expected edges like 0.01,0.02,0.05,0.1") from None
    return buckets_from_edges(edges)


def default_buckets(scales_spec: str, n: int = DEFAULT_BUCKETS_PER_RANGE) -> list[Bucket]:
    """One range A-B: n log-even buckets; several ranges: the ranges themselves."""
    ranges = parse_scales(scales_spec)
    if len(ranges) > 1:
        return parse_buckets(scales_spec)
    return log_buckets(ranges[0].lo, ranges[0].hi, n)


def log_buckets(lo: float, hi: float, n: int = DEFAULT_BUCKETS_PER_RANGE) -> list[Bucket]:
    """[lo, hi] cut into n log-even buckets."""
    inner = [math.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * i / n) for i in range(1, n)]
    return buckets_from_edges([lo, *inner, hi])


def assign_buckets(scales: np.ndarray, buckets: list[Bucket]) -> np.ndarray:
    """Bucket index of each scale (-1: NaN or in a gap between buckets)."""
    scales = np.clip(np.asarray(scales, dtype=np.float64), buckets[0].lo, buckets[-1].hi)
    out = np.full(scales.shape, -1, dtype=np.int64)
    for b, bucket in enumerate(buckets):
        inside = (scales >= bucket.lo) & ((scales < bucket.hi) | (b == len(buckets) - 1))
        out[inside & (out < 0)] = b
    return out


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
