"""Render and feature-extraction throughput of the local path against Ray on the same machine.

`python -m measure.scaling [--images 8] [--resolution 480] [--preset fast] [--ray-address ADDR]`
renders the same N scenes twice into temporary folders, with the same chunks (N / CPUs scenes per
worker process, one Blender thread each): with `--workers CPUs` local processes, then as Ray tasks.
Ray's connection (a new one-machine cluster without --ray-address) is made and timed before, so
the Ray figure is the steady-state cost. Prints images/s, Ray's overhead per scene (Ray time
minus local time, per scene, and as a share of the local per-scene time) and whether the PNGs are
byte-identical. Then extracts the Complete Cover features of `--feature-images` images (the rendered
ones, repeated; no cache) with `--backbone` twice: in this process, then on Ray actors (one CPU
each, their start-up included); prints images/s, the Ray / local ratio and whether the features
are identical.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path

import click

from clevr_ds.sampling import SceneConfig
from clevr_ds.scales import parse_scales
from clevr_ds.vocab import Vocabulary
from detailclip.backbones import DEFAULT_BACKBONE, default_pretrained, load_backbone
from detailclip.features import extract_features
from infra.cluster import RayCluster, connect
from renderer.executors import LocalPool, RayExecutor
from renderer.pool import render_split
from renderer.settings import PRESETS


@click.command(help=__doc__.splitlines()[0],
               context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--images", type=int, default=8, show_default=True)
@click.option("--resolution", type=int, default=480, show_default=True)
@click.option("--preset", type=click.Choice(list(PRESETS)), default="fast", show_default=True)
@click.option("--cpus", type=int, default=os.cpu_count() or 1, show_default=True, help="local workers and Ray tasks at once")
@click.option("--ray-address", default=None)
@click.option("--feature-images", type=int, default=32, show_default=True)
@click.option("--backbone", default=DEFAULT_BACKBONE, show_default=True, help="open_clip architecture, with its default weights")
def main(images: int, resolution: int, preset: str, cpus: int, ray_address: str | None, feature_images: int,
         backbone: str) -> None:
    config = SceneConfig(split="bench", scales=tuple(parse_scales("0.05-0.2")), width=resolution, height=resolution, objects=(3, 6), seed=0, vocabulary=Vocabulary.load())
    settings = PRESETS[preset].with_overrides(threads=1)
    chunk = math.ceil(images / cpus)
    t0 = time.perf_counter()
    connect(ray_address)
    print(f"ray connect ({ray_address or 'new one-machine cluster'}): {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory(prefix="clevr-ds-scaling-") as tmp:
        seconds = {}
        for name, executor in (("local", LocalPool(cpus)), ("ray", RayExecutor(ray_address))):
            t0 = time.perf_counter()
            render_split(Path(tmp) / name, config, settings, images, cpus, chunk_size=chunk, quiet=True, executor=executor)
            seconds[name] = time.perf_counter() - t0
            print(f"{name:5s} {images} x {resolution} px {preset}, {cpus} worker(s) of {chunk} scene(s): {seconds[name]:.1f} s, {images / seconds[name]:.3f} images/s")
        local, ray = seconds["local"] / images, seconds["ray"] / images
        print(f"ray overhead per scene: {ray - local:+.2f} s ({(ray - local) / local:+.1%} of the local {local:.2f} s/scene)")
        pngs = sorted((Path(tmp) / "local").rglob("*.png"))
        same = all(p.read_bytes() == (Path(tmp) / "ray" / p.relative_to(Path(tmp) / "local")).read_bytes() for p in pngs)
        print(f"byte-identical PNGs: {same} ({len(pngs)})")
        compare_features(backbone, ray_address, [pngs[i % len(pngs)] for i in range(feature_images)])


def compare_features(backbone_name: str, ray_address: str | None, paths: list[Path]) -> None:
    """Complete Cover features of `paths` (on the CPU), in this process and on Ray actors: images/s, ratio, identical?"""
    backbone = load_backbone(backbone_name, default_pretrained(backbone_name), device="cpu")
    features, seconds = {}, {}
    for name, cluster in (("local", None), ("ray", RayCluster(ray_address))):
        t0 = time.perf_counter()
        features[name] = extract_features(backbone, paths, scheme="cc", progress=False, cluster=cluster)
        seconds[name] = time.perf_counter() - t0
        print(f"{name:5s} features {backbone.name} cc, {len(paths)} images: {seconds[name]:.1f} s, {len(paths) / seconds[name]:.2f} images/s")
    same = all((a.data == b.data).all() and (a.level_ids == b.level_ids).all() for a, b in zip(features["local"], features["ray"]))
    print(f"features ray / local images/s: {seconds['local'] / seconds['ray']:.2f}; identical features: {same}")


if __name__ == "__main__":
    main()
