"""DetailCLIP encode speed and memory per image size, a fixed cover beside the auto cover, against the
backbone's FLOP floor.

    python -m measure.encode_speed                                   # CPU: the reference backbone, 1120-8960 px
    python -m measure.encode_speed --sizes 1120,2240 --covers 10     # a quick look
    python -m measure.encode_speed --device cuda --models ViT-B-32,ViT-B-16,ViT-L-14-336 --sizes 2240 --images 16

Each row runs in a child process (measure.encode_probe) on synthetic JPEG images of the size: the library
path of `encode` (read, hash, decode, cut, CLIP forward; no cache), then the fusion. Columns: windows per
image; encode img/s and windows/s (CLIP side, without the fusion); fused img/s (with the fusion, random
weights of the shipped size); the child's peak RSS (measure.peak_rss); GFLOP per image of the CLIP windows,
counted once per model with torch.utils.flop_counter in training mode on the meta device
(detailclip.backbones.count_gflops); the floor: img/s at the peak rate (--peak-tflops, else a measured square
matrix product: fp32 on CPU, bf16 on CUDA, where the encode runs in bf16 autocast) and the share of it
reached. Weights are random ("none"). Above the table, per model: its input size, GFLOP per window and
plain open_clip encode_image's windows/s on ready-cut windows (the rate the library path compares with).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import numpy as np
import torch
from PIL import Image

from detailclip.backbones import DEFAULT_BACKBONE, autocast, default_device, load_backbone
from detailclip.cover import AUTO_K, auto_k, parse_cover_k
from measure.encode_probe import synchronize
from measure.peak_rss import run_measured

GiB = 2**30
ROOT = Path(__file__).resolve().parents[1]


def timed(fn, device: torch.device) -> float:
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def matmul_tflops(device: torch.device, seconds: float = 1.0) -> float:
    """Measured dense matrix-product rate in the autocast dtype of the device (fp32 on CPU)."""
    n = 8192 if device.type == "cuda" else 1536
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    runs, elapsed = 0, 0.0
    while elapsed < seconds:
        elapsed += timed(lambda: a @ b, device)
        runs += 1
    return 2 * n**3 * runs / elapsed / 1e12


def plain_windows_per_s(backbone, repeats: int = 3) -> float:
    """open_clip's encode_image alone on ready-cut windows, one full batch: the rate the library path compares with."""
    pixels = torch.randn(backbone.batch_size, 3, backbone.image_size, backbone.image_size, device=backbone.device)

    @torch.no_grad()
    def plain():
        with autocast(backbone.device):
            backbone.model.encode_image(pixels)

    plain()
    return len(pixels) / min(timed(plain, backbone.device) for _ in range(repeats))


