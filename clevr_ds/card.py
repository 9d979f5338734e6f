"""The dataset card, ROOT/README.md (`export --format croissant` writes it beside croissant.json): motivation,
composition, how each split was made (the `render` command that makes it again, reconstructed from its meta), files,
license, content hashes, known limits. Hugging Face reads its YAML header.

A card starts with MARK after its header; the export overwrites no README.md without it (someone else's).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Mapping, NamedTuple

from . import GENERATOR_NAME, GENERATOR_VERSION, RENDER_LICENSE
from .dataset import DATASET_NAME, EXECUTION_KEYS

MARK = "<!-- dataset card written by `clevr-ds export --format croissant`; export again to update it -->"
OVERRIDES = ("engine", "samples", "denoise")  # the render settings that `render` sets over a preset
SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


class Described(NamedTuple):
    """What the card and croissant.json say of a split."""

    meta: dict
    scenes: list[dict]
    content_hash: str
    classes: list[str]  # its vocabulary's


def render_flags(render: dict, presets: Mapping[str, dict]) -> list[str] | None:
    """--preset (the first in `presets` order that needs the fewest overrides) with the --engine, --samples and
    --[no-]denoise that give the recorded render settings (execution keys aside), and --device gpu for a GPU render;
    None when no preset gives them."""
    wanted = {k: v for k, v in render.items() if k not in EXECUTION_KEYS}
    found = []
    for name, settings in presets.items():
        base = {k: v for k, v in settings.items() if k not in EXECUTION_KEYS}
        changed = {k: wanted.get(k) for k in OVERRIDES if wanted.get(k) != base.get(k)}
        if {**base, **changed} == wanted:
            found.append(["--preset", name, *_override_args(changed)])
    if not found:
        return None
    return min(found, key=len) + (["--device", "gpu"] if render.get("device") == "gpu" else [])


def _override_args(changed: dict) -> list[str]:
    args: list[str] = []
    for key, value in changed.items():
        args += [("--denoise" if value else "--no-denoise")] if key == "denoise" else [f"--{key}", str(value)]
    return args


def render_command(root: Path | str, meta: dict, presets: Mapping[str, dict]) -> str | None:
    """The `clevr-ds render` command line that renders the split of `meta` again into `root` (the same content hash
    with the same bpy on the same kind of device); a user's models and ground image (which the split stores) appear as
    ASSETS_DIR and GROUND_IMAGE. None when no preset gives its render settings."""
    flags = render_flags(meta["render"], presets)
    if flags is None:
        return None
    width, height, (lo, hi) = meta["width"], meta["height"], meta["objects"]
    args = ["clevr-ds", "render", "--out", str(root), "--split", meta["split"], "--num-images", str(meta["num_images"]),
            "--resolution", str(width) if width == height else f"{width}x{height}", "--objects", str(lo) if lo == hi else f"{lo}-{hi}",
            "--seed", str(meta["seed"]), "--min-visible-pixels", str(meta["min_visible_pixels"])]  # fmt: skip
    if meta.get("family", "clevr") != "clevr":
        args += ["--family", meta["family"]]
    args += ["--gsd", repr(meta["gsd"])] if meta.get("gsd") else ["--scales", meta["scales"]]
    if meta.get("max_tilt_deg"):
        args += ["--max-tilt", repr(meta["max_tilt_deg"])]
    if any("file" in shape for shape in meta["vocabulary"]["shapes"].values()):
        args += ["--assets", "ASSETS_DIR"]
    ground = meta.get("ground")
    if ground:
        gsd = ground.get("gsd") if isinstance(ground, dict) else None
        args += ["--ground", "GROUND_IMAGE"] + (["--ground-gsd", repr(gsd)] if gsd else [])
    return shlex.join(args + flags)


def _composition(split: str, described: Described) -> str:
    """The composition table's row of a split."""
    meta, scenes = described.meta, described.scenes
    visible = [o for s in scenes for o in s["objects"] if o["visible"]]
    scales = [o["rel_scale"] for o in visible]
    per_image = [len(s["objects"]) for s in scenes]
    seen = len({o["class"] for o in visible})
    return (f"| {split} | {len(scenes)} | {meta['width']}x{meta['height']} | {sum(per_image)} ({len(visible)}) | "
            f"{min(per_image)}-{max(per_image)} | {meta['scales']} | {min(scales, default=0):.4g}-{max(scales, default=0):.4g} | "
            f"{seen} of {len(described.classes)} |")  # fmt: skip


