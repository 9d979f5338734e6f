"""DetailCLIP encode speed: cc@k images per second for a 2240 px image, beside the FLOP floor and
plain open_clip's encode rate of the same number of patches.

    python -m measure.encode_speed                                  # GPU: the three paper backbones
    python -m measure.encode_speed --models ViT-B-32 --images 1     # CPU: about a minute

Weights are random ("none"): speed does not depend on them. FLOPs are counted with the models in
training mode (torch's FlopCounterMode misses nn.MultiheadAttention's inference fast path).
"""

from __future__ import annotations

import time

import click
import torch

from detailclip.backbones import autocast, count_gflops, default_device, load_backbone
from detailclip.cover import scheme_boxes
from detailclip.fusion import build_fusion
from detailclip.patch_encoder import encode_patches
from detailclip.patches import extract_patches


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start


def matmul_tflops(device: torch.device, seconds: float = 1.0) -> float:
    """Measured dense matrix-product rate in the autocast dtype of the device (fp32 on CPU)."""
    n = 8192 if device.type == "cuda" else 1536
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    runs, elapsed = 0, 0.0
    while elapsed < seconds:
        _, took = timed(lambda: a @ b, device)
        runs, elapsed = runs + 1, elapsed + took
    return 2 * n**3 * runs / elapsed / 1e12


def measure(name: str, images: int, image_batch: int, k: int, size: str, side: int, device: torch.device,
            batch_size: int, rate_tflops: float) -> dict:
    """Time the library path (cut + encode + fuse) against open_clip's encode_image on the same patches."""
    backbone = load_backbone(name, "none", device=device, batch_size=batch_size)
    fusion = build_fusion(size, backbone.embed_dim).to(device).eval()
    boxes, _ = scheme_boxes("cc", side, side, k)
    patches = len(boxes)
    uint8 = torch.randint(0, 256, (image_batch, 3, side, side), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(0))

    @torch.no_grad()
    def detailclip_encode():
        features = encode_patches(backbone, uint8.to(device), [boxes] * image_batch)
        with autocast(device):
            return fusion(features.view(image_batch, patches, -1))

    def cut():
        return extract_patches(uint8.to(device), [boxes] * image_batch, backbone.image_size, backbone.mean,
                               backbone.std)

    @torch.no_grad()
    def plain(pixels):  # open_clip as it is: encode_image on ready-cut patches in batches, nothing else
        for start in range(0, len(pixels), batch_size):
            with autocast(device):
                backbone.model.encode_image(pixels[start:start + batch_size])

    pixels = cut()
    plain(pixels[:batch_size])  # warm-up
    detailclip_encode()
    totals = {"pipeline": 0.0, "cut": 0.0, "plain": 0.0}
    rounds = max(1, images // image_batch)
    for _ in range(rounds):
        totals["pipeline"] += timed(detailclip_encode, device)[1]
        totals["cut"] += timed(cut, device)[1]
        totals["plain"] += timed(lambda: plain(pixels), device)[1]
    done = rounds * image_batch
    patch_gflops = backbone.gflops_per_image()
    fusion_gflops = count_gflops(fusion, torch.zeros(1, patches, backbone.embed_dim, device=device))
    image_gflops = patches * patch_gflops + fusion_gflops
    floor = rate_tflops * 1e3 / image_gflops
    return {
        "backbone": name, "patches": patches, "GFLOP/patch": patch_gflops, "GFLOP/image": image_gflops,
        "cc images/s": done / totals["pipeline"], "floor images/s": floor,
        "share of floor": done / totals["pipeline"] / floor,
        "plain open_clip images/s": done / totals["plain"],
        "overhead vs encode": totals["pipeline"] / totals["plain"] - 1,
        "cut ms/img": 1e3 * totals["cut"] / done,
    }


@click.command(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--models", default="ViT-B-32,ViT-B-16,ViT-L-14-336", show_default=True, help="comma-separated")
@click.option("--images", type=click.IntRange(1), default=None, help="images timed per model [default: 32 GPU, 1 CPU]")
@click.option("--image-batch", type=click.IntRange(1), default=None, help="images cut together [default: 8 GPU, 1 CPU]")
@click.option("--batch-size", type=click.IntRange(1), default=None, help="patches per forward [default: 512 GPU, 83 CPU]")
@click.option("--k", type=click.IntRange(1, 30), default=10, show_default=True)
@click.option("--size", type=click.Choice(["tiny", "small", "base"]), default="small", show_default=True)
@click.option("--side", type=click.IntRange(16), default=2240, show_default=True, help="image side in px")
@click.option("--device", default=None, help="[default: cuda when present]")
def main(models, images, image_batch, batch_size, k, size, side, device):
    """Print cc@k encode throughput per backbone.

    cc images/s: the library path (cut with roi_align, encode, fuse); plain open_clip images/s:
    encode_image alone on the same, already cut patches; overhead vs encode: how much longer the
    library path takes than that; floor: FLOPs per image over the measured matrix-product rate."""
    device = torch.device(device) if device else default_device()
    gpu = device.type == "cuda"
    images = images or (32 if gpu else 1)
    image_batch = min(image_batch or (8 if gpu else 1), images)
    batch_size = batch_size or (512 if gpu else 83)
    if gpu:
        torch.backends.cuda.matmul.allow_tf32 = True
    rate = matmul_tflops(device)
    click.echo(f"device {device}: measured matrix-product rate {rate:.2f} TFLOP/s "
               f"({'bf16' if gpu else 'fp32'}); cc@{k}, fusion {size}, {side}x{side} px, {images} images per model")
    rows = [measure(name.strip(), images, image_batch, k, size, side, device, batch_size, rate)
            for name in models.split(",") if name.strip()]
    keys = list(rows[0])
    widths = {key: max(len(key), *(len(_fmt(key, row[key])) for row in rows)) for key in keys}
    click.echo("  ".join(key.rjust(widths[key]) for key in keys))
    for row in rows:
        click.echo("  ".join(_fmt(key, row[key]).rjust(widths[key]) for key in keys))


def _fmt(key: str, value) -> str:
    if key in ("share of floor", "overhead vs encode"):
        return f"{value:.1%}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


if __name__ == "__main__":
    main()
