"""Named benchmark splits as data: the render options that fix their content, and their published hashes.

A standard split is re-rendered anywhere with `render --standard NAME [--split SPLIT]` and checked
with `validate`, which names the standard when a split's content hash (`dataset.split_hash`) is
a published one. The published hashes were measured on CPU renders with bpy 5.0.1, one per kind of
x86-64 CPU met so far: Cycles' ray tracing (Embree) and denoising (OIDN) pick kernels per instruction
set and CPU, so an AVX2 and an AVX-512 CPU, and two AVX-512 CPUs of different AMD families, render
other pixels from the same scenes (every mAP equal to the third decimal, docs/dataset.md). A GPU render
(or another Blender) gives another hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from .dataset import DEFAULT_ROOT


@dataclass(frozen=True)
class Standard:
    """Render options as `render`'s flags (resolution: N or "WxH") shared by the splits, and per split its size and hash."""

    title: str
    options: dict
    splits: dict[str, int]  # split -> number of images
    hashes: dict[str, dict[str, str]]  # split -> {CPU instruction set it was rendered on: published content hash}

    def render_options(self, split: str) -> dict:
        """Every content-defining `render` option of `split` (one `options` leaves out: its CONTENT_OPTIONS default);
        ValueError for a split the standard lacks."""
        if split not in self.splits:
            raise ValueError(f"{self.title} has no split {split!r} (splits: {', '.join(self.splits)})")
        return {**CONTENT_OPTIONS, **self.options, "split": split, "num_images": self.splits[split]}

    def listed_hashes(self, split: str, digits: int = 64) -> str:
        """The published content hashes of `split`, each cut to `digits` and followed by its CPU, for messages."""
        return ", ".join(f"{value[:digits]} ({cpu})" for cpu, value in self.hashes[split].items())


CONTENT_OPTIONS = {"scales": "0.01-0.1", "resolution": 2240, "objects": "3-10", "family": "clevr", "gsd": None,
                   "assets": None, "ground": None, "ground_gsd": None, "max_tilt": 0.0, "min_visible_pixels": 16,
                   "engine": None, "samples": None, "denoise": None}

AVX2, AVX512 = "AVX2", "AVX-512"  # the x86-64 instruction sets the published renders ran on
AVX512_FAMILY26 = "AVX-512, AMD family 26"  # an AVX-512 CPU whose kernels gave other pixels again (docs/dataset.md)

STANDARDS: dict[str, Standard] = {
    "quick": Standard(
        title="CLEVR-DS quick", options={**CONTENT_OPTIONS, "preset": "default", "seed": 0}, splits={"test": 20},
        hashes={"test": {AVX2: "b87c61c586acc7f0f957cee62561ffe3c455d5ab73a5f9bd941098686eef0110",
                         AVX512: "fe9613e18320d5cc5cb137946bc1f271413495556712949d898b6024d2b8b515",
                         AVX512_FAMILY26: "1ba171219bc5d193789ba34c1aaf4e75f35c18595c41dc1f99df0d7435d1743d"}},
    ),
    "v1": Standard(
        title="CLEVR-DS-bench v1", options={**CONTENT_OPTIONS, "preset": "fast", "seed": 0}, splits={"test": 200},
        hashes={"test": {AVX2: "9765e9da11dd717812f9095b3ecdadca50a5bdb4e58590050aca0d9500a313fe",
                         AVX512: "7cc533b12ab29249af35f04d63ba2c63018402add18f4c5f9a47f182f3b5c518",
                         AVX512_FAMILY26: "3bac56fe4bde517aa0353cb732574274d814cdce19ef2a76f650c80210a3782f"}},
    ),
    "aerial-v1": Standard(
        title="CLEVR-DS aerial v1", options={**CONTENT_OPTIONS, "family": "aerial", "preset": "fast", "seed": 0},
        splits={"test": 200},
        hashes={"test": {AVX512: "efb00253ec94ca7128ae3b2b0e8548cd2f35adf668dc2394a1e6d27233d242ac"}},
    ),
}


def default_folder(name: str) -> str:
    """Where `render --standard NAME` writes when no --out is given."""
    return DEFAULT_ROOT if name == "quick" else f"{DEFAULT_ROOT}-bench-{name}"


class Published(NamedTuple):
    """A standard split a content hash is published for, and the instruction set of the CPU that rendered it."""

    title: str
    split: str
    cpu: str


def published(content_hash: str) -> Published | None:
    """The standard split whose published content hashes include this one, or None."""
    for standard in STANDARDS.values():
        for split, by_cpu in standard.hashes.items():
            for cpu, value in by_cpu.items():
                if value == content_hash:
                    return Published(standard.title, split, cpu)
    return None


def claimed_by(meta: dict) -> tuple[Standard, str] | None:
    """The standard split whose settings a split's meta records (split, size, scales, width x height, objects,
    family, seed), or None."""
    from .scales import parse_size

    for standard in STANDARDS.values():
        split = meta.get("split")
        if split not in standard.splits:
            continue
        wanted = standard.render_options(split)
        wanted["resolution"] = parse_size(wanted["resolution"])
        recorded = {"num_images": meta.get("num_images"), "scales": meta.get("scales"), "seed": meta.get("seed"),
                    "resolution": (meta.get("width"), meta.get("height")),
                    "objects": "-".join(str(v) for v in meta.get("objects") or ()), "family": meta.get("family", "clevr")}
        if all(wanted[key] == value for key, value in recorded.items()):
            return standard, split
    return None