def _how(root: Path | str, split: str, described: Described, presets: Mapping[str, dict]) -> str:
    meta = described.meta
    render = {k: v for k, v in meta["render"].items() if k not in EXECUTION_KEYS}
    command = render_command(root, meta, presets)
    how = (f"```bash\n{command}\n```" if command else
           f"No preset of this version gives its render settings: `{json.dumps(render, sort_keys=True)}`.")
    bpy = described.scenes[0]["render"]["bpy_version"]
    return f"**{split}** (bpy {bpy}, {render['engine']}, samples {render['samples']}, seed {meta['seed']}):\n\n{how}"


def card_text(root: Path | str, splits: Mapping[str, Described], presets: Mapping[str, dict]) -> str:
    """The card of the `splits` of the folder `root`; `presets` are render's (name -> settings) for the commands."""
    images = sum(len(d.scenes) for d in splits.values())
    size = next((label for limit, label in SIZES if images < limit), "n>1M")
    families = sorted({d.meta.get("family", "clevr") for d in splits.values()})
    rows = "\n".join(_composition(split, d) for split, d in splits.items())
    how = "\n\n".join(_how(root, split, d, presets) for split, d in splits.items())
    hashes = "\n".join(f"| {split} | `{d.content_hash}` | {len(d.scenes)} |" for split, d in splits.items())
    return f"""---
license: cc-by-4.0
pretty_name: {DATASET_NAME}
size_categories:
- {size}
task_categories:
- zero-shot-image-classification
- object-detection
tags:
- synthetic
- small-objects
- image-retrieval
---

{MARK}

# {DATASET_NAME}

Synthetic images rendered with Blender whose object scale is controlled, with a mask, box and measured scale for
every object (scene families: {", ".join(families)}). Metadata: `croissant.json` (Croissant 1.0).

## Motivation

A CLIP image encoder sees 224 px. In a 2240 px image a small object shrinks to a few pixels at that size and vanishes
from the embedding, so a text query cannot find the image. {DATASET_NAME} measures this: each object's rel_scale (the
longest side of its visible box over the image's longer side) is drawn from the range its image names, so text-to-image
retrieval can be scored per scale bucket (the DetailCLIP benchmark).

## Composition

| split | images | size (px) | objects (visible) | objects per image | requested rel_scale | measured rel_scale (visible) | classes seen |
|---|---:|---|---:|---|---|---|---|
{rows}

An image's scene JSON (`scenes/<split>/`) holds per object its class, shape, colour, material, world size, 3D position,
rotation, COCO RLE mask, box `[x, y, w, h]`, rel_scale, visible pixels and `visible` flag, and CLEVR's relationships;
the classes are each split's vocabulary (`meta/<split>.json`). `annotations/instances_<split>.json` is COCO instances.

## How it was made

By {GENERATOR_NAME} {GENERATOR_VERSION}: objects placed on a ground plane without occlusion, each sized so that its
projected mesh has its target scale, rendered by Blender's Python module; a second pass of object ids gives every mask
and box. Each scene's seed derives from (seed, split, index). This command renders each split again, byte for byte:

{how}

## License

Images and annotations: {RENDER_LICENSE["name"]} ({RENDER_LICENSE["url"]}). The generator: GPL-3.0-or-later.

## Content hashes

`clevr-ds validate` prints each split's content hash (its meta, scene JSONs and pixels; `clevr_ds.dataset.split_hash`):

| split | sha256 | images |
|---|---|---:|
{hashes}

## Known limits

- Synthetic renders of a small vocabulary of classes: what holds here may not hold on photographs.
- Objects never occlude each other (boxes at least 2 px apart), so the benchmark isolates scale from clutter.
- Objects with fewer visible pixels than the split's `min_visible_pixels` are kept with `visible: false` and never count as present.
- The same pixels, and so the same hash, need the same Blender (bpy) version and kind of device (CPU and GPU renders differ).
- A split rendered from a user's models or ground image stores them under its folder; the command names them ASSETS_DIR and GROUND_IMAGE.
"""
