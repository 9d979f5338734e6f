"""The GPU check of issue #30 item 3 as one table: `render --device gpu` seconds per image per preset, then
encode img/s on CUDA (bf16 autocast, detailclip.backbones.autocast) with its share of the FLOP floor.
`measure/gpu_check.sh` runs it on a lent GPU machine; on CPU it runs the same path, small:

    python -m measure.gpu_check --device cpu --render-device cpu --resolution 64 --presets preview \\
        --models tiny-clip-vit-p8-32 --sizes 128 --images 1

Render seconds are wall time over the images of one `render` call (Blender start and scene builds included).
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from measure.encode_speed import encode_rows, names, print_table, resolve

ROOT = Path(__file__).resolve().parents[1]


def render_rows(presets: list[str], images: int, resolution: int, device: str) -> list[dict]:
    """One row per preset: seconds per image of `render -n images` (or why there is none)."""
    if importlib.util.find_spec("bpy") is None:
        return [{"part": "render", "setting": preset, "note": "skipped: bpy is not installed here"} for preset in presets]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in presets:
            command = [sys.executable, str(ROOT / "cli.py"), "render", "--out", str(Path(tmp) / preset), "-n", str(images),
                       "--resolution", str(resolution), "--preset", preset, "--device", device, "--quiet"]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
            seconds = time.perf_counter() - start
            setting = f"{preset}, {resolution} px, {device}, {images} images"
            if done.returncode:
                why = (done.stderr.strip().splitlines() or ["no message"])[-1]
                rows.append({"part": "render", "setting": setting, "note": f"failed: {why}"})
            else:
                rows.append({"part": "render", "setting": setting, "s/img": seconds / images})
    return rows


def encode_summary(row: dict) -> dict:
    """An encode_speed row in the check's columns."""
    return {"part": "encode", "setting": f"{row['backbone']}, cc@{row['k']}, {row['px']} px", "s/img": 1 / row["encode img/s"],
            "img/s": row["encode img/s"], "windows/s": row["windows/s"], "share of floor": row["share of floor"]}


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--presets", default="fast,default,high", show_default=True, help="comma-separated render presets")
@click.option("--render-images", type=click.IntRange(1), default=2, show_default=True, help="images per preset")
@click.option("--resolution", type=click.IntRange(16), default=2240, show_default=True, help="render side in px")
@click.option("--render-device", type=click.Choice(["cpu", "gpu"]), default="gpu", show_default=True)
@click.option("--models", default="ViT-B-32,ViT-B-16,ViT-L-14-336,CLEVR-DS-ViT-T-16", show_default=True)
@click.option("--sizes", default="2240", show_default=True, help="comma-separated encode image sides in px")
@click.option("--covers", default="10,auto", show_default=True)
@click.option("--images", type=click.IntRange(1), default=None, help="encode images per row [default: 16 GPU, 1 CPU]")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="windows per forward [default: 512 GPU, 256 CPU]")
@click.option("--peak-tflops", type=click.FloatRange(0, min_open=True), default=None,
              help="peak rate for the floor [default: a measured matrix product, bf16 on CUDA]")
@click.option("--device", default=None, help="encode device [default: cuda when present]")
def main(presets, render_images, resolution, render_device, models, sizes, covers, images, batch_size, peak_tflops, device):
    """Print render s/img per preset and encode img/s with its share of the FLOP floor, in one table."""
    encode = resolve(device, images, batch_size, sizes, covers, peak_tflops, click.echo)
    device, images, batch_size, sides, cover_list, peak = encode
    rows = render_rows(names(presets), render_images, resolution, render_device)
    rows += map(encode_summary, encode_rows(names(models), sides, cover_list, images, device, batch_size, "tiny", peak,
                                            click.echo))
    print_table(rows, click.echo)


if __name__ == "__main__":
    main()
