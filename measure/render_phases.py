"""Where the seconds of one rendered image go, phase by phase (issue #30's breakdown).

    python -m measure.render_phases --size 2240 --preset fast --scenes 2

Per scene, the steps `renderer.render.render_scene` takes, timed one by one: scene build (reset, builder,
engine settings), the render (path tracing, then denoising: the render is repeated without denoising to
split the two), the PNG write, the id pass and the annotations; plus starting a Blender worker (`import
bpy` in a fresh process, paid once per chunk of scenes). Prints mean wall seconds and each phase's share
of an image.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import bpy
import click
import numpy as np

from clevr_ds.annotate import annotate_objects
from clevr_ds.families import FAMILIES, sample_scene
from clevr_ds.obb import UnitMeshes
from clevr_ds.png import without_text
from clevr_ds.sampling import SceneConfig
from clevr_ds.scales import parse_scales
from clevr_ds.vocab import Vocabulary
from renderer.engines import configure
from renderer.id_pass import render_ids
from renderer.render import BUILDERS, FROZEN_FAMILIES
from renderer.scene_builder import reset
from renderer.settings import PRESETS


ORDER = ("scene build", "path tracing", "denoising", "render", "PNG write", "id pass", "annotation")


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def phases(scene: dict, vocabulary: Vocabulary, preset: str, png: Path) -> dict[str, float]:
    settings = PRESETS[preset]
    out = {}

    def build(settings):
        bl_scene = reset()
        objects = BUILDERS[scene.get("family", "clevr")](scene, vocabulary)
        configure(bl_scene, settings, scene["seed"])
        return bl_scene, objects

    if settings.engine == "cycles" and settings.denoise:
        build(replace(settings, denoise=False))
        out["path tracing"], _ = timed(lambda: bpy.ops.render.render(write_still=False))
    out["scene build"], (bl_scene, objects) = timed(lambda: build(settings))
    render_s, _ = timed(lambda: bpy.ops.render.render(write_still=False))
    if "path tracing" in out:
        out["denoising"] = render_s - out["path tracing"]
    else:
        out["render"] = render_s

    def write_png():
        bpy.data.images["Render Result"].save_render(str(png))
        png.write_bytes(without_text(png.read_bytes()))

    out["PNG write"], _ = timed(write_png)
    out["id pass"], ids = timed(lambda: render_ids(bl_scene, objects, [o["projected_bbox"] for o in scene["objects"]]))
    annotated = dict(scene, objects=[dict(o) for o in scene["objects"]])
    meshes = None if scene.get("family", "clevr") in FROZEN_FAMILIES else UnitMeshes(vocabulary)
    out["annotation"], _ = timed(lambda: annotate_objects(annotated, ids, 16, meshes))
    return {name: out[name] for name in ORDER if name in out}


def bench_scenes(size: int, scales: str, family: str) -> SceneConfig:
    """The square scenes the render measures sample from (split "bench")."""
    return SceneConfig(split="bench", scales=tuple(parse_scales(scales)), width=size, height=size,
                       vocabulary=Vocabulary.of_family(family), family=family)  # fmt: skip


def worker_start_seconds() -> float:
    """Wall seconds of a fresh process that imports bpy (what each chunk's worker pays first)."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import bpy"], check=True, capture_output=True)
    return time.perf_counter() - start


@click.command(help=__doc__.split("\n\n")[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--size", type=int, default=2240, show_default=True)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="fast", show_default=True)
@click.option("--scenes", type=click.IntRange(1), default=2, show_default=True)
@click.option("--scales", default="0.01-0.1", show_default=True)
@click.option("--family", type=click.Choice(list(FAMILIES)), default="clevr", show_default=True)
def main(size, preset, scenes, scales, family):
    config = bench_scenes(size, scales, family)
    with tempfile.TemporaryDirectory() as tmp:
        runs = [phases(sample_scene(config, i), config.vocabulary, preset, Path(tmp) / "image.png") for i in range(scenes)]
    means = {name: float(np.mean([run[name] for run in runs])) for name in runs[0]}
    total = sum(means.values())
    print(f"{family} {size} px, preset {preset}, {scenes} scenes, bpy {bpy.app.version_string}\n")
    print("| phase | s/img | share |\n|---|---:|---:|")
    for name, seconds in means.items():
        print(f"| {name} | {seconds:.2f} | {100 * seconds / total:.1f}% |")
    print(f"| **image** | **{total:.2f}** | 100% |")
    print(f"\nstarting a Blender worker (once per chunk of scenes): {worker_start_seconds():.2f} s")


if __name__ == "__main__":
    main()
