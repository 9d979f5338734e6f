"""Per-image patch features of a list of images: from the verified cache (detailclip.feature_cache)
where present, the rest cut and encoded in batches (detailclip.patch_encoder) here or on Ray actors
(detailclip.distributed), read and decoded ahead in threads; `leading_windows` takes a scheme's features
out of those of a scheme whose windows begin with its (cc out of cc-fine) without encoding again."""

from __future__ import annotations

import contextlib
import functools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from infra.cluster import RayCluster

from .backbones import Backbone
from .cover import image_k, window_count
from .distributed import ray_encoder
from .feature_cache import FeatureCache, entry_name
from .images import content_hash, declared_size, decode_image, read_bytes
from .images import max_image_pixels as pixel_limit
from .patch_encoder import CutOptions, Pending, encode_here

PIXEL_BUDGET = 2**26  # image pixels decoded ahead, and in one batch (about 200 MB of RGB; 8960 px images go one by one)


@dataclass
class PatchFeatures:
    """The patch features of one image: patch 0 is the whole image."""

    path: str
    image_hash: str
    data: np.ndarray  # fp16 [P, D], read-only when it comes from the cache
    level_ids: np.ndarray  # int [P]

    @property
    def features(self) -> torch.Tensor:
        """float32 [P, D], L2-normalised (before fp16 rounding)."""
        return torch.from_numpy(np.asarray(self.data, dtype=np.float32))

    @property
    def levels(self) -> torch.Tensor:
        return torch.from_numpy(np.asarray(self.level_ids, dtype=np.int64))

    @property
    def num_patches(self) -> int:
        return int(self.data.shape[0])


def extract_features(
    backbone: Backbone,
    image_paths: Sequence[str | Path],
    scheme: str = "cc",
    k: int = 10,
    cache_dir: str | Path | None = None,
    batch_size: int = 4,
    object_bboxes: Sequence[Sequence[Sequence[float]]] | None = None,
    progress: bool = True,
    enlarge: float = 1.0,
    min_side: int = 8,
    antialias: bool = True,
    num_workers: int = 2,
    max_image_pixels: int | None = None,
    cluster: RayCluster | None = None,
) -> list[PatchFeatures]:
    """Patch features of every image (in order), from the cache where present.

    The images missing from the cache are cut and encoded batch_size at a time (in order; fewer when
    they hold PIXEL_BUDGET pixels), their patches streamed backbone.batch_size at a time; reading,
    hashing and decoding run ahead in `num_workers` threads, at most PIXEL_BUDGET pixels ahead, so
    memory stays bounded whatever the image size. With a `cluster`, Ray actors there encode the same
    batches (see detailclip.distributed) and this process writes the cache: the same bytes.
    `object_bboxes[i]` lists the [x, y, w, h] boxes of image i (scheme "objects" only). Larger images
    than `max_image_pixels` are refused (see images.max_image_pixels).
    """
    cut = CutOptions(scheme=scheme, k=k, enlarge=enlarge, min_side=min_side, antialias=antialias)
    if scheme == "objects" and (object_bboxes is None or len(object_bboxes) != len(image_paths)):
        raise ValueError("scheme 'objects' needs one bbox list per image")
    if cluster is None:
        encoder = contextlib.nullcontext(functools.partial(encode_here, backbone, cut))
    else:
        encoder = ray_encoder(cluster, backbone, cut, pixel_limit(max_image_pixels))
    results: list[PatchFeatures | None] = [None] * len(image_paths)
    bar = tqdm(total=len(image_paths), desc=f"features {backbone.name} {scheme}", unit="img", disable=not progress)

    def read(index: int) -> tuple[Pending, tuple | None]:
        """The image (decoded here without a cluster) and its verified cached arrays or None."""
        data = read_bytes(image_paths[index])
        bboxes = object_bboxes[index] if scheme == "objects" else None
        entry = entry_name(content_hash(data), bboxes)
        cached = cache.load(entry) if cache is not None else None
        if cached is None and cluster is None:
            data = decode_image(data, image_paths[index], max_image_pixels)
        return Pending(index, str(image_paths[index]), entry, data, bboxes), cached

    def batches() -> Iterator[list[Pending]]:
        """The images missing from the cache in batches (batch_size images, PIXEL_BUDGET pixels); the cached
        ones go to `results`."""
        batch, pixels = [], 0
        pixels_of = lambda i: math.prod(declared_size(image_paths[i]))  # noqa: E731
        for (item, cached), weight in _prefetch(pool, read, range(len(image_paths)), 2 * batch_size + 2, pixels_of):
            if cached is not None:
                results[item.index] = PatchFeatures(item.path, item.entry, *cached)
                bar.update(1)
                continue
            batch.append(item)
            pixels += weight
            if len(batch) == batch_size or pixels >= PIXEL_BUDGET:
                yield batch
                batch, pixels = [], 0
        if batch:
            yield batch

    with encoder as encode:
        cache = FeatureCache(cache_dir, backbone, cut) if cache_dir is not None else None
        with bar, ThreadPoolExecutor(max_workers=max(1, num_workers)) as pool:
            with contextlib.closing(encode(batches())) as encoded_batches:
                for batch, encoded in encoded_batches:
                    for item, (features, levels) in zip(batch, encoded):
                        if cache is not None:
                            cache.store(item.entry, features, levels)
                        results[item.index] = PatchFeatures(item.path, item.entry, features, levels)
                    bar.update(len(batch))
    return results


def leading_windows(items: list[PatchFeatures], sizes: Iterable[tuple[int, int]], scheme: str, k: int | str,
                    input_size: int) -> list[PatchFeatures]:
    """The features of `scheme`'s windows, the first of each image's features of a scheme whose windows
    begin with them (detailclip.cover.begins_with), at each image's k; sizes: each image's (height, width)."""
    leading = []
    for item, (height, width) in zip(items, sizes, strict=True):
        count = window_count(scheme, height, width, image_k(k, height, width, input_size))
        leading.append(PatchFeatures(item.path, item.image_hash, item.data[:count], item.level_ids[:count]))
    return leading


def _prefetch(pool: ThreadPoolExecutor, fn, items: Iterable, depth: int, weight) -> Iterator:
    """(fn(item), weight(item)) over items in order, at most `depth` calls and PIXEL_BUDGET of weight ahead
    (one call at least)."""
    queue: deque = deque()
    ahead = 0
    for item in items:
        cost = weight(item)
        while queue and (len(queue) >= depth or ahead + cost > PIXEL_BUDGET):
            future, done = queue.popleft()
            ahead -= done
            yield future.result(), done
        queue.append((pool.submit(fn, item), cost))
        ahead += cost
    while queue:
        future, done = queue.popleft()
        yield future.result(), done