def synthetic_image(side: int, path: Path) -> Path:
    """A deterministic side x side JPEG: colour ramps and a checkerboard."""
    ramp = (np.arange(side) * 255 // max(side - 1, 1)).astype(np.uint8)
    pixels = np.empty((side, side, 3), np.uint8)
    pixels[..., 0], pixels[..., 1] = ramp[None, :], ramp[:, None]
    pixels[..., 2] = ((np.arange(side)[:, None] // 64 + np.arange(side)[None, :] // 64) % 2 * 200).astype(np.uint8)
    Image.fromarray(pixels).save(path, quality=90)
    return path


def measure_row(model: str, input_size: int, cover: str, side: int, files: list[Path], device: torch.device,
                batch_size: int, fusion: str, gflops_per_window: float, peak_tflops: float) -> dict:
    """One row: the probe's figures for `files` (all of side `side`) and the floor."""
    run = run_measured(["-m", "measure.encode_probe", "--model", model, "--cover", cover, "--device", str(device),
                        "--batch-size", str(batch_size), "--fusion", fusion, *map(str, files)], cwd=ROOT)
    if run.returncode != 0:
        raise click.ClickException(f"{model} at {side} px, cover {cover}: {run.stderr.strip().splitlines()[-1]}")
    probe = json.loads(run.stdout.strip().splitlines()[-1])
    windows, images = probe["windows"], len(files)
    image_gflops = windows * gflops_per_window
    floor = peak_tflops * 1e3 / image_gflops
    encode_rate = images / probe["encode_s"]
    k = cover if cover != AUTO_K else f"auto={auto_k(side, side, input_size)}"
    return {"backbone": model, "px": side, "k": k, "windows/img": windows, "encode img/s": encode_rate,
            "windows/s": encode_rate * windows, "fused img/s": images / (probe["encode_s"] + probe["fuse_s"]),
            "peak RSS GiB": run.peak_rss_bytes / GiB, "GFLOP/img": image_gflops, "floor img/s": floor,
            "share of floor": encode_rate / floor}


def encode_rows(models: list[str], sides: list[int], covers: list[str], images: int, device: torch.device,
                batch_size: int, fusion: str, peak_tflops: float, echo) -> list[dict]:
    """Every (model, size, cover) row, sizes outermost within a model; `echo` hears each model's line."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        files = {side: [synthetic_image(side, Path(tmp) / f"{side}.jpg")] * images for side in sides}
        for model in models:
            backbone = load_backbone(model, "none", device=device, batch_size=batch_size)
            gflops, input_size = backbone.gflops_per_image(), backbone.image_size
            echo(f"{model}: {input_size} px input, {gflops:.4g} GFLOP/window, plain open_clip encode_image "
                 f"{plain_windows_per_s(backbone):.4g} windows/s")
            del backbone
            rows += [measure_row(model, input_size, cover, side, files[side], device, batch_size, fusion, gflops, peak_tflops)
                     for side in sides for cover in covers]
    return rows


def print_table(rows: list[dict], echo) -> None:
    """Rows as right-aligned columns (the union of their keys, in order; '-' where a row has none)."""
    keys = list(dict.fromkeys(key for row in rows for key in row))
    cells = [[_fmt(key, row[key]) if key in row else "-" for key in keys] for row in rows]
    widths = [max(len(key), *(len(line[i]) for line in cells)) for i, key in enumerate(keys)]
    echo("  ".join(key.rjust(width) for key, width in zip(keys, widths)))
    for line in cells:
        echo("  ".join(cell.rjust(width) for cell, width in zip(line, widths)))


def resolve(device: str | None, images: int | None, batch_size: int | None, sizes: str, covers: str,
            peak_tflops: float | None, echo) -> tuple:
    """(device, images, batch size, sides, covers, peak TFLOP/s) from the options, the peak measured when not given."""
    device = torch.device(device) if device else default_device()
    gpu = device.type == "cuda"
    try:
        sides = [int(v) for v in sizes.split(",")]
        cover_list = [str(parse_cover_k(v)) for v in covers.split(",")]
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    peak = peak_tflops or matmul_tflops(device)
    echo(f"device {device}, {torch.get_num_threads()} threads: peak {peak:.3g} TFLOP/s "
         f"({'given' if peak_tflops else 'measured matrix product, ' + ('bf16' if gpu else 'fp32')})")
    return device, images or (16 if gpu else 1), batch_size or (512 if gpu else 256), sides, cover_list, peak


def names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--models", default=DEFAULT_BACKBONE, show_default=True, help="comma-separated open_clip architectures")
@click.option("--sizes", default="1120,2240,4480,8960", show_default=True, help="comma-separated image sides in px")
@click.option("--covers", default="10,auto", show_default=True, help="comma-separated: Complete Cover's k, or auto")
@click.option("--images", type=click.IntRange(1), default=None, help="images timed per row [default: 16 GPU, 1 CPU]")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="windows per forward [default: 512 GPU, 256 CPU]")
@click.option("--fusion", default="tiny", show_default=True, help="fusion size timed after the encode (random weights)")
@click.option("--peak-tflops", type=click.FloatRange(0, min_open=True), default=None,
              help="the machine's peak rate for the floor [default: a measured matrix product]")
@click.option("--device", default=None, help="[default: cuda when present]")
def main(models, sizes, covers, images, batch_size, fusion, peak_tflops, device):
    """Print encode img/s, windows/s and peak RSS per image size and cover, beside the FLOP floor."""
    device, images, batch_size, sides, cover_list, peak = resolve(device, images, batch_size, sizes, covers, peak_tflops,
                                                                  click.echo)
    click.echo(f"{images} image(s) per row, fusion {fusion}")
    print_table(encode_rows(names(models), sides, cover_list, images, device, batch_size, fusion, peak, click.echo),
                click.echo)


def _fmt(key: str, value) -> str:
    if key == "share of floor":
        return f"{value:.1%}"
    if isinstance(value, float) and not value.is_integer():
        return f"{value:.4g}"
    return str(int(value)) if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
