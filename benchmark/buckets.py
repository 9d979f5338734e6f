"""Scale buckets: [lo, hi) intervals of rel_scale (the last one closed), parsed from edges or ranges,
made log-even over a range, and assigned to scales.

Scales beyond the outermost edges (rendering jitter around the nominal range) are clipped into the
first or last bucket; a scale in a gap between non-adjacent buckets is in no bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from clevr_ds.scales import parse_scales

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
