"""Scale specifications: `rel_scale` = longest side of an object's visible 2D box / image side.

Grammar: one range `A-B` or a comma-separated list of ranges `0.01-0.02,0.02-0.05`, with
0 < A < B <= 1 and A at least MIN_SCALE. Images are assigned to ranges round-robin (image i gets
range i mod n), so every prefix of a split is spread evenly over the ranges.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_RANGE = re.compile(rf"^\s*({_NUMBER})\s*-\s*({_NUMBER})\s*$")
# Below this the sampler's sizes vanish in float64 rounding (objects ~10 world units from the camera);
# it is far below one pixel at any resolution.
MIN_SCALE = 1e-9


@dataclass(frozen=True)
class ScaleRange:
    lo: float
    hi: float

    def sample(self, rng: np.random.Generator) -> float:
        """A log-uniform draw in [lo, hi]."""
        return float(math.exp(rng.uniform(math.log(self.lo), math.log(self.hi))))

    def __str__(self) -> str:
        """The shortest spec that parses back to exactly these floats."""
        return f"{self.lo!r}-{self.hi!r}"


def parse_scales(spec: str) -> list[ScaleRange]:
    """Parse a scale spec; raise ValueError with a one-line explanation when it is malformed."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("empty scale spec; expected A-B or A-B,C-D with 0 < A < B <= 1")
    ranges = []
    for part in spec.split(","):
        m = _RANGE.match(part)
        if not m:
            raise ValueError(f"malformed scale range {part.strip()!r}; expected A-B, e.g. 0.01-0.1")
        lo, hi = float(m.group(1)), float(m.group(2))
        if not (0 < lo <= 1 and 0 < hi <= 1):
            raise ValueError(f"scale range {part.strip()!r} must lie in (0, 1]")
        if lo >= hi:
            raise ValueError(f"scale range {part.strip()!r} needs A < B")
        if lo < MIN_SCALE:
            raise ValueError(f"scale range {part.strip()!r} needs A >= {MIN_SCALE:g} (smaller objects are lost in rounding)")
        ranges.append(ScaleRange(lo, hi))
    return ranges


def format_scales(ranges: list[ScaleRange]) -> str:
    return ",".join(str(r) for r in ranges)


def range_for_image(ranges: list[ScaleRange], index: int) -> ScaleRange:
    return ranges[index % len(ranges)]


def parse_int_range(spec: str, name: str) -> tuple[int, int]:
    """Parse `N` or `A-B` (inclusive) with 1 <= A <= B; ValueError with one line otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", spec or "")
    if not m:
        raise ValueError(f"malformed {name} {spec!r}; expected N or A-B, e.g. 3-10")
    lo = int(m.group(1))
    hi = int(m.group(2)) if m.group(2) is not None else lo
    if lo < 1 or lo > hi:
        raise ValueError(f"{name} {spec!r} needs 1 <= A <= B")
    return lo, hi


def parse_size(spec: str | int) -> tuple[int, int]:
    """Parse an image size `N` (N x N) or `WxH` into (width, height); ValueError with one line otherwise."""
    m = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", str(spec))
    if not m:
        raise ValueError(f"{str(spec)!r} is not N or WxH, e.g. 2240 or 320x192")
    width = int(m.group(1))
    return width, int(m.group(2)) if m.group(2) is not None else width
