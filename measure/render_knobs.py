"""What Cycles' knobs outside the presets buy: render time and pixels against the preset's own image.

    python -m measure.render_knobs --size 2240 --preset fast --scenes 2

Per scene, renders the preset as it is, then once per knob with that knob changed (path tracing and
denoising only: no PNG, id pass or annotations). Prints mean wall seconds, the speed-up over the preset
and PSNR against the preset's own pixels. The preset's own noise, for scale: `fast` against a 256-sample
reference is 38.6 dB (`measure.render_speed`).
"""

from __future__ import annotations

import time

import bpy
import click
import numpy as np

from clevr_ds.families import FAMILIES, sample_scene
from clevr_ds.vocab import Vocabulary
from measure.render_phases import bench_scenes
from renderer.engines import configure
from renderer.render import BUILDERS
from renderer.scene_builder import reset
from renderer.settings import PRESETS

# knob: (what it changes, the Cycles settings it sets)
KNOBS: dict[str, tuple[str, dict]] = {
    "preset": ("nothing (the preset as it is)", {}),
    "no denoising": ("no OIDN pass (the noise floor of path tracing alone)", {"use_denoising": False}),
    "denoise RGB only": ("OIDN without the albedo and normal guides", {"denoising_input_passes": "RGB"}),
    "no light tree": ("lights sampled without Cycles' light tree", {"use_light_tree": False}),
    "RGB only, no light tree": ("both", {"denoising_input_passes": "RGB", "use_light_tree": False}),
    "no diffuse bounce": ("direct light only on diffuse surfaces", {"max_bounces": 1, "diffuse_bounces": 0}),
    "no auto tile": ("the whole frame as one tile", {"use_auto_tile": False}),
}


def render(scene: dict, vocabulary: Vocabulary, preset: str, cycles: dict) -> tuple[float, np.ndarray]:
    """Wall seconds of the render and its pixels [H * W * 4] (float32)."""
    bl_scene = reset()
    BUILDERS[scene.get("family", "clevr")](scene, vocabulary)
    configure(bl_scene, PRESETS[preset], scene["seed"])
    for name, value in cycles.items():
        setattr(bl_scene.cycles, name, value)
    start = time.perf_counter()
    bpy.ops.render.render(write_still=False)
    seconds = time.perf_counter() - start
    viewer = bpy.data.images["Render Result"]
    path = bpy.app.tempdir + "knob.exr"
    bl_scene.render.image_settings.file_format = "OPEN_EXR"
    viewer.save_render(path)
    image = bpy.data.images.load(path)
    pixels = np.empty(len(image.pixels), dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return seconds, pixels


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.clip(a, 0, 1) - np.clip(b, 0, 1)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


@click.command(help=__doc__.split("\n\n")[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--size", type=int, default=2240, show_default=True)
@click.option("--preset", type=click.Choice([n for n, s in PRESETS.items() if s.engine == "cycles"]), default="fast",
              show_default=True)
@click.option("--scenes", type=click.IntRange(1), default=2, show_default=True)
@click.option("--scales", default="0.01-0.1", show_default=True)
@click.option("--family", type=click.Choice(list(FAMILIES)), default="clevr", show_default=True)
def main(size, preset, scenes, scales, family):
    config = bench_scenes(size, scales, family)
    seconds: dict[str, list[float]] = {name: [] for name in KNOBS}
    quality: dict[str, list[float]] = {name: [] for name in KNOBS}
    for index in range(scenes):
        scene = sample_scene(config, index)
        _, own = render(scene, config.vocabulary, preset, {})  # a first render warms Blender's caches up
        for name, (_, cycles) in KNOBS.items():
            s, pixels = render(scene, config.vocabulary, preset, cycles)
            seconds[name].append(s)
            quality[name].append(psnr(pixels, own))
    base = float(np.mean(seconds["preset"]))
    print(f"{family} {size} px, preset {preset}, {scenes} scenes, bpy {bpy.app.version_string}\n")
    print("| knob | changes | render s/img | speed-up | PSNR vs the preset |\n|---|---|---:|---:|---:|")
    for name, (what, _) in KNOBS.items():
        s = float(np.mean(seconds[name]))
        db = float(np.mean(quality[name]))
        print(f"| {name} | {what} | {s:.2f} | {base / s:.2f}x | {'identical' if db == float('inf') else f'{db:.1f} dB'} |")


if __name__ == "__main__":
    main()
