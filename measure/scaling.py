"""Render and feature-extraction throughput of the local path against Ray on the same machine.

`python benchmarks/scaling.py [--images 8] [--resolution 480] [--preset fast] [--ray-address ADDR]`
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

import argparse
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from clevr_ds.sampling import SceneConfig  # noqa: E402
from clevr_ds.scales import parse_scales  # noqa: E402
from infra.cluster import RayCluster, connect  # noqa: E402
from clevr_ds.vocab import Vocabulary  # noqa: E402
from detailclip.backbones import DEFAULT_BACKBONE, default_pretrained, load_backbone  # noqa: E402
from detailclip.features import extract_features  # noqa: E402
from renderer.executors import LocalPool, RayExecutor  # noqa: E402
from renderer.pool import render_split  # noqa: E402
from renderer.settings import PRESETS  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=480)
    parser.add_argument("--preset", default="fast", choices=list(PRESETS))
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="local workers and Ray tasks at once")
    parser.add_argument("--ray-address", default=None)
    parser.add_argument("--feature-images", type=int, default=32)
    parser.add_argument("--backbone", default=DEFAULT_BACKBONE, help="open_clip architecture, with its default weights")
    args = parser.parse_args()

    config = SceneConfig(split="bench", scales=tuple(parse_scales("0.05-0.2")), width=args.resolution, height=args.resolution, objects=(3, 6), seed=0, vocabulary=Vocabulary.load())
    settings = PRESETS[args.preset].with_overrides(threads=1)
    chunk = math.ceil(args.images / args.cpus)
    t0 = time.perf_counter()
    connect(args.ray_address)
    print(f"ray connect ({args.ray_address or 'new one-machine cluster'}): {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory(prefix="clevr-ds-scaling-") as tmp:
        seconds = {}
        for name, executor in (("local", LocalPool(args.cpus)), ("ray", RayExecutor(args.ray_address))):
            t0 = time.perf_counter()
            render_split(Path(tmp) / name, config, settings, args.images, args.cpus, chunk_size=chunk, quiet=True, executor=executor)
            seconds[name] = time.perf_counter() - t0
            print(f"{name:5s} {args.images} x {args.resolution} px {args.preset}, {args.cpus} worker(s) of {chunk} scene(s): {seconds[name]:.1f} s, {args.images / seconds[name]:.3f} images/s")
        local, ray = seconds["local"] / args.images, seconds["ray"] / args.images
        print(f"ray overhead per scene: {ray - local:+.2f} s ({(ray - local) / local:+.1%} of the local {local:.2f} s/scene)")
        pngs = sorted((Path(tmp) / "local").rglob("*.png"))
        same = all(p.read_bytes() == (Path(tmp) / "ray" / p.relative_to(Path(tmp) / "local")).read_bytes() for p in pngs)
        print(f"byte-identical PNGs: {same} ({len(pngs)})")
        compare_features(args, [pngs[i % len(pngs)] for i in range(args.feature_images)])


def compare_features(args, paths: list[Path]) -> None:
    """Complete Cover features of `paths` (on the CPU), in this process and on Ray actors: images/s, ratio, identical?"""
    backbone = load_backbone(args.backbone, default_pretrained(args.backbone), device="cpu")
    features, seconds = {}, {}
    for name, cluster in (("local", None), ("ray", RayCluster(args.ray_address))):
        t0 = time.perf_counter()
        features[name] = extract_features(backbone, paths, scheme="cc", progress=False, cluster=cluster)
        seconds[name] = time.perf_counter() - t0
        print(f"{name:5s} features {backbone.name} cc, {len(paths)} images: {seconds[name]:.1f} s, {len(paths) / seconds[name]:.2f} images/s")
    same = all((a.data == b.data).all() and (a.level_ids == b.level_ids).all() for a, b in zip(features["local"], features["ray"]))
    print(f"features ray / local images/s: {seconds['local'] / seconds['ray']:.2f}; identical features: {same}")


if __name__ == "__main__":
    main()
