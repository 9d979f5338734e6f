"""One row of `measure.encode_speed`, in a process of its own so that its peak RSS is the row's alone:
encode image files through the library path of `encode` (read, hash, decode, cut, CLIP; no cache), fuse
them, print one JSON line (windows per image, encode and fusion seconds).

    python -m measure.encode_probe --model CLEVR-DS-ViT-T-16 --cover auto FILE...

Weights are random ("none"): speed does not depend on them.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import click
import torch
from PIL import Image

from detailclip.backbones import load_backbone
from detailclip.cover import parse_cover_k
from detailclip.encode import fuse
from detailclip.features import extract_features
from detailclip.fusion import FUSION_NAMES, build_fusion


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", required=True, help="open_clip architecture (random weights)")
@click.option("--cover", required=True, help="Complete Cover's k, or auto")
@click.option("--device", default="cpu", show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="windows per forward")
@click.option("--fusion", type=click.Choice(FUSION_NAMES), default="tiny", show_default=True)
@click.argument("files", nargs=-1, required=True)
def main(model, cover, device, batch_size, fusion, files):
    """Encode FILES and print {"windows": per image, "encode_s": total, "fuse_s": total} as JSON."""
    device = torch.device(device)
    backbone = load_backbone(model, "none", device=device, batch_size=batch_size)
    fusion_model = build_fusion(fusion, backbone.embed_dim).to(device).eval()
    cover = parse_cover_k(cover)
    with tempfile.TemporaryDirectory() as tmp:  # warm-up: the whole path once, on a small image
        small = Path(tmp) / "small.jpg"
        Image.new("RGB", (4 * backbone.image_size,) * 2, (90, 120, 150)).save(small)
        fuse(fusion_model, extract_features(backbone, [small], k=cover, progress=False), device=device)
    start = time.perf_counter()
    items = extract_features(backbone, list(files), k=cover, progress=False)
    encoded = time.perf_counter()
    fuse(fusion_model, items, device=device)
    synchronize(device)
    fused = time.perf_counter()
    click.echo(json.dumps({"windows": sum(item.num_patches for item in items) / len(items),
                           "encode_s": encoded - start, "fuse_s": fused - encoded}))


if __name__ == "__main__":
    main()
