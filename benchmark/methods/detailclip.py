"""DetailCLIP: a trained fusion checkpoint (`python cli.py train`) turns an image's patch features into one vector."""

from __future__ import annotations

import hashlib
import time
from functools import lru_cache
from pathlib import Path

import torch

from ..context import BenchContext, FeatureKey
from ..index import ImageIndex
from .base import Encoded, Method
from .registry import register


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, cached while its size and modification time stay the same."""
    stat = Path(path).stat()
    return _sha256(Path(path), stat.st_size, stat.st_mtime_ns)


@lru_cache(maxsize=4)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@register
class DetailClip(Method):
    name, summary = "detailclip", "DetailCLIP fusion of the checkpoint's patch features: one vector per image (--checkpoint)"

    def config(self, ctx: BenchContext) -> dict:
        from detailclip.checkpoint import read_encoding_config

        if ctx.checkpoint is None:
            raise ValueError("model detailclip needs --checkpoint (a file written by `python cli.py train`)")
        return read_encoding_config(ctx.checkpoint)

    def k(self, ctx: BenchContext, config: dict) -> int | str:
        """The cover's k: --cover-k where given, else the checkpoint's."""
        return config["k"] if ctx.fusion_k is None else ctx.fusion_k

    def settings(self, ctx: BenchContext) -> dict:
        config = self.config(ctx)
        return {"checkpoint": str(ctx.checkpoint), "checkpoint_sha256": file_sha256(Path(ctx.checkpoint).resolve()),
                "scheme": config["scheme"], "k": self.k(ctx, config), "fusion": config["fusion"]}  # fmt: skip

    def features_read(self, ctx: BenchContext) -> FeatureKey:
        return self.read(ctx, self.config(ctx))

    def read(self, ctx: BenchContext, config: dict) -> FeatureKey:
        """The features the fusion of `config` reads: its scheme at the call's k, with its antialiasing."""
        return FeatureKey(config["scheme"], self.k(ctx, config), antialias=config.get("antialias", True))

    def encode(self, ctx: BenchContext) -> Encoded:
        from detailclip.backbones import count_gflops
        from detailclip.checkpoint import encoding_config, load_checkpoint
        from detailclip.encode import fuse

        device = ctx.backbone().device
        model, config = load_checkpoint(ctx.checkpoint, device)
        config = encoding_config(config, ctx.checkpoint)
        read = self.read(ctx, config)
        items = ctx.features(*read)
        start = time.perf_counter()
        vectors = fuse(model, items, device=device, progress=ctx.progress)
        fuse_seconds = (time.perf_counter() - start) / max(len(items), 1)
        passes = sum(item.num_patches for item in items) / max(len(items), 1)
        sample = torch.from_numpy(items[0].data[None].astype("float32")).to(device), None, items[0].levels[None].to(device)
        gflops = passes * ctx.gflops_per_pass() + count_gflops(model, *sample)
        images_per_s = 1.0 / (passes / ctx.passes_per_second() + fuse_seconds)
        return Encoded(ImageIndex.single(vectors), passes, gflops, images_per_s, cover_k=ctx.cover_record(read.k))
