"""Render speed and quality per engine/preset, side by side on the same scenes.

Prints seconds per image (scene build + render + PNG + id pass + annotations), CPU-seconds per
megapixel, the annotation share of the time, and PSNR of each preset against a 256-sample
Cycles reference of the same scene (rendered on a crop around an object, to keep it cheap).

    python -m measure.render_speed                       # 2240 px and 480 px, default presets
    python -m measure.render_speed --sizes 480 --presets default,fast,preview --scenes 2
    python -m measure.render_speed --families clevr,aerial --sizes 2240 --presets fast   # families side by side
"""

from __future__ import annotations

import resource
import tempfile
import time
from pathlib import Path

import bpy
import click
import numpy as np
from PIL import Image

from clevr_ds.families import FAMILIES, sample_scene
from clevr_ds.sampling import SceneConfig
from clevr_ds.scales import parse_scales
from clevr_ds.vocab import Vocabulary
from renderer.engines import configure
from renderer.render import BUILDERS, render_scene
from renderer.scene_builder import reset
from renderer.settings import PRESETS


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def crop_box(scene: dict, frac: float) -> tuple[int, int, int]:
    """A square crop (x0, y0, side) of `frac` of the image side, centred on the largest object."""
    side = max(16, int(scene["width"] * frac))
    obj = max(scene["objects"], key=lambda o: o["target_scale"])
    b = obj["projected_bbox"]
    cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
    x0 = int(np.clip(cx - side / 2, 0, scene["width"] - side))
    y0 = int(np.clip(cy - side / 2, 0, scene["height"] - side))
    return x0, y0, side


def render_reference_crop(scene: dict, vocab, box, path: Path) -> np.ndarray:
    x0, y0, side = box
    w, h = scene["width"], scene["height"]
    bl = reset()
    BUILDERS[scene.get("family", "clevr")](scene, vocab)
    configure(bl, PRESETS["reference"], scene["seed"])
    r = bl.render
    r.use_border = r.use_crop_to_border = True
    r.border_min_x, r.border_max_x = x0 / w, (x0 + side) / w
    r.border_min_y, r.border_max_y = 1 - (y0 + side) / h, 1 - y0 / h
    r.filepath, r.use_file_extension = str(path), False
    bpy.ops.render.render(write_still=True)
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.float64)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--sizes", default="2240,480", show_default=True)
@click.option("--presets", default="default,fast,preview", show_default=True)
@click.option("--scenes", type=int, default=1, show_default=True, help="scenes per size")
@click.option("--scales", default="0.01-0.1", show_default=True)
@click.option("--crop", type=float, default=0.2, show_default=True, help="PSNR crop side, fraction of the image side")
@click.option("--families", default="clevr", show_default=True, help=f"scene families, side by side: {', '.join(FAMILIES)}")
def main(sizes, presets, scenes, scales, crop, families):
    presets = presets.split(",")
    print(f"bpy {bpy.app.version_string}; times include scene build, render, PNG write, id pass and annotations")
    print(f"{'family':>7} {'size':>5} {'preset':>9} {'engine':>9} {'spp':>4} {'s/img':>7} {'CPU-s/MP':>9} {'annot %':>8} {'PSNR dB':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size, family in ((size, family) for size in map(int, sizes.split(",")) for family in families.split(",")):
            config = SceneConfig(split="bench", scales=tuple(parse_scales(scales)), width=size, height=size,
                                 vocabulary=Vocabulary.of_family(family), family=family)
            sampled = [sample_scene(config, i) for i in range(scenes)]
            refs = [render_reference_crop(s, config.vocabulary, crop_box(s, crop), tmp / f"ref{i}.png") for i, s in enumerate(sampled)]
            render_scene(sampled[0], config.vocabulary, PRESETS[presets[0]], tmp / "warmup.png", 16)
            for name in presets:
                walls, cpus, annot, quality = [], [], [], []
                for i, s in enumerate(sampled):
                    c0, t0 = cpu_seconds(), time.perf_counter()
                    out = render_scene(s, config.vocabulary, PRESETS[name], tmp / f"{name}{i}.png", 16)
                    walls.append(time.perf_counter() - t0)
                    cpus.append(cpu_seconds() - c0)
                    annot.append(out["render"]["annotate_s"] / walls[-1])
                    x0, y0, side = crop_box(s, crop)
                    img = np.asarray(Image.open(tmp / f"{name}{i}.png").convert("RGB"), dtype=np.float64)
                    quality.append(psnr(img[y0 : y0 + side, x0 : x0 + side], refs[i]))
                mp = size * size / 1e6
                p = PRESETS[name]
                print(
                    f"{family:>7} {size:>5} {name:>9} {p.engine:>9} {p.samples:>4} {np.mean(walls):>7.2f} {np.mean(cpus) / mp:>9.2f} "
                    f"{100 * np.mean(annot):>8.1f} {np.mean(quality):>8.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
