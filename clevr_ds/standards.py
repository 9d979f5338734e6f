"""Named benchmark splits as data: the render options that fix their content, and their published hashes.

A standard split is re-rendered anywhere with `render --standard NAME [--split SPLIT]` and checked
with `validate`, which names the standard when a split's content hash (`dataset.split_hash`) is
the published one. The published hashes were measured on CPU renders with bpy 5.0.1; a GPU render
(or another Blender) gives other pixels and so another hash.
"""

from __future__ import annotations

from dataclasses import dataclass

from .dataset import DEFAULT_ROOT


@dataclass(frozen=True)
class Standard:
    """Render options as `render`'s flags (resolution: N or "WxH") shared by the splits, and per split its size and hash."""

    title: str
    options: dict
    splits: dict[str, int]  # split -> number of images
    hashes: dict[str, str]  # split -> published content hash

    def render_options(self, split: str) -> dict:
        """Every content-defining `render` option of `split` (one `options` leaves out: its CONTENT_OPTIONS default);
        ValueError for a split the standard lacks."""
        if split not in self.splits:
            raise ValueError(f"{self.title} has no split {split!r} (splits: {', '.join(self.splits)})")
        return {**CONTENT_OPTIONS, **self.options, "split": split, "num_images": self.splits[split]}


CONTENT_OPTIONS = {"scales": "0.01-0.1", "resolution": 2240, "objects": "3-10", "family": "clevr", "gsd": None,
                   "assets": None, "ground": None, "ground_gsd": None, "max_tilt": 0.0, "min_visible_pixels": 16,
                   "engine": None, "samples": None, "denoise": None}

STANDARDS: dict[str, Standard] = {
    "quick": Standard(
        title="CLEVR-DS quick", options={**CONTENT_OPTIONS, "preset": "default", "seed": 0}, splits={"test": 20},
        hashes={"test": "b87c61c586acc7f0f957cee62561ffe3c455d5ab73a5f9bd941098686eef0110"},
    ),
    "v1": Standard(
        title="CLEVR-DS-bench v1", options={**CONTENT_OPTIONS, "preset": "fast", "seed": 0}, splits={"test": 200},
        hashes={"test": "9765e9da11dd717812f9095b3ecdadca50a5bdb4e58590050aca0d9500a313fe"},
    ),
    "aerial-v1": Standard(
        title="CLEVR-DS aerial v1", options={**CONTENT_OPTIONS, "family": "aerial", "preset": "fast", "seed": 0},
        splits={"test": 200}, hashes={"test": "efb00253ec94ca7128ae3b2b0e8548cd2f35adf668dc2394a1e6d27233d242ac"},
    ),
}


def default_folder(name: str) -> str:
    """Where `render --standard NAME` writes when no --out is given."""
    return DEFAULT_ROOT if name == "quick" else f"{DEFAULT_ROOT}-bench-{name}"


def published(content_hash: str) -> tuple[str, str] | None:
    """(standard title, split) whose published content hash this is, or None."""
    for standard in STANDARDS.values():
        for split, value in standard.hashes.items():
            if value == content_hash:
                return standard.title, split
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
